package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/openai/openai-go/v3/responses"

	"github.com/vibegrapher/vibegrapher/internal/openaitest"
)

// recordedReplies are the kinds of answers llm reads.
func recordedReplies() map[string]openaitest.Reply {
	patch := `{"patch":"--- a/script.py\n+++ b/script.py\n@@ -1 +1 @@\n-x = 1\n+x = \"ü\\u00e9\"\n","description":"Set x."}`
	return map[string]openaitest.Reply{
		"text":          openaitest.Text("Here is the plan: add a Spanish agent, then hand off \"to\" it.\nDone ✓"),
		"function call": openaitest.Reasoning("I will patch it").And(openaitest.FunctionCall("submit_patch", patch)),
		"reasoning":     openaitest.Reasoning("thinking hard").And(openaitest.Text("short")).WithUsage(1200, 300, 1024, 256),
		"verdict": openaitest.JSON(map[string]any{"approved": true, "reasoning": "fine", "commit_message": "Set x"}).
			WithUsage(10, 5, 4, 2),
		"incomplete": openaitest.Text("half an ans").Incomplete("max_output_tokens"),
		"failed":     openaitest.Text("").Failed("server_error", "The model crashed."),
	}
}

// view is everything llm reads of a response.
type view struct {
	ID, Status, Text string
	Calls            []functionCall
	Replayable       []string
	Usage            Usage
	StatusErr        string
	Decoded          map[string]any
	DecodeErr        string
}

func viewOf(r *response) view {
	v := view{ID: r.ID, Status: r.Status, Text: r.outputText(), Calls: r.functionCalls(),
		Replayable: r.replayable(), Usage: r.usage()}
	if err := r.statusError(); err != nil {
		v.StatusErr = err.Error()
	}
	if err := r.decodeOutput(&v.Decoded); err != nil {
		v.DecodeErr = err.Error()
	}
	return v
}

// TestResponseDecodingAgreesWithOpenAIGo decodes recorded responses, streamed
// and not, with decodeResponse and with openai-go, and compares what llm
// reads of them.
func TestResponseDecodingAgreesWithOpenAIGo(t *testing.T) {
	s := openaitest.New(t)
	c := New(Config{APIKey: "sk-test", BaseURL: s.URL(), MaxRetries: -1})
	params := Stateless(responses.ResponseNewParams{Model: "gpt-5", Input: Input([]responses.ResponseInputItemUnionParam{UserMessage("hi")})})
	for name, reply := range recordedReplies() {
		for _, streaming := range []bool{false, true} {
			s.Enqueue(reply)
			var r *response
			var err error
			if streaming {
				r, err = c.stream(context.Background(), params, nil, nil, withBodyOf(t, params, true))
			} else {
				r, err = c.create(context.Background(), params)
			}
			var re *ResponseError
			if err != nil && !errors.As(err, &re) {
				t.Fatalf("%s (stream %v): %v", name, streaming, err)
			}
			var sdk responses.Response
			if err := sdk.UnmarshalJSON(r.raw); err != nil {
				t.Fatal(err)
			}
			if sdk.RawJSON() != string(r.raw) {
				t.Errorf("%s: openai-go's RawJSON differs from the raw response", name)
			}
			got, want := viewOf(r), viewOf(fromSDK(&sdk))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s (stream %v):\n got %+v\nwant %+v", name, streaming, got, want)
			}
			// And they read what the reply holds.
			var bad bool
			switch name {
			case "text":
				bad = !strings.HasPrefix(got.Text, "Here is the plan") || got.StatusErr != "" || len(got.Replayable) != 1
			case "function call":
				bad = len(got.Calls) != 1 || got.Calls[0].Name != "submit_patch" || !strings.Contains(got.Calls[0].Arguments, "ü") ||
					!strings.HasPrefix(got.Calls[0].CallID, "call_") || len(got.Replayable) != 2
			case "reasoning":
				bad = got.Usage.CachedTokens != 1024 || got.Usage.ReasoningTokens != 256 || got.Usage.PromptTokens != 1200 || got.Usage.Model != "gpt-5"
			case "verdict":
				bad = got.Decoded["approved"] != true || got.DecodeErr != ""
			case "incomplete":
				bad = got.Status != "incomplete" || !strings.Contains(got.StatusErr, "max_output_tokens")
			case "failed":
				bad = got.Status != "failed" || !strings.Contains(got.StatusErr, "The model crashed.")
			}
			if bad {
				t.Errorf("%s (stream %v): read %+v", name, streaming, got)
			}
			// The exported helpers on openai-go's type agree too.
			if u := UsageOf(&sdk); u != got.Usage {
				t.Errorf("%s: UsageOf %+v, want %+v", name, u, got.Usage)
			}
			if fcs := FunctionCalls(&sdk); len(fcs) != len(got.Calls) {
				t.Errorf("%s: %d function calls, want %d", name, len(fcs), len(got.Calls))
			} else {
				for i, fc := range fcs {
					if (functionCall{ID: fc.ID, CallID: fc.CallID, Name: fc.Name, Arguments: fc.Arguments}) != got.Calls[i] {
						t.Errorf("%s: call %d %+v, want %+v", name, i, got.Calls[i], fc)
					}
				}
			}
			if sdk.OutputText() != got.Text {
				t.Errorf("%s: text %q, want %q", name, got.Text, sdk.OutputText())
			}
			// A stored reply reads back the same.
			stored, err := c.StoredReply(bytes.Clone(r.raw))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(viewOf(stored.resp), got) || !bytes.Equal(stored.Raw(), r.raw) {
				t.Errorf("%s: the stored reply reads differently", name)
			}
		}
	}
	if r := viewOf(mustDecode(t, `{"id":"resp_1","status":"completed","output":[{"type":"reasoning","id":"rs_1","summary":[]},{"type":"message","id":"m","content":[{"type":"refusal","refusal":"no"}]}],"usage":null}`)); r.DecodeErr != "the model refused to answer: no" || len(r.Replayable) != 1 {
		t.Errorf("refusal and unreplayable reasoning: %+v", r)
	}
}

func mustDecode(t *testing.T, raw string) *response {
	t.Helper()
	r, err := decodeResponse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestDecodeResponseFallsBack: a field of an unexpected type, which
// encoding/json rejects and openai-go tolerates, is read as openai-go reads it.
func TestDecodeResponseFallsBack(t *testing.T) {
	raw := `{"id":"resp_1","status":"completed","model":"gpt-5","usage":{"input_tokens":"12","output_tokens":3},"output":[{"type":"message","id":"m","content":[{"type":"output_text","text":"hi"}]}]}`
	r := mustDecode(t, raw)
	var sdk responses.Response
	if err := sdk.UnmarshalJSON([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	if got, want := viewOf(r), viewOf(fromSDK(&sdk)); !reflect.DeepEqual(got, want) || got.Text != "hi" || got.Usage.PromptTokens != 12 {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func withBodyOf(t testing.TB, params responses.ResponseNewParams, stream bool) option.RequestOption {
	body, err := params.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if stream {
		body = append(body[:len(body)-1], `,"stream":true}`...)
	}
	return withBody(body)
}

// recordStream is the SSE body of a streamed reply.
func recordStream(t testing.TB, reply openaitest.Reply) []byte {
	s := openaitest.New(t)
	s.Enqueue(reply)
	params := Stateless(responses.ResponseNewParams{Model: "gpt-5", Input: Input([]responses.ResponseInputItemUnionParam{UserMessage("hi")})})
	body, err := params.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	body = append(body[:len(body)-1], `,"stream":true}`...)
	req, err := http.NewRequest(http.MethodPost, s.URL()+"/responses", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer sk-test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func decoderOf(body []byte) ssestream.Decoder {
	return ssestream.NewDecoder(&http.Response{Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(bytes.NewReader(body))})
}

// TestScanEvent compares scanEvent with encoding/json on recorded events and
// on odd ones.
func TestScanEvent(t *testing.T) {
	var events [][]byte
	for _, reply := range recordedReplies() {
		dec := decoderOf(recordStream(t, reply.WithDelay(0)))
		for dec.Next() {
			events = append(events, bytes.Clone(dec.Event().Data))
		}
	}
	if len(events) < 30 {
		t.Fatalf("only %d events recorded", len(events))
	}
	for _, odd := range []string{
		`{"type":"x","error":null}`, ` { "error" : {"code":"c"} , "type" : "y" } `, `{}`, `{"a":[1,{"b":"}"}],"type":"z"}`,
		`{"a":"\"error\":1","type":"q"}`, `{"a":true,"b":-1.5e3,"c":null,"type":"n"}`,
	} {
		events = append(events, []byte(odd))
	}
	for _, data := range events {
		ev, ok := scanEvent(data)
		if !ok {
			t.Errorf("scanEvent(%s) not ok", data)
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		var want string
		_ = json.Unmarshal(m["type"], &want)
		if _, e := m["error"]; ev.typ != want || ev.hasError != e || !bytes.Equal(ev.delta, m["delta"]) || !bytes.Equal(ev.response, m["response"]) {
			t.Errorf("scanEvent(%.80s) = %+v; want %q, %v", data, ev, want, e)
		}
		if ev.delta != nil {
			var d string
			_ = json.Unmarshal(ev.delta, &d)
			if got := deltaText(ev.delta); got != d {
				t.Errorf("deltaText(%s) = %q, want %q", ev.delta, got, d)
			}
		}
	}
	for _, bad := range []string{``, `[]`, `{"type":"a"`, `{"type":"a",}`, `{"type":"a\"b"}`, `{"type":1}`, `{"a":{"b":1}`, `{"a" 1}`, `{"type":"a"} x`} {
		if _, ok := scanEvent([]byte(bad)); ok {
			t.Errorf("scanEvent(%s) ok", bad)
		}
	}
	for _, d := range []string{`"a\nb"`, `"\u00e9"`, "\"a\tb\"", `"é✓"`, `""`, `1`, `"\ud800"`} {
		var want string
		_ = json.Unmarshal([]byte(d), &want)
		if got := deltaText([]byte(d)); got != want {
			t.Errorf("deltaText(%s) = %q, want %q", d, got, want)
		}
	}
}

// benchReply is a VibeCoder answer as the pipeline load gets it: reasoning,
// some text and a submit_patch call.
func benchReply() openaitest.Reply {
	patch, _ := json.Marshal(map[string]string{"patch": strings.Repeat("-x = 1\n+x = 2\n", 20), "description": "Set x."})
	return openaitest.Reasoning(strings.Repeat("think ", 40)).
		And(openaitest.Text(strings.Repeat("I will change the helper so it answers in Spanish. ", 6))).
		And(openaitest.FunctionCall("submit_patch", string(patch)))
}

// BenchmarkStreamDecode decodes a recorded streamed reply end to end, from
// its SSE body to the final response: as llm does it, and as openai-go's
// ssestream.Stream and responses.Response did it before.
func BenchmarkStreamDecode(b *testing.B) {
	body := recordStream(b, benchReply())
	ctx := context.Background()
	b.Run("llm", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			dec := newSSEReader(io.NopCloser(bytes.NewReader(body)))
			r, err := readStream(ctx, dec, func(string) {}, nil)
			if err != nil || len(r.functionCalls()) != 1 {
				b.Fatal(err)
			}
			_ = dec.Close()
		}
	})
	// llm's reading of the events with openai-go's SSE decoder (before
	// sseReader).
	b.Run("llm-ssestream", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			r, err := readStream(ctx, decoderOf(body), func(string) {}, nil)
			if err != nil || len(r.functionCalls()) != 1 {
				b.Fatal(err)
			}
		}
	})
	b.Run("openai-go", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			stream := ssestream.NewStream[oldStreamEvent](decoderOf(body), nil)
			var resp *responses.Response
			for stream.Next() {
				ev := stream.Current()
				switch ev.Type {
				case "response.output_text.delta":
					var delta string
					_ = json.Unmarshal(ev.Delta, &delta)
				case "response.completed":
					resp = &responses.Response{}
					if err := resp.UnmarshalJSON(ev.Response); err != nil {
						b.Fatal(err)
					}
				}
			}
			if resp == nil || len(FunctionCalls(resp)) != 1 {
				b.Fatal(stream.Err())
			}
		}
	})
}

// oldStreamEvent is what llm decoded each event into before.
type oldStreamEvent struct {
	Type     string          `json:"type"`
	Delta    json.RawMessage `json:"delta"`
	Code     string          `json:"code"`
	Message  string          `json:"message"`
	Response json.RawMessage `json:"response"`
}

// A refusal is the reply's words to the person when it has no text.
func TestRefusalText(t *testing.T) {
	r, err := decodeResponse([]byte(`{"id":"resp_1","status":"completed","output":[{"type":"message","id":"m","content":[{"type":"refusal","refusal":"I can't help with that."}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.outputText() != "" || r.refusalText() != "I can't help with that." {
		t.Fatalf("text %q, refusal %q", r.outputText(), r.refusalText())
	}
}
