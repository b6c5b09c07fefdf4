package jobs

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
	"github.com/riverqueue/river"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/event"
	"github.com/vibegrapher/vibegrapher/domain/patch"
	"github.com/vibegrapher/vibegrapher/llm"
)

// EvaluateWorker runs the Evaluator on a patch: approval makes a Diff,
// rejection sends the feedback to the next VibeCoder iteration, up to
// MaxIterations.
type EvaluateWorker struct {
	river.WorkerDefaults[EvaluateArgs]
	*Deps
}

func (w *EvaluateWorker) NextRetry(job *river.Job[EvaluateArgs]) time.Time {
	return time.Now().Add(retryDelay(job.Attempt))
}

func (w *EvaluateWorker) Work(ctx context.Context, job *river.Job[EvaluateArgs]) error {
	return w.step(ctx, job.JobRow, job.Args.MessageID, func(t *db.Turn) error { return w.evaluate(ctx, t, job.Args) })
}

func (w *EvaluateWorker) evaluate(ctx context.Context, t *db.Turn, args EvaluateArgs) error {
	proposal, err := w.Store.GetMessage(ctx, args.PatchMessageID)
	if err != nil {
		return err
	}
	if proposal.Patch == nil {
		return permanent("the VibeCoder message under review has no patch")
	}
	diff := *proposal.Patch
	patched, err := patch.Apply(t.BaseCode, diff)
	if err != nil {
		return permanent("the patch under review no longer applies to its base: " + err.Error())
	}
	memory, err := w.memory(ctx, t, domain.AgentEvaluator)
	if err != nil {
		return err
	}
	turn := []responses.ResponseInputItemUnionParam{llm.UserMessage(
		evaluatorRequest(t.Message.Content, proposal.Content, t.BaseCode, diff, patched, args.Iteration))}
	params := reasoning(responses.ResponseNewParams{
		Model:          w.LLM.ThinkingModel(),
		Instructions:   openai.String(evaluatorInstructions),
		Input:          llm.Input(append(append([]responses.ResponseInputItemUnionParam{}, memory...), turn...)),
		Text:           llm.JSONSchemaFormat("patch_review", llm.EvaluatorSchema()),
		PromptCacheKey: openai.String(t.Session.OpenAISessionKey + "_evaluator"),
	}, "medium")
	key := fmt.Sprintf("%s/evaluator/%d", t.Message.ID, args.Iteration)
	resp, raw, err := w.call(ctx, t, key, params, domain.AgentEvaluator, args.Iteration)
	if err != nil {
		return err
	}
	var v llm.EvaluatorVerdict
	if derr := llm.DecodeOutput(resp, &v); derr != nil {
		if _, err := w.record(ctx, t, key, raw, resp, domain.AgentEvaluator, args.Iteration, resp.OutputText(), nil); err != nil {
			return err
		}
		return permanent("the Evaluator's reply is not the verdict it was asked for: " + derr.Error())
	}
	verdict := "Rejected: "
	if v.Approved {
		verdict = "Approved: "
	}
	if _, err := w.record(ctx, t, key, raw, resp, domain.AgentEvaluator, args.Iteration, verdict+v.Reasoning, nil); err != nil {
		return err
	}
	turn = append(turn, llm.InputItemsOf(resp)...)

	switch {
	case v.Approved:
		message := strings.TrimSpace(v.CommitMessage)
		if message == "" {
			message = firstLine(proposal.Content, "Apply VibeCoder patch")
		}
		return w.end(ctx, t, domain.AgentEvaluator, args.Iteration, turn, db.TurnEnd{
			Status:  domain.StatusDiffCreated,
			Outcome: event.VibecodeResponse{Patch: &diff, CommitMessage: &message, Response: &v.Reasoning},
			Diff: &domain.Diff{
				ProjectID: t.Session.ProjectID, SessionID: &t.Session.ID, MessageID: &t.Message.ID,
				BaseCommit: t.BaseCommit, TargetBranch: t.Branch, DiffContent: diff, Status: domain.DiffEvaluatorApproved,
				VibecoderPrompt: t.Message.Content, EvaluatorReasoning: v.Reasoning, CommitMessage: message,
			},
			DiffStep: t.Message.ID + "/diff",
		})
	case args.Iteration < w.MaxIterations:
		return w.end(ctx, t, domain.AgentEvaluator, args.Iteration, turn, db.TurnEnd{
			Enqueue: enqueueNext(ctx, VibecodeArgs{MessageID: t.Message.ID, Iteration: args.Iteration + 1}),
		})
	default:
		return w.end(ctx, t, domain.AgentEvaluator, args.Iteration, turn, db.TurnEnd{
			Status:  domain.StatusMaxIterations,
			Outcome: event.VibecodeResponse{Patch: &diff, FinalFeedback: &v.Reasoning},
		})
	}
}

func firstLine(s, fallback string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return fallback
	}
	return s
}
