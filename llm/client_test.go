package llm_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3/responses"

	"github.com/vibegrapher/vibegrapher/internal/openaitest"
	"github.com/vibegrapher/vibegrapher/llm"
)

func newClient(s *openaitest.Server, maxRetries int) *llm.Client {
	return llm.New(llm.Config{APIKey: "sk-test", BaseURL: s.URL(), MaxRetries: maxRetries})
}

func ask(text string) responses.ResponseNewParams {
	return responses.ResponseNewParams{
		Model: "gpt-5",
		Input: llm.Input([]responses.ResponseInputItemUnionParam{llm.UserMessage(text)}),
	}
}

func TestStreamText(t *testing.T) {
	s := openaitest.New(t)
	want := "Here is the plan: add a Spanish agent, then hand off to it from triage."
	s.Enqueue(openaitest.Reasoning("thinking").And(openaitest.Text(want)))
	c := newClient(s, 0)

	var deltas []string
	resp, err := c.Stream(context.Background(), ask("add Spanish"), func(d string) { deltas = append(deltas, d) })
	if err != nil {
		t.Fatal(err)
	}
	if len(deltas) < 2 {
		t.Errorf("want several deltas, got %q", deltas)
	}
	if got := strings.Join(deltas, ""); got != want || resp.OutputText() != want {
		t.Errorf("deltas %q, output %q", got, resp.OutputText())
	}
	if raw := resp.RawJSON(); raw == "" || !strings.Contains(raw, resp.ID) || !strings.HasPrefix(resp.ID, "resp_") {
		t.Errorf("raw JSON %q of %q", raw, resp.ID)
	}
	if resp.Status != responses.ResponseStatusCompleted || resp.Usage.TotalTokens == 0 {
		t.Errorf("status %q usage %+v", resp.Status, resp.Usage)
	}
	if !s.Requests()[0].Stream {
		t.Error("the request was not a streaming one")
	}
}

func TestStreamFunctionCall(t *testing.T) {
	s := openaitest.New(t)
	args := `{"patch":"--- a/main.py\n+++ b/main.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n","description":"set x to 2"}`
	s.Enqueue(openaitest.FunctionCall("submit_patch", args))
	c := newClient(s, 0)

	var deltas int
	resp, err := c.Stream(context.Background(), ask("x=2"), func(string) { deltas++ })
	if err != nil {
		t.Fatal(err)
	}
	if deltas != 0 {
		t.Errorf("argument deltas must not reach onDelta: %d", deltas)
	}
	calls := llm.FunctionCalls(resp)
	if len(calls) != 1 {
		t.Fatalf("calls %v", calls)
	}
	fc := calls[0]
	if fc.Name != "submit_patch" || fc.Arguments != args || !strings.HasPrefix(fc.CallID, "call_") || !strings.HasPrefix(fc.ID, "fc_") {
		t.Errorf("call %s", fc.RawJSON())
	}
	if resp.OutputText() != "" {
		t.Errorf("output text %q", resp.OutputText())
	}
}

func TestCreate(t *testing.T) {
	s := openaitest.New(t)
	s.Enqueue(openaitest.Text("Fix typo in triage instructions"))
	c := newClient(s, 0)
	resp, err := c.Create(context.Background(), ask("commit message?"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.OutputText() != "Fix typo in triage instructions" || !strings.Contains(resp.RawJSON(), resp.ID) {
		t.Errorf("response %s", resp.RawJSON())
	}
	if s.Requests()[0].Stream {
		t.Error("Create sent a streaming request")
	}
}

func TestRetriedTransparently(t *testing.T) {
	for _, status := range []int{500, 503, 429} {
		for _, streaming := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d stream=%v", status, streaming), func(t *testing.T) {
				s := openaitest.New(t)
				s.Enqueue(openaitest.Status(status, "try again"), openaitest.Text("ok"))
				c := newClient(s, 2)
				resp, err := call(c, streaming)
				if err != nil {
					t.Fatal(err)
				}
				if resp.OutputText() != "ok" || s.Calls() != 2 {
					t.Errorf("output %q after %d calls", resp.OutputText(), s.Calls())
				}
			})
		}
	}
}

func call(c *llm.Client, streaming bool) (*responses.Response, error) {
	if streaming {
		return c.Stream(context.Background(), ask("hi"), nil)
	}
	return c.Create(context.Background(), ask("hi"))
}

func TestRetriesExhausted(t *testing.T) {
	s := openaitest.New(t)
	s.Enqueue(openaitest.Status(500, "boom"), openaitest.Status(500, "boom"), openaitest.Status(502, "bad gateway"))
	_, err := newClient(s, 2).Stream(context.Background(), ask("hi"), nil)
	if err == nil || !llm.IsTransient(err) || s.Calls() != 3 {
		t.Fatalf("err %v after %d calls", err, s.Calls())
	}
	if msg := llm.ErrorMessage(err); !strings.Contains(msg, "502") || !strings.Contains(msg, "bad gateway") {
		t.Errorf("message %q", msg)
	}
}

func TestPermanentErrors(t *testing.T) {
	cases := []struct {
		reply openaitest.Reply
		want  []string
	}{
		{openaitest.Status(400, "Invalid schema for function 'submit_patch'"), []string{"400 Bad Request", "Invalid schema for function 'submit_patch'"}},
		{openaitest.Status(401, "Incorrect API key provided"), []string{"401", "Incorrect API key provided", "OPENAI_API_KEY"}},
		{openaitest.Status(403, "Project does not have access to model gpt-5"), []string{"403", "does not have access"}},
		{openaitest.Status(404, "The model 'gpt-6' does not exist"), []string{"404", "gpt-6", "THINKING_MODEL", "/v1"}},
		{openaitest.Status(429, "You exceeded your current quota").WithErrorCode("insufficient_quota"), []string{"429", "exceeded your current quota", "billing"}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.reply.StatusCode), func(t *testing.T) {
			s := openaitest.New(t)
			s.Enqueue(tc.reply)
			_, err := newClient(s, -1).Stream(context.Background(), ask("hi"), nil)
			if err == nil || llm.IsTransient(err) {
				t.Fatalf("err %v, transient %v", err, llm.IsTransient(err))
			}
			msg := llm.ErrorMessage(err)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, "sk-test") {
				t.Errorf("message leaks the key: %q", msg)
			}
			if s.Calls() != 1 {
				t.Errorf("calls %d", s.Calls())
			}
		})
	}
}

func TestNoAPIKey(t *testing.T) {
	s := openaitest.New(t)
	c := llm.New(llm.Config{BaseURL: s.URL()})
	_, err1 := c.Stream(context.Background(), ask("hi"), nil)
	_, err2 := c.Create(context.Background(), ask("hi"))
	for _, err := range []error{err1, err2} {
		if !errors.Is(err, llm.ErrNoAPIKey) || llm.IsTransient(err) {
			t.Errorf("err %v", err)
		}
		if llm.ErrorMessage(err) != "OPENAI_API_KEY is not set: the server cannot call the model" {
			t.Errorf("message %q", llm.ErrorMessage(err))
		}
	}
	if s.Calls() != 0 {
		t.Errorf("the fake saw %d calls", s.Calls())
	}
}

func TestConfigWinsOverEnvironment(t *testing.T) {
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request went to OPENAI_BASE_URL: %s", r.URL)
	}))
	defer elsewhere.Close()
	t.Setenv("OPENAI_BASE_URL", elsewhere.URL+"/v1")
	t.Setenv("OPENAI_API_KEY", "sk-from-env")
	t.Setenv("OPENAI_ORG_ID", "org-from-env")
	t.Setenv("OPENAI_CUSTOM_HEADERS", "X-From-Env: yes")

	s := openaitest.New(t)
	s.Enqueue(openaitest.Text("ok"))
	c := llm.New(llm.Config{APIKey: "sk-config", BaseURL: s.URL()})
	if c.ThinkingModel() != "gpt-5" || c.SmallModel() != "gpt-5-mini" {
		t.Errorf("default models %q %q", c.ThinkingModel(), c.SmallModel())
	}
	if _, err := c.Create(context.Background(), ask("hi")); err != nil {
		t.Fatal(err)
	}
	h := s.Requests()[0].Header
	if h.Get("Authorization") != "Bearer sk-config" || h.Get("OpenAI-Organization") != "" || h.Get("X-From-Env") != "" {
		t.Errorf("headers %v", h)
	}

	// Without a key in the config, the environment's key is not used either.
	if _, err := llm.New(llm.Config{BaseURL: s.URL()}).Create(context.Background(), ask("hi")); !errors.Is(err, llm.ErrNoAPIKey) {
		t.Errorf("err %v", err)
	}
}

func TestStreamCancelled(t *testing.T) {
	s := openaitest.New(t)
	s.Enqueue(openaitest.Text("one two three four five six seven eight nine ten").WithDelay(20 * time.Millisecond))
	c := newClient(s, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var deltas int
	resp, err := c.Stream(ctx, ask("hi"), func(string) {
		deltas++
		if deltas == 2 {
			cancel()
		}
	})
	if err == nil || resp != nil {
		t.Fatalf("resp %v err %v", resp, err)
	}
	if !errors.Is(err, context.Canceled) || !llm.IsTransient(err) {
		t.Errorf("err %v, transient %v", err, llm.IsTransient(err))
	}
	if !strings.Contains(llm.ErrorMessage(err), "cancelled") {
		t.Errorf("message %q", llm.ErrorMessage(err))
	}
	if s.Calls() != 1 {
		t.Errorf("calls %d", s.Calls())
	}
}

func TestStreamTimeout(t *testing.T) {
	s := openaitest.New(t)
	s.Enqueue(openaitest.Text("one two three four five six").WithDelay(50 * time.Millisecond))
	c := llm.New(llm.Config{APIKey: "sk-test", BaseURL: s.URL(), MaxRetries: -1, RequestTimeout: 75 * time.Millisecond})
	_, err := c.Stream(context.Background(), ask("hi"), nil)
	if err == nil || !llm.IsTransient(err) {
		t.Fatalf("err %v", err)
	}
}

func TestStreamBrokenMidway(t *testing.T) {
	s := openaitest.New(t)
	s.Enqueue(openaitest.Text("one two three four five").Cut(6))
	var got string
	resp, err := newClient(s, 2).Stream(context.Background(), ask("hi"), func(d string) { got += d })
	if resp != nil || err == nil || !llm.IsTransient(err) {
		t.Fatalf("resp %v err %v", resp, err)
	}
	if got == "" {
		t.Error("no delta arrived before the cut")
	}
	if s.Calls() != 1 {
		t.Errorf("a stream cut mid-way is not retried by the SDK, yet the fake saw %d calls", s.Calls())
	}
	if msg := llm.ErrorMessage(err); !strings.Contains(msg, "connection to OpenAI broke") {
		t.Errorf("message %q", msg)
	}
}

func TestUnfinishedResponses(t *testing.T) {
	cases := []struct {
		name      string
		reply     openaitest.Reply
		status    string
		code      string
		transient bool
		withResp  bool
	}{
		{"incomplete", openaitest.Text("half an ans").Incomplete("max_output_tokens"), "incomplete", "max_output_tokens", false, true},
		{"failed server error", openaitest.Text("").Failed("server_error", "The server had an error"), "failed", "server_error", true, true},
		{"failed invalid prompt", openaitest.Text("").Failed("invalid_prompt", "Invalid prompt"), "failed", "invalid_prompt", false, true},
		{"error event", openaitest.Text("partial").StreamError("server_error", "An error occurred"), "error", "server_error", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openaitest.New(t)
			s.Enqueue(tc.reply)
			resp, err := newClient(s, -1).Stream(context.Background(), ask("hi"), nil)
			var re *llm.ResponseError
			if !errors.As(err, &re) || re.Status != tc.status || re.Code != tc.code {
				t.Fatalf("err %#v", err)
			}
			if llm.IsTransient(err) != tc.transient {
				t.Errorf("transient %v", llm.IsTransient(err))
			}
			if (resp != nil) != tc.withResp {
				t.Errorf("response %v", resp)
			}
			if resp != nil && (resp.RawJSON() == "" || llm.UsageOf(resp).TotalTokens == 0) {
				t.Error("an unfinished response keeps its raw JSON and usage")
			}
			if !strings.Contains(llm.ErrorMessage(err), tc.code) {
				t.Errorf("message %q", llm.ErrorMessage(err))
			}
		})
	}

	t.Run("create", func(t *testing.T) {
		s := openaitest.New(t)
		s.Enqueue(openaitest.Text("half").Incomplete("content_filter"))
		resp, err := newClient(s, -1).Create(context.Background(), ask("hi"))
		var re *llm.ResponseError
		if resp == nil || !errors.As(err, &re) || re.Code != "content_filter" || re.ResponseID != resp.ID {
			t.Fatalf("resp %v err %v", resp, err)
		}
	})
}

// A server that adds "error": null to its events, as some OpenAI-compatible
// servers do, ends openai-go's stream at the first event.
func TestStreamErrorNullField(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"error\":null,\"response\":{\"id\":\"resp_1\"}}\n\n")
	}))
	defer srv.Close()
	_, err := llm.New(llm.Config{APIKey: "k", BaseURL: srv.URL + "/v1"}).Stream(context.Background(), ask("hi"), nil)
	var re *llm.ResponseError
	if !errors.As(err, &re) || !strings.Contains(re.Message, `"error" field`) {
		t.Fatalf("err %v", err)
	}
}

func TestConcurrentStreams(t *testing.T) {
	s := openaitest.New(t)
	s.Handle(func(r openaitest.Request) openaitest.Reply {
		return openaitest.Text("answer to " + r.InputItems()[0]["content"].(string))
	})
	c := newClient(s, 0)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			q := fmt.Sprint("question ", i)
			var b strings.Builder
			resp, err := c.Stream(context.Background(), ask(q), func(d string) { b.WriteString(d) })
			if err != nil {
				t.Error(err)
				return
			}
			if b.String() != "answer to "+q || resp.OutputText() != b.String() {
				t.Errorf("%q: streamed %q, output %q", q, b.String(), resp.OutputText())
			}
		})
	}
	wg.Wait()
}

// TestConnectionsKeptAfterABurst: calls made at once over HTTP/1.1 each leave
// their connection open for the next burst, beyond net/http's default of 100
// idle connections in all (over TLS each new one is a handshake).
func TestConnectionsKeptAfterABurst(t *testing.T) {
	const calls = 150
	s := openaitest.New(t)
	var (
		mu      sync.Mutex
		arrived int
		all     = make(chan struct{})
	)
	s.Handle(func(openaitest.Request) openaitest.Reply {
		mu.Lock()
		wait := all
		if arrived++; arrived%calls == 0 {
			close(all)
			all = make(chan struct{})
		}
		mu.Unlock()
		select {
		case <-wait: // every call of the burst is open at once
		case <-time.After(30 * time.Second):
			t.Error("the calls of a burst did not all arrive")
		}
		return openaitest.Text("ok")
	})
	c := llm.New(llm.Config{APIKey: "sk-test", BaseURL: s.URL(), Concurrency: calls})
	burst := func() {
		var wg sync.WaitGroup
		for range calls {
			wg.Go(func() {
				if _, err := c.Stream(context.Background(), ask("hi"), func(string) {}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	burst()
	if got := s.Connections(); got != calls {
		t.Fatalf("the first burst of %d calls opened %d connections", calls, got)
	}
	burst()
	// A call's connection goes back to the pool just after the call
	// returns (net/http's read loop), so the second burst may start before
	// the last few are back; without a pool that keeps them all, 50 or more
	// would be new.
	if opened := s.Connections() - calls; opened > calls/15 {
		t.Errorf("the second burst opened %d new connections; want the first burst's %d reused", opened, calls)
	}
}

// TestConnectionKeptWhenTheBodyEndsLate: over HTTP/1.1, a stream's body
// ends (its last chunk) a moment after its final event. The call returns at
// the final event, its caller's context ends, and its connection is still
// kept for the next call: net/http closes one whose body is closed, or whose
// request's context ends, before the body's end.
func TestConnectionKeptWhenTheBodyEndsLate(t *testing.T) {
	const calls = 12
	s := openaitest.New(t)
	s.Handle(func(openaitest.Request) openaitest.Reply {
		r := openaitest.Text("ok")
		r.Linger = 20 * time.Millisecond
		return r
	})
	c := newClient(s, 0)
	for i := range calls {
		// The caller's context ends as the call returns, as a job's does.
		ctx, cancel := context.WithCancel(context.Background())
		resp, err := c.Stream(ctx, ask("hi"), nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if resp.OutputText() != "ok" {
			t.Fatalf("call %d: output %q", i, resp.OutputText())
		}
		// The body's end comes 20 ms after the final event.
		time.Sleep(40 * time.Millisecond)
	}
	if left := s.CallsLeft(); left != 0 {
		t.Errorf("%d of %d calls left before their body's end", left, calls)
	}
	if got := s.Connections(); got > 2 {
		t.Errorf("%d calls one after another opened %d connections; want one kept", calls, got)
	}
}

// A gateway may answer a stream request with the whole response as JSON: it
// is the answer, its text one delta. Anything else that is not an event
// stream fails at once, not as a broken connection retried for minutes.
func TestStreamAnsweredWithoutAStream(t *testing.T) {
	s := openaitest.New(t)
	want := "All of it at once."
	r := openaitest.Text(want)
	r.Unstreamed = true
	s.Enqueue(r)
	var deltas []string
	resp, err := newClient(s, 0).Stream(context.Background(), ask("hi"), func(d string) { deltas = append(deltas, d) })
	if err != nil {
		t.Fatal(err)
	}
	if resp.OutputText() != want || strings.Join(deltas, "") != want || resp.Usage.TotalTokens == 0 {
		t.Fatalf("output %q, deltas %q, usage %+v", resp.OutputText(), deltas, resp.Usage)
	}

	var requests int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html>Sign in to the proxy</html>")
	}))
	defer srv.Close()
	_, err = llm.New(llm.Config{APIKey: "k", BaseURL: srv.URL + "/v1", MaxRetries: 2}).Stream(context.Background(), ask("hi"), nil)
	if !errors.Is(err, llm.ErrNotAStream) || llm.IsTransient(err) || !strings.Contains(llm.ErrorMessage(err), `"text/html"`) {
		t.Fatalf("err %v (transient %v)", err, llm.IsTransient(err))
	}
	if requests != 1 {
		t.Errorf("%d requests, want 1", requests)
	}
}
