package api_test

import (
	"context"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vibegrapher/vibegrapher/api"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/internal/sockettest"
	"github.com/vibegrapher/vibegrapher/telemetry"
)

func newTelemetry(t testing.TB, cfg telemetry.Config) *telemetry.Telemetry {
	t.Helper()
	tel, err := telemetry.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel
}

// metrics is one scrape of /metrics.
type metrics map[string]*dto.MetricFamily

func (s *testServer) scrape(headers ...string) metrics {
	s.t.Helper()
	res := s.do("GET", "/metrics", nil, headers...)
	if res.Status != http.StatusOK {
		s.t.Fatalf("GET /metrics: %d %s", res.Status, res.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(res.Body)))
	if err != nil {
		s.t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// scrapeUntil scrapes until ok says the metrics are complete, for at most
// 30 s, and returns the last scrape.
func (s *testServer) scrapeUntil(ok func(metrics) bool, headers ...string) metrics {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := s.scrape(headers...)
		if ok(m) || time.Now().After(deadline) {
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// series returns the series of a family whose labels include all of labels
// ("name", "value", …).
func (m metrics) series(name string, labels ...string) []*dto.Metric {
	f := m[name]
	if f == nil {
		return nil
	}
	var out []*dto.Metric
next:
	for _, s := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range s.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

// value sums the matching series: a counter's or gauge's value, a
// histogram's count.
func (m metrics) value(name string, labels ...string) float64 {
	var sum float64
	for _, s := range m.series(name, labels...) {
		switch {
		case s.Counter != nil:
			sum += s.Counter.GetValue()
		case s.Gauge != nil:
			sum += s.Gauge.GetValue()
		case s.Histogram != nil:
			sum += float64(s.Histogram.GetSampleCount())
		}
	}
	return sum
}

// sum is a histogram's sum of observations over the matching series.
func (m metrics) sum(name string, labels ...string) float64 {
	var sum float64
	for _, s := range m.series(name, labels...) {
		if s.Histogram != nil {
			sum += s.Histogram.GetSampleSum()
		}
	}
	return sum
}

// delta checks that a series moved by exactly want between two scrapes.
func delta(t testing.TB, before, after metrics, want float64, name string, labels ...string) {
	t.Helper()
	if got := after.value(name, labels...) - before.value(name, labels...); got != want {
		t.Errorf("%s%v moved by %v, want %v", name, labels, got, want)
	}
}

func TestMetricsAndProfilesNeedTheToken(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t, telemetry.Config{Role: "test"})
	s := newTestServer(t, func(o *api.Options) { o.APIToken = "s3cret"; o.Telemetry = tel })
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		if res := s.do("GET", path, nil); res.Status != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401", path, res.Status)
		}
		if res := s.do("GET", path, nil, "Authorization", "Bearer wrong"); res.Status != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d, want 401", path, res.Status)
		}
		if res := s.do("GET", path, nil, "Authorization", "Bearer s3cret"); res.Status != http.StatusOK {
			t.Errorf("GET %s with the token: %d, want 200", path, res.Status)
		}
	}
	m := s.scrape("X-API-Token", "s3cret")
	if m.value("go_goroutines") == 0 || m["process_cpu_seconds_total"] == nil {
		t.Fatalf("/metrics lacks the Go runtime and process metrics: %v", m["go_goroutines"])
	}
	// Refused REST calls are measured (without a route: the token is checked
	// before the mux matches one); scrapes and profiles are not measured.
	s.do("GET", "/projects", nil)
	m = s.scrape("X-API-Token", "s3cret")
	if m.value("http_server_request_duration_seconds", "http_response_status_code", "401") != 1 {
		t.Fatal("the 401 of GET /projects is not in http.server.request.duration")
	}
	if m.value("http_server_request_duration_seconds", "http_route", "/metrics") != 0 {
		t.Fatal("scrapes are measured")
	}
	// The Host header, which any client chooses, is not a label.
	for _, s := range m["http_server_request_duration_seconds"].Metric {
		for _, l := range s.Label {
			if l.GetName() == "server_address" || l.GetName() == "server_port" {
				t.Fatalf("http.server.request.duration has a %s label", l.GetName())
			}
		}
	}
}

// With no worker running, the job of a new message waits in the queue, and
// the queue-depth gauge says so.
func TestQueueDepthIsObserved(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t, telemetry.Config{Role: "test"})
	s := newStack(t, stackOptions{noWorker: true, telemetry: tel})
	if err := tel.ObserveQueues(s.Pool); err != nil {
		t.Fatal(err)
	}
	_, sess := s.project(baseCode)
	s.send(sess.ID, "Say hi")
	s.send(sess.ID, "Say hi again")
	m := s.scrape()
	if got := m.value("river_queue_jobs", "queue", "vibecode", "kind", "vibecode", "state", "available"); got != 2 {
		t.Fatalf("river_queue_jobs{vibecode, available} = %v, want 2", got)
	}
	if got := m.value("river_insert_count_total", "kind", "vibecode"); got != 0 {
		// otelriver labels inserts by status, not kind; the count is global.
		t.Logf("river_insert_count_total by kind: %v", got)
	}
	if got := m.value("river_insert_count_total", "status", "ok"); got != 2 {
		t.Fatalf("river_insert_count_total{status=ok} = %v, want 2", got)
	}
}

func TestMetricsOfAMessageAndATestRun(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t, telemetry.Config{Role: "test"})
	s := newStack(t, stackOptions{telemetry: tel})
	if err := tel.ObservePool("main", s.Pool); err != nil {
		t.Fatal(err)
	}
	p, sess := s.project(baseCode)
	tc := s.newTest(p.ID, "adds", "assert add(2, 3) == 5", 10)
	// The hub sends events after they commit: start once it has sent the
	// project's so far (nothing else runs meanwhile).
	before := s.scrapeUntil(func(m metrics) bool { return m["socketio_outbox_lag"] != nil && m.value("socketio_outbox_lag") == 0 })
	sent := len(s.outboxEvents(p.ID))

	s.AI.Enqueue(submitPatch(greetPatch).WithUsage(1000, 200, 400, 50))
	s.AI.Enqueue(verdict(true, "Fine.", "Say hi").WithUsage(500, 100, 0, 20))
	acc := s.send(sess.ID, "Say hi instead of hello")
	resp := s.waitResponse(p.ID, acc.MessageID)
	if resp["status"] != "diff_created" {
		t.Fatalf("vibecode_response = %v", resp)
	}
	if run := s.runWait(tc.ID, nil); run.Status != "passed" {
		t.Fatalf("test run = %+v", run)
	}
	s.waitEvent(p.ID, "test_completed", nil)
	// A job's metrics are recorded as its work returns and its outcome a
	// moment later, and a job's last events are committed after the client
	// saw the ones above: wait until that has settled, and every event in
	// the outbox has gone to the room.
	var events []event
	after := s.scrapeUntil(func(m metrics) bool {
		events = s.outboxEvents(p.ID)
		return m.value("river_job_outcomes_total", "kind", "run_test")-before.value("river_job_outcomes_total", "kind", "run_test") >= 1 &&
			m.value("river_job_outcomes_total", "kind", "evaluate")-before.value("river_job_outcomes_total", "kind", "evaluate") >= 1 &&
			m.value("socketio_events_emitted_total")-before.value("socketio_events_emitted_total") == float64(len(events)-sent)
	})

	// HTTP: per route and status.
	delta(t, before, after, 1, "http_server_request_duration_seconds", "http_route", "/sessions/{id}/messages", "http_response_status_code", "202", "http_request_method", "POST")
	delta(t, before, after, 1, "http_server_request_duration_seconds", "http_route", "/tests/{id}/run", "http_response_status_code", "200")

	// River: one job of each kind inserted, worked, completed; each waited.
	for _, kind := range []string{"vibecode", "evaluate", "run_test"} {
		delta(t, before, after, 1, "river_work_count_total", "kind", kind, "status", "ok")
		delta(t, before, after, 1, "river_job_outcomes_total", "kind", kind, "outcome", "completed")
		delta(t, before, after, 1, "river_job_queue_wait_seconds", "kind", kind)
		delta(t, before, after, 1, "river_work_duration_histogram_seconds", "kind", kind)
	}
	delta(t, before, after, 3, "river_insert_count_total", "status", "ok")
	// The message: ended once, with a diff (two jobs, one message).
	delta(t, before, after, 1, "vibegrapher_messages_ended_total", "vibegrapher_message_status", "diff_created")
	delta(t, before, after, 0, "vibegrapher_messages_ended_total", "vibegrapher_message_status", "answered")

	// Model calls: one per agent, their tokens by type, their cost.
	for _, agent := range []string{"vibecoder", "evaluator"} {
		delta(t, before, after, 1, "gen_ai_client_operation_duration_seconds", "gen_ai_agent_name", agent, "gen_ai_request_model", "gpt-5")
	}
	delta(t, before, after, 1, "gen_ai_client_time_to_first_token_seconds", "gen_ai_agent_name", "vibecoder")
	delta(t, before, after, 0, "gen_ai_client_errors_total")
	for _, c := range []struct {
		agent, kind string
		want        float64
	}{
		{"vibecoder", "input", 1000}, {"vibecoder", "output", 200}, {"vibecoder", "cached", 400}, {"vibecoder", "reasoning", 50},
		{"evaluator", "input", 500}, {"evaluator", "output", 100}, {"evaluator", "cached", 0}, {"evaluator", "reasoning", 20},
	} {
		l := []string{"gen_ai_agent_name", c.agent, "gen_ai_token_type", c.kind}
		if got := after.sum("gen_ai_client_token_usage", l...) - before.sum("gen_ai_client_token_usage", l...); got != c.want {
			t.Errorf("gen_ai.client.token.usage{%s, %s} grew by %v, want %v", c.agent, c.kind, got, c.want)
		}
	}
	// gpt-5: $1.25 per million input tokens, $0.125 cached, $10 output.
	vibecoderCost := (600*1.25 + 400*0.125 + 200*10) / 1e6
	evaluatorCost := (500*1.25 + 100*10) / 1e6
	costDelta := after.value("gen_ai_client_cost_usd_total") - before.value("gen_ai_client_cost_usd_total")
	if !near(costDelta, vibecoderCost+evaluatorCost) {
		t.Errorf("gen_ai.client.cost.usd grew by %v, want %v", costDelta, vibecoderCost+evaluatorCost)
	}
	// … and the message says what it cost, in its token usage.
	if u := resp["token_usage"].(map[string]any); !near(u["cost_usd"].(float64), vibecoderCost+evaluatorCost) {
		t.Errorf("vibecode_response token_usage = %v, want cost_usd %v", u, vibecoderCost+evaluatorCost)
	}
	msgs := s.messages(sess.ID)
	var m domain.ConversationMessage
	if res := s.do("GET", "/messages/"+msgs[1].ID, nil); res.Status != http.StatusOK {
		t.Fatalf("GET /messages/{id}: %d %s", res.Status, res.Body)
	} else {
		res.json(t, &m)
	}
	if m.Agent != "vibecoder" || m.TokenUsage == nil || !near(m.TokenUsage.CostUSD, vibecoderCost) {
		t.Errorf("GET /messages/{id} = %+v, usage %+v; want the VibeCoder's reply costing %v", m, m.TokenUsage, vibecoderCost)
	}
	var stored float64
	if err := s.Pool.QueryRow(context.Background(), `SELECT cost_usd FROM messages WHERE id = $1`, m.ID).Scan(&stored); err != nil || !near(stored, vibecoderCost) {
		t.Errorf("messages.cost_usd = %v (%v), want %v", stored, err, vibecoderCost)
	}

	// Sandbox: one run, passed, no limit hit.
	delta(t, before, after, 1, "sandbox_runs_total", "status", "passed")
	delta(t, before, after, 1, "sandbox_run_duration_seconds", "status", "passed")
	delta(t, before, after, 0, "sandbox_limits_hit_total")

	// Socket.IO: the stack's client on a websocket, in the project's room,
	// got every new event of the project live; nothing is left to deliver.
	if got := after.value("socketio_connections", "transport", "websocket"); got != 1 {
		t.Errorf("socketio.connections{websocket} = %v, want 1", got)
	}
	if got := after.value("socketio_rooms"); got != 1 {
		t.Errorf("socketio.rooms = %v, want 1", got)
	}
	delta(t, before, after, float64(len(events)-sent), "socketio_events_emitted_total")
	delta(t, before, after, 1, "socketio_events_emitted_total", "event", "vibecode_response")
	delta(t, before, after, 1, "socketio_events_emitted_total", "event", "test_completed")
	if got := after.value("socketio_outbox_lag"); got != 0 {
		t.Errorf("socketio.outbox.lag = %v, want 0", got)
	}
	// A client that reads its events is never dropped for being behind
	// (socketio.connections.behind, on the dashboard: its series are there
	// from the start, at 0; api/realtime/slowclient_test.go checks a drop).
	for _, transport := range []string{"websocket", "polling"} {
		if len(after.series("socketio_connections_behind_total", "transport", transport)) != 1 {
			t.Errorf("no socketio_connections_behind_total{transport=%q} series before any drop", transport)
		}
	}
	delta(t, before, after, 0, "socketio_connections_behind_total")
	// One writer at a time here, in this process: every event was handed to
	// the hub as it committed, and none needed a read for its notification
	// or for a gap.
	delta(t, before, after, 0, "socketio_outbox_reads_total", "why", "notification")
	delta(t, before, after, 0, "socketio_outbox_reads_total", "why", "gap")
	if after.value("socketio_outbox_reads_total", "why", "start") != 1 {
		t.Errorf("socketio.outbox.reads{why=start} = %v, want 1", after.value("socketio_outbox_reads_total", "why", "start"))
	}
	// A second client that subscribes from the start is replayed them all.
	c := sockettest.Dial(t, s.URL)
	c.Subscribe(p.ID, 0)
	replayed := s.scrape()
	delta(t, after, replayed, float64(len(events)), "socketio_events_replayed_total")
	if got := replayed.value("socketio_connections", "transport", "websocket"); got != 2 {
		t.Errorf("socketio.connections{websocket} = %v, want 2", got)
	}

	// The pool was used.
	if after.value("db_client_connection_acquires_total") <= before.value("db_client_connection_acquires_total") {
		t.Error("db.client.connection.acquires did not grow")
	}
	if after.value("db_client_connection_max") == 0 {
		t.Error("db.client.connection.max is 0")
	}
	// The transactions' queue for the pool's slots, by class.
	for _, class := range []string{"job", "other"} {
		for _, name := range []string{"db_client_connection_slot_pending", "db_client_connection_slot_waits_total", "db_client_connection_slot_wait_time_seconds_total"} {
			if len(after.series(name, "vibegrapher_transaction_class", class)) != 1 {
				t.Errorf("%s{vibegrapher_transaction_class=%q}: no series", name, class)
			}
		}
	}
	// The messages submitted, by how they were stored: this one alone.
	for _, how := range []string{"alone", "group", "fallback"} {
		if len(after.series("vibegrapher_submissions_total", "vibegrapher_submission_stored", how)) != 1 {
			t.Errorf("vibegrapher_submissions_total{vibegrapher_submission_stored=%q}: no series", how)
		}
	}
	if got := after.value("vibegrapher_submissions_total", "vibegrapher_submission_stored", "alone") -
		before.value("vibegrapher_submissions_total", "vibegrapher_submission_stored", "alone"); got < 1 {
		t.Errorf("vibegrapher.submissions{alone} grew by %v, want the message sent", got)
	}
	if len(after.series("vibegrapher_submissions_waiting")) != 1 {
		t.Error("vibegrapher_submissions_waiting: no series")
	}
	// The steps of the loop, by how their transaction ran: this message's
	// start and end alone (its short answer streams no delta of its own).
	for _, phase := range []string{"start", "delta", "end"} {
		for _, how := range []string{"alone", "group", "fallback"} {
			if len(after.series("vibegrapher_steps_total", "vibegrapher_step_phase", phase, "vibegrapher_step_ran", how)) != 1 {
				t.Errorf("vibegrapher_steps_total{vibegrapher_step_phase=%q,vibegrapher_step_ran=%q}: no series", phase, how)
			}
		}
		if phase == "delta" {
			continue
		}
		if got := after.value("vibegrapher_steps_total", "vibegrapher_step_phase", phase, "vibegrapher_step_ran", "alone") -
			before.value("vibegrapher_steps_total", "vibegrapher_step_phase", phase, "vibegrapher_step_ran", "alone"); got < 1 {
			t.Errorf("vibegrapher.steps{%s, alone} grew by %v, want the message's step", phase, got)
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
