package jobs

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain/event"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
	"github.com/vibegrapher/vibegrapher/sandbox"
)

// RunTestWorker executes a test run in the sandbox and stores its result.
type RunTestWorker struct {
	river.WorkerDefaults[jobargs.RunTestArgs]
	Store   *db.Store
	Sandbox *sandbox.Runner
	// Log gets the job_status events that could not be written (NewWorkers
	// sets it from Deps).
	Log *slog.Logger
	// MaxTimeout is SANDBOX_TIMEOUT, the longest run.
	MaxTimeout time.Duration
}

// Timeout leaves the sandbox its own wall-clock limit plus room to start and
// store.
func (w *RunTestWorker) Timeout(*river.Job[jobargs.RunTestArgs]) time.Duration {
	return w.MaxTimeout + time.Minute
}

func (w *RunTestWorker) Work(ctx context.Context, job *river.Job[jobargs.RunTestArgs]) error {
	work, ok, err := w.Store.BeginRun(ctx, job.Args.TestRunID)
	if err != nil || !ok {
		return err
	}
	statusEvent := func(state string, errText *string) event.JobStatus {
		return event.JobStatus{JobID: job.ID, Kind: job.Kind, State: state, Attempt: job.Attempt, Error: errText,
			TestRunID: work.Run.ID, TestID: work.Run.TestID}
	}
	status := func(state string, errText *string) {
		// The run goes on without it: clients see the final test_completed,
		// written with the result.
		if err := w.Store.EmitJobStatus(context.WithoutCancel(ctx), work.Run.ProjectID, statusEvent(state, errText)); err != nil && w.Log != nil {
			w.Log.WarnContext(ctx, "test run: job_status not written", "job_id", job.ID, "test_run_id", work.Run.ID, "state", state, "error", err)
		}
	}
	status("running", nil)
	res := w.Sandbox.Run(ctx, work.Code, work.Test.Code, time.Duration(work.Test.TimeoutSeconds)*time.Second)
	if errors.Is(ctx.Err(), context.Canceled) {
		// The worker is stopping or was fenced: the run is handed over as
		// it is, to run again on another worker, rather than stored as an
		// error nobody asked for. (A cancel from River UI ends the job; the
		// liveness sweep then ends the run: db.Store.EndOrphaned.)
		return ctx.Err()
	}
	rr := db.RunResult{Status: string(res.Status), Stdout: res.Stdout, Stderr: res.Stderr, Duration: res.Duration}
	if res.ExitCode >= 0 {
		code := res.ExitCode
		rr.ExitCode = &code
	}
	if res.Error != "" {
		e := res.Error
		rr.Error = &e
	}
	complete := &db.Completion{
		Job: func(tx pgx.Tx) error { return db.CompleteJob(context.WithoutCancel(ctx), tx, job.ID) },
		Event: func(tx pgx.Tx) error {
			_, err := db.Emit(context.WithoutCancel(ctx), tx, work.Run.ProjectID, statusEvent("completed", nil))
			return err
		},
	}
	if _, err := w.Store.FinishRun(context.WithoutCancel(ctx), work, rr, complete); err != nil {
		msg := err.Error()
		status("retryable", &msg)
		return err
	}
	return nil
}
