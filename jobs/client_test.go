package jobs_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/jobs"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
)

type pickupArgs struct {
	N int `json:"n"`
}

func (pickupArgs) Kind() string { return "pickup_probe" }

func (pickupArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: jobargs.QueueVibecode}
}

type pickupWorker struct {
	river.WorkerDefaults[pickupArgs]
	started chan time.Time
}

func (w *pickupWorker) Work(context.Context, *river.Job[pickupArgs]) error {
	w.started <- time.Now()
	return nil
}

// A person sends the next message as soon as the last one is answered, and
// with a fast model that is within milliseconds. Each job must start on its
// insert's notification: River sends at most one per FetchCooldown from each
// client, and a job whose notification was left out waits for the worker's
// poll (FetchPollInterval). Inserted both by the worker's own client
// (role all) and by the api role's.
func TestJobsInsertedInQuickSuccessionStartAtOnce(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.New(t)
	workers := river.NewWorkers()
	w := &pickupWorker{started: make(chan time.Time, 1)}
	river.AddWorker(workers, w)
	worker, err := jobs.NewWorkerClient(pool, slog.New(slog.DiscardHandler), workers, jobs.WorkerConfig{ID: "pickup"})
	if err != nil {
		t.Fatal(err)
	}
	if err := worker.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = worker.Stop(context.Background()) })
	api, err := jobargs.NewInsertOnlyClient(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		client *jobargs.Client
	}{{"worker's client", worker}, {"api's client", api}} {
		t.Run(c.name, func(t *testing.T) {
			const n = 12
			waits := make([]time.Duration, 0, n)
			for i := range n {
				inserted := time.Now()
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					_, err := c.client.InsertTx(ctx, tx, pickupArgs{N: i}, nil)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				select {
				case started := <-w.started:
					waits = append(waits, started.Sub(inserted))
				case <-time.After(5 * time.Second):
					t.Fatalf("job %d not started after 5s", i)
				}
			}
			// Without a notification of its own every job after the first
			// waits out the cooldown: 99–102 ms each with River's default
			// (100 ms). With one, a few ms on a quiet machine, yet up to 144
			// ms, and a median of 44, on one busy with a whole test run in
			// parallel with other work. So judge the quickest quarter.
			t.Log(waits)
			slices.Sort(waits)
			if quick := waits[n/4]; quick > 60*time.Millisecond {
				t.Errorf("a quarter of the jobs started within %s of their insert, want the notification's few ms; all: %v", quick, waits)
			}
		})
	}
}

// River sends at most one insert notification per queue per FetchCooldown
// from each client, keyed by the insert's time: a job inserted sooner after
// another went unannounced and, when the workers had fetched for the first
// before its COMMIT, waited for their poll. jobargs' inserts announce those
// River held back, and only those. The client here holds back every
// notification of River's own after its first (a cooldown of an hour): the
// first is River's alone, each later one jobargs'.
func TestEveryJobInsertIsAnnounced(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.New(t)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{FetchCooldown: time.Hour, FetchPollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	var schema string
	if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{schema + ".river_insert"}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	// announced returns the payloads that arrive within wait of each other.
	announced := func(wait time.Duration) []string {
		var got []string
		for {
			wctx, cancel := context.WithTimeout(ctx, wait)
			n, err := conn.Conn().WaitForNotification(wctx)
			cancel()
			if err != nil {
				return got
			}
			got = append(got, n.Payload)
			wait = 300 * time.Millisecond
		}
	}
	// insert runs fn in a transaction and returns how many statements of
	// its own (not River's) sent a notification: a NOTIFY makes
	// PostgreSQL serialize the COMMITs that carry one, so jobargs sends none
	// where River did.
	insert := func(fn func(tx pgx.Tx) error) (own int) {
		t.Helper()
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			rec := &notifyCounter{Tx: tx}
			err := fn(rec)
			own = rec.own
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return own
	}
	vibecode, tests := `{"queue": "vibecode"}`, `{"queue": "tests"}`
	for i := range 3 {
		own := insert(func(tx pgx.Tx) error {
			_, err := jobargs.InsertTx(ctx, client, tx, pickupArgs{N: i}, nil)
			return err
		})
		if got := announced(5 * time.Second); !slices.Equal(got, []string{vibecode}) {
			t.Fatalf("insert %d: notifications %q, want one, %s", i+1, got, vibecode)
		}
		// River announced the first insert itself, and no later one.
		if want := min(i, 1); own != want {
			t.Fatalf("insert %d: %d statements of jobargs notified, want %d", i+1, own, want)
		}
	}
	insert(func(tx pgx.Tx) error {
		_, err := jobargs.InsertManyTx(ctx, client, tx, []river.InsertManyParams{
			{Args: pickupArgs{N: 10}}, {Args: pickupArgs{N: 11}},
			{Args: pickupArgs{N: 12}, InsertOpts: &river.InsertOpts{Queue: jobargs.QueueTests}},
		})
		return err
	})
	got := announced(5 * time.Second)
	slices.Sort(got)
	if want := []string{tests, vibecode}; !slices.Equal(got, want) {
		t.Fatalf("an insert of three jobs in two queues: notifications %q, want %q", got, want)
	}
}

// notifyCounter counts the statements run in its transaction that send a
// notification and are not River's own (jobargs.RiverNotifySQL).
type notifyCounter struct {
	pgx.Tx
	own int
}

func (c *notifyCounter) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if strings.Contains(sql, "pg_notify") && !strings.HasPrefix(sql, jobargs.RiverNotifySQL) {
		c.own++
	}
	return c.Tx.Exec(ctx, sql, args...)
}

type classArgs struct{}

func (classArgs) Kind() string { return "class_probe" }

func (classArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: jobargs.QueueVibecode}
}

// classWorker runs a transaction on busy and says when it got its
// connection.
type classWorker struct {
	river.WorkerDefaults[classArgs]
	busy *pgxpool.Pool
	ran  chan<- string
}

func (w *classWorker) Work(ctx context.Context, _ *river.Job[classArgs]) error {
	return db.InTx(ctx, w.busy, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT 1")
		w.ran <- "job"
		return err
	})
}

// A job's transactions go before a request's when the pool is busy: the
// worker client marks every job's context (db.ForJob). A pool of one
// connection is held; a request's transaction waits for it, then a job's;
// the job's runs first.
func TestAJobsTransactionGoesBeforeAWaitingRequests(t *testing.T) {
	ctx := context.Background()
	url := dbtest.NewURL(t)
	busy := dbtest.Pool(t, url, 1)
	ran := make(chan string, 2)
	workers := river.NewWorkers()
	river.AddWorker(workers, &classWorker{busy: busy, ran: ran})
	worker, err := jobs.NewWorkerClient(dbtest.Pool(t, url, 0), slog.New(slog.DiscardHandler), workers, jobs.WorkerConfig{ID: "class"})
	if err != nil {
		t.Fatal(err)
	}
	if err := worker.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = worker.Stop(context.Background()) })

	var request sync.WaitGroup
	t.Cleanup(request.Wait) // after the holder's release, before the pools close
	release := dbtest.HoldSlots(t, busy, 1)
	request.Go(func() {
		err := db.InTx(ctx, busy, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "SELECT 1")
			ran <- "request"
			return err
		})
		if err != nil {
			t.Errorf("request: %v", err)
		}
	})
	dbtest.WaitForWaiting(t, busy, db.ClassOther, 1)
	if _, err := worker.Insert(ctx, classArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	dbtest.WaitForWaiting(t, busy, db.ClassJob, 1)
	release()
	var order []string
	for range 2 {
		select {
		case name := <-ran:
			order = append(order, name)
		case <-time.After(10 * time.Second):
			t.Fatalf("transactions after the holder: %q, want both", order)
		}
	}
	if order[0] != "job" {
		t.Errorf("transactions ran in the order %q, want the job's first", order)
	}
}
