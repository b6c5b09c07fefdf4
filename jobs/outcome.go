package jobs

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain/event"
	"github.com/vibegrapher/vibegrapher/llm"
)

// permanentError ends a message as failed at once: retrying cannot help.
type permanentError struct{ reason string }

func (e *permanentError) Error() string { return e.reason }

func permanent(reason string) error { return &permanentError{reason} }

// retryDelay is River's wait before attempt n+1: quick at first (a model
// endpoint blip), then backing off to a minute.
func retryDelay(attempt int) time.Duration {
	delays := []time.Duration{2 * time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute}
	return delays[min(max(attempt-1, 0), len(delays)-1)]
}

// finish decides how a step of the loop ends for River. Success completes
// the job. A permanent error, or a transient one on the last attempt, ends
// the message as failed with a reason a person can act on, and completes
// the job: the failure is the message's, not River's. Other errors go back to
// River to retry.
func (d *Deps) finish(ctx context.Context, t *db.Turn, job *rivertype.JobRow, err error) error {
	if err == nil || errors.Is(err, db.ErrTurnGone) {
		d.jobStatus(ctx, t, job, "completed", nil)
		return nil
	}
	reason := reasonOf(err)
	if retryable(err) && job.Attempt < job.MaxAttempts {
		d.jobStatus(ctx, t, job, "retryable", &reason)
		return err
	}
	if retryable(err) {
		reason = "gave up after " + strconv.Itoa(job.Attempt) + " attempts: " + reason
	}
	if ferr := d.Store.FailTurn(context.WithoutCancel(ctx), t, reason); ferr != nil {
		return ferr
	}
	d.jobStatus(ctx, t, job, "failed", &reason)
	return nil
}

// retryable reports whether an error may pass when the job runs again: model
// call errors say so themselves; database and other errors are retried.
func retryable(err error) bool {
	var perm *permanentError
	if errors.As(err, &perm) {
		return false
	}
	if isModelError(err) {
		return llm.IsTransient(err)
	}
	return true
}

// modelError marks an error of a model call, which llm classifies.
type modelError struct{ err error }

func (e *modelError) Error() string { return e.err.Error() }
func (e *modelError) Unwrap() error { return e.err }

func isModelError(err error) bool {
	var me *modelError
	return errors.As(err, &me)
}

func reasonOf(err error) string {
	var perm *permanentError
	if errors.As(err, &perm) {
		return perm.reason
	}
	if isModelError(err) {
		return llm.ErrorMessage(err)
	}
	return err.Error()
}

// jobStatus emits job_status for the project of t. It is best effort: the
// event is progress information, not state.
func (d *Deps) jobStatus(ctx context.Context, t *db.Turn, job *rivertype.JobRow, state string, errText *string) {
	e := event.JobStatus{
		JobID: job.ID, Kind: job.Kind, State: state, Attempt: job.Attempt, Error: errText,
		MessageID: t.Message.ID, SessionID: t.Session.ID, TraceID: t.Message.TraceID,
	}
	if err := d.Store.EmitJobStatus(context.WithoutCancel(ctx), t.Session.ProjectID, e); err != nil {
		d.Log.Warn("emit job_status", "job", job.ID, "error", err)
	}
}
