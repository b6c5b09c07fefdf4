package openaitest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
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
	tools     []any // the request's tools as sent, echoed in every Response object
}

func build(req Request, reply Reply) *response {
	r := &response{req: req, reply: reply, id: newID("resp_"), createdAt: time.Now().Unix(),
		status: "completed", encrypted: map[int]string{}}
	if reply.ResponseStatus != "" {
		r.status = reply.ResponseStatus
	}
	r.tools = []any{}
	var tools []json.RawMessage
	if json.Unmarshal(req.rawTools, &tools) == nil {
		for _, t := range tools {
			r.tools = append(r.tools, t)
		}
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
func (r *response) item(i int, done bool) map[string]any {
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
		return map[string]any{"id": it.ID, "type": "function_call", "status": status,
			"call_id": it.CallID, "name": it.Name, "arguments": args}
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
		return map[string]any{"id": it.ID, "type": "message", "status": status, "role": "assistant", "content": content}
	}
}

// contentPart is the one content part of message item it, complete.
func contentPart(it Item) map[string]any {
	if it.Refusal != "" {
		return map[string]any{"type": "refusal", "refusal": it.Refusal}
	}
	return outputText(it.Text)
}

func outputText(text string) map[string]any {
	return map[string]any{"type": "output_text", "text": text, "annotations": []any{}, "logprobs": []any{}}
}

// object is the Response object with the given status and output.
func (r *response) object(status string, output []any, withUsage bool) map[string]any {
	var instructions any
	if r.req.Instructions != "" {
		instructions = r.req.Instructions
	}
	var prev any
	if r.req.PreviousResponseID != "" {
		prev = r.req.PreviousResponseID
	}
	text := map[string]any{"format": map[string]any{"type": "text"}, "verbosity": "medium"}
	if len(r.req.TextFormat) > 0 {
		text["format"] = json.RawMessage(r.req.TextFormat)
	}
	store := r.req.Store == nil || *r.req.Store
	obj := map[string]any{
		"id":                   r.id,
		"object":               "response",
		"created_at":           r.createdAt,
		"status":               status,
		"background":           false,
		"error":                nil,
		"incomplete_details":   nil,
		"instructions":         instructions,
		"max_output_tokens":    nil,
		"max_tool_calls":       nil,
		"model":                r.req.Model,
		"output":               output,
		"parallel_tool_calls":  true,
		"previous_response_id": prev,
		"prompt_cache_key":     nil,
		"reasoning":            map[string]any{"effort": nil, "summary": nil},
		"safety_identifier":    nil,
		"service_tier":         "default",
		"store":                store,
		"temperature":          1.0,
		"text":                 text,
		"tool_choice":          "auto",
		"tools":                r.tools,
		"top_logprobs":         0,
		"top_p":                1.0,
		"truncation":           "disabled",
		"usage":                nil,
		"user":                 nil,
		"metadata":             map[string]any{},
	}
	if withUsage {
		u := r.usage
		obj["usage"] = map[string]any{
			"input_tokens":          u.InputTokens,
			"input_tokens_details":  map[string]any{"cached_tokens": u.CachedTokens},
			"output_tokens":         u.OutputTokens,
			"output_tokens_details": map[string]any{"reasoning_tokens": u.ReasoningTokens},
			"total_tokens":          u.InputTokens + u.OutputTokens,
		}
	}
	switch status {
	case "incomplete":
		obj["incomplete_details"] = map[string]any{"reason": r.reply.IncompleteReason}
	case "failed":
		obj["error"] = map[string]any{"code": r.reply.ErrorCode, "message": r.reply.ErrorMessage}
	}
	return obj
}

// final is the Response object at its end.
func (r *response) final() map[string]any {
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
	emit := func(typ string, fields map[string]any) {
		if reply.CutAfter > 0 && seq >= reply.CutAfter {
			flush()
			panic(http.ErrAbortHandler)
		}
		fields["type"] = typ
		fields["sequence_number"] = seq
		seq++
		data, err := json.Marshal(fields)
		if err != nil {
			panic(err)
		}
		_, _ = w.Write([]byte("event: " + typ + "\ndata: " + string(data) + "\n\n"))
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

	emit("response.created", map[string]any{"response": r.object("in_progress", []any{}, false)})
	emit("response.in_progress", map[string]any{"response": r.object("in_progress", []any{}, false)})
	if reply.Stall > 0 {
		flush()
	}
	if !stall(ctx, reply.Stall) {
		panic(http.ErrAbortHandler)
	}
	for i, it := range r.items {
		emit("response.output_item.added", map[string]any{"output_index": i, "item": r.item(i, false)})
		switch it.Type {
		case "function_call":
			for _, d := range chunks(it.Arguments) {
				wait()
				emit("response.function_call_arguments.delta", map[string]any{"item_id": it.ID, "output_index": i, "delta": d})
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
			emit("response.content_part.added", map[string]any{"item_id": it.ID, "output_index": i, "content_index": 0, "part": empty})
			for _, d := range chunks(it.Text) {
				wait()
				emit("response.output_text.delta", map[string]any{"item_id": it.ID, "output_index": i, "content_index": 0, "delta": d, "logprobs": []any{}})
			}
			emit("response.output_text.done", map[string]any{"item_id": it.ID, "output_index": i, "content_index": 0, "text": it.Text, "logprobs": []any{}})
			emit("response.content_part.done", map[string]any{"item_id": it.ID, "output_index": i, "content_index": 0, "part": outputText(it.Text)})
		}
		emit("response.output_item.done", map[string]any{"output_index": i, "item": r.item(i, true)})
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
	emit(final, map[string]any{"response": r.final()})
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
