package main

// vibegrapher-load pipeline measures the whole vibecode path from outside, as
// users feel it: POST /sessions/{id}/messages → that message's
// vibecode_response on a subscribed Socket.IO client.
//
//	go build -o /tmp/vg ./cmd/vibegrapher
//	go run ./cmd/vibegrapher-load pipeline -exec /tmp/vg -sessions 50 -messages 4 -runs 3
//	go run ./cmd/vibegrapher-load pipeline -exec /tmp/vg -sessions 500 -messages 2 -latency 2s
//	go run ./cmd/vibegrapher-load pipeline -exec /tmp/vg -sessions 50 -mode patch
//
// It runs the fake Responses API (internal/openaitest) in this process, so
// its CPU is not the server's. With -exec it starts `BINARY all` itself on a
// fresh database (dropped at the end) with OPENAI_BASE_URL pointing at the
// fake; with -server and -pid it loads a service that is already running,
// which must have been started with OPENAI_BASE_URL=http://<-fake>/v1
// (-serve-fake runs only the fake, until interrupted).
//
// Each of -sessions sessions has its own project and its own subscribed
// client (websocket); once all are set up, each reads its history (GET
// …/messages, as a session's page does when it opens, so each user has a
// connection to the service before posting) and then sends -messages
// messages one after another; all sessions start together. -runs repeats
// that on the same sessions. Per run
// it prints p50/p90/p99, max and mean latency, messages/s, the server's CPU
// per message (utime+stime from /proc/PID/stat, over the run), its RSS,
// PostgreSQL's CPU per message (every postgres process on this machine:
// meaningful when the service's database is local and otherwise idle), this
// process's own CPU per message (the clients and the fake model, which share
// the machine with both) and the medians of five phases: POST → 202, POST →
// the message's job_status "running", "running" → vibecode_response, POST →
// the fake model's receipt of the message's VibeCoder call, and the model's
// answer (that call + -latency) → vibecode_response; and two counts per
// message that the machine's speed does not move: the bytes the service's
// Go heap allocated (its /metrics) and its read and write system calls
// (/proc/PID/io), for comparing builds on a noisy machine. -code FILE gives each
// project that code instead of the sample workflow (the patch mode's patch
// appends a line to it). -idle D first measures the service's and
// PostgreSQL's CPU a second over D of rest. -stream D (text mode) streams
// each answer over D after -latency, a word at a time, as a model writes.
// VGLOAD_CPUPROFILE=FILE writes a CPU profile of this process (the clients
// and the fake model) to FILE;
// VGLOAD_TIMELINE=FILE writes each message's times (CSV) to FILE.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	sio "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/patch"
	"github.com/vibegrapher/vibegrapher/internal/openaitest"
)

func init() { commands["pipeline"] = runPipeline }

type pipelineFlags struct {
	sessions, messages, runs int
	mode                     string
	latency                  time.Duration
	stream                   time.Duration
	server                   string
	pid                      int
	exe                      string
	port                     int
	fake                     string
	serveFake                bool
	databaseURL              string
	env                      string
	serverLog                string
	codeFile                 string
	timeout                  time.Duration
	idle                     time.Duration
}

func runPipeline(args []string) error {
	var f pipelineFlags
	fs := flag.NewFlagSet("pipeline", flag.ContinueOnError)
	fs.IntVar(&f.sessions, "sessions", 50, "sessions, each with its own project and subscribed client")
	fs.IntVar(&f.messages, "messages", 2, "messages each session sends, one after another, per run")
	fs.IntVar(&f.runs, "runs", 1, "runs on the same sessions; the last line is the median of the runs")
	fs.StringVar(&f.mode, "mode", "text", "text: the model answers with text; patch: a valid patch, then the Evaluator approves it (a Diff)")
	fs.DurationVar(&f.latency, "latency", 0, "how long the fake model takes before it answers each call")
	fs.DurationVar(&f.stream, "stream", 0, "text mode: stream the answer over this long after -latency, a word at a time, as a model writes (the service batches text into vibecode_delta events)")
	fs.StringVar(&f.server, "server", "", "base URL of a running service (with -pid); empty with -exec")
	fs.IntVar(&f.pid, "pid", 0, "the running service's process id, for CPU and RSS")
	fs.StringVar(&f.exe, "exec", "", "a built vibegrapher binary: start `BINARY all` on a fresh database")
	fs.IntVar(&f.port, "port", 20080, "with -exec: the service's port on 127.0.0.1")
	fs.StringVar(&f.fake, "fake", "127.0.0.1:0", "where the fake Responses API listens")
	fs.BoolVar(&f.serveFake, "serve-fake", false, "only run the fake model (at -fake) until interrupted")
	fs.StringVar(&f.databaseURL, "database-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"with -exec: the PostgreSQL server; a database of its own is created and dropped")
	fs.StringVar(&f.env, "env", "", "with -exec: extra environment, comma-separated KEY=VALUE")
	fs.StringVar(&f.serverLog, "server-log", "", "with -exec: file for the service's log (default: discarded)")
	fs.StringVar(&f.codeFile, "code", "", "a Python file each project starts with (POST /projects {name, code}); default: the service's sample workflow")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Minute, "upper bound of the whole command (with -serve-fake: none unless given)")
	fs.DurationVar(&f.idle, "idle", 0, "before the set-up, measure the service's and PostgreSQL's CPU a second while the service is idle, over this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case f.stream < 0 || f.stream > 0 && f.mode != "text":
		return errors.New("-stream is a duration of the text mode's answer")
	case f.mode != "text" && f.mode != "patch":
		return fmt.Errorf("-mode must be text or patch, got %q", f.mode)
	case f.sessions < 1 || f.sessions > 5000 || f.messages < 1 || f.runs < 1:
		return errors.New("-sessions must be 1..5000, -messages and -runs at least 1")
	case !f.serveFake && f.exe == "" && (f.server == "" || f.pid == 0):
		return errors.New("give -exec BINARY, or -server URL with -pid PID (or -serve-fake)")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	timeout := f.timeout
	if f.serveFake && !flagGiven(fs, "timeout") {
		// A fake serving a service under test ran out after ten minutes,
		// silently, and the service's messages failed from then on.
		timeout = 0
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}

	var code string
	if f.codeFile != "" {
		b, err := os.ReadFile(f.codeFile)
		if err != nil {
			return fmt.Errorf("-code: %w", err)
		}
		code = string(b)
	}

	model := &fakeModel{latency: f.latency, stream: f.stream, mode: f.mode}
	ln, err := net.Listen("tcp", f.fake)
	if err != nil {
		return fmt.Errorf("fake model: %w", err)
	}
	fake := openaitest.Serve(ln, func(format string, args ...any) {
		model.errors.Add(1)
		fmt.Fprintf(os.Stderr, "fake model: "+format+"\n", args...)
	})
	defer fake.Close()
	fake.Handle(model.reply)
	fakeURL := "http://" + ln.Addr().String() + "/v1"
	if f.serveFake {
		// No project here to read: the patch is of the code a project gets
		// when it is created without any (POST /projects {name}), or -code.
		model.setPatch(cmp.Or(code, domain.SampleWorkflow))
		fmt.Printf("fake Responses API: OPENAI_BASE_URL=%s (model latency %s, %s mode); Ctrl-C ends it\n", fakeURL, f.latency, f.mode)
		<-ctx.Done()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("the fake model stopped after -timeout %s", timeout)
		}
		return nil
	}

	if f.exe != "" {
		svc, err := startService(ctx, f, fakeURL)
		if err != nil {
			return err
		}
		defer svc.stop()
		f.server, f.pid = svc.base, svc.cmd.Process.Pid
	}
	f.server = strings.TrimRight(f.server, "/")
	if err := waitReady(ctx, f.server); err != nil {
		return err
	}
	idle, _ := readRSS(f.pid)
	if f.idle > 0 {
		if err := printIdleCPU(ctx, f.pid, f.idle); err != nil {
			return err
		}
	}

	streamed := ""
	if f.stream > 0 {
		streamed = fmt.Sprintf(", its text streamed over %s", f.stream)
	}
	fmt.Printf("vibegrapher-load pipeline: %d sessions × %d messages, %s, model latency %s%s; server pid %d; %s, %d CPUs\n",
		f.sessions, f.messages, f.mode, f.latency, streamed, f.pid, runtime.Version(), runtime.NumCPU())
	if code != "" {
		fmt.Printf("each project's code: %s (%d lines, %d bytes)\n", f.codeFile, strings.Count(code, "\n"), len(code))
	}
	lc := newLoadHTTP(f.server, f.sessions)
	sessions, err := setUp(ctx, lc, f.server, f.sessions, code)
	defer func() {
		for _, s := range sessions {
			s.watch.close()
		}
	}()
	if err != nil {
		return err
	}
	if f.mode == "patch" {
		code, err := lc.currentCode(ctx, sessions[0].project)
		if err != nil {
			return err
		}
		model.setPatch(code)
	}
	connected, _ := readRSS(f.pid)
	fmt.Printf("server RSS: idle %s, with %d subscribed sessions %s\n", mib(idle), f.sessions, mib(connected))
	fmt.Println("latency: POST /sessions/{id}/messages → its vibecode_response on the session's client; cpu/msg: server utime+stime over the run / messages;")
	fmt.Println("pg/msg: the same for every postgres process on this machine (meaningful when the service's PostgreSQL is local and otherwise idle);")
	fmt.Println("load/msg: the same for this process (the clients and the fake model), which shares the machine with both;")
	fmt.Println("phases (medians): POST → 202, POST → the message's job_status running, running → vibecode_response;")
	fmt.Println("call: POST → the fake model has the message's first VibeCoder call; answer: the model's answer (call + latency) → vibecode_response;")
	fmt.Println("alloc sys: the service's Go heap allocation (go_memstats_alloc_bytes_total; the run's window holds one read of /metrics, about 0.5 MB) and read+write system calls (/proc/PID/io) per message: counts, which the machine's speed does not move")
	if f.mode == "patch" {
		fmt.Println("(patch mode: answer includes the Evaluator's call, with its latency)")
	}
	fmt.Printf("%4s %8s %6s | %9s %9s %9s %9s %9s | %9s | %8s %10s %6s %8s | %s\n", "run", "messages", "failed", "p50", "p90", "p99", "max", "mean", "msg/s", "cpu/msg", "rss-peak", "pg/msg", "load/msg", "202 running response | call answer | alloc sys")
	var rows []runResult
	for run := 1; run <= f.runs; run++ {
		r, err := measurePipeline(ctx, lc, sessions, f.messages, f.pid, model)
		if err != nil {
			return fmt.Errorf("run %d: %w", run, err)
		}
		rows = append(rows, r)
		printRow(strconv.Itoa(run), r)
	}
	if f.runs > 1 {
		printRow("med", medianRow(rows))
	}
	if reads := outboxReads(ctx, f.server); reads != "" {
		fmt.Printf("the realtime hub's reads of the outbox over the command (socketio.outbox.reads): %s\n", reads)
	}
	if f.stream > 0 {
		fmt.Printf("vibecode_delta events the sessions' clients received: %.1f a message\n",
			float64(deltasReceived.Load())/float64(f.runs*f.messages*len(sessions)))
	}
	if n := model.errors.Load(); n > 0 {
		return fmt.Errorf("the fake model refused %d requests (see above)", n)
	}
	return nil
}

// outboxReads is the service's socketio_outbox_reads_total by why, from its
// /metrics ("" when it serves none, or asks for a token).
func outboxReads(ctx context.Context, server string) string {
	fam := serverMetrics(ctx, server)["socketio_outbox_reads_total"]
	if fam == nil {
		return ""
	}
	var out []string
	for _, m := range fam.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "why" {
				out = append(out, fmt.Sprintf("%s %.0f", l.GetValue(), m.GetCounter().GetValue()))
			}
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// serverMetrics are the service's /metrics by name; nil when it serves
// none, or asks for a token.
func serverMetrics(ctx context.Context, server string) map[string]*dto.MetricFamily {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/metrics", nil)
	if err != nil {
		return nil
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		return nil
	}
	return fams
}

// fakeModel answers every Responses API call after the configured latency:
// text mode with a short answer, patch mode with submit_patch for the
// VibeCoder and an approval for the Evaluator (its request has a JSON
// schema text format).
type fakeModel struct {
	latency time.Duration
	stream  time.Duration // text mode: the answer's words spread over this long
	mode    string
	mu      sync.Mutex
	patch   string
	// calls are when each call came, by its prompt_cache_key (the
	// session's openai_session_key for the VibeCoder's), since the run
	// began (resetCalls).
	calls  map[string][]time.Time
	errors atomic.Int64
}

// resetCalls forgets the calls of the run before.
func (m *fakeModel) resetCalls() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = map[string][]time.Time{}
}

// firstCall is when the model got the first call with key at or after
// posted: a session's messages go one after another, so for the message
// posted then it is its first VibeCoder call, whatever retries follow (zero
// if none came, or if the calls go to a fake of another process).
func (m *fakeModel) firstCall(key string, posted time.Time) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, at := range m.calls[key] {
		if !at.Before(posted) {
			return at
		}
	}
	return time.Time{}
}

// cacheKey is the request's prompt_cache_key, read without decoding the
// whole body (a VibeCoder request holds the project's code).
func cacheKey(body []byte) string {
	i := bytes.Index(body, []byte(`"prompt_cache_key"`))
	if i < 0 {
		return ""
	}
	rest := bytes.TrimLeft(body[i+len(`"prompt_cache_key"`):], " \t\r\n:")
	if len(rest) == 0 || rest[0] != '"' {
		return ""
	}
	end := bytes.IndexByte(rest[1:], '"')
	if end < 0 {
		return ""
	}
	return string(rest[1 : 1+end])
}

func (m *fakeModel) setPatch(code string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.patch = patch.Unified(code, code+"# reviewed by the load test\n", domain.ScriptPath)
}

func (m *fakeModel) reply(req openaitest.Request) openaitest.Reply {
	// The Evaluator's calls are kept apart: their key ends in _evaluator.
	at, key := time.Now(), cacheKey(req.Body)
	m.mu.Lock()
	if m.calls != nil {
		m.calls[key] = append(m.calls[key], at)
	}
	m.mu.Unlock()
	if m.latency > 0 {
		time.Sleep(m.latency)
	}
	if m.mode == "patch" {
		if req.TextFormat != nil {
			return openaitest.JSON(map[string]any{"approved": true, "reasoning": "The change is safe.", "commit_message": "Note the review"})
		}
		if !toolOutputInTurn(req) {
			m.mu.Lock()
			p := m.patch
			m.mu.Unlock()
			args, _ := json.Marshal(map[string]string{"patch": p, "description": "Add a note at the end."})
			return openaitest.FunctionCall("submit_patch", string(args))
		}
	}
	if m.stream > 0 {
		// The fake sends a word per delta, each after Delay.
		r := openaitest.Text(streamedAnswer)
		r.Delay = m.stream / time.Duration(len(strings.Fields(streamedAnswer)))
		return r
	}
	return openaitest.Text("Done. The triage agent hands Spanish requests to the Spanish agent.")
}

// streamedAnswer is -stream's answer: about as long as a model's summary of
// a change, 64 words.
const streamedAnswer = "Done. The triage agent now hands requests written in Spanish to the Spanish agent, " +
	"and everything else to the English agent as before. I added a short instruction that tells it " +
	"to look at the language of the last user message only, so a conversation that switches languages " +
	"follows the switch. The Spanish agent keeps its own tools and its handoff back to triage."

// toolOutputInTurn reports whether the request's input has a
// function_call_output after its last user message: the model is being told
// what became of its tool call in this turn. The memory before that holds
// the earlier messages' calls and outputs, which say nothing about this one.
func toolOutputInTurn(req openaitest.Request) bool {
	items := req.InputItems()
	for i := len(items) - 1; i >= 0; i-- {
		switch {
		case items[i]["type"] == "function_call_output":
			return true
		case items[i]["role"] == "user":
			return false
		}
	}
	return false
}

// service is a `vibegrapher all` this command started.
type service struct {
	cmd     *exec.Cmd
	base    string
	dropDB  func()
	stopped chan struct{}
}

func startService(ctx context.Context, f pipelineFlags, fakeURL string) (*service, error) {
	u, _, dropDB, err := scratchDatabase(f.databaseURL, "vgpipe")
	if err != nil {
		return nil, err
	}
	env := append(os.Environ(),
		"DATABASE_URL="+u.String(), "HOST=127.0.0.1", "PORT="+strconv.Itoa(f.port),
		"OPENAI_API_KEY=load-test", "OPENAI_BASE_URL="+fakeURL, "LOG_LEVEL=warn", "AUTO_MIGRATE=true")
	for _, kv := range strings.Split(f.env, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			env = append(env, kv)
		}
	}
	staged, unstage, err := stagedBinary(f.exe)
	if err != nil {
		dropDB()
		return nil, err
	}
	cmd := exec.Command(staged, "all")
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if f.serverLog != "" {
		logf, err := os.Create(f.serverLog)
		if err != nil {
			dropDB()
			unstage()
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = logf, logf
	}
	if err := cmd.Start(); err != nil {
		dropDB()
		unstage()
		return nil, fmt.Errorf("start %s: %w", f.exe, err)
	}
	s := &service{cmd: cmd, base: fmt.Sprintf("http://127.0.0.1:%d", f.port), stopped: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.stopped) }()
	s.dropDB = func() { dropDB(); unstage() }
	select {
	case <-s.stopped:
		s.dropDB()
		return nil, fmt.Errorf("%s all exited at once (see -server-log)", f.exe)
	case <-time.After(200 * time.Millisecond):
	case <-ctx.Done():
	}
	return s, nil
}

// stop ends the service as an operator would (SIGTERM), then drops its
// database.
func (s *service) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.stopped:
	case <-time.After(40 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.stopped
	}
	s.dropDB()
}

func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/readyz not ready after 60s: %v", base, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// loadHTTP is the REST side of the clients.
type loadHTTP struct {
	base string
	c    *http.Client
}

func newLoadHTTP(base string, sessions int) *loadHTTP {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = sessions+8, sessions+8
	return &loadHTTP{base: base, c: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

func (l *loadHTTP) do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, l.base+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := l.c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func (l *loadHTTP) currentCode(ctx context.Context, project string) (string, error) {
	var p struct {
		CurrentCode string `json:"current_code"`
	}
	err := l.do(ctx, http.MethodGet, "/projects/"+project, nil, &p)
	return p.CurrentCode, err
}

// loadSession is one user: a project, a session and a subscribed client.
type loadSession struct {
	project, session string
	key              string // openai_session_key: the prompt_cache_key of its VibeCoder calls
	watch            *responseWatch
}

func setUp(ctx context.Context, lc *loadHTTP, base string, n int, code string) ([]*loadSession, error) {
	out := make([]*loadSession, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var p struct {
				ID string `json:"id"`
			}
			project := map[string]any{"name": fmt.Sprintf("load %s %d", run, i)}
			if code != "" {
				project["code"] = code
			}
			if err := lc.do(ctx, http.MethodPost, "/projects", project, &p); err != nil {
				errs <- err
				return
			}
			var s struct {
				ID  string `json:"id"`
				Key string `json:"openai_session_key"`
			}
			if err := lc.do(ctx, http.MethodPost, "/projects/"+p.ID+"/sessions", nil, &s); err != nil {
				errs <- err
				return
			}
			w, err := watchResponses(ctx, base, p.ID)
			if err != nil {
				errs <- fmt.Errorf("client of project %s: %w", p.ID, err)
				return
			}
			out[i] = &loadSession{project: p.ID, session: s.ID, key: s.Key, watch: w}
		})
	}
	wg.Wait()
	close(errs)
	live := slices.DeleteFunc(out, func(s *loadSession) bool { return s == nil })
	if err := <-errs; err != nil {
		return live, err
	}
	return live, openSessions(ctx, lc, live)
}

// openSessions reads every session's history at once, as each user's
// frontend does when the session's page opens. The users then post over
// connections they already have, as browsers showing the app do (or a proxy
// in front of the service), rather than all opening one in the instant
// they post: the set-up above opens only 16.
func openSessions(ctx context.Context, lc *loadHTTP, sessions []*loadSession) error {
	errs := make(chan error, len(sessions))
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Go(func() {
			if err := lc.do(ctx, http.MethodGet, "/sessions/"+s.session+"/messages", nil, nil); err != nil {
				errs <- fmt.Errorf("open session %s: %w", s.session, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// arrival is a vibecode_response as the client got it, with when the
// message's first job_status "running" came (zero if it did not).
type arrival struct {
	at      time.Time
	running time.Time
	status  string
	err     string
}

// deltasReceived counts the vibecode_delta events of every client.
var deltasReceived atomic.Int64

// responseWatch is one Socket.IO client subscribed to a project; it hands
// each vibecode_response to whoever waits for that message.
type responseWatch struct {
	sock    *sio.Socket
	mu      sync.Mutex
	waiting map[string]chan arrival
	running map[string]time.Time
}

func (w *responseWatch) expect(messageID string) chan arrival {
	ch := make(chan arrival, 1)
	w.mu.Lock()
	w.waiting[messageID] = ch
	w.mu.Unlock()
	return ch
}

func (w *responseWatch) close() { w.sock.Disconnect() }

func (w *responseWatch) onEvent(args ...any) {
	at := time.Now()
	if len(args) < 2 {
		return
	}
	p, _ := args[1].(map[string]any)
	id, _ := p["message_id"].(string)
	switch args[0] {
	case "job_status":
		if p["state"] == "running" {
			w.mu.Lock()
			if _, ok := w.waiting[id]; ok && w.running[id].IsZero() {
				w.running[id] = at
			}
			w.mu.Unlock()
		}
	case "vibecode_delta":
		deltasReceived.Add(1)
	case "vibecode_response":
		w.mu.Lock()
		ch := w.waiting[id]
		started := w.running[id]
		delete(w.waiting, id)
		delete(w.running, id)
		w.mu.Unlock()
		if ch != nil {
			status, _ := p["status"].(string)
			msg, _ := p["error"].(string)
			ch <- arrival{at: at, running: started, status: status, err: msg}
		}
	}
}

// openTimeout bounds opening the engine connection. The Go client
// (clients/socket/v3 v3.0.6) races on a fast loopback connect: its manager
// can miss the engine's "open" (dial starts over after openTimeout), its
// connect timer can outlive a successful open and close the connection when
// it fires (so the manager's own timeout is set out of reach), and
// Socket.Connect can send CONNECT twice (so the socket is made only once the
// manager is open). See internal/sockettest.
const openTimeout = 2 * time.Second

var errMissedOpen = errors.New("the client missed its engine's open")

// watchResponses connects a client and subscribes it to project, working
// around the Go client's races on a fast loopback connect (openTimeout).
func watchResponses(ctx context.Context, base, project string) (*responseWatch, error) {
	for attempt := 1; ; attempt++ {
		w, err := watchOnce(ctx, base, project)
		if errors.Is(err, errMissedOpen) && attempt < 5 {
			continue
		}
		return w, err
	}
}

func watchOnce(ctx context.Context, base, project string) (*responseWatch, error) {
	o := sio.DefaultOptions()
	o.SetReconnection(false)
	o.SetAutoConnect(false)
	o.SetTimeout(24 * time.Hour)
	o.SetTransports(types.NewSet(sio.WebSocket))
	m := sio.NewManager(base, o)
	opened := make(chan error, 1)
	m.Open(func(err error) { opened <- err })
	select {
	case err := <-opened:
		if err != nil {
			return nil, err
		}
	case <-time.After(openTimeout):
		if eng := m.Engine(); eng != nil {
			eng.Close()
		}
		return nil, errMissedOpen
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	w := &responseWatch{waiting: map[string]chan arrival{}, running: map[string]time.Time{}}
	w.sock = m.Socket("/", o)
	subscribed := make(chan error, 1)
	_ = w.sock.On("connect", func(...any) {
		w.sock.Timeout(30*time.Second).EmitWithAck("subscribe", map[string]any{"project_id": project})(func(a []any, err error) {
			if err == nil && len(a) > 0 {
				if ack, _ := a[0].(map[string]any); ack["ok"] != true {
					err = fmt.Errorf("subscribe refused: %v", ack)
				}
			}
			subscribed <- err
		})
	})
	_ = w.sock.On("connect_error", func(args ...any) { subscribed <- fmt.Errorf("connect: %v", args) })
	w.sock.OnAny(w.onEvent)
	w.sock.Connect()
	select {
	case err := <-subscribed:
		if err != nil {
			w.close()
			return nil, err
		}
		return w, nil
	case <-ctx.Done():
		w.close()
		return nil, ctx.Err()
	}
}

type runResult struct {
	// phases are the medians of POST → its 202, POST → the message's first
	// job_status "running" (its job started), and that → vibecode_response;
	// of POST → the fake model's receipt of its first VibeCoder call, and of
	// the model's answer (that + its latency) → vibecode_response (in patch
	// mode the Evaluator's call is in the latter). The last two are zero
	// when the calls go to a fake of another process (-serve-fake).
	accepted, started, worked time.Duration
	called, answered          time.Duration
	messages, failed          int
	p50, p90, p99             time.Duration
	mean, max                 time.Duration
	perSecond                 float64
	cpuPerMessage             time.Duration
	pgPerMessage              time.Duration // PostgreSQL's CPU, when it runs on this machine
	loadPerMessage            time.Duration // this process's CPU: the clients and the fake model
	rssPeak                   int64
	// Counts, which the machine's speed does not move: the service's read
	// and write system calls (-1 when /proc/PID/io cannot be read) and the
	// bytes its Go heap allocated (-1 when its /metrics gives none; the
	// window holds one read of /metrics, about 0.5 MB), per message.
	syscallsPerMessage float64
	allocPerMessage    float64
}

func measurePipeline(ctx context.Context, lc *loadHTTP, sessions []*loadSession, messages, pid int, model *fakeModel) (runResult, error) {
	var (
		mu        sync.Mutex
		latencies []time.Duration
		accepted  []time.Duration
		started   []time.Duration
		worked    []time.Duration
		called    []time.Duration
		answered  []time.Duration
		uncalled  int // answered messages whose call the fake did not see
		timeline  []timelineRow
		failed    int
		firstErr  error
	)
	rssPeak := atomic.Int64{}
	sampling, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, err := readRSS(pid); err == nil && rss > rssPeak.Load() {
				rssPeak.Store(rss)
			}
			select {
			case <-sampling.Done():
				return
			case <-t.C:
			}
		}
	}()
	// /metrics first: a read of it costs the service about 8 ms of CPU and
	// dozens of writes, which are not the messages'. The allocation window
	// still holds about one read (the counter is sampled as a read begins).
	alloc0, allocOK := serverAllocated(ctx, lc.base)
	cpu0, err := readCPU(pid)
	if err != nil {
		stopSampling()
		return runResult{}, err
	}
	pg0 := postgresCPU()
	sys0, sysErr := readSyscalls(pid)
	load0, err := readCPU(os.Getpid())
	if err != nil {
		stopSampling()
		return runResult{}, err
	}
	timelineFile := os.Getenv("VGLOAD_TIMELINE")
	model.resetCalls()
	start := time.Now()
	var wg sync.WaitGroup
	for si, s := range sessions {
		wg.Go(func() {
			for mi := range messages {
				id := uuid.NewString()
				got := s.watch.expect(id)
				t0 := time.Now()
				err := lc.do(ctx, http.MethodPost, "/sessions/"+s.session+"/messages", map[string]any{"prompt": "Say which agent answers Spanish.", "message_id": id}, nil)
				t202 := time.Now()
				var a arrival
				if err == nil {
					select {
					case a = <-got:
						if a.status == domain.StatusFailed {
							err = fmt.Errorf("message %s failed: %s", id, a.err)
						}
					case <-ctx.Done():
						err = fmt.Errorf("no vibecode_response for %s: %w", id, ctx.Err())
					}
				}
				mu.Lock()
				if err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					latencies = append(latencies, a.at.Sub(t0))
					accepted = append(accepted, t202.Sub(t0))
					if !a.running.IsZero() {
						started = append(started, a.running.Sub(t0))
						worked = append(worked, a.at.Sub(a.running))
					}
					call := model.firstCall(s.key, t0)
					if call.IsZero() {
						uncalled++
					} else {
						called = append(called, call.Sub(t0))
						answered = append(answered, a.at.Sub(call.Add(model.latency)))
					}
					if timelineFile != "" {
						row := timelineRow{session: si, message: mi, posted: t0.Sub(start),
							accepted: t202.Sub(start), running: -1, call: -1, answered: a.at.Sub(start)}
						if !a.running.IsZero() {
							row.running = a.running.Sub(start)
						}
						if !call.IsZero() {
							row.call = call.Sub(start)
						}
						timeline = append(timeline, row)
					}
				}
				mu.Unlock()
				if ctx.Err() != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	pg1 := postgresCPU()
	load1, loadErr := readCPU(os.Getpid())
	cpu1, err := readCPU(pid)
	err = errors.Join(err, loadErr)
	sys1, sysErr1 := readSyscalls(pid)
	alloc1, allocOK1 := serverAllocated(ctx, lc.base)
	stopSampling()
	<-sampled
	if err != nil {
		return runResult{}, err
	}
	if len(latencies) == 0 {
		return runResult{}, fmt.Errorf("no message was answered: %v", firstErr)
	}
	if firstErr != nil {
		fmt.Fprintln(os.Stderr, "vibegrapher-load: first failure:", firstErr)
	}
	if uncalled > 0 && len(called) > 0 {
		fmt.Fprintf(os.Stderr, "vibegrapher-load: %d answered messages without a call the fake model saw: not in call and answer\n", uncalled)
	}
	if err := writeTimeline(timelineFile, timeline); err != nil {
		return runResult{}, err
	}
	slices.Sort(latencies)
	at := func(p int) time.Duration { return latencies[min(len(latencies)-1, len(latencies)*p/100)] }
	n := len(latencies) + failed
	var sum time.Duration
	for _, l := range latencies {
		sum += l
	}
	median := func(d []time.Duration) time.Duration {
		if len(d) == 0 {
			return 0
		}
		slices.Sort(d)
		return d[len(d)/2]
	}
	return runResult{
		accepted: median(accepted), started: median(started), worked: median(worked),
		called: median(called), answered: median(answered),
		messages: n, failed: failed,
		p50: at(50), p90: at(90), p99: at(99), max: latencies[len(latencies)-1],
		mean:               sum / time.Duration(len(latencies)),
		perSecond:          float64(len(latencies)) / elapsed.Seconds(),
		cpuPerMessage:      (cpu1 - cpu0) / time.Duration(n),
		pgPerMessage:       (pg1 - pg0) / time.Duration(n),
		loadPerMessage:     (load1 - load0) / time.Duration(n),
		rssPeak:            rssPeak.Load(),
		syscallsPerMessage: perMessage(sysErr == nil && sysErr1 == nil, float64(sys1-sys0), n),
		allocPerMessage:    perMessage(allocOK && allocOK1, alloc1-alloc0, n),
	}, nil
}

// printIdleCPU prints the CPU the service (pid) and this machine's
// PostgreSQL use a second over d while nothing is sent to the service: what
// a service costs at rest (its pollers and liveness), and what every
// per-message figure also holds.
func printIdleCPU(ctx context.Context, pid int, d time.Duration) error {
	cpu0, err := readCPU(pid)
	if err != nil {
		return err
	}
	pg0 := postgresCPU()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
	}
	cpu1, err := readCPU(pid)
	if err != nil {
		return err
	}
	pg1 := postgresCPU()
	perSecond := func(c time.Duration) string { return ms(time.Duration(float64(c) / d.Seconds())) }
	fmt.Printf("server idle over %s: CPU %s a second; PostgreSQL %s a second\n", d, perSecond(cpu1-cpu0), perSecond(pg1-pg0))
	return nil
}

// perMessage is total / n, or -1 when total could not be measured.
func perMessage(measured bool, total float64, n int) float64 {
	if !measured {
		return -1
	}
	return total / float64(n)
}

// serverAllocated is the service's go_memstats_alloc_bytes_total (the bytes
// its Go heap has allocated so far), from its /metrics; false when it
// serves none, or asks for a token.
func serverAllocated(ctx context.Context, server string) (float64, bool) {
	fams := serverMetrics(ctx, server)
	f := fams["go_memstats_alloc_bytes_total"]
	if f == nil || len(f.GetMetric()) != 1 {
		return 0, false
	}
	m := f.GetMetric()[0]
	if c := m.GetCounter(); c != nil {
		return c.GetValue(), true
	}
	return m.GetUntyped().GetValue(), m.GetUntyped() != nil
}

// ms2 shows a CPU time per message to a hundredth of a millisecond: a run of
// 200 messages resolves 0.05 ms (the kernel counts CPU in 10 ms ticks), which
// ms's tenths would round away.
func ms2(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

func printRow(label string, r runResult) {
	calls := "- -"
	if r.called != 0 {
		calls = ms(r.called) + " " + ms(r.answered)
	}
	fmt.Printf("%4s %8d %6d | %9s %9s %9s %9s %9s | %9.1f | %8s %10s %6s %8s | %s %s %s | %s | %s %s\n", label, r.messages, r.failed,
		ms(r.p50), ms(r.p90), ms(r.p99), ms(r.max), ms(r.mean), r.perSecond, ms2(r.cpuPerMessage), mib(r.rssPeak), ms2(r.pgPerMessage), ms2(r.loadPerMessage),
		ms(r.accepted), ms(r.started), ms(r.worked), calls, count(r.allocPerMessage/1024, "KB"), count(r.syscallsPerMessage, ""))
}

// count prints a per-message count, "-" when it was not measured.
func count(v float64, unit string) string {
	if v < 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + unit
}

// medianRow is the median of each column over the runs.
func medianRow(rows []runResult) runResult {
	med := func(get func(runResult) float64) float64 {
		v := make([]float64, len(rows))
		for i, r := range rows {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	d := func(get func(runResult) time.Duration) time.Duration {
		return time.Duration(med(func(r runResult) float64 { return float64(get(r)) }))
	}
	return runResult{
		messages:           int(med(func(r runResult) float64 { return float64(r.messages) })),
		failed:             int(med(func(r runResult) float64 { return float64(r.failed) })),
		p50:                d(func(r runResult) time.Duration { return r.p50 }),
		p90:                d(func(r runResult) time.Duration { return r.p90 }),
		p99:                d(func(r runResult) time.Duration { return r.p99 }),
		max:                d(func(r runResult) time.Duration { return r.max }),
		mean:               d(func(r runResult) time.Duration { return r.mean }),
		perSecond:          med(func(r runResult) float64 { return r.perSecond }),
		cpuPerMessage:      d(func(r runResult) time.Duration { return r.cpuPerMessage }),
		pgPerMessage:       d(func(r runResult) time.Duration { return r.pgPerMessage }),
		loadPerMessage:     d(func(r runResult) time.Duration { return r.loadPerMessage }),
		rssPeak:            int64(med(func(r runResult) float64 { return float64(r.rssPeak) })),
		syscallsPerMessage: med(func(r runResult) float64 { return r.syscallsPerMessage }),
		allocPerMessage:    med(func(r runResult) float64 { return r.allocPerMessage }),
		accepted:           d(func(r runResult) time.Duration { return r.accepted }),
		started:            d(func(r runResult) time.Duration { return r.started }),
		worked:             d(func(r runResult) time.Duration { return r.worked }),
		called:             d(func(r runResult) time.Duration { return r.called }),
		answered:           d(func(r runResult) time.Duration { return r.answered }),
	}
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on Linux
func mib(b int64) string { return fmt.Sprintf("%.1fMB", float64(b)/(1<<20)) }

// timelineRow is one answered message, its times since the run began.
type timelineRow struct {
	session, message                          int
	posted, accepted, running, call, answered time.Duration
}

// writeTimeline writes every answered message's times as CSV to path
// (VGLOAD_TIMELINE; the last run's when there are several), to see how a
// burst is served; nothing when path is empty. running is empty when the
// message's job_status "running" did not come, model_ms (when the fake model
// got the message's first VibeCoder call) when the calls went elsewhere.
func writeTimeline(path string, rows []timelineRow) error {
	if path == "" {
		return nil
	}
	var b strings.Builder
	b.WriteString("session,message,posted_ms,accepted_ms,running_ms,model_ms,answered_ms\n")
	ms := func(d time.Duration) string {
		if d < 0 {
			return ""
		}
		return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64)
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "%d,%d,%s,%s,%s,%s,%s\n", r.session, r.message, ms(r.posted), ms(r.accepted), ms(r.running), ms(r.call), ms(r.answered))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write the timeline: %w", err)
	}
	return nil
}

// flagGiven reports whether the command line set the flag name.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}
