package jobs

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/event"
	"github.com/vibegrapher/vibegrapher/domain/patch"
	"github.com/vibegrapher/vibegrapher/domain/vibecode"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
	"github.com/vibegrapher/vibegrapher/llm"
)

// EvaluateWorker runs the Evaluator on a patch: approval makes a Diff,
// rejection sends the feedback to the next VibeCoder iteration, up to
// MaxIterations.
type EvaluateWorker struct {
	river.WorkerDefaults[jobargs.EvaluateArgs]
	*Deps
}

func (w *EvaluateWorker) Work(ctx context.Context, job *river.Job[jobargs.EvaluateArgs]) error {
	var proposal *db.PendingMessage
	prefetch := func(tx pgx.Tx, _ *db.Turn) { proposal = db.MessageLater(ctx, tx, job.Args.PatchMessageID) }
	return step(ctx, w.Deps, job, job.Args.MessageID, false, domain.AgentEvaluator, prefetch, func(t *db.Turn, memory llm.Items) error {
		return w.evaluate(ctx, job, t, memory, proposal)
	})
}

// evaluate runs the Evaluator's step with memory, its conversation so far,
// on pending, the VibeCoder message with the patch under review.
func (w *EvaluateWorker) evaluate(ctx context.Context, job *river.Job[jobargs.EvaluateArgs], t *db.Turn, memory llm.Items, pending *db.PendingMessage) error {
	args := job.Args
	proposal, err := pending.Result()
	if err != nil {
		return err
	}
	if proposal.Patch == nil {
		return vibecode.Permanent("the VibeCoder message under review has no patch")
	}
	diff := *proposal.Patch
	patched, err := patch.Apply(t.BaseCode, diff)
	if err != nil {
		return vibecode.Permanent("the patch under review no longer applies to its base: " + err.Error())
	}
	var turn llm.Items
	turn.AddUserKept(llm.EvaluatorRequest(t.Message.Content, proposal.Content, diff, patched, args.Iteration),
		llm.EvaluatorRequestKept(t.Message.Content, proposal.Content, diff, args.Iteration))
	key := fmt.Sprintf("%s/evaluator/%d", t.Message.ID, args.Iteration)
	c := modelCall{key: key, agent: domain.AgentEvaluator, iteration: args.Iteration, attempt: job.Attempt}
	reply, err := w.call(ctx, t, c, func() (*llm.Reply, error) {
		return w.LLM.Evaluator(ctx, llm.AgentCall{SessionKey: t.Session.OpenAISessionKey, Memory: memory, Turn: turn})
	})
	if err != nil {
		return err
	}
	v, derr := reply.Verdict()
	if derr != nil {
		if err := w.record(ctx, replyMessage(t, key, reply, domain.AgentEvaluator, args.Iteration, replyText(reply), nil, "")); err != nil {
			return err
		}
		return vibecode.Permanent("the Evaluator's reply is not the verdict it was asked for: " + derr.Error())
	}
	next := vibecode.AfterVerdict(v, args.Iteration, w.MaxIterations, proposal.Content)
	turn.AddReply(reply)

	var e db.TurnEnd
	switch next.Next {
	case vibecode.Approve:
		e = db.TurnEnd{
			Status:  domain.StatusDiffCreated,
			Outcome: event.VibecodeResponse{Patch: &diff, CommitMessage: &next.CommitMessage, Response: &v.Reasoning},
			Diff: &domain.Diff{
				ProjectID: t.Session.ProjectID, SessionID: &t.Session.ID, MessageID: &t.Message.ID,
				BaseCommit: t.BaseCommit, TargetBranch: t.Branch, DiffContent: diff, Status: domain.DiffEvaluatorApproved,
				VibecoderPrompt: t.Message.Content, EvaluatorReasoning: v.Reasoning, CommitMessage: next.CommitMessage,
			},
			// Keyed by the patch, not by the user message: a message id sent
			// again after its session was cleared has a patch of its own,
			// and the earlier diff (maybe committed) outlives the clear.
			DiffStep: proposal.ID + "/diff",
		}
	case vibecode.Revise:
		e = nextJob(ctx, db.TurnEnd{}, func(*domain.ConversationMessage) jobargs.LoopArgs {
			return jobargs.VibecodeArgs{MessageID: t.Message.ID, Iteration: args.Iteration + 1}
		})
	case vibecode.GiveUp:
		// The VibeCoder learns a review from its next iteration's request;
		// there is none after the last, so its memory gets the review the
		// person was shown, for the session's next message.
		var told llm.Items
		told.AddUser(llm.VibeCoderFinalVerdict(v.Reasoning))
		e = db.TurnEnd{
			Status: domain.StatusMaxIterations, Outcome: event.VibecodeResponse{Patch: &diff, FinalFeedback: &v.Reasoning},
			Told: &db.MemoryTurn{Agent: domain.AgentVibeCoder, TurnKey: fmt.Sprintf("%s/%d/review", t.Message.ID, args.Iteration), Items: told.Marshal()},
		}
	}
	e.Reply = replyMessage(t, key, reply, domain.AgentEvaluator, args.Iteration, next.Content, nil, "")
	return end(ctx, w.Deps, job, t, domain.AgentEvaluator, args.Iteration, turn, e)
}
