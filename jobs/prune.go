package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
)

// PruneEventsWorker deletes outbox events older than the retention period.
// Clients that reconnect with an older `since` get what is left.
type PruneEventsWorker struct {
	river.WorkerDefaults[jobargs.PruneEventsArgs]
	Store     *db.Store
	Retention time.Duration
	Log       *slog.Logger
}

func (w *PruneEventsWorker) Work(ctx context.Context, _ *river.Job[jobargs.PruneEventsArgs]) error {
	n, err := db.DeleteEventsBefore(ctx, w.Store.Pool, time.Now().Add(-w.Retention))
	if err != nil {
		return err
	}
	if n > 0 {
		w.Log.Info("pruned outbox events", "deleted", n, "older_than", w.Retention)
	}
	return nil
}

// PruneEventsPeriodically runs PruneEventsWorker every hour, and once at start.
func PruneEventsPeriodically() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
		func() (river.JobArgs, *river.InsertOpts) { return jobargs.PruneEventsArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}
