package faults

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vibegrapher/vibegrapher/internal/fixtures"
	"github.com/vibegrapher/vibegrapher/internal/openaitest"
)

// baseCode is every project's script; patchPrompt messages change it with
// greetPatch.
const (
	baseCode   = fixtures.GreetScript
	greetPatch = fixtures.GreetPatch
)

// marker tags every prompt so the model can tell messages apart:
// "[m:<name>]"; a name that starts with "patch" asks for a patch (two model
// calls: VibeCoder, then Evaluator), any other for a text answer (one call).
var marker = regexp.MustCompile(`\[m:([A-Za-z0-9_-]+)\]`)

// model is the fake Responses API (internal/openaitest) behind a proxy that
// delays each reply, as a real model takes seconds, and notes when a call
// started and when its caller gave up on it.
type model struct {
	fake  *openaitest.Server
	srv   *httptest.Server
	proxy *httputil.ReverseProxy

	mu        sync.Mutex
	delay     func(name, agent string, n int) time.Duration
	calls     map[string]int         // name/agent → calls so far
	started   map[string][]time.Time // name → call start times
	abandoned map[string][]time.Time // name → when a caller went away mid-call
}

func newModel(t testing.TB) *model {
	m := &model{
		fake:  openaitest.New(t),
		calls: map[string]int{}, started: map[string][]time.Time{}, abandoned: map[string][]time.Time{},
		delay: func(string, string, int) time.Duration { return 0 },
	}
	m.fake.Handle(func(r openaitest.Request) openaitest.Reply {
		name := lastMarker(r.Input)
		switch {
		case len(r.Tools) == 0:
			return openaitest.JSON(map[string]any{"approved": true, "reasoning": "Looks right.", "commit_message": "Say hi"})
		case strings.HasPrefix(name, "patch"):
			return openaitest.FunctionCall("submit_patch", mustJSON(map[string]string{"patch": greetPatch, "description": "Say hi"}))
		default:
			return openaitest.Text("An answer to " + name + ".")
		}
	})
	target, _ := url.Parse(strings.TrimSuffix(m.fake.URL(), "/v1"))
	m.proxy = httputil.NewSingleHostReverseProxy(target)
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.srv.Close)
	return m
}

// URL is the OPENAI_BASE_URL for the roles.
func (m *model) URL() string { return m.srv.URL + "/v1" }

func (m *model) setDelay(fn func(name, agent string, n int) time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.delay = fn
}

func (m *model) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	name := lastMarker(body)
	agent := "evaluator"
	if bytes.Contains(body, []byte(`"submit_patch"`)) {
		agent = "vibecoder"
	}
	m.mu.Lock()
	m.calls[name+"/"+agent]++
	d := m.delay(name, agent, m.calls[name+"/"+agent])
	m.started[name] = append(m.started[name], time.Now())
	m.mu.Unlock()
	select {
	case <-time.After(d):
	case <-r.Context().Done():
		m.mu.Lock()
		m.abandoned[name] = append(m.abandoned[name], time.Now())
		m.mu.Unlock()
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	m.proxy.ServeHTTP(w, r)
}

// waitStarted waits until n calls for name have started, up to d.
func (m *model) waitStarted(name string, n int, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		m.mu.Lock()
		got := len(m.started[name])
		m.mu.Unlock()
		if got >= n {
			return true
		}
	}
	return false
}

// waitAbandoned waits until a call for name was given up by its caller and
// returns when.
func (m *model) waitAbandoned(name string, d time.Duration) (time.Time, bool) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		m.mu.Lock()
		a := m.abandoned[name]
		m.mu.Unlock()
		if len(a) > 0 {
			return a[0], true
		}
	}
	return time.Time{}, false
}

// lastMarker is the name of the message being worked on: the input starts
// with the session's memory, which holds the earlier messages' markers.
func lastMarker(input []byte) string {
	all := marker.FindAllSubmatch(input, -1)
	if len(all) == 0 {
		return ""
	}
	return string(all[len(all)-1][1])
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
