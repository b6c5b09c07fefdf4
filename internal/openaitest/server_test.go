package openaitest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/vibegrapher/vibegrapher/internal/openaitest"
)

func client(s *openaitest.Server, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{
		option.WithAPIKey("sk-test"), option.WithBaseURL(s.URL()), option.WithMaxRetries(0),
	}, opts...)...)
}

func params(input string) responses.ResponseNewParams {
	return responses.ResponseNewParams{
		Model: "gpt-5",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(input)},
	}
}

type sseEvent struct {
	name string
	data map[string]any
}

// postStream sends a streaming request by hand and returns the raw events.
func postStream(t *testing.T, s *openaitest.Server, body string) []sseEvent {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/responses", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer sk-test")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	var events []sseEvent
	var name string
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			var data map[string]any
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &data); err != nil {
				t.Fatalf("event %s: %v", name, err)
			}
			events = append(events, sseEvent{name, data})
		}
	}
	return events
}

func TestStreamWireFormat(t *testing.T) {
	s := openaitest.New(t)
	s.Enqueue(openaitest.Reasoning("think about it").And(openaitest.Text("Hello there, general Kenobi")).
		And(openaitest.FunctionCall("submit_patch", `{"patch":"--- a\n+++ b\n","description":"fix"}`)))
	events := postStream(t, s, `{"model":"gpt-5","input":"hi","stream":true}`)

	var names []string
	deltas, argDeltas := 0, 0
	for i, ev := range events {
		names = append(names, ev.name)
		if ev.data["type"] != ev.name {
			t.Errorf("event %d: type %v under event name %s", i, ev.data["type"], ev.name)
		}
		if seq, _ := ev.data["sequence_number"].(float64); int(seq) != i {
			t.Errorf("event %d: sequence_number %v", i, ev.data["sequence_number"])
		}
		if _, ok := ev.data["error"]; ok {
			t.Errorf("event %d (%s) has a top-level error key, which ends openai-go's stream", i, ev.name)
		}
		switch ev.name {
		case "response.output_text.delta":
			deltas++
		case "response.function_call_arguments.delta":
			argDeltas++
		}
	}
	if deltas < 2 || argDeltas < 2 {
		t.Errorf("want several deltas, got %d text and %d argument deltas", deltas, argDeltas)
	}
	want := []string{"response.created", "response.in_progress", "response.output_item.added",
		"response.reasoning_summary_part.added"}
	if strings.Join(names[:4], " ") != strings.Join(want, " ") {
		t.Errorf("events start %v", names[:4])
	}
	for _, name := range []string{"response.content_part.added", "response.output_text.done", "response.content_part.done",
		"response.function_call_arguments.done", "response.output_item.done"} {
		if !strings.Contains(strings.Join(names, " "), name) {
			t.Errorf("no %s event in %v", name, names)
		}
	}
	last := events[len(events)-1]
	if last.name != "response.completed" {
		t.Fatalf("last event %s", last.name)
	}
	resp := last.data["response"].(map[string]any)
	if id, _ := resp["id"].(string); !strings.HasPrefix(id, "resp_") {
		t.Errorf("id %q", id)
	}
	if resp["object"] != "response" || resp["status"] != "completed" || resp["model"] != "gpt-5" {
		t.Errorf("response %v", resp)
	}
	usage := resp["usage"].(map[string]any)
	if usage["input_tokens"].(float64) <= 0 || usage["output_tokens"].(float64) <= 0 || usage["total_tokens"].(float64) <= 0 {
		t.Errorf("usage %v", usage)
	}
}

func TestSDKDecodesResponses(t *testing.T) {
	s := openaitest.New(t)
	c := client(s)
	ctx := context.Background()

	s.Enqueue(openaitest.Text("plain answer").WithUsage(100, 40, 60, 12))
	resp, err := c.Responses.New(ctx, params("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.OutputText() != "plain answer" || resp.Usage.InputTokens != 100 || resp.Usage.OutputTokens != 40 ||
		resp.Usage.TotalTokens != 140 || resp.Usage.InputTokensDetails.CachedTokens != 60 ||
		resp.Usage.OutputTokensDetails.ReasoningTokens != 12 || resp.Model != "gpt-5" {
		t.Errorf("response %s", resp.RawJSON())
	}

	s.Enqueue(openaitest.FunctionCall("submit_patch", `{"patch":"p","description":"d"}`))
	stream := c.Responses.NewStreaming(ctx, params("hi"))
	var final responses.Response
	var args string
	for stream.Next() {
		ev := stream.Current()
		switch ev.Type {
		case "response.function_call_arguments.delta":
			args += ev.Delta
		case "response.completed":
			final = ev.Response
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(final.Output) != 1 {
		t.Fatalf("output %s", final.RawJSON())
	}
	fc := final.Output[0].AsFunctionCall()
	if fc.Name != "submit_patch" || fc.Arguments != `{"patch":"p","description":"d"}` || args != fc.Arguments ||
		!strings.HasPrefix(fc.CallID, "call_") || !strings.HasPrefix(fc.ID, "fc_") || fc.Status != "completed" {
		t.Errorf("function call %s (streamed arguments %q)", fc.RawJSON(), args)
	}
}

func TestStatusReplies(t *testing.T) {
	s := openaitest.New(t)
	c := client(s)
	s.Enqueue(openaitest.Status(429, "Rate limit reached for gpt-5"))
	_, err := c.Responses.New(context.Background(), params("hi"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("err %v", err)
	}
	if apiErr.StatusCode != 429 || apiErr.Message != "Rate limit reached for gpt-5" || apiErr.Code != "rate_limit_exceeded" ||
		apiErr.Type != "requests" {
		t.Errorf("error %+v", apiErr.RawJSON())
	}
	if apiErr.Response.Header.Get("retry-after-ms") == "" {
		t.Error("a retryable status should carry retry-after-ms")
	}
}

// recorder stands in for the test given to New, to see the failures it reports.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestEmptyQueueFailsTheTest(t *testing.T) {
	rec := &recorder{TB: t}
	s := openaitest.New(rec)
	c := client(s, option.WithMaxRetries(2))
	_, err := c.Responses.New(context.Background(), params("hi"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 500 || !strings.Contains(apiErr.Message, "no reply scripted") {
		t.Fatalf("err %v", err)
	}
	if s.Calls() != 1 {
		t.Errorf("a script mismatch must not be retried: %d calls", s.Calls())
	}
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "no reply scripted for request #1") {
		t.Errorf("reported %q", rec.errors)
	}
}

func TestRejectsWhatOpenAIRejects(t *testing.T) {
	looseTool := `[{"type":"function","name":"submit_patch","parameters":{"type":"object","properties":{"patch":{"type":"string"}},"required":["patch"]}}]`
	cases := []struct {
		name, body string
		status     int
		message    string
	}{
		{"no model", `{"input":"hi"}`, 400, "Missing required parameter: 'model'"},
		{"tool without additionalProperties", `{"model":"m","input":"hi","tools":` + looseTool + `}`, 400,
			"Invalid schema for function 'submit_patch': In context=(), 'additionalProperties' is required to be supplied and to be false."},
		{"tool property not required", `{"model":"m","input":"hi","tools":[{"type":"function","name":"f","strict":true,"parameters":{"type":"object","additionalProperties":false,"properties":{"a":{"type":"string"},"b":{"type":"object","properties":{}}},"required":["a","b"]}}]}`, 400,
			"In context=('properties', 'b'), 'additionalProperties' is required"},
		{"json schema missing required", `{"model":"m","input":"hi","text":{"format":{"type":"json_schema","name":"verdict","strict":true,"schema":{"type":"object","additionalProperties":false,"properties":{"approved":{"type":"boolean"}},"required":[]}}}}`, 400,
			"Invalid schema for response_format 'verdict': In context=(), 'required' is required to be supplied and to be an array including every key in properties. Missing 'approved'."},
		{"tool output for fc id", `{"model":"m","input":[{"type":"function_call","id":"fc_1","call_id":"call_1","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"fc_1","output":"ok"}]}`, 400,
			"No tool call found for function call output with call_id fc_1."},
		{"call without output", `{"model":"m","input":[{"type":"function_call","call_id":"call_1","name":"f","arguments":"{}"}]}`, 400,
			"No tool output found for function call call_1."},
		{"reasoning without encrypted content", `{"model":"m","store":false,"input":[{"type":"reasoning","id":"rs_1","summary":[]}]}`, 404,
			"Item with id 'rs_1' not found. Items are not persisted when `store` is set to false."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openaitest.New(t)
			s.Enqueue(openaitest.Text("never served"))
			req, _ := http.NewRequest(http.MethodPost, s.URL()+"/responses", strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer sk-test")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var body struct {
				Error struct{ Message, Type string }
			}
			_ = json.NewDecoder(res.Body).Decode(&body)
			if res.StatusCode != tc.status || !strings.Contains(body.Error.Message, tc.message) || body.Error.Type != "invalid_request_error" {
				t.Errorf("got %d %+v", res.StatusCode, body.Error)
			}
			if s.Pending() != 1 || s.Calls() != 1 {
				t.Errorf("a rejected request must be recorded and not consume a reply: pending %d, calls %d", s.Pending(), s.Calls())
			}
		})
	}

	t.Run("no API key", func(t *testing.T) {
		s := openaitest.New(t)
		res, err := http.Post(s.URL()+"/responses", "application/json", strings.NewReader(`{"model":"m","input":"hi"}`))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 401 {
			t.Errorf("status %d", res.StatusCode)
		}
	})
}

func TestRequestsAreRecorded(t *testing.T) {
	s := openaitest.New(t)
	s.Enqueue(openaitest.FunctionCall("submit_patch", `{}`), openaitest.JSON(map[string]any{"approved": true}))
	c := client(s)
	ctx := context.Background()

	p := params("first")
	p.Instructions = openai.String("be brief")
	p.Store = openai.Bool(false)
	p.Include = []responses.ResponseIncludable{responses.ResponseIncludableReasoningEncryptedContent}
	p.Tools = []responses.ToolUnionParam{{OfFunction: &responses.FunctionToolParam{Name: "submit_patch", Strict: openai.Bool(false),
		Parameters: map[string]any{"type": "object"}}}}
	first, err := c.Responses.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	fc := first.Output[0].AsFunctionCall()

	p2 := responses.ResponseNewParams{Model: "gpt-5-mini", Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
		responses.ResponseInputItemParamOfMessage("first", responses.EasyInputMessageRoleUser),
		{OfFunctionCall: ptr(fc.ToParam())},
		{OfFunctionCallOutput: &responses.ResponseInputItemFunctionCallOutputParam{CallID: openai.String(fc.CallID),
			Output: responses.ResponseInputItemFunctionCallOutputOutputUnionParam{OfString: openai.String("applied")}}},
	}}, Text: responses.ResponseTextConfigParam{Format: responses.ResponseFormatTextConfigParamOfJSONSchema("verdict",
		map[string]any{"type": "object"})}}
	stream := c.Responses.NewStreaming(ctx, p2)
	for stream.Next() {
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}

	reqs := s.Requests()
	if len(reqs) != 2 || s.Calls() != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	r0, r1 := reqs[0], reqs[1]
	if r0.Model != "gpt-5" || r0.Instructions != "be brief" || r0.Stream || r0.Store == nil || *r0.Store ||
		!r0.Includes("reasoning.encrypted_content") || len(r0.Tools) != 1 || r0.Tools[0].Name != "submit_patch" ||
		r0.InputItems()[0]["content"] != "first" || r0.Header.Get("Authorization") != "Bearer sk-test" {
		t.Errorf("first request %+v", r0)
	}
	if r1.Model != "gpt-5-mini" || !r1.Stream || len(r1.InputItems()) != 3 || r1.FunctionOutputs()[fc.CallID] != "applied" ||
		!bytes.Contains(r1.TextFormat, []byte(`"json_schema"`)) || !bytes.Contains(r1.Body, []byte(`"stream":true`)) {
		t.Errorf("second request %+v", r1)
	}
}

func TestHandleServesConcurrentRequests(t *testing.T) {
	s := openaitest.New(t)
	s.Handle(func(r openaitest.Request) openaitest.Reply {
		var input string
		_ = json.Unmarshal(r.Input, &input)
		return openaitest.Text("echo " + input)
	})
	c := client(s)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			in := fmt.Sprint("n", i)
			resp, err := c.Responses.New(context.Background(), params(in))
			if err != nil {
				t.Error(err)
				return
			}
			if resp.OutputText() != "echo "+in {
				t.Errorf("got %q", resp.OutputText())
			}
		})
	}
	wg.Wait()
	if s.Calls() != 8 {
		t.Errorf("calls %d", s.Calls())
	}
}

func TestCutAbortsTheConnection(t *testing.T) {
	s := openaitest.New(t)
	s.Enqueue(openaitest.Text("one two three four five").Cut(4))
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/responses", strings.NewReader(`{"model":"m","input":"hi","stream":true}`))
	req.Header.Set("Authorization", "Bearer sk-test")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err == nil {
		t.Fatalf("want a broken body, read %q", body)
	}
	if n := strings.Count(string(body), "event: "); n != 4 {
		t.Errorf("%d events before the cut", n)
	}
}

func ptr[T any](v T) *T { return &v }

// A stalled reply answers nothing (a stream: nothing after
// response.in_progress) until the client goes away, which CallsLeft counts.
func TestStallHoldsTheAnswerUntilTheClientLeaves(t *testing.T) {
	for _, streamed := range []bool{false, true} {
		t.Run(fmt.Sprint("streamed=", streamed), func(t *testing.T) {
			s := openaitest.New(t)
			s.Enqueue(openaitest.Text("never sent").WithStall(time.Hour))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+"/responses",
				strings.NewReader(fmt.Sprintf(`{"model":"m","input":"hi","stream":%v}`, streamed)))
			req.Header.Set("Authorization", "Bearer sk-test")
			got := make(chan string, 1)
			go func() {
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					got <- ""
					return
				}
				defer res.Body.Close()
				body, _ := io.ReadAll(res.Body)
				got <- string(body)
			}()
			for deadline := time.Now().Add(10 * time.Second); s.Calls() == 0; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the request did not arrive")
				}
			}
			if n := s.CallsLeft(); n != 0 {
				t.Fatalf("CallsLeft %d while the client waits", n)
			}
			cancel()
			body := <-got
			if strings.Contains(body, "never sent") || strings.Contains(body, "output_item") {
				t.Fatalf("the stalled reply sent its output: %q", body)
			}
			for deadline := time.Now().Add(10 * time.Second); s.CallsLeft() != 1; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("CallsLeft %d after the client went away, want 1", s.CallsLeft())
				}
			}
		})
	}
}
