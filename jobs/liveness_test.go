package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/patch"
	"github.com/vibegrapher/vibegrapher/domain/vibecode"
	"github.com/vibegrapher/vibegrapher/internal/openaitest"
	"github.com/vibegrapher/vibegrapher/jobs"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
	"github.com/vibegrapher/vibegrapher/llm"
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
	// The jobs are set up before any Liveness starts: each one reaps, and
	// one that reaped a job before its setup ended would see another job.
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

	alive := quickLiveness(pool, "alive-worker")
	if err := alive.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(alive.Stop)
	reaper := quickLiveness(pool, "reaper")
	if err := reaper.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reaper.Stop)

	// Wait until none of the dead worker's jobs is running.
	for deadline := time.Now().Add(bound); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var running bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM river_job WHERE id = ANY($1) AND state = 'running')`,
			[]int64{deadJob, cancelledJob, exhaustedJob}).Scan(&running); err != nil {
			t.Fatal(err)
		}
		if !running {
			break
		}
	}
	var state string
	var attempt int
	var lastError string
	if err := pool.QueryRow(ctx, `SELECT state, attempt, coalesce(errors[array_upper(errors, 1)]->>'error', '') FROM river_job WHERE id = $1`,
		deadJob).Scan(&state, &attempt, &lastError); err != nil {
		t.Fatal(err)
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

// liveWorker runs the service's workers on pool as the worker role does,
// with the fake model ai, its liveness looking for deleted messages every
// 50 ms. It returns the store and the worker's client.
func liveWorker(t *testing.T, pool *pgxpool.Pool, ai *openaitest.Server) (*db.Store, *jobargs.Client) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	store := &db.Store{Pool: pool}
	deps := &jobs.Deps{
		Store:         store,
		LLM:           llm.New(llm.Config{APIKey: "test", BaseURL: ai.URL(), ThinkingModel: "gpt-5", SmallModel: "gpt-5-mini"}),
		MaxIterations: 3,
		Log:           log,
		DeltaInterval: 20 * time.Millisecond,
	}
	workers := jobs.NewWorkers(deps, &jobs.RunTestWorker{}, &jobs.PruneEventsWorker{Retention: time.Hour})
	client, live, err := jobs.NewLiveWorkerClient(pool, log, workers, jobs.WorkerConfig{VibecodeWorkers: 2, EvaluateWorkers: 2, TestWorkers: 1})
	if err != nil {
		t.Fatal(err)
	}
	live.GoneCheckInterval = 50 * time.Millisecond
	if err := live.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := client.Start(context.Background()); err != nil {
		live.Stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.StopAndCancel(ctx)
		live.Stop()
	})
	return store, client
}

// A message deleted while its model call is under way has the call
// cancelled whatever the call is doing, not only at its next streamed text:
// a VibeCoder still reasoning (nothing streamed), one streaming a patch's
// arguments (no text), an Evaluator (its verdict is not streamed). The fake
// model sees the client go away; the job completes without a retry and
// without a vibecode_response or a failure for the deleted message.
func TestADeletedMessagesCallIsCancelledInEveryPhase(t *testing.T) {
	t.Parallel()
	patched := strings.Replace(domain.SampleWorkflow, `input="Hola, ¿cómo estás?"`, `input="Hello"`, 1)
	validPatch, _ := json.Marshal(map[string]string{"patch": patch.Unified(domain.SampleWorkflow, patched, "script.py"), "description": "Greet in English"})
	longPatch, _ := json.Marshal(map[string]string{"patch": strings.Repeat("+print('hello') ", 2000), "description": "long"})
	for _, tc := range []struct {
		name   string
		before []openaitest.Reply // served first, in full
		stall  openaitest.Reply   // the call under way when the message is deleted
	}{
		{name: "VibeCoder reasoning", stall: openaitest.Reasoning("Weighing the options").And(openaitest.Text("never read")).WithStall(time.Hour)},
		{name: "VibeCoder streaming a patch's arguments", stall: openaitest.FunctionCall("submit_patch", string(longPatch)).WithDelay(50 * time.Millisecond)},
		{name: "Evaluator", before: []openaitest.Reply{openaitest.FunctionCall("submit_patch", string(validPatch))},
			stall: openaitest.JSON(vibecode.Verdict{Approved: true, Reasoning: "never read", CommitMessage: "never"}).WithStall(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool := dbtest.New(t)
			ai := openaitest.New(t)
			ai.Enqueue(tc.before...)
			asked := make(chan struct{})
			var once sync.Once
			ai.Handle(func(openaitest.Request) openaitest.Reply {
				once.Do(func() { close(asked) })
				return tc.stall
			})
			store, client := liveWorker(t, pool, ai)
			p, err := store.CreateProject(ctx, domain.NewProject{Name: "gone"})
			if err != nil {
				t.Fatal(err)
			}
			sess, _, err := store.CreateSession(ctx, p.ID, domain.NewSession{}, vibecode.CheckNode)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.SubmitMessage(ctx, sess.ID, domain.NewMessage{Prompt: "Greet in English"}, func(ctx context.Context, tx pgx.Tx, ids []string) ([]int64, error) {
				res, err := client.InsertTx(ctx, tx, jobargs.VibecodeArgs{MessageID: ids[0], Iteration: 1}, nil)
				if err != nil {
					return nil, err
				}
				return []int64{res.Job.ID}, nil
			}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-asked:
			case <-time.After(bound):
				t.Fatal("the model was not called")
			}
			if err := store.ClearSession(ctx, sess.ID); err != nil {
				t.Fatal(err)
			}

			count := func(sql string, args ...any) int {
				var n int
				if err := pool.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
				return n
			}
			const unfinished = `SELECT count(*) FROM river_job WHERE state <> 'completed'`
			for deadline := time.Now().Add(bound); ai.CallsLeft() == 0 || count(unfinished) > 0; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("after session_cleared: the model call was left %d times, %d jobs not completed", ai.CallsLeft(), count(unfinished))
				}
			}
			if n := count(`SELECT count(*) FROM river_job WHERE errors IS NOT NULL OR attempt <> 1`); n != 0 {
				t.Errorf("%d jobs failed or were retried", n)
			}
			if want := len(tc.before) + 1; ai.Calls() != want {
				t.Errorf("%d model calls, want %d: the cancelled one was made again", ai.Calls(), want)
			}
			rows, err := pool.Query(ctx, `SELECT name || coalesce(' ' || (payload->>'state'), '') FROM events WHERE project_id = $1 AND seq >
				(SELECT max(seq) FROM events WHERE project_id = $1 AND name = 'session_cleared') ORDER BY seq`, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			after, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"job_status completed"}; !slices.Equal(after, want) {
				t.Errorf("events after session_cleared: %q, want %q", after, want)
			}
			if n := count(`SELECT count(*) FROM events WHERE project_id = $1 AND (name = 'vibecode_response'
				OR (name = 'job_status' AND payload->>'state' NOT IN ('running', 'completed')))`, p.ID); n != 0 {
				t.Errorf("%d vibecode_response or failed job_status events for the deleted message", n)
			}
		})
	}
}
