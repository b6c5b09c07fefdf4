package api_test

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/vibegrapher/vibegrapher/telemetry"
)

// otlpReceiver is an in-process OTLP/HTTP trace receiver: what a collector
// or Jaeger would get.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func newOTLPReceiver(t *testing.T) (*otlpReceiver, string) {
	r := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var in coltrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &in)
		}
		if req.URL.Path != "/v1/traces" || err != nil {
			t.Errorf("OTLP receiver: %s %s: %v", req.Method, req.URL.Path, err)
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range in.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				r.spans = append(r.spans, ss.Spans...)
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL
}

// trace returns the spans of one trace, by name.
func (r *otlpReceiver) trace(traceID string) map[string][]*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]*tracepb.Span{}
	for _, s := range r.spans {
		if hex.EncodeToString(s.TraceId) == traceID {
			out[s.Name] = append(out[s.Name], s)
		}
	}
	return out
}

// The trace of a message, exported over OTLP because
// OTEL_EXPORTER_OTLP_ENDPOINT says where, holds every step from the POST to
// the vibecode_response under the trace id the API returned, as one tree.
// (Not parallel: it sets the environment.)
func TestTraceOfAMessage(t *testing.T) {
	receiver, url := newOTLPReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
	tel := newTelemetry(t, telemetry.Config{Role: "test"})
	if !tel.Tracing() {
		t.Fatal("OTEL_EXPORTER_OTLP_ENDPOINT is set, but tracing is off")
	}
	s := newStack(t, stackOptions{telemetry: tel})
	p, sess := s.project(baseCode)
	tc := s.newTest(p.ID, "adds", "assert add(2, 3) == 5", 10)

	s.AI.Enqueue(submitPatch(greetPatch).WithUsage(1000, 200, 400, 50))
	s.AI.Enqueue(verdict(true, "Fine.", "Say hi").WithUsage(500, 100, 0, 20))
	acc := s.send(sess.ID, "Say hi instead of hello")
	if resp := s.waitResponse(p.ID, acc.MessageID); resp["status"] != "diff_created" {
		t.Fatalf("vibecode_response = %v", resp)
	}
	if run := s.runWait(tc.ID, nil); run.Status != "passed" {
		t.Fatalf("test run = %+v", run)
	}
	// Spans end when a job's work returns, before River records its outcome.
	s.scrapeUntil(func(m metrics) bool {
		return m.value("river_job_outcomes_total", "kind", "evaluate") >= 1 && m.value("river_job_outcomes_total", "kind", "run_test") >= 1
	})
	if err := tel.Shutdown(context.Background()); err != nil { // flushes the batch
		t.Fatal(err)
	}

	traceID, ok := strings.CutPrefix(acc.TraceID, "trace_")
	if !ok || len(traceID) != 32 {
		t.Fatalf("trace_id = %q, want trace_ and 32 hex digits", acc.TraceID)
	}
	spans := receiver.trace(traceID)
	for name, n := range map[string]int{
		"POST /sessions/{id}/messages": 1,
		"river.insert_many":            2, // the VibecodeJob, then the EvaluateJob
		"river.work/vibecode":          1,
		"river.work/evaluate":          1,
		"chat gpt-5":                   2, // the VibeCoder, then the Evaluator
	} {
		if len(spans[name]) != n {
			t.Errorf("trace %s has %d %q spans, want %d; it has %v", traceID, len(spans[name]), name, n, names(spans))
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// One tree: the POST is the root, every other span's parent is in it.
	root := spans["POST /sessions/{id}/messages"][0]
	if len(root.ParentSpanId) != 0 || root.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("the POST span has parent %x, kind %v; want the root, a server span", root.ParentSpanId, root.Kind)
	}
	parentName := func(sp *tracepb.Span) string { return parentOf(spans, sp) }
	for _, list := range spans {
		for _, sp := range list {
			if sp != root && parentName(sp) == "" {
				t.Errorf("span %q has parent %x, which is not in the trace", sp.Name, sp.ParentSpanId)
			}
		}
	}
	if got := parentName(spans["river.work/vibecode"][0]); got != "river.insert_many" {
		t.Errorf("river.work/vibecode's parent is %q, want the insert that enqueued it", got)
	}
	if got := parentName(spans["river.work/evaluate"][0]); got != "river.insert_many" {
		t.Errorf("river.work/evaluate's parent is %q, want the insert that enqueued it", got)
	}
	agents := map[string]string{}
	for _, sp := range spans["chat gpt-5"] {
		for _, a := range sp.Attributes {
			if a.Key == "gen_ai.agent.name" {
				agents[a.Value.GetStringValue()] = parentName(sp)
			}
		}
	}
	if agents["vibecoder"] != "river.work/vibecode" || agents["evaluator"] != "river.work/evaluate" {
		t.Errorf("model calls (agent → parent span) = %v", agents)
	}

	// The events the message caused are on the spans that emitted them,
	// down to its vibecode_response.
	var events []string
	for _, list := range spans {
		for _, sp := range list {
			for _, e := range sp.Events {
				events = append(events, e.Name)
			}
		}
	}
	for _, want := range []string{"conversation_message", "token_usage", "diff_created", "vibecode_response"} {
		if !strings.Contains(strings.Join(events, " "), want) {
			t.Errorf("the trace has no %s event; it has %v", want, events)
		}
	}
	if evs := eventNamesOf(spans["river.work/evaluate"][0]); !strings.Contains(evs, "vibecode_response") {
		t.Errorf("the evaluate step's events are %s, want vibecode_response among them", evs)
	}

	// A test run is a trace of its own, from its POST to the sandbox.
	// Socket.IO's long polls and upgrades make no spans.
	var runTrace string
	receiver.mu.Lock()
	for _, sp := range receiver.spans {
		if sp.Name == "POST /tests/{id}/run" {
			runTrace = hex.EncodeToString(sp.TraceId)
		}
		if strings.Contains(sp.Name, "socket.io") {
			t.Errorf("a Socket.IO request made span %q", sp.Name)
		}
	}
	receiver.mu.Unlock()
	run := receiver.trace(runTrace)
	if len(run["river.work/run_test"]) != 1 || len(run["sandbox.run"]) != 1 || parentOf(run, run["sandbox.run"][0]) != "river.work/run_test" {
		t.Errorf("the test run's trace has %v", names(run))
	}
}

func names(spans map[string][]*tracepb.Span) map[string]int {
	out := map[string]int{}
	for n, l := range spans {
		out[n] = len(l)
	}
	return out
}

func eventNamesOf(sp *tracepb.Span) string {
	var out []string
	for _, e := range sp.Events {
		out = append(out, e.Name)
	}
	return strings.Join(out, " ")
}

// parentOf is the name of sp's parent in spans, "" when it is not there.
func parentOf(spans map[string][]*tracepb.Span, sp *tracepb.Span) string {
	for _, list := range spans {
		for _, p := range list {
			if string(p.SpanId) == string(sp.ParentSpanId) {
				return p.Name
			}
		}
	}
	return ""
}
