package openaitest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
	"unicode"
)

// response is a reply made concrete for one request: ids generated, usage known.
type response struct {
	req       Request
	id        string
	createdAt int64
	items     []Item
	encrypted map[int]string // output index → encrypted_content of a reasoning item
	usage     Usage
	status    string // completed, incomplete, failed
	reply     Reply
	tools     []json.RawMessage // the request's tools as sent, echoed in every Response object
}

func build(req Request, reply Reply) *response {
	r := &response{req: req, reply: reply, id: newID("resp_"), createdAt: time.Now().Unix(),
		status: "completed", encrypted: map[int]string{}}
	if reply.ResponseStatus != "" {
		r.status = reply.ResponseStatus
	}
	if json.Unmarshal(req.rawTools, &r.tools) != nil || r.tools == nil {
		r.tools = []json.RawMessage{}
	}
	var outChars, reasoning int64
	for i, it := range reply.Items {
		switch it.Type {
		case "message":
			if it.ID == "" {
				it.ID = newID("msg_")
			}
			outChars += int64(len(it.Text) + len(it.Refusal))
		case "function_call":
			if it.ID == "" {
				it.ID = newID("fc_")
			}
			if it.CallID == "" {
				it.CallID = newID("call_")
			}
			outChars += int64(len(it.Name) + len(it.Arguments))
		case "reasoning":
			if it.ID == "" {
				it.ID = newID("rs_")
			}
			if req.Includes("reasoning.encrypted_content") {
				r.encrypted[i] = "gAAAAA" + base64.RawURLEncoding.EncodeToString([]byte(it.ID+":"+it.Summary))
			}
			reasoning += int64(len(it.Summary))/4 + 16
		}
		r.items = append(r.items, it)
	}
	if reply.Usage != nil {
		r.usage = *reply.Usage
	} else {
		in := int64(len(req.Input)+len(req.Instructions)+len(req.Body)/8)/4 + 1
		r.usage = Usage{InputTokens: in, OutputTokens: outChars/4 + 1 + reasoning, ReasoningTokens: reasoning}
	}
	return r
}

// item is the JSON of output item i, complete or as first announced.
func (r *response) item(i int, done bool) any {
	it := r.items[i]
	status := "completed"
	if !done {
		status = "in_progress"
	}
	switch it.Type {
	case "function_call":
		args := it.Arguments
		if !done {
			args = ""
		}
		return functionCallItem{ID: it.ID, Type: "function_call", Status: status, CallID: it.CallID, Name: it.Name, Arguments: args}
	case "reasoning":
		m := map[string]any{"id": it.ID, "type": "reasoning", "summary": []any{}}
		if done && it.Summary != "" {
			m["summary"] = []any{map[string]any{"type": "summary_text", "text": it.Summary}}
		}
		if enc, ok := r.encrypted[i]; ok {
			m["encrypted_content"] = enc
		}
		return m
	default:
		content := []any{}
		if done {
			content = append(content, contentPart(it))
		}
		return messageItem{ID: it.ID, Type: "message", Status: status, Role: "assistant", Content: content}
	}
}

type functionCallItem struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Status    string `json:"status"`
	CallID    string `json:"call_id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type messageItem struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Status  string `json:"status"`
	Role    string `json:"role"`
	Content []any  `json:"content"`
}

// contentPart is the one content part of message item it, complete.
func contentPart(it Item) any {
	if it.Refusal != "" {
		return map[string]any{"type": "refusal", "refusal": it.Refusal}
	}
	return outputText(it.Text)
}

type outputTextPart struct {
	Type        string `json:"type"`
	Text        string `json:"text"`
	Annotations []any  `json:"annotations"`
	Logprobs    []any  `json:"logprobs"`
}

func outputText(text string) outputTextPart {
	return outputTextPart{Type: "output_text", Text: text, Annotations: []any{}, Logprobs: []any{}}
}

// wireResponse is a Response object, its fields in the order OpenAI sends
// them. A struct, not a map: a streamed call sends three of them, and
// encoding maps (sorted keys, every value through an interface) was about
// half of the fake's CPU a call (BenchmarkStreamText), which the load
// command's clients share the machine with.
type wireResponse struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	CreatedAt          int64             `json:"created_at"`
	Status             string            `json:"status"`
	Background         bool              `json:"background"`
	Error              any               `json:"error"`
	IncompleteDetails  any               `json:"incomplete_details"`
	Instructions       *string           `json:"instructions"`
	MaxOutputTokens    *int64            `json:"max_output_tokens"`
	MaxToolCalls       *int64            `json:"max_tool_calls"`
	Model              string            `json:"model"`
	Output             []any             `json:"output"`
	ParallelToolCalls  bool              `json:"parallel_tool_calls"`
	PreviousResponseID *string           `json:"previous_response_id"`
	PromptCacheKey     *string           `json:"prompt_cache_key"`
	Reasoning          wireReasoning     `json:"reasoning"`
	SafetyIdentifier   *string           `json:"safety_identifier"`
	ServiceTier        string            `json:"service_tier"`
	Store              bool              `json:"store"`
	Temperature        float64           `json:"temperature"`
	Text               wireText          `json:"text"`
	ToolChoice         string            `json:"tool_choice"`
	Tools              []json.RawMessage `json:"tools"`
	TopLogprobs        int               `json:"top_logprobs"`
	TopP               float64           `json:"top_p"`
	Truncation         string            `json:"truncation"`
	Usage              *wireUsage        `json:"usage"`
	User               *string           `json:"user"`
	Metadata           struct{}          `json:"metadata"`
}

type wireReasoning struct {
	Effort  *string `json:"effort"`
	Summary *string `json:"summary"`
}

type wireText struct {
	Format    json.RawMessage `json:"format"`
	Verbosity string          `json:"verbosity"`
}

type wireUsage struct {
	InputTokens         int64             `json:"input_tokens"`
	InputTokensDetails  wireCachedTokens  `json:"input_tokens_details"`
	OutputTokens        int64             `json:"output_tokens"`
	OutputTokensDetails wireReasoningUsed `json:"output_tokens_details"`
	TotalTokens         int64             `json:"total_tokens"`
}

type wireCachedTokens struct {
	CachedTokens int64 `json:"cached_tokens"`
}

type wireReasoningUsed struct {
	ReasoningTokens int64 `json:"reasoning_tokens"`
}

var textFormat = json.RawMessage(`{"type":"text"}`)

// object is the Response object with the given status and output.
func (r *response) object(status string, output []any, withUsage bool) *wireResponse {
	obj := &wireResponse{
		ID: r.id, Object: "response", CreatedAt: r.createdAt, Status: status,
		Model: r.req.Model, Output: output, ParallelToolCalls: true,
		ServiceTier: "default", Store: r.req.Store == nil || *r.req.Store, Temperature: 1,
		Text:       wireText{Format: textFormat, Verbosity: "medium"},
		ToolChoice: "auto", Tools: r.tools, TopP: 1, Truncation: "disabled",
	}
	if r.req.Instructions != "" {
		obj.Instructions = &r.req.Instructions
	}
	if r.req.PreviousResponseID != "" {
		obj.PreviousResponseID = &r.req.PreviousResponseID
	}
	if len(r.req.TextFormat) > 0 {
		obj.Text.Format = r.req.TextFormat
	}
	if withUsage {
		u := r.usage
		obj.Usage = &wireUsage{
			InputTokens: u.InputTokens, InputTokensDetails: wireCachedTokens{u.CachedTokens},
			OutputTokens: u.OutputTokens, OutputTokensDetails: wireReasoningUsed{u.ReasoningTokens},
			TotalTokens: u.InputTokens + u.OutputTokens,
		}
	}
	switch status {
	case "incomplete":
		obj.IncompleteDetails = map[string]any{"reason": r.reply.IncompleteReason}
	case "failed":
		obj.Error = map[string]any{"code": r.reply.ErrorCode, "message": r.reply.ErrorMessage}
	}
	return obj
}

// final is the Response object at its end.
func (r *response) final() *wireResponse {
	output := make([]any, len(r.items))
	for i := range r.items {
		output[i] = r.item(i, true)
	}
	return r.object(r.status, output, true)
}

// stream writes the reply as server-sent events in the order OpenAI sends them.
// No event but "error" has a top-level "error" key: openai-go ends the stream
// on any event that has one, even null.
//
// Events written without a pause between them go out together, as a server
// sends what it has when it has to wait: the stream is flushed before each
// wait (Delay, Stall, and Linger after it, in serveHTTP) and before a cut,
// and net/http sends the rest when the handler returns. Flushing every event made a write and a TCP segment of
// each, a quarter of the load command's CPU in its fake model.
func stream(ctx context.Context, w http.ResponseWriter, r *response, reply Reply) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	seq := 0
	// emit writes an event: its type and sequence number, then the fields
	// of fields (a map or a struct, or an object already encoded).
	emit := func(typ string, fields any) {
		if reply.CutAfter > 0 && seq >= reply.CutAfter {
			flush()
			panic(http.ErrAbortHandler)
		}
		data, ok := fields.(encoded)
		if !ok {
			var err error
			if data, err = json.Marshal(fields); err != nil {
				panic(err)
			}
		}
		buf := make([]byte, 0, len(data)+2*len(typ)+64)
		buf = append(buf, "event: "...)
		buf = append(buf, typ...)
		buf = append(buf, "\ndata: {\"type\":\""...)
		buf = append(buf, typ...)
		buf = append(buf, "\",\"sequence_number\":"...)
		buf = strconv.AppendInt(buf, int64(seq), 10)
		if len(data) > 2 {
			buf = append(buf, ',')
		}
		buf = append(buf, data[1:]...)
		buf = append(buf, "\n\n"...)
		seq++
		_, _ = w.Write(buf)
	}
	wait := func() {
		if reply.Delay <= 0 {
			return
		}
		flush()
		select {
		case <-ctx.Done():
			panic(http.ErrAbortHandler)
		case <-time.After(reply.Delay):
		}
	}

	started, err := json.Marshal(responseEvent{r.object("in_progress", []any{}, false)})
	if err != nil {
		panic(err)
	}
	emit("response.created", encoded(started))
	emit("response.in_progress", encoded(started))
	if reply.Stall > 0 {
		flush()
	}
	if !stall(ctx, reply.Stall) {
		panic(http.ErrAbortHandler)
	}
	for i, it := range r.items {
		emit("response.output_item.added", itemEvent{OutputIndex: i, Item: r.item(i, false)})
		switch it.Type {
		case "function_call":
			for _, d := range chunks(it.Arguments) {
				wait()
				emit("response.function_call_arguments.delta", argumentsDelta{ItemID: it.ID, OutputIndex: i, Delta: d})
			}
			emit("response.function_call_arguments.done", map[string]any{"item_id": it.ID, "output_index": i, "name": it.Name, "arguments": it.Arguments})
		case "reasoning":
			if it.Summary != "" {
				part := map[string]any{"type": "summary_text", "text": ""}
				emit("response.reasoning_summary_part.added", map[string]any{"item_id": it.ID, "output_index": i, "summary_index": 0, "part": part})
				for _, d := range chunks(it.Summary) {
					wait()
					emit("response.reasoning_summary_text.delta", map[string]any{"item_id": it.ID, "output_index": i, "summary_index": 0, "delta": d})
				}
				emit("response.reasoning_summary_text.done", map[string]any{"item_id": it.ID, "output_index": i, "summary_index": 0, "text": it.Summary})
				emit("response.reasoning_summary_part.done", map[string]any{"item_id": it.ID, "output_index": i, "summary_index": 0,
					"part": map[string]any{"type": "summary_text", "text": it.Summary}})
			}
		default:
			if it.Refusal != "" {
				emit("response.content_part.added", map[string]any{"item_id": it.ID, "output_index": i, "content_index": 0,
					"part": map[string]any{"type": "refusal", "refusal": ""}})
				for _, d := range chunks(it.Refusal) {
					wait()
					emit("response.refusal.delta", map[string]any{"item_id": it.ID, "output_index": i, "content_index": 0, "delta": d})
				}
				emit("response.refusal.done", map[string]any{"item_id": it.ID, "output_index": i, "content_index": 0, "refusal": it.Refusal})
				emit("response.content_part.done", map[string]any{"item_id": it.ID, "output_index": i, "content_index": 0, "part": contentPart(it)})
				break
			}
			empty := outputText("")
			emit("response.content_part.added", partEvent{ItemID: it.ID, OutputIndex: i, Part: empty})
			for _, d := range chunks(it.Text) {
				wait()
				emit("response.output_text.delta", textDelta{ItemID: it.ID, OutputIndex: i, Delta: d, Logprobs: []any{}})
			}
			emit("response.output_text.done", textDone{ItemID: it.ID, OutputIndex: i, Text: it.Text, Logprobs: []any{}})
			emit("response.content_part.done", partEvent{ItemID: it.ID, OutputIndex: i, Part: outputText(it.Text)})
		}
		emit("response.output_item.done", itemEvent{OutputIndex: i, Item: r.item(i, true)})
	}
	if reply.StreamErrorCode != "" || reply.StreamErrorMessage != "" {
		emit("error", map[string]any{"code": reply.StreamErrorCode, "message": reply.StreamErrorMessage, "param": nil})
		return
	}
	final := "response.completed"
	switch r.status {
	case "incomplete":
		final = "response.incomplete"
	case "failed":
		final = "response.failed"
	}
	emit(final, responseEvent{r.final()})
}

// encoded is an event's fields already encoded, as a JSON object.
type encoded []byte

// responseEvent, itemEvent, partEvent, textDelta, textDone and
// argumentsDelta are the fields of the events a call sends most: structs,
// which encoding/json encodes without sorting keys.
type responseEvent struct {
	Response *wireResponse `json:"response"`
}

type textDelta struct {
	ItemID       string `json:"item_id"`
	OutputIndex  int    `json:"output_index"`
	ContentIndex int    `json:"content_index"`
	Delta        string `json:"delta"`
	Logprobs     []any  `json:"logprobs"`
}

type itemEvent struct {
	OutputIndex int `json:"output_index"`
	Item        any `json:"item"`
}

type partEvent struct {
	ItemID       string `json:"item_id"`
	OutputIndex  int    `json:"output_index"`
	ContentIndex int    `json:"content_index"`
	Part         any    `json:"part"`
}

type textDone struct {
	ItemID       string `json:"item_id"`
	OutputIndex  int    `json:"output_index"`
	ContentIndex int    `json:"content_index"`
	Text         string `json:"text"`
	Logprobs     []any  `json:"logprobs"`
}

type argumentsDelta struct {
	ItemID      string `json:"item_id"`
	OutputIndex int    `json:"output_index"`
	Delta       string `json:"delta"`
}

// stall waits d, or less when ctx ends first; it reports whether it waited
// all of d.
func stall(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// chunks splits text the way a model streams it: a few words per delta, and
// always more than one delta when the text has more than one character.
func chunks(text string) []string {
	var out []string
	start, prevSpace := 0, true
	for i, c := range text {
		space := unicode.IsSpace(c)
		if i > start && space && !prevSpace {
			out = append(out, text[start:i])
			start = i
		}
		prevSpace = space
	}
	if start < len(text) {
		out = append(out, text[start:])
	}
	if len(out) < 3 && len([]rune(text)) > 1 {
		// One long word (or JSON without spaces): cut it into pieces of runes.
		runes := []rune(text)
		size := max(1, len(runes)/4)
		if len(runes) > 64 {
			size = 16
		}
		out = out[:0]
		for i := 0; i < len(runes); i += size {
			out = append(out, string(runes[i:min(i+size, len(runes))]))
		}
	}
	return out
}

func writeError(w http.ResponseWriter, e *apiError) {
	body := map[string]any{"message": e.message, "type": e.typ, "param": nil, "code": nil}
	if e.param != "" {
		body["param"] = e.param
	}
	if e.code != "" {
		body["code"] = e.code
	}
	writeJSON(w, e.status, map[string]any{"error": body})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

func newID(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
