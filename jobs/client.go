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
// none: what the api role needs. Plugins are telemetry's.
func NewInsertOnlyClient(pool *pgxpool.Pool, log *slog.Logger, plugins ...rivertype.Plugin) (*Client, error) {
	return river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: riverLogger(log), Plugins: plugins})
}

// Timeouts. A vibecode job makes several calls to a reasoning model; the
// rescuer hands a job whose worker died to another worker a minute after its
// timeout, so a crash costs minutes, not River's default hour.
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
	Plugins         []rivertype.Plugin // telemetry's
}

// NewWorkerClient returns a client that works the service's queues with
// workers.
func NewWorkerClient(pool *pgxpool.Pool, log *slog.Logger, workers *river.Workers, cfg WorkerConfig) (*Client, error) {
	c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger: riverLogger(log),
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
		Plugins:              cfg.Plugins,
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
