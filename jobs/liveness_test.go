package jobs_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/jobs"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
)

// bound is how long a test waits for something that should happen.
const bound = 15 * time.Second

func quickLiveness(pool *pgxpool.Pool, id string) *jobs.Liveness {
	l := jobs.NewLiveness(pool, slog.New(slog.DiscardHandler), id)
	l.CheckInterval, l.FenceAfter, l.ReapGrace, l.SweepInterval = 50*time.Millisecond, 200*time.Millisecond, 300*time.Millisecond, 50*time.Millisecond
	return l
}

// runningJob inserts a job and makes it look worked by clientID.
func runningJob(t *testing.T, pool *pgxpool.Pool, clientID string) int64 {
	t.Helper()
	ctx := context.Background()
	c, err := jobargs.NewInsertOnlyClient(pool, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Insert(ctx, jobargs.PruneEventsArgs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now(), attempted_by = ARRAY[$2]
		WHERE id = $1`, res.Job.ID, clientID); err != nil {
		t.Fatal(err)
	}
	return res.Job.ID
}

func TestLivenessHandsOverTheJobsOfADeadWorkerOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	alive := quickLiveness(pool, "alive-worker")
	if err := alive.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(alive.Stop)
	deadJob := runningJob(t, pool, "dead-worker")
	aliveJob := runningJob(t, pool, "alive-worker")
	// A cancel asked for (River UI) while its worker was dead: River's
	// rescuer would cancel it, and so does the reaper, rather than run it.
	cancelledJob := runningJob(t, pool, "dead-worker")
	if _, err := pool.Exec(ctx, `UPDATE river_job SET metadata = jsonb_build_object('cancel_attempted_at', now()) WHERE id = $1`, cancelledJob); err != nil {
		t.Fatal(err)
	}
	// A job whose workers died in all its attempts, its give-backs used up:
	// discarded, as River discards a job out of attempts, rather than run
	// by the next worker it may kill too.
	exhaustedJob := runningJob(t, pool, "dead-worker")
	reaperGiveBacks := quickLiveness(pool, "any").MaxGiveBack
	if _, err := pool.Exec(ctx, `UPDATE river_job SET attempt = max_attempts, metadata = jsonb_build_object('vibegrapher:reaped', $2::int)
		WHERE id = $1`, exhaustedJob, reaperGiveBacks); err != nil {
		t.Fatal(err)
	}

	reaper := quickLiveness(pool, "reaper")
	if err := reaper.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reaper.Stop)

	var state string
	var attempt int
	var lastError string
	for deadline := time.Now().Add(bound); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := pool.QueryRow(ctx, `SELECT state, attempt, coalesce(errors[array_upper(errors, 1)]->>'error', '') FROM river_job WHERE id = $1`,
			deadJob).Scan(&state, &attempt, &lastError); err != nil {
			t.Fatal(err)
		}
		if state != "running" {
			break
		}
	}
	if state != "available" || attempt != 0 {
		t.Fatalf("the dead worker's job is %s with attempt %d, want available with its attempt given back", state, attempt)
	}
	if want := "worker dead-worker died"; len(lastError) < len(want) || lastError[:len(want)] != want {
		t.Fatalf("the job's last error is %q, want it to name the dead worker", lastError)
	}
	// The sweep that reaped the dead worker's job saw the live one's too.
	if err := pool.QueryRow(ctx, `SELECT state FROM river_job WHERE id = $1`, aliveJob).Scan(&state); err != nil {
		t.Fatal(err)
	}
	if state != "running" {
		t.Fatalf("the live worker's job is %s, want it left running", state)
	}
	var finalized bool
	if err := pool.QueryRow(ctx, `SELECT state, finalized_at IS NOT NULL FROM river_job WHERE id = $1`, cancelledJob).Scan(&state, &finalized); err != nil {
		t.Fatal(err)
	}
	if state != "cancelled" || !finalized {
		t.Fatalf("the dead worker's job with a cancel asked for is %s (finalized %v), want cancelled", state, finalized)
	}
	if err := pool.QueryRow(ctx, `SELECT state, finalized_at IS NOT NULL FROM river_job WHERE id = $1`, exhaustedJob).Scan(&state, &finalized); err != nil {
		t.Fatal(err)
	}
	if state != "discarded" || !finalized {
		t.Fatalf("the dead worker's job out of attempts and give-backs is %s (finalized %v), want discarded", state, finalized)
	}
}

type blockArgs struct{}

func (blockArgs) Kind() string { return "liveness_test_block" }

// blockWorker runs until its context ends and reports why it ended.
type blockWorker struct {
	river.WorkerDefaults[blockArgs]
	started chan struct{}
	cause   chan error
}

func (w *blockWorker) Work(ctx context.Context, _ *river.Job[blockArgs]) error {
	close(w.started)
	<-ctx.Done()
	w.cause <- context.Cause(ctx)
	return ctx.Err()
}

func TestLivenessFencesAWorkerThatLostItsLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	const id = "fenced-worker"
	live := quickLiveness(pool, id)
	if err := live.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(live.Stop)
	w := &blockWorker{started: make(chan struct{}), cause: make(chan error, 1)}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		ID: id, Logger: slog.New(slog.DiscardHandler), Workers: workers,
		Queues:     map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
		Middleware: []rivertype.Middleware{live.Middleware()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.StopAndCancel(context.Background()) })
	if _, err := client.Insert(ctx, blockArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.started:
	case <-time.After(bound):
		t.Fatal("the job did not start")
	}

	// Another session queues for the worker's lock, then the worker's lock
	// connection is killed: the lock goes to the waiting session, and the
	// worker cannot take it back.
	thief, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = thief.Close(context.Background()) })
	stolen := make(chan error, 1)
	go func() {
		_, err := thief.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext($2))`, db.LivenessLockClass, id)
		stolen <- err
	}()
	for deadline := time.Now().Add(bound); ; time.Sleep(20 * time.Millisecond) {
		var waiting bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid = $1)`,
			thief.PgConn().PID()).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second session does not wait for the lock")
		}
	}
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = 'vibegrapher-liveness' AND datname = current_database()`); err != nil {
		t.Fatal(err)
	}
	if err := <-stolen; err != nil {
		t.Fatal(err)
	}
	select {
	case cause := <-w.cause:
		if !errors.Is(cause, jobs.ErrLivenessLost) {
			t.Fatalf("the job was cancelled because %v, want %v", cause, jobs.ErrLivenessLost)
		}
	case <-time.After(bound):
		t.Fatal("the job of a worker without its lock was not cancelled")
	}
}
