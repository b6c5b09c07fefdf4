package llm

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/vibecode"
)

// This file is the door the rest of the service uses: the VibeCoder, the
// Evaluator and the commit-message writer in domain terms. Nothing outside
// llm sees an openai-go type.

// Items is an agent's conversation as Responses API input items, kept by the
// server (store=false): the stored memory plus what a step adds.
type Items struct {
	list []responses.ResponseInputItemUnionParam
}

// MemoryOf reads an agent's stored memory: one JSON array of items per turn,
// in order, as Items.Marshal wrote them.
//
// The items were checked when they were made and are passed on as the JSON
// they were stored as: a conversation grows by a turn per message, and
// probing every item of it again (UnmarshalItems) was a third of a long
// session's CPU per message.
func MemoryOf(turns []json.RawMessage) (Items, error) {
	var it Items
	for _, raw := range turns {
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return Items{}, fmt.Errorf("conversation items: want a JSON array of items: %w", err)
		}
		for _, item := range items {
			it.list = append(it.list, param.Override[responses.ResponseInputItemUnionParam](item))
		}
	}
	return it, nil
}

// Marshal encodes the items as one JSON array, exactly as they are sent.
func (it Items) Marshal() (json.RawMessage, error) { return MarshalItems(it.list) }

// Len is the number of items.
func (it Items) Len() int { return len(it.list) }

// AddUser appends a user message.
func (it *Items) AddUser(text string) { it.list = append(it.list, UserMessage(text)) }

// AddReply appends a reply's output items, so the next request continues the
// conversation.
func (it *Items) AddReply(r *Reply) { it.list = append(it.list, InputItemsOf(r.resp)...) }

// AddToolOutputs appends the answers to a reply's tool calls.
func (it *Items) AddToolOutputs(outs []vibecode.ToolOutput) {
	for _, o := range outs {
		it.list = append(it.list, ToolOutput(o.CallID, o.Output))
	}
}

// join returns memory followed by turn, in a new slice.
func join(memory, turn Items) []responses.ResponseInputItemUnionParam {
	return append(append(make([]responses.ResponseInputItemUnionParam, 0, memory.Len()+turn.Len()), memory.list...), turn.list...)
}

// Reply is one model response and its raw JSON, as stored in model_calls.
type Reply struct {
	resp   *responses.Response
	raw    json.RawMessage
	prices Prices
}

// StoredReply reads a reply stored from Raw, so a retried step acts on it
// instead of calling the model again.
func (c *Client) StoredReply(raw json.RawMessage) (*Reply, error) {
	var r responses.Response
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("read stored model reply: %w", err)
	}
	return &Reply{resp: &r, raw: raw, prices: c.prices}, nil
}

func (c *Client) newReply(r *responses.Response) *Reply {
	return &Reply{resp: r, raw: json.RawMessage(r.RawJSON()), prices: c.prices}
}

// Raw is the response's JSON as OpenAI sent it.
func (r *Reply) Raw() json.RawMessage { return r.raw }

// ID is the response's id.
func (r *Reply) ID() string { return r.resp.ID }

// Text is the reply's output text.
func (r *Reply) Text() string { return r.resp.OutputText() }

// ToolCalls are the reply's function calls, in order.
func (r *Reply) ToolCalls() []vibecode.ToolCall {
	var out []vibecode.ToolCall
	for _, fc := range FunctionCalls(r.resp) {
		out = append(out, vibecode.ToolCall{CallID: fc.CallID, Name: fc.Name, Arguments: fc.Arguments})
	}
	return out
}

// Usage is the reply's token usage and cost, attributed to agent and
// iteration.
func (r *Reply) Usage(agent string, iteration int) domain.TokenUsage {
	u := UsageOf(r.resp)
	u.Agent, u.Iteration = agent, iteration
	u.CostUSD = r.prices.Cost(u)
	return u
}

// Verdict decodes an Evaluator reply.
func (r *Reply) Verdict() (vibecode.Verdict, error) {
	var v vibecode.Verdict
	err := DecodeOutput(r.resp, &v)
	return v, err
}

// CallError is a failed model call. It tells the vibecode loop whether trying
// again may help (Transient) and what went wrong in words an operator can act
// on (Explain).
type CallError struct{ Err error }

func (e *CallError) Error() string   { return e.Err.Error() }
func (e *CallError) Unwrap() error   { return e.Err }
func (e *CallError) Transient() bool { return IsTransient(e.Err) }
func (e *CallError) Explain() string { return ErrorMessage(e.Err) }

func callError(err error) error {
	if err == nil {
		return nil
	}
	return &CallError{err}
}

// AgentCall is one request to an agent: the session's memory, what this
// step adds, and the key OpenAI caches the prompt under.
type AgentCall struct {
	SessionKey string
	Memory     Items
	Turn       Items
}

// VibeCoder streams one VibeCoder call with the submit_patch tool, passing
// text to onDelta as it arrives.
func (c *Client) VibeCoder(ctx context.Context, call AgentCall, onDelta func(string)) (*Reply, error) {
	p := responses.ResponseNewParams{
		Model:             c.ThinkingModel(),
		Instructions:      openai.String(vibecoderInstructions),
		Input:             Input(join(call.Memory, call.Turn)),
		Tools:             []responses.ToolUnionParam{FunctionTool(vibecode.SubmitPatchTool, "Submit a unified diff that changes script.py. Answers whether it applies and is valid Python.", submitPatchSchema())},
		ParallelToolCalls: openai.Bool(false),
		PromptCacheKey:    openai.String(call.SessionKey),
	}
	p = reasoning(p, "high")
	resp, err := c.observe(ctx, domain.AgentVibeCoder, p, func(ctx context.Context) (*responses.Response, error) {
		return c.Stream(ctx, p, onDelta)
	})
	if err != nil {
		return nil, callError(err)
	}
	return c.newReply(resp), nil
}

// Evaluator runs one Evaluator call, whose answer is a vibecode.Verdict
// (Reply.Verdict).
func (c *Client) Evaluator(ctx context.Context, call AgentCall) (*Reply, error) {
	p := responses.ResponseNewParams{
		Model:          c.ThinkingModel(),
		Instructions:   openai.String(evaluatorInstructions),
		Input:          Input(join(call.Memory, call.Turn)),
		Text:           JSONSchemaFormat("patch_review", EvaluatorSchema()),
		PromptCacheKey: openai.String(call.SessionKey + "_evaluator"),
	}
	p = reasoning(p, "medium")
	resp, err := c.observe(ctx, domain.AgentEvaluator, p, func(ctx context.Context) (*responses.Response, error) {
		return c.Create(ctx, p)
	})
	if err != nil {
		return nil, callError(err)
	}
	return c.newReply(resp), nil
}

// CommitMessageRequest asks for a new commit message for a diff.
type CommitMessageRequest struct {
	Request string // the prompt behind the change
	Diff    string
	Current string // the message to improve
	How     string // the person's instructions, optional
}

// CommitMessage asks the small model for a commit message. Errors are
// domain errors: unavailable when trying again may help, invalid otherwise.
func (c *Client) CommitMessage(ctx context.Context, r CommitMessageRequest) (string, error) {
	p := responses.ResponseNewParams{
		Model:        c.SmallModel(),
		Instructions: openai.String(commitMessageInstructions),
		Input:        Input([]responses.ResponseInputItemUnionParam{UserMessage(commitMessageRequest(r))}),
		Store:        openai.Bool(false),
	}
	resp, err := c.observe(ctx, "commit_message", p, func(ctx context.Context) (*responses.Response, error) {
		return c.Create(ctx, p)
	})
	if err != nil {
		code := domain.EUNAVAILABLE
		if !IsTransient(err) {
			code = domain.EINVALID
		}
		return "", &domain.Error{Code: code, Message: "the small model could not write a message: " + ErrorMessage(err)}
	}
	msg := strings.Trim(strings.TrimSpace(resp.OutputText()), "`\"")
	if msg == "" {
		return "", domain.Errorf(domain.EUNAVAILABLE, "the small model answered with an empty message; try again")
	}
	return msg, nil
}

// reasoning asks reasoning models (gpt-5, o-series) for the given effort and
// for the encrypted reasoning items that memory needs with store=false.
func reasoning(p responses.ResponseNewParams, effort shared.ReasoningEffort) responses.ResponseNewParams {
	m := string(p.Model)
	if strings.HasPrefix(m, "gpt-5") || (len(m) > 1 && m[0] == 'o' && m[1] >= '0' && m[1] <= '9') {
		p.Reasoning = shared.ReasoningParam{Effort: effort}
		return Stateless(p)
	}
	p.Store = openai.Bool(false)
	return p
}
