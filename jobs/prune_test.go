package jobs_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/jobs"
)

func TestPruneEventsKeepsRecentOnes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	project := uuid.NewString()
	for _, age := range []time.Duration{10 * 24 * time.Hour, 8 * 24 * time.Hour, time.Hour, 0} {
		if _, err := pool.Exec(ctx, `INSERT INTO events (project_id, name, payload, created_at) VALUES ($1, 'e', '{}', now() - $2::interval)`,
			project, age.String()); err != nil {
			t.Fatal(err)
		}
	}
	w := &jobs.PruneEventsWorker{Store: &db.Store{Pool: pool}, Retention: 7 * 24 * time.Hour, Log: slog.New(slog.DiscardHandler)}
	if err := w.Work(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var left int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&left)
	if left != 2 {
		t.Fatalf("%d events left, want the 2 younger than a week", left)
	}
}
