package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/event"
	"github.com/vibegrapher/vibegrapher/domain/vibecode"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
	"github.com/vibegrapher/vibegrapher/llm"
)

// Deps are what the vibecode workers share.
type Deps struct {
	Store         *db.Store
	LLM           *llm.Client
	MaxIterations int
	Log           *slog.Logger
	// DeltaInterval batches streamed text into vibecode_delta events.
	DeltaInterval time.Duration
	// DeltaRate bounds the vibecode_delta events the process writes a
	// second, shared by the calls holding streamed text at once: each holds
	// its text for DeltaInterval, or for streams/DeltaRate seconds when that
	// is longer, up to maxDeltaInterval. 0 sets no bound.
	DeltaRate int

	streams atomic.Int64 // calls holding streamed text now (deltaBatcher)
}

// maxDeltaInterval bounds how long streamed text waits for its
// vibecode_delta however many calls stream at once: a client sees an answer
// grow at least every second while it streams.
const maxDeltaInterval = time.Second

// deltaInterval is how long a call holds streamed text before it writes a
// vibecode_delta, with streams calls holding text at once.
func (d *Deps) deltaInterval(streams int64) time.Duration {
	if d.DeltaRate <= 0 {
		return d.DeltaInterval
	}
	shared := time.Duration(streams) * time.Second / time.Duration(d.DeltaRate)
	return max(d.DeltaInterval, min(shared, maxDeltaInterval))
}

// step runs one step of the loop for a user message: it loads the message
// (nothing to do when it is gone or already ended), reports the job running,
// reads agent's memory, runs work with it, and ends the job as
// vibecode.AfterError decides. work ends its step with end, which completes
// the job in the same transaction. With inOrder, a message whose session has
// an earlier one queued or running is not started (db.ErrEarlierMessage).
// prefetch, when set, queues the reads work begins with (db.MessageLater,
// db.ReplyLater) to go with the start's COMMIT too.
func step[T river.JobArgs](ctx context.Context, d *Deps, job *river.Job[T], messageID string, inOrder bool, agent string,
	prefetch func(pgx.Tx, *db.Turn), work func(*db.Turn, llm.Items) error) error {
	buf := memoryBuffers.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= maxPooledMemory {
			memoryBuffers.Put(buf)
		}
	}()
	var memory *db.PendingMemory
	t, err := d.Store.StartTurn(ctx, messageID, inOrder, func(tx pgx.Tx, t *db.Turn) error {
		if domain.IsFinal(*t.Message.Status) {
			return nil
		}
		// These go with the COMMIT of the start. A failed read (the
		// database's, not a missing row or the memory's form) fails the
		// start as a failed UPDATE would: River retries the job.
		memory = db.ReadMemoryLater(ctx, tx, t.Session.OpenAISessionKey, agent, *buf)
		if prefetch != nil {
			prefetch(tx, t)
		}
		return db.QueueEvent(ctx, tx, t.Session.ProjectID, jobStatusEvent(t, job.JobRow, "running", nil))
	})
	if errors.Is(err, db.ErrTurnGone) {
		return nil
	}
	if err != nil {
		return err
	}
	if domain.IsFinal(*t.Message.Status) {
		return nil
	}
	err = stepWork(&t, memory, buf, work)
	if errors.Is(err, db.ErrTurnGone) {
		d.jobStatus(ctx, &t, job.JobRow, "completed", nil)
		return nil
	}
	if err == nil {
		return nil
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		// The worker is stopping or was fenced (Liveness): the step is
		// handed over as it is, to resume on another worker from what is
		// stored; it is neither a failure of the message nor a retry.
		return err
	}
	f := vibecode.AfterError(err, job.Attempt, job.MaxAttempts)
	if f.Retry {
		d.jobStatus(ctx, &t, job.JobRow, "retryable", &f.Reason)
		return err
	}
	// The failure is the message's, not River's: the job completes with it.
	return d.Store.FailTurn(context.WithoutCancel(ctx), &t, f.Reason, completeJob(ctx, job, &t, "failed", &f.Reason))
}

// stepWork runs work with the memory read at the start of the step, kept in
// buf for the next step.
func stepWork(t *db.Turn, memory *db.PendingMemory, buf *[]byte, work func(*db.Turn, llm.Items) error) error {
	raw, err := memory.Result()
	if err != nil {
		return err
	}
	*buf = raw
	items, err := llm.MemoryOf(raw)
	if err != nil {
		return err
	}
	return work(t, items)
}

// completeJob completes job in the transaction that ends its step, and emits
// its job_status there, so the event and River's state cannot disagree.
func completeJob[T river.JobArgs](ctx context.Context, job *river.Job[T], t *db.Turn, state string, errText *string) *db.Completion {
	return &db.Completion{
		Job: func(tx pgx.Tx) error { return db.CompleteJob(context.WithoutCancel(ctx), tx, job.ID) },
		Event: func(tx pgx.Tx) error {
			return db.QueueEvent(context.WithoutCancel(ctx), tx, t.Session.ProjectID, jobStatusEvent(t, job.JobRow, state, errText))
		},
	}
}

func jobStatusEvent(t *db.Turn, job *rivertype.JobRow, state string, errText *string) event.JobStatus {
	return event.JobStatus{
		JobID: job.ID, Kind: job.Kind, State: state, Attempt: job.Attempt, Error: errText,
		MessageID: t.Message.ID, SessionID: t.Session.ID, TraceID: t.Message.TraceID,
	}
}

// jobStatus emits job_status for the project of t. It is best effort: the
// event is progress information, not state.
func (d *Deps) jobStatus(ctx context.Context, t *db.Turn, job *rivertype.JobRow, state string, errText *string) {
	if err := d.Store.EmitJobStatus(context.WithoutCancel(ctx), t.Session.ProjectID, jobStatusEvent(t, job, state, errText)); err != nil {
		d.Log.Warn("emit job_status", "job", job.ID, "error", err)
	}
}

// modelCall names one model call of a step: its key (the same in every
// attempt of the job, so a retry finds the reply stored before), and the
// attempt and labels a failed call is kept under.
type modelCall struct {
	key       string
	agent     string
	iteration int
	attempt   int
}

// call makes one model call, or returns the reply stored under its key by an
// earlier attempt of the job: a step retried after a crash acts on what the
// model already answered. A call that fails with a response (it ended
// "incomplete" or "failed") was billed: its usage is kept for the message
// (db.RecordFailedCall) before the error is returned. While the model works,
// the worker's liveness watches the message (watchCall): deleted meanwhile,
// the call is cancelled, whatever it is doing, and call returns
// db.ErrTurnGone, which ends the step quietly.
func (d *Deps) call(ctx context.Context, t *db.Turn, c modelCall, model func() (*llm.Reply, error)) (*llm.Reply, error) {
	raw, ok, err := d.Store.StoredCall(ctx, t, c.key)
	if err != nil {
		return nil, err
	}
	if ok {
		return d.LLM.StoredReply(raw)
	}
	done := watchCall(ctx, t.Message.ID)
	reply, err := model()
	done()
	if errors.Is(context.Cause(ctx), db.ErrTurnGone) {
		return nil, db.ErrTurnGone
	}
	if err != nil {
		if reply != nil {
			d.keepFailedCall(ctx, t, c, reply)
		}
		return nil, err
	}
	return reply, nil
}

// keepFailedCall stores a failed call's response and usage, best effort: the
// step's failure is what matters, and it is reported whatever happens here.
func (d *Deps) keepFailedCall(ctx context.Context, t *db.Turn, c modelCall, reply *llm.Reply) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), replyStoreTimeout)
	defer cancel()
	// The response's id makes the key unique: an attempt's number comes
	// again when the attempt of a dead worker is given back.
	key := fmt.Sprintf("%s/failed/%d/%s", c.key, c.attempt, reply.ID())
	if err := d.Store.RecordFailedCall(rctx, t, key, reply.Raw(), reply.Usage(c.agent, c.iteration)); err != nil {
		d.Log.Warn("store a failed model call's usage", "key", key, "error", err)
	}
}

// replyMessage is a model reply as the store keeps it, with its usage.
// delta is streamed text not emitted yet (see deltaBatcher.take).
func replyMessage(t *db.Turn, key string, r *llm.Reply, agent string, iteration int, content string, diff *string, delta string) *db.AssistantMessage {
	return &db.AssistantMessage{
		Turn: t, CallKey: key, Response: r.Raw(), ResponseID: r.ID(), Agent: agent, Iteration: iteration,
		Content: content, Patch: diff, Usage: r.Usage(agent, iteration), Delta: delta,
	}
}

// record stores a reply that the step does not act on in its ending
// transaction, with its events.
func (d *Deps) record(ctx context.Context, a *db.AssistantMessage) error {
	_, err := d.Store.RecordReply(ctx, *a)
	return err
}

// memoryBuffers are the buffers a step reads its agent's memory into, kept
// from one step to the next: the memory was the largest allocation of a
// message (a fifth of its bytes under the pipeline load), and it grows with
// the conversation. A step's model requests are copies of it (their bodies),
// so the buffer is free again when the step ends.
var memoryBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledMemory bounds the buffers kept: an unusually long conversation's
// is left to the collector.
const maxPooledMemory = 4 << 20

// replyStoreTimeout bounds storing a reply after its step's transaction
// failed, which may happen after the job's own context has ended.
const replyStoreTimeout = 5 * time.Second

// end writes the end of a step: the reply it acts on (e.Reply), the turn's
// memory items and e, and completes the job, in one transaction. When that
// transaction fails, the reply is stored on its own, so that the retry acts on
// it rather than paying for the call again.
func end[T river.JobArgs](ctx context.Context, d *Deps, job *river.Job[T], t *db.Turn, agent string, iteration int, turn llm.Items, e db.TurnEnd) error {
	e.Agent, e.TurnKey, e.Items = agent, fmt.Sprintf("%s/%d", t.Message.ID, iteration), turn.Kept()
	e.Complete = completeJob(ctx, job, t, "completed", nil)
	err := d.Store.EndTurn(ctx, t, e)
	if err != nil && e.Reply != nil {
		// Also when the job's context has ended (its timeout, a hand-over at
		// shutdown): the reply was paid for, and the retry should stream
		// nothing again. The write is keyed by the call, so a late one from a
		// worker that lost the job changes nothing.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), replyStoreTimeout)
		defer cancel()
		if rerr := d.record(rctx, e.Reply); rerr != nil && !errors.Is(rerr, db.ErrTurnGone) {
			d.Log.Warn("store the model reply after the step failed", "key", e.Reply.CallKey, "error", rerr)
		}
	}
	return err
}

// nextJob is a step's end that goes on with the user message: the next job
// of the loop, made of the reply stored with the end (nil when there is
// none), inserted in the transaction that ends this step, together with the
// next jobs of the other steps that end in it (db/ends.go), by the River
// client of the running worker. The insert does not end with the job's
// ctx: the transaction may be a group's, whose connection a cancelled
// statement would break for every member (a group waits at most 100 ms for
// a lock, and a step alone ends with its other statements).
func nextJob(ctx context.Context, end db.TurnEnd, args func(reply *domain.ConversationMessage) jobargs.LoopArgs) db.TurnEnd {
	end.Next = func(reply *domain.ConversationMessage) db.JobArgs { return args(reply) }
	end.Enqueue = func(tx pgx.Tx, jobs []db.JobArgs) ([]int64, error) {
		client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
		if err != nil {
			return nil, err
		}
		params := make([]river.InsertManyParams, len(jobs))
		loop := make([]jobargs.LoopArgs, len(jobs))
		for i, j := range jobs {
			l, ok := j.(jobargs.LoopArgs)
			if !ok {
				return nil, fmt.Errorf("a %s job is no job of the vibecode loop", j.Kind())
			}
			loop[i], params[i] = l, river.InsertManyParams{Args: j}
		}
		res, err := jobargs.InsertManyTx(context.WithoutCancel(ctx), client, tx, params)
		if err != nil {
			return nil, err
		}
		return jobargs.InsertedIDs(loop, res)
	}
	return end
}
