package db

import "github.com/jackc/pgx/v5/pgxpool"

// TakenSlugs is the statement that reads the slugs taken under a base name.
const TakenSlugs = takenSlugs

// SubmissionsWaiting is how many submissions to pool wait for a transaction
// (submissions.go).
func SubmissionsWaiting(pool *pgxpool.Pool) int {
	q := submissionsOf(pool)
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting)
}
