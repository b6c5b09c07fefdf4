package jobs

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
)

// Client is the River client type of the service.
type Client = river.Client[pgx.Tx]

// NewInsertOnlyClient returns a client that inserts and reads jobs but works
// none: what the api role needs.
func NewInsertOnlyClient(pool *pgxpool.Pool, log *slog.Logger) (*Client, error) {
	return river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: riverLogger(log)})
}

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
}

// NewWorkerClient returns a client that works the service's queues with
// workers.
func NewWorkerClient(pool *pgxpool.Pool, log *slog.Logger, workers *river.Workers, cfg WorkerConfig) (*Client, error) {
	c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		ID:         cfg.ID,
		Middleware: cfg.Middleware,
		Logger:     riverLogger(log),
		Queues: map[string]river.QueueConfig{
			QueueVibecode: {MaxWorkers: max(cfg.VibecodeWorkers, 1)},
			QueueEvaluate: {MaxWorkers: max(cfg.EvaluateWorkers, 1)},
			QueueTests:    {MaxWorkers: max(cfg.TestWorkers, 1)},
			QueueMaint:    {MaxWorkers: 1},
		},
		Workers: workers,
		// A person is waiting on every job: fetch soon after an insert's
		// notification, and poll often enough that a lost one costs little.
		FetchCooldown:        10 * time.Millisecond,
		FetchPollInterval:    200 * time.Millisecond,
		JobTimeout:           JobTimeout,
		RescueStuckJobsAfter: RescueStuckJobsAfter,
		PeriodicJobs:         cfg.PeriodicJobs,
	})
	if err != nil {
		return nil, fmt.Errorf("create River client: %w", err)
	}
	return c, nil
}

// riverLogger keeps River's own messages at warning and above: its info logs
// are per job and drown the service's.
func riverLogger(log *slog.Logger) *slog.Logger {
	if log == nil {
		log = slog.Default()
	}
	return slog.New(levelFloor{log.Handler(), slog.LevelWarn})
}
