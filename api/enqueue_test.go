package api_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/api"
	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
)

// The jobs of a group of messages are inserted together, and each message
// gets the id of its own job (matched by the job's args).
func TestEnqueueVibecodeGivesEachMessageItsJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	client, err := jobargs.NewInsertOnlyClient(pool, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a := api.New(api.Options{Store: &db.Store{Pool: pool}, Jobs: client, Log: slog.New(slog.DiscardHandler)})
	ids := []string{uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()}
	var jobs []int64
	if err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
		jobs, err = a.EnqueueVibecode(ctx, tx, ids)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(jobs) != len(ids) {
		t.Fatalf("%d job ids for %d messages", len(jobs), len(ids))
	}
	for i, id := range ids {
		var message string
		var iteration int
		if err := pool.QueryRow(ctx, `SELECT args->>'message_id', (args->>'iteration')::int FROM river_job WHERE id = $1 AND kind = 'vibecode'`, jobs[i]).
			Scan(&message, &iteration); err != nil {
			t.Fatalf("job %d of message %s: %v", jobs[i], id, err)
		}
		if message != id || iteration != 1 {
			t.Errorf("message %s got job %d, which is message %s's (iteration %d)", id, jobs[i], message, iteration)
		}
	}
}
