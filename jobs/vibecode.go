package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/event"
	"github.com/vibegrapher/vibegrapher/domain/vibecode"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
	"github.com/vibegrapher/vibegrapher/llm"
)

// VibecodeWorker runs one VibeCoder step: a streamed model call loop with the
// submit_patch tool, ending in a text answer or a valid patch for the
// Evaluator.
type VibecodeWorker struct {
	river.WorkerDefaults[jobargs.VibecodeArgs]
	*Deps
}

func (w *VibecodeWorker) Work(ctx context.Context, job *river.Job[jobargs.VibecodeArgs]) error {
	// A message's first step waits for the earlier messages of its session:
	// StartTurn checks in the statement that starts it.
	var review *db.PendingMessage // the Evaluator's feedback, from iteration 2
	var prefetch func(pgx.Tx, *db.Turn)
	if job.Args.Iteration > 1 {
		prefetch = func(tx pgx.Tx, t *db.Turn) {
			review = db.ReplyLater(ctx, tx, t.Message.ID, domain.AgentEvaluator, job.Args.Iteration-1)
		}
	}
	work := func(t *db.Turn, memory llm.Items) error { return w.vibecode(ctx, job, t, memory, review) }
	err := step(ctx, w.Deps, job, job.Args.MessageID, job.Args.Iteration == 1, domain.AgentVibeCoder, prefetch, work)
	if !errors.Is(err, db.ErrEarlierMessage) {
		return err
	}
	pending, err := w.Store.EarlierMessagePending(ctx, job.Args.MessageID)
	if err != nil {
		return err
	}
	if pending {
		// The transaction that ends the earlier message wakes this
		// job (db.EndTurn, and the liveness sweep for a wake-up that
		// came while this job was running); the snooze is only a
		// safety net.
		return river.JobSnooze(SessionOrderSnooze)
	}
	// The earlier messages had lost their jobs and are failed now.
	return step(ctx, w.Deps, job, job.Args.MessageID, false, domain.AgentVibeCoder, prefetch, work)
}

// vibecode runs the VibeCoder's step with memory, its conversation so far,
// and from iteration 2 the Evaluator's review of the last patch.
func (w *VibecodeWorker) vibecode(ctx context.Context, job *river.Job[jobargs.VibecodeArgs], t *db.Turn, memory llm.Items, review *db.PendingMessage) error {
	iteration := job.Args.Iteration
	node, err := vibecode.FocusNode(t.BaseCode, t.Session.NodeID)
	if err != nil {
		return vibecode.Permanent(err.Error())
	}
	var turn llm.Items
	if iteration == 1 {
		turn.AddUserKept(llm.VibeCoderRequest(t.Message.Content, t.BaseCode, node), llm.VibeCoderRequestKept(t.Message.Content))
	} else {
		feedback, err := review.Result()
		if err != nil {
			return err
		}
		turn.AddUserKept(llm.VibeCoderFeedback(feedback.Content, t.BaseCode, node), llm.VibeCoderFeedbackKept(feedback.Content))
	}
	var problem string
	for round := 1; round <= vibecode.MaxPatchRounds; round++ {
		key := fmt.Sprintf("%s/vibecoder/%d/%d", t.Message.ID, iteration, round)
		var lastDelta string // sent with the reply, in its transaction
		c := modelCall{key: key, agent: domain.AgentVibeCoder, iteration: iteration, attempt: job.Attempt}
		reply, err := w.call(ctx, t, c, func() (*llm.Reply, error) {
			// A message deleted while its answer streams (its session
			// cleared, its project deleted) stops the call at its next
			// text, when its vibecode_delta finds the message gone; in any
			// other phase the worker's liveness stops it (Deps.call).
			callCtx, stop := context.WithCancelCause(ctx)
			defer stop(nil)
			deltas := newDeltaBatcher(ctx, w.Deps, t, domain.AgentVibeCoder, iteration, func() { stop(db.ErrTurnGone) })
			defer deltas.done()
			r, err := w.LLM.VibeCoder(callCtx, llm.AgentCall{SessionKey: t.Session.OpenAISessionKey, Memory: memory, Turn: turn}, deltas.add)
			if errors.Is(context.Cause(callCtx), db.ErrTurnGone) {
				return nil, db.ErrTurnGone
			}
			if err != nil {
				deltas.flush()
			} else {
				lastDelta = deltas.take()
			}
			return r, err
		})
		if err != nil {
			return err
		}
		turn.AddReply(reply)
		next := vibecode.AfterVibeCoderReply(t.BaseCode, node, replyText(reply), reply.ToolCalls())
		if next.Empty {
			// Billed all the same (reasoning, at least): its usage counts.
			w.keepFailedCall(ctx, t, c, reply)
			return vibecode.EmptyReply()
		}
		turn.AddToolOutputs(next.Outputs)
		var diff *string
		if next.Accepted != nil {
			diff = &next.Accepted.Diff
		}
		stored := replyMessage(t, key, reply, domain.AgentVibeCoder, iteration, next.Content, diff, lastDelta)
		switch {
		case next.Answered:
			return end(ctx, w.Deps, job, t, domain.AgentVibeCoder, iteration, turn, db.TurnEnd{
				Reply: stored, Status: domain.StatusAnswered, Outcome: event.VibecodeResponse{Response: &next.Content}})
		case next.Accepted != nil:
			return end(ctx, w.Deps, job, t, domain.AgentVibeCoder, iteration, turn, nextJob(ctx, db.TurnEnd{Reply: stored},
				func(m *domain.ConversationMessage) jobargs.LoopArgs {
					return jobargs.EvaluateArgs{MessageID: t.Message.ID, Iteration: iteration, PatchMessageID: m.ID}
				}))
		}
		if err := w.record(ctx, stored); err != nil {
			return err
		}
		problem = next.Problem
	}
	return vibecode.NoPatchAfterRounds(problem)
}

// replyText is a reply's words to the person: its text, or its refusal.
func replyText(reply *llm.Reply) string {
	if text := reply.Text(); text != "" {
		return text
	}
	return reply.Refusal()
}
