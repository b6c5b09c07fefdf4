package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

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
//
// Items hold the items' JSON, comma-separated, as it is stored and sent: the
// memory read back from PostgreSQL goes into the request body as it came,
// without being decoded, checked or encoded again. A conversation grows by a
// turn per message, and decoding and re-encoding all of it for every call
// (pgx's json.Unmarshal of each jsonb turn, MemoryOf, openai-go compacting
// every item of the request) was a fifth of a long session's CPU per
// message. The items were checked when they were made: built here as
// openai-go encodes them (addItem), by the decoding of the response for the
// items a reply adds, and by PostgreSQL when they were stored as jsonb.
//
// What memory keeps of a turn (Kept) may differ from what the request sends
// (AddUserKept): a request carries the whole script, which memory need not
// keep once per message.
type Items struct {
	raw  []byte // items' JSON separated by commas, without brackets
	kept []byte // as raw, for memory (Kept); nil: the same as raw
}

// MemoryOf reads an agent's stored memory: one JSON array of all its items,
// in order, as db.ReadMemoryLater returns them. Only the brackets are
// checked: the items are passed on as they were stored.
func MemoryOf(stored json.RawMessage) (Items, error) {
	inner, ok := arrayElements(stored)
	if !ok {
		return Items{}, fmt.Errorf("conversation items: want a JSON array of items, got %.40q", stored)
	}
	// Cap the slice so that appending to these Items copies instead of
	// writing over the caller's closing bracket.
	return Items{raw: inner[:len(inner):len(inner)]}, nil
}

// arrayElements returns what is between the brackets of a JSON array, without
// surrounding space.
func arrayElements(data []byte) ([]byte, bool) {
	data = bytes.TrimSpace(data)
	if len(data) < 2 || data[0] != '[' || data[len(data)-1] != ']' {
		return nil, false
	}
	return bytes.TrimSpace(data[1 : len(data)-1]), true
}

// Marshal encodes the items as one JSON array, exactly as they are sent.
func (it Items) Marshal() json.RawMessage { return array(it.raw) }

// Kept encodes the items as memory keeps them: as they are sent, but for a
// user message added with AddUserKept.
func (it Items) Kept() json.RawMessage {
	if it.kept == nil {
		return array(it.raw)
	}
	return array(it.kept)
}

func array(items []byte) json.RawMessage {
	out := make([]byte, 0, len(items)+2)
	out = append(out, '[')
	out = append(out, items...)
	return append(out, ']')
}

// add appends one item's JSON.
func (it *Items) add(item []byte) {
	it.raw = appendItem(it.raw, item)
	if it.kept != nil {
		it.kept = appendItem(it.kept, item)
	}
}

func appendItem(items, item []byte) []byte {
	if len(items) > 0 {
		items = append(items, ',')
	}
	return append(items, item...)
}

// AddUser appends a user message (UserMessage's item).
func (it *Items) AddUser(text string) {
	it.addItem(`{"content":`, text, `,"role":"user","type":"message"}`)
}

// AddUserKept appends a user message sent as text and kept in memory as
// kept (Kept): the request's copy of the script is the current code, and a
// conversation that kept one per message grew by the script's size with
// every message, all of it sent again with each call
// (TestALongSessionSendsTheScriptOnce).
func (it *Items) AddUserKept(text, kept string) {
	memory := Items{raw: it.kept}
	if it.kept == nil { // memory has kept what was sent so far
		memory.raw = append([]byte{}, it.raw...)
	}
	memory.AddUser(kept)
	it.kept = nil // text goes to the request only
	it.AddUser(text)
	it.kept = memory.raw
}

// AddReply appends a reply's output items, each as the exact JSON OpenAI
// returned (see InputItemsOf), so the next request continues the
// conversation.
func (it *Items) AddReply(r *Reply) {
	for _, raw := range r.resp.replayable() {
		it.add([]byte(raw))
	}
}

// AddToolOutputs appends the answers to a reply's tool calls.
func (it *Items) AddToolOutputs(outs []vibecode.ToolOutput) {
	for _, o := range outs {
		it.addItem(`{"output":`, o.Output, `,"call_id":`+quoted(o.CallID)+`,"type":"function_call_output"}`)
	}
}

// addItem appends an item built here: before, text as a JSON string, then
// after. These are the bytes openai-go makes of UserMessage and ToolOutput
// (agents_internal_test.go), without its encoder: a user message holds the
// whole script, and encoding it through the SDK's param types was 7 % of the
// service's CPU in a burst of steps' starts (docs/benchmarks.md, tenth round).
func (it *Items) addItem(before, text, after string) {
	start := len(it.raw)
	it.raw = slices.Grow(it.raw, 1+len(before)+len(text)+len(after)+2+len(text)/8) // room for some escapes
	if len(it.raw) > 0 {
		it.raw = append(it.raw, ',')
	}
	it.raw = append(it.raw, before...)
	it.raw = appendQuoted(it.raw, text)
	it.raw = append(it.raw, after...)
	if it.kept != nil {
		item := it.raw[start:]
		if start > 0 {
			item = item[1:] // its comma
		}
		it.kept = appendItem(it.kept, item)
	}
}

func quoted(s string) string { return string(appendQuoted(nil, s)) }

// appendQuoted appends s as a JSON string as openai-go's encoder writes one
// (HTML escaping off): '"' and '\\' and the control characters escaped (\b,
// \f, \n, \r and \t by name, the others as \u00XX), U+2028 and U+2029
// escaped, each byte of invalid UTF-8 as \ufffd, the rest as it is. Written
// here rather than through encoding/json, whose output for invalid UTF-8
// differs under GOEXPERIMENT=jsonv2.
func appendQuoted(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0 // s[start:i] is still to copy
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// agentParams are an agent's request params without input and prompt cache
// key, and their JSON, made once per client: the instructions and the
// schemas of the tools and of the output are the same for every call, and
// encoding them was as much of a call's CPU as the memory.
type agentParams struct {
	once   sync.Once
	params responses.ResponseNewParams
	head   []byte // the JSON object without its closing brace
	err    error
}

// get makes the params with params() on the first call.
func (a *agentParams) get(params func() responses.ResponseNewParams) *agentParams {
	a.once.Do(func() {
		a.params = params()
		a.params.Input, a.params.PromptCacheKey = responses.ResponseNewParamsInputUnion{}, param.Opt[string]{}
		head, err := a.params.MarshalJSON()
		head = bytes.TrimSpace(head)
		switch {
		case err != nil:
			a.err = fmt.Errorf("encode the request: %w", err)
		case len(head) < 2 || head[0] != '{' || head[len(head)-1] != '}':
			a.err = fmt.Errorf("encode the request: want a JSON object, got %.40q", head)
		default:
			a.head = head[:len(head)-1]
		}
	})
	return a
}

// body is the JSON of a request: the params with cacheKey as their
// prompt_cache_key (unless empty) and memory followed by turn as their
// input, spliced in as they are held, and "stream":true when stream is set.
func (a *agentParams) body(cacheKey string, memory, turn Items, stream bool) ([]byte, error) {
	if a.err != nil {
		return nil, a.err
	}
	key, err := json.Marshal(cacheKey)
	if err != nil {
		return nil, err
	}
	body := make([]byte, 0, len(a.head)+len(key)+len(memory.raw)+len(turn.raw)+64)
	body = append(body, a.head...)
	if len(a.head) > 1 {
		body = append(body, ',')
	}
	if cacheKey != "" {
		body = append(body, `"prompt_cache_key":`...)
		body = append(body, key...)
		body = append(body, ',')
	}
	body = append(body, `"input":[`...)
	body = append(body, memory.raw...)
	if len(memory.raw) > 0 && len(turn.raw) > 0 {
		body = append(body, ',')
	}
	body = append(body, turn.raw...)
	body = append(body, ']')
	if stream {
		body = append(body, `,"stream":true`...)
	}
	return append(body, '}'), nil
}

// Reply is one model response and its raw JSON, as stored in model_calls.
type Reply struct {
	resp   *response
	raw    json.RawMessage
	prices Prices
}

// StoredReply reads a reply stored from Raw, so a retried step acts on it
// instead of calling the model again.
func (c *Client) StoredReply(raw json.RawMessage) (*Reply, error) {
	r, err := decodeResponse(raw)
	if err != nil {
		return nil, fmt.Errorf("read stored model reply: %w", err)
	}
	return &Reply{resp: r, raw: raw, prices: c.prices}, nil
}

func (c *Client) newReply(r *response) *Reply {
	return &Reply{resp: r, raw: r.raw, prices: c.prices}
}

// Raw is the response's JSON as OpenAI sent it.
func (r *Reply) Raw() json.RawMessage { return r.raw }

// ID is the response's id.
func (r *Reply) ID() string { return r.resp.ID }

// Text is the reply's output text.
func (r *Reply) Text() string { return r.resp.outputText() }

// Refusal is the text of the reply's refusals, if the model refused.
func (r *Reply) Refusal() string { return r.resp.refusalText() }

// ToolCalls are the reply's function calls, in order.
func (r *Reply) ToolCalls() []vibecode.ToolCall {
	var out []vibecode.ToolCall
	for _, fc := range r.resp.functionCalls() {
		out = append(out, vibecode.ToolCall{CallID: fc.CallID, Name: fc.Name, Arguments: fc.Arguments})
	}
	return out
}

// Usage is the reply's token usage and cost, attributed to agent and
// iteration.
func (r *Reply) Usage(agent string, iteration int) domain.TokenUsage {
	u := r.resp.usage()
	u.Agent, u.Iteration = agent, iteration
	u.CostUSD = r.prices.Cost(u)
	return u
}

// Verdict decodes an Evaluator reply. Each field of the schema is required,
// as the strict schema says: a verdict without "approved" is no rejection.
func (r *Reply) Verdict() (vibecode.Verdict, error) {
	var v struct {
		Approved      *bool   `json:"approved"`
		Reasoning     *string `json:"reasoning"`
		CommitMessage *string `json:"commit_message"`
	}
	if err := r.resp.decodeOutput(&v); err != nil {
		return vibecode.Verdict{}, err
	}
	switch {
	case v.Approved == nil:
		return vibecode.Verdict{}, errors.New(`the verdict has no "approved"`)
	case v.Reasoning == nil:
		return vibecode.Verdict{}, errors.New(`the verdict has no "reasoning"`)
	case v.CommitMessage == nil:
		return vibecode.Verdict{}, errors.New(`the verdict has no "commit_message"`)
	}
	// The commit message is cleaned as the small model's is (a blank one
	// falls back to the VibeCoder's description: vibecode.CommitMessage).
	return vibecode.Verdict{Approved: *v.Approved, Reasoning: *v.Reasoning, CommitMessage: cleanCommitMessage(*v.CommitMessage)}, nil
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
// text to onDelta as it arrives, and "" for each delta of a tool call's
// arguments or of a refusal, so that a caller batching the text by time can
// send what it holds while the model streams the patch. With an error, the
// reply is nil unless the response itself ended "incomplete" or "failed".
func (c *Client) VibeCoder(ctx context.Context, call AgentCall, onDelta func(string)) (*Reply, error) {
	a := c.vibecoder.get(c.vibecoderParams)
	body, err := a.body(call.SessionKey, call.Memory, call.Turn, true)
	if err != nil {
		return nil, callError(err)
	}
	resp, err := c.observe(ctx, domain.AgentVibeCoder, a.params, func(ctx context.Context) (*response, error) {
		var onOther func()
		if onDelta != nil {
			onOther = func() { onDelta("") }
		}
		return c.stream(ctx, responses.ResponseNewParams{}, onDelta, onOther, withBody(body))
	})
	return c.replyOf(resp, err)
}

// Evaluator runs one Evaluator call, whose answer is a vibecode.Verdict
// (Reply.Verdict). With an error, the reply is nil unless the response
// itself ended "incomplete" or "failed".
func (c *Client) Evaluator(ctx context.Context, call AgentCall) (*Reply, error) {
	a := c.evaluator.get(c.evaluatorParams)
	body, err := a.body(call.SessionKey+"_evaluator", call.Memory, call.Turn, false)
	if err != nil {
		return nil, callError(err)
	}
	resp, err := c.observe(ctx, domain.AgentEvaluator, a.params, func(ctx context.Context) (*response, error) {
		return c.create(ctx, responses.ResponseNewParams{}, withBody(body))
	})
	return c.replyOf(resp, err)
}

// replyOf is a call's reply and error. A response that ended "incomplete" or
// "failed" comes with its error: the model worked on it and it is billed,
// so its usage is the caller's to count.
func (c *Client) replyOf(resp *response, err error) (*Reply, error) {
	if resp == nil {
		return nil, callError(err)
	}
	return c.newReply(resp), callError(err)
}

// conversationTruncation lets OpenAI drop a session's oldest items when its
// memory, which grows by a turn per message and is sent whole, no longer
// fits the model's context: with the default ("disabled") every message of
// a long session failed with a 400 until the person cleared it. The turn
// being answered (the request, the code) is the newest item, never dropped.
const conversationTruncation = responses.ResponseNewParamsTruncationAuto

// vibecoderParams are the params of every VibeCoder call, without input and
// prompt cache key.
func (c *Client) vibecoderParams() responses.ResponseNewParams {
	return reasoning(responses.ResponseNewParams{
		Model:             c.ThinkingModel(),
		Truncation:        conversationTruncation,
		Instructions:      openai.String(vibecoderInstructions),
		Tools:             []responses.ToolUnionParam{FunctionTool(vibecode.SubmitPatchTool, "Submit a unified diff that changes script.py. Answers whether it applies and is valid Python.", submitPatchSchema())},
		ParallelToolCalls: openai.Bool(false),
	}, "high")
}

// evaluatorParams are the params of every Evaluator call, without input and
// prompt cache key.
func (c *Client) evaluatorParams() responses.ResponseNewParams {
	return reasoning(responses.ResponseNewParams{
		Model:        c.ThinkingModel(),
		Truncation:   conversationTruncation,
		Instructions: openai.String(evaluatorInstructions),
		Text:         JSONSchemaFormat("patch_review", EvaluatorSchema()),
	}, "medium")
}

// CommitMessageRequest asks for a new commit message for a diff.
type CommitMessageRequest struct {
	Request string // the prompt behind the change
	Diff    string
	Current string // the message to improve
	How     string // the person's instructions, optional
}

// CommitMessage asks the small model for a commit message. Errors are
// domain errors: unavailable when trying again may help or the server is at
// fault (serverSide), invalid otherwise.
func (c *Client) CommitMessage(ctx context.Context, r CommitMessageRequest) (string, error) {
	// A person waits on this request: a small model that does not answer
	// is unavailable after commitMessageTimeout, not after the SDK's
	// ten-minute header timeout per attempt.
	ctx, cancel := context.WithTimeout(ctx, commitMessageTimeout)
	defer cancel()
	p := responses.ResponseNewParams{
		Model:        c.SmallModel(),
		Instructions: openai.String(commitMessageInstructions),
		Input:        Input([]responses.ResponseInputItemUnionParam{UserMessage(commitMessageRequest(r))}),
		Store:        openai.Bool(false),
	}
	resp, err := c.observe(ctx, "commit_message", p, func(ctx context.Context) (*response, error) {
		return c.create(ctx, p)
	})
	if err != nil {
		code := domain.EUNAVAILABLE
		if !IsTransient(err) && !serverSide(err) {
			code = domain.EINVALID
		}
		return "", &domain.Error{Code: code, Message: "the small model could not write a message: " + ErrorMessage(err)}
	}
	msg := cleanCommitMessage(resp.outputText())
	switch {
	case msg == "":
		return "", domain.Errorf(domain.EUNAVAILABLE, "the small model answered with an empty message; try again")
	case len(msg) > domain.MaxCommitMessageBytes:
		return "", domain.Errorf(domain.EUNAVAILABLE, "the small model answered with a message of %d bytes, over the limit of %d; try again", len(msg), domain.MaxCommitMessageBytes)
	}
	return msg, nil
}

// commitMessageTimeout bounds a commit message's model call, its retries
// included. A variable for the tests.
var commitMessageTimeout = time.Minute

// cleanCommitMessage is a model's commit message without what models wrap
// one in: a fenced block (and its language tag), quotes, backticks, and the
// blank space they enclose. What is left may be empty.
func cleanCommitMessage(s string) string {
	s = strings.TrimSpace(s)
	if body, ok := strings.CutPrefix(s, "```"); ok {
		body = strings.TrimSuffix(body, "```")
		if tag, rest, found := strings.Cut(body, "\n"); found && !strings.ContainsAny(tag, " \t") {
			body = rest // the fence's language tag, or nothing
		}
		s = body
	}
	return strings.TrimSpace(strings.Trim(strings.TrimSpace(s), "`\""))
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
