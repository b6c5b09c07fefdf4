package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
)

// Timeouts. A vibecode job makes several calls to a reasoning model. A job
// whose worker died is handed over within seconds by Liveness; River's
// rescuer, a minute after the timeout, is only the last resort (a worker
// that hangs while its process and lock connection live on).
const (
	JobTimeout           = 10 * time.Minute
	RescueStuckJobsAfter = JobTimeout + time.Minute
)

// WorkerConfig sizes the worker role.
type WorkerConfig struct {
	VibecodeWorkers int
	EvaluateWorkers int
	TestWorkers     int
	PeriodicJobs    []*river.PeriodicJob
	// ID is the River client id; the worker's liveness lock is named after
	// it (Liveness), so it is set, not left to River's default.
	ID         string
	Middleware []rivertype.Middleware
	Plugins    []rivertype.Plugin // telemetry's
}

// NewWorkerClient returns a client that works the service's queues with
// workers.
func NewWorkerClient(pool *pgxpool.Pool, log *slog.Logger, workers *river.Workers, cfg WorkerConfig) (*jobargs.Client, error) {
	c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		ID:         cfg.ID,
		Middleware: append([]rivertype.Middleware{&jobClass{}}, cfg.Middleware...),
		Logger:     jobargs.Logger(log),
		Queues: map[string]river.QueueConfig{
			jobargs.QueueVibecode: {MaxWorkers: max(cfg.VibecodeWorkers, 1)},
			jobargs.QueueEvaluate: {MaxWorkers: max(cfg.EvaluateWorkers, 1)},
			jobargs.QueueTests:    {MaxWorkers: max(cfg.TestWorkers, 1)},
			jobargs.QueueMaint:    {MaxWorkers: 1},
		},
		Workers: workers,
		// A person is waiting on every job: fetch soon after an insert's
		// notification. Every insert and every wake-up of a job is
		// announced (jobargs.InsertTx, db's wake-ups and reaper), so the
		// poll only covers notifications lost while a listener reconnects:
		// River's default of a second. 200 ms polls of three queues cost
		// an idle `all` about 40 % of its CPU (docs/benchmarks.md).
		FetchCooldown:        jobargs.FetchCooldown,
		FetchPollInterval:    time.Second,
		JobTimeout:           JobTimeout,
		RescueStuckJobsAfter: RescueStuckJobsAfter,
		PeriodicJobs:         cfg.PeriodicJobs,
		RetryPolicy:          retryPolicy{},
		Plugins:              cfg.Plugins,
	})
	if err != nil {
		return nil, fmt.Errorf("create River client: %w", err)
	}
	return c, nil
}

// jobClass marks every job's context (db.ForJob): when the database pool is
// busy, a job's transactions go before requests', so that work a person is
// already waiting for is not queued behind new messages (db/slots.go).
type jobClass struct{ river.MiddlewareDefaults }

func (*jobClass) Work(ctx context.Context, _ *rivertype.JobRow, doInner func(context.Context) error) error {
	return doInner(db.ForJob(ctx))
}

// retryPolicy is River's wait before the next attempt of every job: quick at
// first (a model endpoint blip), then backing off to a minute. River's own
// default (attempt^4 seconds) would leave a person waiting far longer.
type retryPolicy struct{}

func (retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(retryDelay(job.Attempt))
}

func retryDelay(attempt int) time.Duration {
	delays := []time.Duration{2 * time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute}
	return delays[min(max(attempt-1, 0), len(delays)-1)]
}
