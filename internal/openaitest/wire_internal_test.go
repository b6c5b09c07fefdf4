package openaitest

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// discard is a ResponseWriter that keeps nothing.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// vibecoderLike is a request of the VibeCoder's shape and size (2.7 KB:
// 1 KB of instructions, the submit_patch tool, 0.9 KB of input), as the
// load command's fake model answers it.
func vibecoderLike(b testing.TB) Request {
	tool := map[string]any{"type": "function", "name": "submit_patch", "strict": true,
		"description": "Submit a unified diff that changes script.py. Answers whether it applies and is valid Python.",
		"parameters": map[string]any{"type": "object", "additionalProperties": false, "required": []string{"patch", "description"},
			"properties": map[string]any{
				"patch":       map[string]any{"type": "string", "description": "a unified diff against the current script.py"},
				"description": map[string]any{"type": "string", "description": "one or two sentences: what the patch changes and why"},
			}}}
	body, err := json.Marshal(map[string]any{
		"model": "gpt-5", "stream": true, "store": false, "parallel_tool_calls": false, "truncation": "auto",
		"include": []string{"reasoning.encrypted_content"}, "reasoning": map[string]any{"effort": "high"},
		"prompt_cache_key": "sess_0123456789abcdef0123456789abcdef",
		"instructions":     strings.Repeat("You change a Python workflow of the OpenAI Agents SDK.\n", 19),
		"tools":            []any{tool},
		"input":            []any{map[string]any{"role": "user", "content": "Current script.py:\n" + strings.Repeat(" 1| agent = Agent(name=\"x\")\n", 30)}},
	})
	if err != nil {
		b.Fatal(err)
	}
	req, apiErr := parseRequest(http.Header{}, body)
	if apiErr != nil {
		b.Fatal(apiErr.message)
	}
	return req
}

// TestTheStreamIsTheResponsesWireFormat checks the events' envelope: the
// type and sequence number first, the event's fields after them, each event
// one JSON object.
func TestTheStreamIsTheResponsesWireFormat(t *testing.T) {
	req := vibecoderLike(t)
	w := &recorder{discard: discard{h: http.Header{}}}
	reply := Text("Done. The triage agent hands Spanish requests to the Spanish agent.")
	stream(context.Background(), w, build(req, reply), reply)
	var n int
	for block := range strings.SplitSeq(strings.TrimSuffix(w.b.String(), "\n\n"), "\n\n") {
		name, data, ok := strings.Cut(block, "\ndata: ")
		if !ok || !strings.HasPrefix(name, "event: ") {
			t.Fatalf("event %d is not an event and its data: %q", n, block)
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("event %d: %v: %s", n, err, data)
		}
		if ev["type"] != strings.TrimPrefix(name, "event: ") || ev["sequence_number"] != float64(n) {
			t.Fatalf("event %d: type %v, sequence_number %v under %q", n, ev["type"], ev["sequence_number"], name)
		}
		if resp, ok := ev["response"].(map[string]any); ok {
			if resp["instructions"] != req.Instructions || len(resp["tools"].([]any)) != 1 || resp["id"] == "" {
				t.Fatalf("event %d: the response object does not echo the request: %s", n, data)
			}
		}
		n++
	}
	if n < 10 {
		t.Fatalf("%d events", n)
	}
}

type recorder struct {
	discard
	b strings.Builder
}

func (r *recorder) Write(b []byte) (int, error) { return r.b.Write(b) }

// BenchmarkStreamText is the fake model's own cost of a streamed text
// answer to a VibeCoder-sized request, from the request's bytes to the last
// event written: what the load command spends on each call it answers.
func BenchmarkStreamText(b *testing.B) {
	req := vibecoderLike(b)
	reply := Text("Done. The triage agent hands Spanish requests to the Spanish agent.")
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		r, _ := parseRequest(http.Header{}, req.Body)
		stream(context.Background(), w, build(r, reply), reply)
	}
}
