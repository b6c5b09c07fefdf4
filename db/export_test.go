package db

import (
	"context"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ListDiffsSQL is ListDiffs' statement for the filters given.
var ListDiffsSQL = listDiffsSQL

// TakenSlugs is the statement that reads the slugs taken under a base name.
const TakenSlugs = takenSlugs

// ScriptCached reports whether the script cache holds the code of the
// project's head (a project's repository has the project's id).
func ScriptCached(projectID, commit string) bool {
	_, ok := scripts.get(scriptKey{uuid.MustParse(projectID), plumbing.NewHash(commit)})
	return ok
}

// ForgetScripts drops the project's entries from the script cache, as if it
// had been created by another process.
func ForgetScripts(projectID string) { scripts.forget(uuid.MustParse(projectID)) }

// FailOrphanedMessage is the sweep's end of one message it found with its
// job in state.
func FailOrphanedMessage(s *Store, ctx context.Context, id, state string) (bool, error) {
	return s.failOrphanedMessage(ctx, id, state)
}

// ListProjectsSQL and ListRunsSQL are the statements that read a page of
// projects and of a test's runs.
const (
	ListProjectsSQL = listProjects
	ListRunsSQL     = listRuns
)

// ReadAfterDelete reads project id's row, deletes the project, then reads
// what a GET of the project and of its log read from git with that row, as
// a request that straddles a DeleteProject does.
func ReadAfterDelete(s *Store, ctx context.Context, id string) (projectErr, logErr error) {
	p, err := loadProjectRow(ctx, s.Pool, id, false)
	if err != nil {
		return err, err
	}
	if err := s.DeleteProject(ctx, id); err != nil {
		return err, err
	}
	_, projectErr = readProjectAt(ctx, s.Pool, p, false)
	_, logErr = projectLog(ctx, s.Pool, p, 10, "")
	return projectErr, logErr
}

// EmitsRunning is whether an event's statement is running in the database,
// as the outbox's readers see it.
func EmitsRunning(ctx context.Context, q Querier) (bool, error) {
	return emitsRunning(ctx, q, time.Now())
}

// SendBatchReserved sends b on c as a transaction's batches are sent: with
// c's write buffer grown for b first (writebuf.go).
func SendBatchReserved(ctx context.Context, c *pgx.Conn, b *pgx.Batch) pgx.BatchResults {
	return sendBatch(ctx, c, b)
}

// SessionLockKey is the key of the advisory lock that orders a session's
// submissions.
func SessionLockKey(sessionID string) int64 { return sessionLock(uuid.MustParse(sessionID)) }

// NotifyEvery is how far apart a process's NOTIFYs are at least.
const NotifyEvery = notifyEvery

// WatchNotifies calls seen with the time each NOTIFY of pool's announcer
// starts, before it is sent.
func WatchNotifies(pool *pgxpool.Pool, seen func(time.Time)) {
	a := announcerOf(pool)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.notify = func(ctx context.Context, q Querier, payload string) {
		seen(time.Now())
		notifyAfterCommit(ctx, q, payload)
	}
}
