package jobs

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/riverqueue/river/rivertest"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
)

// The next jobs of a group's ends go in one call of the Enqueue of one of them,
// and each end gets the id of its own job, whatever order River returns the
// rows in.
func TestNextJobsAreMatchedToTheirEnds(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.New(t)
	client, err := jobargs.NewInsertOnlyClient(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	end := nextJob(rivertest.WorkContext(ctx, client), db.TurnEnd{}, func(*domain.ConversationMessage) jobargs.LoopArgs { return nil })
	jobs := []db.JobArgs{
		jobargs.EvaluateArgs{MessageID: uuid.NewString(), Iteration: 1, PatchMessageID: uuid.NewString()},
		jobargs.VibecodeArgs{MessageID: uuid.NewString(), Iteration: 2},
		jobargs.EvaluateArgs{MessageID: uuid.NewString(), Iteration: 3, PatchMessageID: uuid.NewString()},
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := end.Enqueue(tx, jobs)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if len(ids) != len(jobs) {
		t.Fatalf("%d ids for %d jobs", len(ids), len(jobs))
	}
	for i, id := range ids {
		want := jobs[i].(jobargs.LoopArgs)
		var kind, message string
		if err := pool.QueryRow(ctx, `SELECT kind, args->>'message_id' FROM river_job WHERE id = $1`, id).Scan(&kind, &message); err != nil {
			t.Fatalf("job %d: %v", id, err)
		}
		if kind != want.Kind() || message != want.Message() {
			t.Errorf("id %d of job %d is a %s job of message %s, want %s of %s", id, i, kind, message, want.Kind(), want.Message())
		}
	}
}
