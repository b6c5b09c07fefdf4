package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/api"
	"github.com/vibegrapher/vibegrapher/api/realtime"
	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/internal/openaitest"
	"github.com/vibegrapher/vibegrapher/internal/sockettest"
	"github.com/vibegrapher/vibegrapher/jobs"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
	"github.com/vibegrapher/vibegrapher/llm"
	"github.com/vibegrapher/vibegrapher/sandbox"
	"github.com/vibegrapher/vibegrapher/telemetry"
)

// stack is the whole service on a fresh database: the REST API, a River
// worker, and a scripted OpenAI server behind the real openai-go client.
type stack struct {
	*testServer
	AI     *openaitest.Server
	Worker *jobargs.Client
	deps   *jobs.Deps
	pool   *pgxpool.Pool
	tel    *telemetry.Telemetry

	// A Socket.IO client per project, subscribed from the project's first
	// event on: what a frontend would see.
	mu      sync.Mutex
	clients map[string]*sockettest.Client
	seen    map[string][]event
}

type stackOptions struct {
	apiKey        string // default "test-key"; "-" for none
	maxIterations int
	noWorker      bool
	telemetry     *telemetry.Telemetry // nil: none
}

func newStack(t testing.TB, o stackOptions) *stack {
	t.Helper()
	pool := dbtest.New(t)
	log := slog.New(slog.DiscardHandler)
	ai := openaitest.New(t)
	key := o.apiKey
	switch key {
	case "":
		key = "test-key"
	case "-":
		key = ""
	}
	if o.maxIterations == 0 {
		o.maxIterations = 3
	}
	store := &db.Store{Pool: pool}
	deps := &jobs.Deps{
		Store:         store,
		LLM:           llm.New(llm.Config{APIKey: key, BaseURL: ai.URL(), ThinkingModel: "gpt-5", SmallModel: "gpt-5-mini", Meter: o.telemetry.Meter(), Tracer: o.telemetry.Tracer()}),
		MaxIterations: o.maxIterations,
		Log:           log,
		DeltaInterval: 20 * time.Millisecond,
	}
	s := &stack{AI: ai, deps: deps, pool: pool, tel: o.telemetry}
	var client *jobargs.Client
	var err error
	if o.noWorker {
		client, err = jobargs.NewInsertOnlyClient(pool, log, o.telemetry.RiverPlugins()...)
		s.Worker = client
	} else {
		client = s.startWorker(t)
	}
	if err != nil {
		t.Fatal(err)
	}
	schema, err := db.NewSchema(pool, log)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := realtime.New(realtime.Options{Pool: pool, Log: log, CORSOrigins: []string{"*"}, HeartbeatInterval: time.Hour, Meter: o.telemetry.Meter()})
	if err != nil {
		t.Fatal(err)
	}
	a := api.New(api.Options{Store: store, Schema: schema, Jobs: client, LLM: deps.LLM, Log: log, CORSOrigins: []string{"*"}, Telemetry: o.telemetry})
	srv := serveWithRealtime(t, a, rt)
	s.seen = map[string][]event{}
	s.clients = map[string]*sockettest.Client{}
	s.testServer = &testServer{t: t, URL: srv.URL, Pool: pool}
	s.checkEventsAtEnd()
	return s
}

// startWorker starts a River worker client on the stack's database.
func (s *stack) startWorker(t testing.TB) *jobargs.Client {
	t.Helper()
	pool := s.pool
	box := testSandbox(t)
	if s.tel != nil {
		box = observedSandbox(t, s.tel)
	}
	tests := &jobs.RunTestWorker{Sandbox: box, MaxTimeout: 30 * time.Second}
	c, live, err := jobs.NewLiveWorkerClient(pool, s.deps.Log, jobs.NewWorkers(s.deps, tests, &jobs.PruneEventsWorker{Retention: time.Hour}), jobs.WorkerConfig{VibecodeWorkers: 4, EvaluateWorkers: 4, TestWorkers: 2, Plugins: s.tel.RiverPlugins()})
	if err != nil {
		t.Fatal(err)
	}
	if err := live.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.tel.ObserveJobs(c)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.StopAndCancel(ctx)
		live.Stop()
	})
	s.Worker = c
	return c
}

// project creates a project with code and a global session on it.
func (s *stack) project(code string) (domain.Project, domain.VibecodeSession) {
	s.t.Helper()
	var p domain.Project
	res := s.do("POST", "/projects", map[string]any{"name": "Vibe", "code": code})
	res.json(s.t, &p)
	if res.Status != 201 {
		s.t.Fatalf("create project: %d %s", res.Status, res.Body)
	}
	s.watch(p.ID)
	var sess domain.VibecodeSession
	res = s.do("POST", "/projects/"+p.ID+"/sessions", nil)
	res.json(s.t, &sess)
	if res.Status != 201 {
		s.t.Fatalf("create session: %d %s", res.Status, res.Body)
	}
	return p, sess
}

// send posts a prompt and returns the 202 answer.
func (s *stack) send(sessionID, prompt string) domain.MessageAccepted {
	s.t.Helper()
	res := s.do("POST", "/sessions/"+sessionID+"/messages", map[string]any{"prompt": prompt})
	if res.Status != 202 {
		s.t.Fatalf("send: %d %s", res.Status, res.Body)
	}
	var a domain.MessageAccepted
	res.json(s.t, &a)
	return a
}

// event is one outbox row, decoded.
type event struct {
	Seq     int64
	Name    string
	Payload map[string]any
}

// outboxEvents returns the project's rows in the outbox, in order.
func (s *testServer) outboxEvents(projectID string) []event {
	s.t.Helper()
	rows, err := s.Pool.Query(context.Background(), `SELECT seq, name, payload FROM events WHERE project_id = $1 ORDER BY seq`, projectID)
	if err != nil {
		s.t.Fatal(err)
	}
	defer rows.Close()
	var out []event
	for rows.Next() {
		var e event
		var raw []byte
		if err := rows.Scan(&e.Seq, &e.Name, &raw); err != nil {
			s.t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &e.Payload); err != nil {
			s.t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// watch connects a Socket.IO client (websocket, as the frontend) and
// subscribes it to the project from its first event on.
func (s *stack) watch(projectID string) {
	s.t.Helper()
	c := sockettest.Dial(s.t, s.URL)
	c.Subscribe(projectID, 0)
	s.mu.Lock()
	s.clients[projectID] = c
	s.mu.Unlock()
}

// events returns what the project's Socket.IO client received so far, in
// order, after checking that the seqs only grow.
func (s *stack) events(projectID string) []event {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[projectID]
	if c == nil {
		s.t.Fatalf("no Socket.IO client watches project %s", projectID)
	}
	for c.Events.Pending() > 0 {
		ev, _ := c.Events.Next()
		e := event{Seq: ev.Seq(), Name: ev.Name, Payload: ev.Payload}
		if seen := s.seen[projectID]; len(seen) > 0 && e.Seq <= seen[len(seen)-1].Seq {
			s.t.Fatalf("event %s seq %d after seq %d: out of order or repeated", e.Name, e.Seq, seen[len(seen)-1].Seq)
		}
		if e.Payload["project_id"] != projectID {
			s.t.Fatalf("event %s for project %v on project %s's room", e.Name, e.Payload["project_id"], projectID)
		}
		checkEvent(s.t, e.Name, e.Payload)
		s.seen[projectID] = append(s.seen[projectID], e)
	}
	return append([]event(nil), s.seen[projectID]...)
}

// waitEvent waits until the project's client has received an event that
// matches, and returns its payload.
func (s *stack) waitEvent(projectID, name string, match func(map[string]any) bool) map[string]any {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range s.events(projectID) {
			if e.Name == name && (match == nil || match(e.Payload)) {
				return e.Payload
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatalf("no matching %s event; received: %v", name, eventNames(s.events(projectID)))
	return nil
}

// waitResponse waits for the vibecode_response of a message and returns it.
func (s *stack) waitResponse(projectID, messageID string) map[string]any {
	s.t.Helper()
	return s.waitEvent(projectID, "vibecode_response", func(p map[string]any) bool { return p["message_id"] == messageID })
}

func eventNames(es []event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Name
	}
	return out
}

// messages returns a session's conversation through REST.
func (s *testServer) messages(sessionID string) []domain.ConversationMessage {
	s.t.Helper()
	var list []domain.ConversationMessage
	res := s.do("GET", "/sessions/"+sessionID+"/messages", nil)
	if res.Status != 200 {
		s.t.Fatalf("messages: %d %s", res.Status, res.Body)
	}
	res.json(s.t, &list)
	return list
}

func submitPatch(diff string) openaitest.Reply {
	raw, _ := json.Marshal(map[string]string{"patch": diff, "description": "Makes the change."})
	return openaitest.FunctionCall("submit_patch", string(raw))
}

func verdict(approved bool, reasoning, message string) openaitest.Reply {
	return openaitest.JSON(map[string]any{"approved": approved, "reasoning": reasoning, "commit_message": message})
}

var (
	sandboxOnce   sync.Once
	sandboxRunner *sandbox.Runner
	sandboxErr    error
)

// observedSandbox is a sandbox runner whose runs tel measures.
func observedSandbox(t testing.TB, tel *telemetry.Telemetry) *sandbox.Runner {
	t.Helper()
	r, err := sandbox.New(sandbox.Config{ScratchRoot: t.TempDir(), Timeout: 30 * time.Second, Logger: slog.New(slog.DiscardHandler),
		Meter: tel.Meter(), Tracer: tel.Tracer()})
	if err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	return r
}

// testSandbox is one sandbox runner for the test binary, which acts as its
// launcher (TestMain calls sandbox.Main).
func testSandbox(t testing.TB) *sandbox.Runner {
	t.Helper()
	sandboxOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vibegrapher-api-test-")
		if err != nil {
			sandboxErr = err
			return
		}
		sandboxRunner, sandboxErr = sandbox.New(sandbox.Config{ScratchRoot: dir, Timeout: 30 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	})
	if sandboxErr != nil {
		t.Fatalf("sandbox: %v", sandboxErr)
	}
	return sandboxRunner
}

// serveWithRealtime serves a on a test server with rt mounted at
// /socket.io/ and running, both stopped when the test ends.
func serveWithRealtime(t testing.TB, a *api.Server, rt *realtime.Server) *httptest.Server {
	t.Helper()
	a.Mount("/socket.io/", rt.Handler())
	srv := httptest.NewServer(a.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() {
		rt.Close()
		cancel()
		<-done
		srv.Close()
	})
	return srv
}
