package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
)

// SessionOrderSnooze is how long the first job of a message waits when an
// earlier message of its session has not ended. The earlier message's ending
// transaction wakes it (db.EndTurn), and so does the liveness sweep; this is
// the safety net behind both.
const SessionOrderSnooze = 30 * time.Second

// ErrLivenessLost is the cause of the cancellation of a job whose worker lost
// its liveness lock: another worker may already run the job.
var ErrLivenessLost = errors.New("this worker lost its liveness lock; another worker takes its jobs over")

// Liveness makes a worker's death visible in the database within a second and
// hands its running jobs to the other workers. River v0.51 has no per-client
// liveness (its rescuer only acts on jobs older than RescueStuckJobsAfter),
// so:
//
//   - each worker process holds a session-level advisory lock named after its
//     River client id (db.TryLockWorker) on a connection of its own, taken
//     before River starts and released after River stopped. PostgreSQL frees
//     it the moment the process's connection ends: kill -9, OOM, a lost host.
//   - each worker's reaper looks every SweepInterval for running jobs whose
//     client (the last of attempted_by) does not hold its lock, and makes
//     them available once the lock has been seen free for ReapGrace
//     (db.ReapJobsOf): a restarting database or a killed lock connection is
//     not a death when the worker takes its lock back in time.
//   - fencing: a worker that has not held its lock for FenceAfter
//     (< ReapGrace) cancels its running jobs itself, so that a job is not
//     worked twice at once. A late write of such a job is harmless anyway:
//     every step of a message is idempotent (model_calls, step keys, EndTurn).
//   - deleted messages: a job waiting on the model for a user message
//     (watchCall) is cancelled, cause db.ErrTurnGone, within GoneCheckInterval
//     of the message's deletion (its session cleared, its project deleted),
//     whatever the call is doing: reasoning, streaming a patch's arguments,
//     an Evaluator's unstreamed verdict. Nobody will read the answer, and the
//     call is billed while it runs. One query per interval for all of the
//     worker's calls (db.GoneMessages), none while no call is in flight.
//
// The reaper runs in every worker, not as a leader-only periodic job: River's
// leader is re-elected only after its 5 s TTL (plus padding), and a reaper
// that dies with the leader would cost that much.
type Liveness struct {
	ClientID string
	Pool     *pgxpool.Pool
	Log      *slog.Logger

	CheckInterval time.Duration // how often the lock connection is checked
	FenceAfter    time.Duration // without the lock this long, cancel own jobs
	ReapGrace     time.Duration // a lock seen free this long means a dead worker
	SweepInterval time.Duration // how often the reaper looks
	// GoneCheckInterval is how often the messages of the model calls in
	// flight are looked for (watchGone).
	GoneCheckInterval time.Duration
	// MaxGiveBack is how many deaths of its workers a job is not charged an
	// attempt for; past them, a death on its last attempt discards it (a job
	// that kills its workers runs out of attempts).
	MaxGiveBack int

	mu       sync.Mutex
	conn     *pgx.Conn
	lostAt   time.Time // zero while the lock is held
	fenced   bool
	running  map[int64]*runningJob
	stop     context.CancelFunc
	loops    sync.WaitGroup
	freeSeen map[string]time.Time // reaper: since when a client's lock looks free
}

// NewLiveness returns the liveness of the worker whose River client id is
// clientID, with the timings docs/reliability.md explains.
func NewLiveness(pool *pgxpool.Pool, log *slog.Logger, clientID string) *Liveness {
	return &Liveness{
		ClientID: clientID, Pool: pool, Log: log,
		CheckInterval: 250 * time.Millisecond,
		FenceAfter:    time.Second,
		ReapGrace:     2 * time.Second,
		SweepInterval: 500 * time.Millisecond,
		MaxGiveBack:   3,

		GoneCheckInterval: time.Second,
	}
}

// NewLiveWorkerClient is NewWorkerClient with its Liveness: the client id
// set, the middleware installed. Start the liveness before the client and
// stop it after.
func NewLiveWorkerClient(pool *pgxpool.Pool, log *slog.Logger, workers *river.Workers, cfg WorkerConfig) (*jobargs.Client, *Liveness, error) {
	cfg.ID = NewClientID()
	live := NewLiveness(pool, log, cfg.ID)
	cfg.Middleware = append(cfg.Middleware, live.Middleware())
	client, err := NewWorkerClient(pool, log, workers, cfg)
	return client, live, err
}

var clientSeq atomic.Int64

// NewClientID returns a River client id unique to this process and to this
// client in it: host, pid, start time and a counter (River's own default
// has no pid).
func NewClientID() string {
	host, _ := os.Hostname()
	host = strings.NewReplacer(".", "_", " ", "_").Replace(host)
	if len(host) > 50 {
		host = host[:50]
	}
	return fmt.Sprintf("%s_%d_%s_%d", host, os.Getpid(), time.Now().UTC().Format("2006_01_02T15_04_05_000000"), clientSeq.Add(1))
}

// Start takes the lock, or fails when it cannot: River must not start
// without it, or the other workers would reap its jobs. Then it keeps the
// lock and runs the reaper until Stop.
func (l *Liveness) Start(ctx context.Context) error {
	if err := l.lock(ctx); err != nil {
		return err
	}
	l.running = map[int64]*runningJob{}
	l.freeSeen = map[string]time.Time{}
	ctx, l.stop = context.WithCancel(context.WithoutCancel(ctx))
	l.loops.Go(func() { l.keep(ctx) })
	l.loops.Go(func() { l.reap(ctx) })
	l.loops.Go(func() { l.watchGone(ctx) })
	return nil
}

// Stop ends the reaper and releases the lock. Call it after River stopped:
// a job still running then is reaped by the other workers.
func (l *Liveness) Stop() {
	if l.stop == nil {
		return
	}
	l.stop()
	l.loops.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = db.UnlockWorker(ctx, l.conn, l.ClientID)
		_ = l.conn.Close(ctx)
		l.conn = nil
	}
}

// lock connects and takes the lock.
func (l *Liveness) lock(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cfg := l.Pool.Config().ConnConfig.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "vibegrapher-liveness"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect for the worker liveness lock: %w", err)
	}
	ok, err := db.TryLockWorker(ctx, conn, l.ClientID)
	if err == nil && !ok {
		err = fmt.Errorf("the liveness lock of worker %s is held by another session", l.ClientID)
	}
	if err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return err
	}
	l.mu.Lock()
	l.conn = conn
	l.mu.Unlock()
	return nil
}

// keep checks the lock connection, takes the lock again when it was lost,
// and fences this worker when that takes longer than FenceAfter.
func (l *Liveness) keep(ctx context.Context) {
	t := time.NewTicker(l.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		conn := l.conn
		l.mu.Unlock()
		if conn != nil {
			pctx, cancel := context.WithTimeout(ctx, max(l.CheckInterval, 500*time.Millisecond))
			err := conn.Ping(pctx)
			cancel()
			if err == nil || ctx.Err() != nil {
				continue
			}
			_ = conn.Close(context.Background())
			l.mu.Lock()
			l.conn, l.lostAt = nil, time.Now()
			l.mu.Unlock()
			l.Log.Warn("worker liveness lock lost; taking it again", "client_id", l.ClientID, "error", err)
		}
		if err := l.lock(ctx); err == nil {
			l.mu.Lock()
			lost := time.Since(l.lostAt)
			l.lostAt, l.fenced = time.Time{}, false
			l.mu.Unlock()
			l.Log.Info("worker liveness lock held again", "client_id", l.ClientID, "after", lost.Round(time.Millisecond))
			continue
		} else if ctx.Err() != nil {
			return
		} else {
			l.Log.Debug("take worker liveness lock", "error", err)
		}
		l.mu.Lock()
		if !l.fenced && time.Since(l.lostAt) >= l.FenceAfter {
			l.fenced = true
			for _, j := range l.running {
				j.cancel(ErrLivenessLost)
			}
			l.Log.Warn("worker liveness lock not held; cancelled the running jobs so that other workers take them over",
				"client_id", l.ClientID, "jobs", len(l.running))
		}
		l.mu.Unlock()
	}
}

// orphanSweepEvery is how many sweeps go by between two looks for messages
// and test runs whose job ended without them (db.Store.EndOrphaned): a few
// seconds is soon enough for what a River UI action or a discarded job left,
// and the look reads every unfinished message.
const orphanSweepEvery = 10

// reap makes the jobs of dead workers available, wakes messages whose
// session predecessor ended while their job was about to snooze, and now
// and then ends the messages and test runs whose job ended without them.
func (l *Liveness) reap(ctx context.Context) {
	t := time.NewTicker(l.SweepInterval)
	defer t.Stop()
	store := &db.Store{Pool: l.Pool}
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := l.reapOnce(ctx); err != nil && ctx.Err() == nil {
			l.Log.Debug("liveness: reap", "error", err)
		}
		if _, err := db.WakeWaitingMessages(ctx, l.Pool); err != nil && ctx.Err() == nil {
			l.Log.Debug("liveness: wake waiting messages", "error", err)
		}
		if n%orphanSweepEvery != 0 {
			continue
		}
		msgs, runs, err := store.EndOrphaned(ctx)
		if err != nil && ctx.Err() == nil {
			l.Log.Debug("liveness: end orphaned work", "error", err)
		}
		if msgs+runs > 0 {
			l.Log.Info("ended work whose job ended without it (cancelled, deleted or discarded)", "messages", msgs, "test_runs", runs)
		}
	}
}

func (l *Liveness) reapOnce(ctx context.Context) error {
	free, err := db.UnheldWorkers(ctx, l.Pool)
	if err != nil {
		return err
	}
	now := time.Now()
	seen := make(map[string]time.Time, len(free))
	var dead []string
	for _, id := range free {
		since, ok := l.freeSeen[id]
		if !ok {
			since = now
		}
		seen[id] = since
		if now.Sub(since) >= l.ReapGrace {
			dead = append(dead, id)
		}
	}
	l.freeSeen = seen
	if len(dead) == 0 {
		return nil
	}
	reaped, err := db.ReapJobsOf(ctx, l.Pool, dead, l.MaxGiveBack)
	for _, j := range reaped {
		if j.Cancelled {
			l.Log.Info("job cancelled: its worker died after a cancel was asked for", "job", j.ID, "kind", j.Kind, "dead_worker", j.ClientID)
			continue
		}
		if j.Discarded {
			l.Log.Warn("job discarded: its workers died in every attempt", "job", j.ID, "kind", j.Kind, "dead_worker", j.ClientID)
			continue
		}
		l.Log.Info("job made available again: its worker died", "job", j.ID, "kind", j.Kind, "dead_worker", j.ClientID)
	}
	return err
}

// Middleware returns the River middleware that lets the liveness cancel
// this worker's running jobs when it is fenced. Install it on the worker's
// client.
func (l *Liveness) Middleware() rivertype.Middleware { return &livenessMiddleware{l: l} }

type livenessMiddleware struct {
	river.MiddlewareDefaults
	l *Liveness
}

func (m *livenessMiddleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	l := m.l
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	running := &runningJob{l: l, cancel: cancel}
	ctx = context.WithValue(ctx, runningKey{}, running)
	l.mu.Lock()
	if l.fenced {
		cancel(ErrLivenessLost)
	}
	if l.running != nil {
		l.running[job.ID] = running
	}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.running, job.ID)
		l.mu.Unlock()
	}()
	err := doInner(ctx)
	// River hands a job cancelled by its shutdown over at once (state
	// available, attempt given back) only when the error says
	// context.Canceled; a step that failed on its cancelled context may say
	// something else (the database call it was making, say).
	if err != nil && errors.Is(ctx.Err(), context.Canceled) && !errors.Is(err, context.Canceled) {
		err = fmt.Errorf("%w: %w", context.Cause(ctx), err)
		if !errors.Is(err, context.Canceled) {
			err = fmt.Errorf("%w: %w", context.Canceled, err)
		}
	}
	return err
}

// runningJob is a job of this worker, as its liveness knows it: how to
// cancel it, and while it waits on the model for a user message, the
// message's id (watchCall). l.mu guards message.
type runningJob struct {
	l       *Liveness
	cancel  context.CancelCauseFunc
	message string
}

// runningKey is the context key of a job's *runningJob.
type runningKey struct{}

// watchCall tells the liveness of the worker running ctx's job that the job
// waits on the model for the user message messageID, until the returned
// func is called: when the message is deleted meanwhile, watchGone cancels
// the job with cause db.ErrTurnGone. Without a liveness (a job worked
// outside a worker client, as rivertest does) it does nothing.
func watchCall(ctx context.Context, messageID string) (done func()) {
	j, _ := ctx.Value(runningKey{}).(*runningJob)
	if j == nil {
		return func() {}
	}
	j.l.mu.Lock()
	j.message = messageID
	j.l.mu.Unlock()
	return func() {
		j.l.mu.Lock()
		j.message = ""
		j.l.mu.Unlock()
	}
}

// watchGone cancels, every GoneCheckInterval, the jobs whose model call is
// for a message that no longer exists, with cause db.ErrTurnGone: the step
// ends as it does when it finds its message gone (jobs/step.go), its job
// completed, nothing stored. One query a tick for all the calls in flight,
// none while there is none, and no goroutine or timer per call.
func (l *Liveness) watchGone(ctx context.Context) {
	t := time.NewTicker(l.GoneCheckInterval)
	defer t.Stop()
	var ids []string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ids = ids[:0]
		l.mu.Lock()
		for _, j := range l.running {
			if j.message != "" {
				ids = append(ids, j.message)
			}
		}
		l.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		gone, err := db.GoneMessages(ctx, l.Pool, ids)
		if err != nil {
			if ctx.Err() == nil {
				l.Log.Debug("liveness: look for deleted messages", "error", err)
			}
			continue
		}
		if len(gone) == 0 {
			continue
		}
		l.mu.Lock()
		// Only a job still waiting on the model for the message: one whose
		// call ended meanwhile acts on its reply and finds the message gone
		// in its own transaction.
		for _, j := range l.running {
			if j.message != "" && slices.Contains(gone, j.message) {
				j.cancel(db.ErrTurnGone)
			}
		}
		l.mu.Unlock()
		l.Log.Debug("cancelled model calls of deleted messages", "messages", len(gone))
	}
}
