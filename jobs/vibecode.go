package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/event"
	"github.com/vibegrapher/vibegrapher/domain/patch"
	"github.com/vibegrapher/vibegrapher/domain/pyast"
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
}

// maxPatchRounds bounds how often the VibeCoder may retry a patch that does
// not apply within one job.
const maxPatchRounds = 5

// VibecodeWorker runs one VibeCoder step: a streamed Responses API call loop
// with the submit_patch tool, ending in a text answer or a valid patch for the
// Evaluator.
type VibecodeWorker struct {
	river.WorkerDefaults[VibecodeArgs]
	*Deps
}

func (w *VibecodeWorker) NextRetry(job *river.Job[VibecodeArgs]) time.Time {
	return time.Now().Add(retryDelay(job.Attempt))
}

func (w *VibecodeWorker) Work(ctx context.Context, job *river.Job[VibecodeArgs]) error {
	if job.Args.Iteration == 1 {
		pending, err := w.Store.EarlierMessagePending(ctx, job.Args.MessageID)
		if err != nil {
			return err
		}
		if pending {
			return river.JobSnooze(500 * time.Millisecond)
		}
	}
	return w.step(ctx, job.JobRow, job.Args.MessageID, func(t *db.Turn) error { return w.vibecode(ctx, t, job.Args.Iteration) })
}

// step runs one step of the loop for a user message: it loads the message
// (nothing to do when it is gone or already ended), reports the job running,
// and lets finish decide how the step's error ends the job.
func (d *Deps) step(ctx context.Context, job *rivertype.JobRow, messageID string, work func(*db.Turn) error) error {
	t, err := d.Store.StartTurn(ctx, messageID)
	if errors.Is(err, db.ErrTurnGone) {
		return nil
	}
	if err != nil {
		return err
	}
	if domain.IsFinal(*t.Message.Status) {
		return nil
	}
	d.jobStatus(ctx, &t, job, "running", nil)
	return d.finish(ctx, &t, job, work(&t))
}

func (w *VibecodeWorker) vibecode(ctx context.Context, t *db.Turn, iteration int) error {
	node, err := focusNode(t)
	if err != nil {
		return permanent(err.Error())
	}
	memory, err := w.memory(ctx, t, domain.AgentVibeCoder)
	if err != nil {
		return err
	}
	text := vibecoderRequest(t.Message.Content, t.BaseCode, node)
	if iteration > 1 {
		review, err := w.Store.Reply(ctx, t.Message.ID, domain.AgentEvaluator, iteration-1)
		if err != nil {
			return err
		}
		text = vibecoderFeedback(review.Content, t.BaseCode, node)
	}
	turn := []responses.ResponseInputItemUnionParam{llm.UserMessage(text)}
	var lastErr string
	for round := 1; round <= maxPatchRounds; round++ {
		key := fmt.Sprintf("%s/vibecoder/%d/%d", t.Message.ID, iteration, round)
		params := w.vibecoderParams(t, append(append([]responses.ResponseInputItemUnionParam{}, memory...), turn...))
		resp, raw, err := w.call(ctx, t, key, params, domain.AgentVibeCoder, iteration)
		if err != nil {
			return err
		}
		turn = append(turn, llm.InputItemsOf(resp)...)
		calls := llm.FunctionCalls(resp)
		if len(calls) == 0 {
			answer := resp.OutputText()
			if _, err := w.record(ctx, t, key, raw, resp, domain.AgentVibeCoder, iteration, answer, nil); err != nil {
				return err
			}
			return w.end(ctx, t, domain.AgentVibeCoder, iteration, turn, db.TurnEnd{
				Status: domain.StatusAnswered, Outcome: event.VibecodeResponse{Response: &answer}})
		}

		var accepted *patchCheck
		var notes []string
		for _, fc := range calls {
			switch {
			case accepted != nil:
				turn = append(turn, llm.ToolOutput(fc.CallID, "Ignored: a patch from this reply was already accepted."))
			case fc.Name != "submit_patch":
				lastErr = fmt.Sprintf("unknown tool %q; the only tool is submit_patch", fc.Name)
				turn = append(turn, llm.ToolOutput(fc.CallID, "Error: "+lastErr))
			default:
				c := checkPatch(t.BaseCode, fc.Arguments, node)
				if c.err != "" {
					lastErr = c.err
					notes = append(notes, "Patch refused: "+c.err)
					turn = append(turn, llm.ToolOutput(fc.CallID, "Error: "+c.err+"\nFix the patch and call submit_patch again."))
					continue
				}
				accepted = &c
				notes = append(notes, c.description)
				turn = append(turn, llm.ToolOutput(fc.CallID, "The patch applies cleanly and the result is valid Python. It was sent to the reviewer."))
			}
		}
		content := strings.TrimSpace(resp.OutputText() + "\n" + strings.Join(notes, "\n"))
		var diff *string
		if accepted != nil {
			diff = &accepted.diff
		}
		m, err := w.record(ctx, t, key, raw, resp, domain.AgentVibeCoder, iteration, content, diff)
		if err != nil {
			return err
		}
		if accepted != nil {
			return w.end(ctx, t, domain.AgentVibeCoder, iteration, turn, db.TurnEnd{
				Enqueue: enqueueNext(ctx, EvaluateArgs{MessageID: t.Message.ID, Iteration: iteration, PatchMessageID: m.ID}),
			})
		}
	}
	return permanent(fmt.Sprintf("the VibeCoder did not produce a patch that applies after %d attempts; last problem: %s", maxPatchRounds, lastErr))
}

func (w *VibecodeWorker) vibecoderParams(t *db.Turn, input []responses.ResponseInputItemUnionParam) responses.ResponseNewParams {
	p := responses.ResponseNewParams{
		Model:             w.LLM.ThinkingModel(),
		Instructions:      openai.String(vibecoderInstructions),
		Input:             llm.Input(input),
		Tools:             []responses.ToolUnionParam{llm.FunctionTool("submit_patch", "Submit a unified diff that changes script.py. Answers whether it applies and is valid Python.", submitPatchSchema())},
		ParallelToolCalls: openai.Bool(false),
		PromptCacheKey:    openai.String(t.Session.OpenAISessionKey),
	}
	return reasoning(p, "high")
}

// enqueueNext inserts the next job of the loop in the transaction that ends
// this step, with the River client of the running worker.
func enqueueNext(ctx context.Context, args river.JobArgs) func(pgx.Tx) (int64, error) {
	return func(tx pgx.Tx) (int64, error) {
		client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
		if err != nil {
			return 0, err
		}
		res, err := client.InsertTx(ctx, tx, args, nil)
		if err != nil {
			return 0, err
		}
		return res.Job.ID, nil
	}
}

// reasoning asks reasoning models (gpt-5, o-series) for the given effort and
// for the encrypted reasoning items that memory needs with store=false.
func reasoning(p responses.ResponseNewParams, effort shared.ReasoningEffort) responses.ResponseNewParams {
	m := string(p.Model)
	if strings.HasPrefix(m, "gpt-5") || (len(m) > 1 && m[0] == 'o' && m[1] >= '0' && m[1] <= '9') {
		p.Reasoning = shared.ReasoningParam{Effort: effort}
		return llm.Stateless(p)
	}
	p.Store = openai.Bool(false)
	return p
}

// patchCheck is the server's verdict on one submit_patch call.
type patchCheck struct {
	description string
	patched     string
	diff        string // the patch, normalised to a clean unified diff
	err         string // why it was refused, for the model
}

func checkPatch(code, arguments string, node *pyast.AgentNode) patchCheck {
	var args struct {
		Patch       string `json:"patch"`
		Description string `json:"description"`
	}
	if err := json.Unmarshal([]byte(arguments), &args); err != nil {
		return patchCheck{err: "the arguments must be a JSON object {\"patch\": string, \"description\": string}: " + err.Error()}
	}
	patched, err := patch.Apply(code, args.Patch)
	if err != nil {
		return patchCheck{err: "the patch does not apply: " + err.Error()}
	}
	if patched == code {
		return patchCheck{err: "the patch changes nothing"}
	}
	if err := pyast.CheckSyntax(patched); err != nil {
		return patchCheck{err: "the patched code is not valid Python: " + err.Error()}
	}
	if node != nil {
		if msg := outsideNode(code, patched, node); msg != "" {
			return patchCheck{err: msg}
		}
	}
	return patchCheck{description: args.Description, patched: patched, diff: patch.Unified(code, patched, domain.ScriptPath)}
}

// outsideNode explains a change outside the node's lines, or returns "".
// Lines before the node must be identical, and so must the lines after it
// (counted from the end, since the node may grow or shrink).
func outsideNode(code, patched string, node *pyast.AgentNode) string {
	before := strings.SplitAfter(code, "\n")
	after := strings.SplitAfter(patched, "\n")
	head := node.LineStart - 1
	tail := len(before) - min(node.LineEnd, len(before))
	refuse := func(line int) string {
		return fmt.Sprintf("this session is about agent %s (lines %d-%d); the patch changes line %d outside it. Change only lines %d-%d.",
			node.ID, node.LineStart, node.LineEnd, line, node.LineStart, node.LineEnd)
	}
	if len(after) < head+tail {
		return refuse(node.LineEnd + 1)
	}
	for i := 0; i < head; i++ {
		if before[i] != after[i] {
			return refuse(i + 1)
		}
	}
	for i := 1; i <= tail; i++ {
		if before[len(before)-i] != after[len(after)-i] {
			return refuse(len(before) - i + 1)
		}
	}
	return ""
}

// focusNode finds the agent a node session is about in the base code.
func focusNode(t *db.Turn) (*pyast.AgentNode, error) {
	if t.Session.NodeID == nil {
		return nil, nil
	}
	nodes, err := pyast.ParseAgents(t.BaseCode)
	if err != nil {
		return nil, fmt.Errorf("this node session's code does not parse: %v", err)
	}
	for i := range nodes {
		if nodes[i].ID == *t.Session.NodeID {
			return &nodes[i], nil
		}
	}
	return nil, fmt.Errorf("agent %q, which this session is about, is no longer in the code", *t.Session.NodeID)
}

// call makes one model call, or returns the reply stored under key by an
// earlier attempt of the job.
func (d *Deps) call(ctx context.Context, t *db.Turn, key string, params responses.ResponseNewParams, agent string, iteration int) (*responses.Response, json.RawMessage, error) {
	raw, ok, err := d.Store.StoredCall(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	if ok {
		var r responses.Response
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, nil, fmt.Errorf("read stored model reply %s: %w", key, err)
		}
		return &r, raw, nil
	}
	var resp *responses.Response
	if agent == domain.AgentVibeCoder {
		deltas := newDeltaBatcher(ctx, d, t, agent, iteration)
		resp, err = d.LLM.Stream(ctx, params, deltas.add)
		deltas.flush()
	} else {
		resp, err = d.LLM.Create(ctx, params)
	}
	if err != nil {
		return nil, nil, &modelError{err}
	}
	return resp, json.RawMessage(resp.RawJSON()), nil
}

// record stores a reply with its usage and emits its events.
func (d *Deps) record(ctx context.Context, t *db.Turn, key string, raw json.RawMessage, resp *responses.Response, agent string, iteration int, content string, diff *string) (domain.ConversationMessage, error) {
	usage := llm.UsageOf(resp)
	usage.Agent, usage.Iteration = agent, iteration
	return d.Store.RecordReply(ctx, db.AssistantMessage{
		Turn: t, CallKey: key, Response: raw, ResponseID: resp.ID, Agent: agent, Iteration: iteration,
		Content: content, Patch: diff, Usage: usage,
	})
}

// memory loads an agent's conversation memory as input items.
func (d *Deps) memory(ctx context.Context, t *db.Turn, agent string) ([]responses.ResponseInputItemUnionParam, error) {
	turns, err := d.Store.AgentMemory(ctx, t.Session.OpenAISessionKey, agent)
	if err != nil {
		return nil, err
	}
	var items []responses.ResponseInputItemUnionParam
	for _, raw := range turns {
		its, err := llm.UnmarshalItems(raw)
		if err != nil {
			return nil, err
		}
		items = append(items, its...)
	}
	return items, nil
}

// end writes the end of a step: the turn's memory items and e.
func (d *Deps) end(ctx context.Context, t *db.Turn, agent string, iteration int, turn []responses.ResponseInputItemUnionParam, e db.TurnEnd) error {
	items, err := llm.MarshalItems(turn)
	if err != nil {
		return err
	}
	e.Agent, e.TurnKey, e.Items = agent, fmt.Sprintf("%s/%d", t.Message.ID, iteration), items
	if e.Status != "" {
		usage, err := d.Store.TurnUsage(ctx, t.Message.ID)
		if err != nil {
			return err
		}
		e.Outcome.TokenUsage = usage
	}
	return d.Store.EndTurn(ctx, t, e)
}

// deltaBatcher turns streamed text into vibecode_delta events, at most one
// per interval, so a client is not flooded with one event per token.
type deltaBatcher struct {
	ctx       context.Context
	d         *Deps
	t         *db.Turn
	agent     string
	iteration int
	mu        sync.Mutex
	buf       strings.Builder
	last      time.Time
}

func newDeltaBatcher(ctx context.Context, d *Deps, t *db.Turn, agent string, iteration int) *deltaBatcher {
	return &deltaBatcher{ctx: ctx, d: d, t: t, agent: agent, iteration: iteration, last: time.Now()}
}

func (b *deltaBatcher) add(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s)
	if time.Since(b.last) >= b.d.DeltaInterval {
		b.flushLocked()
	}
}

func (b *deltaBatcher) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
}

func (b *deltaBatcher) flushLocked() {
	if b.buf.Len() == 0 {
		return
	}
	if err := b.d.Store.EmitDelta(b.ctx, b.t, b.agent, b.iteration, b.buf.String()); err != nil {
		b.d.Log.Warn("emit vibecode_delta", "error", err)
	}
	b.buf.Reset()
	b.last = time.Now()
}
