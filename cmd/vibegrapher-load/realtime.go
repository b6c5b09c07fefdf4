package main

// The realtime load: Socket.IO fan-out from one server process to many
// clients in one project room, measured the same way against this server
// (`vibegrapher api --realtime`, fed by the outbox) and, with -servers
// ours,node, against the official Node.js socket.io server
// (bench/realtime-node/server.js, emitting the same payloads from memory).
//
//	go run ./cmd/vibegrapher-load realtime -servers ours,node -runs 3
//
// Each measurement starts a fresh server process (and, for ours, a fresh
// database on -database-url, dropped afterwards), connects the clients
// (official socket.io-client 4.8 over websocket, one connection each, in
// Node processes of -clients-per-process: bench/realtime-node/clients.js),
// then sends the events: for ours a DO block in PostgreSQL commits each one
// in its own transaction (INSERT + pg_notify, as db.Emit does) on the
// pacing's schedule; for Node the server emits them on the same schedule.
// Latency is the receive time in the client minus sent_at_us in the payload:
// the instant the event was due on the schedule (start + i*interval; the
// start for every event of a burst), for both servers, so that a server
// falling behind the schedule has its backlog counted. (Before, each writer
// stamped the moment it wrote: Node's server, being its own writer, left out
// the time an event waited for the previous emit to finish.) Server CPU is
// utime+stime from /proc/PID/stat over the delivery (first event sent to
// last event received), RSS is VmRSS from /proc/PID/status.

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain"
)

// issueLoads are the rows of issue 14's table.
const issueLoads = "100x200@10ms,1000x50@50ms,100x200@0,1000x50@0"

type realtimeConfig struct {
	loads             []loadSpec
	servers           []string
	runs              int
	transport         string
	payload           int
	clientsPerProcess int
	vibegrapher       string
	binaries          map[string]string // label → another vibegrapher binary
	benchDir          string
	dbURL             string
	timeout           time.Duration
}

// loadSpec is one row: clients in one room, events sent one every `every`
// (0: all at once).
type loadSpec struct {
	clients, events int
	every           time.Duration
}

func (l loadSpec) String() string {
	pace := "at once"
	if l.every > 0 {
		pace = "one every " + l.every.String()
	}
	return fmt.Sprintf("%d clients, %d events, %s", l.clients, l.events, pace)
}

func parseLoads(s string) ([]loadSpec, error) {
	var loads []loadSpec
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		shape, pace, ok := strings.Cut(f, "@")
		c, e, ok2 := strings.Cut(shape, "x")
		n, err1 := strconv.Atoi(c)
		m, err2 := strconv.Atoi(e)
		every, err3 := time.ParseDuration(pace)
		if pace == "0" {
			every, err3 = 0, nil
		}
		if !ok || !ok2 || err1 != nil || err2 != nil || err3 != nil || n < 1 || m < 1 || every < 0 {
			return nil, fmt.Errorf("-loads: %q is not CLIENTSxEVENTS@INTERVAL (e.g. 1000x50@50ms, 100x200@0)", f)
		}
		loads = append(loads, loadSpec{clients: n, events: m, every: every})
	}
	return loads, nil
}

func runRealtime(args []string) error {
	fs := flag.NewFlagSet("realtime", flag.ContinueOnError)
	loads := fs.String("loads", issueLoads, "comma-separated CLIENTSxEVENTS@INTERVAL, INTERVAL 0 for all at once")
	clients := fs.String("clients", "", "older form: comma-separated client counts, each with -events at -rate (overrides -loads)")
	events := fs.Int("events", 300, "older form: events per run (with -clients)")
	rate := fs.Float64("rate", 50, "older form: events per second, 0 for all at once (with -clients)")
	servers := fs.String("servers", "ours", "servers to measure side by side: ours, node, and LABEL=PATH for another vibegrapher binary (a build before a change)")
	runs := fs.Int("runs", 1, "repeat every load this many times; the summary gives medians")
	payload := fs.Int("payload", 500, "bytes of each event's JSON payload as clients receive it")
	transport := fs.String("transport", "websocket", "the clients' transport: websocket or polling")
	perProc := fs.Int("clients-per-process", 500, "socket.io-client sockets per Node process")
	bin := fs.String("vibegrapher", "", "the vibegrapher binary (default: go build ./cmd/vibegrapher into a temporary directory)")
	benchDir := fs.String("bench-dir", "bench/realtime-node", "directory of server.js and clients.js, with node_modules (npm ci)")
	dbURL := fs.String("database-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"a PostgreSQL server on loopback; each measurement of ours creates and drops its own database on it")
	timeout := fs.Duration("timeout", 3*time.Minute, "upper bound of one measurement")
	if err := fs.Parse(args); err != nil {
		return err
	}

	if *transport != "websocket" && *transport != "polling" {
		return fmt.Errorf("-transport: %q is neither websocket nor polling", *transport)
	}
	cfg := realtimeConfig{transport: *transport, runs: *runs, payload: *payload, clientsPerProcess: *perProc, vibegrapher: *bin,
		benchDir: *benchDir, dbURL: *dbURL, timeout: *timeout}
	var err error
	if *clients != "" {
		if *events < 1 || *rate < 0 {
			return errors.New("-events must be at least 1 and -rate not negative")
		}
		var every time.Duration
		if *rate > 0 {
			every = time.Duration(float64(time.Second) / *rate)
		}
		var specs []string
		for _, c := range strings.Split(*clients, ",") {
			specs = append(specs, fmt.Sprintf("%sx%d@%s", strings.TrimSpace(c), *events, every))
		}
		*loads = strings.Join(specs, ",")
	}
	if cfg.loads, err = parseLoads(*loads); err != nil {
		return err
	}
	cfg.binaries = map[string]string{}
	for _, s := range strings.Split(*servers, ",") {
		s = strings.TrimSpace(s)
		label, path, other := strings.Cut(s, "=")
		switch {
		case other && label != "" && label != "node" && label != "ours" && path != "":
			cfg.binaries[label] = path
		case s != "ours" && s != "node":
			return fmt.Errorf("-servers: %q is not ours, node or LABEL=PATH", s)
		}
		cfg.servers = append(cfg.servers, label)
	}
	if cfg.runs < 1 || cfg.payload < 200 || cfg.clientsPerProcess < 1 {
		return errors.New("-runs must be at least 1, -payload at least 200, -clients-per-process at least 1")
	}
	// The server runs in a directory of its own (no .env): make paths absolute.
	for label, path := range cfg.binaries {
		if cfg.binaries[label], err = filepath.Abs(path); err != nil {
			return err
		}
	}
	if cfg.vibegrapher != "" {
		if cfg.vibegrapher, err = filepath.Abs(cfg.vibegrapher); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.benchDir, "node_modules", "socket.io-client")); err != nil {
		return fmt.Errorf("%s has no node_modules: run `npm ci` there (needs Node.js 18+)", cfg.benchDir)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if slices.Contains(cfg.servers, "ours") && cfg.vibegrapher == "" {
		dir, err := os.MkdirTemp("", "vgload-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.vibegrapher = filepath.Join(dir, "vibegrapher")
		build := exec.CommandContext(ctx, "go", "build", "-o", cfg.vibegrapher, "./cmd/vibegrapher")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/vibegrapher (run from the repository, or pass -vibegrapher): %w", err)
		}
	}

	fmt.Printf("vibegrapher-load realtime: servers %s, %d run(s), payload %d bytes, %s, %d clients per Node process; %s, %d CPUs\n",
		strings.Join(cfg.servers, ","), cfg.runs, cfg.payload, cfg.transport, cfg.clientsPerProcess, runtime.Version(), runtime.NumCPU())
	fmt.Println("latency: client receive time minus sent_at_us (when the event was due: start + i*interval, the start for a burst); CPU: server utime+stime during delivery;")
	fmt.Println("RSS: server VmRSS before clients, with clients connected, after delivery; per conn: (connected - before) / clients")
	fmt.Printf("%-3s %-6s %-38s | %9s %9s %9s | %8s %5s | %8s | %7s %7s %7s | %8s\n", "run", "srv", "load",
		"p50", "p99", "max", "missing", "dups", "CPU", "RSS0", "RSSconn", "RSSend", "per conn")
	var all []measurement
	for run := 1; run <= cfg.runs; run++ {
		for _, l := range cfg.loads {
			for _, srv := range cfg.servers {
				m, err := measureRealtime(ctx, cfg, srv, l)
				if err != nil {
					return fmt.Errorf("run %d, %s, %s: %w", run, srv, l, err)
				}
				all = append(all, m)
				fmt.Printf("%-3d %-6s %-38s | %9s %9s %9s | %8d %5d | %8s | %7s %7s %7s | %8s\n", run, srv, l,
					ms(m.p50), ms(m.p99), ms(m.max), m.missing, m.dups, cpuMs(m.cpu),
					mb(m.rssBefore), mb(m.rssConnected), mb(m.rssAfter), kb(m.perConn()))
			}
		}
	}
	printSummary(cfg, all)
	return nil
}

type measurement struct {
	server                            string
	load                              loadSpec
	p50, p99, max                     time.Duration
	missing, dups                     int
	cpu                               time.Duration
	rssBefore, rssConnected, rssAfter int64
}

func (m measurement) perConn() int64 { return (m.rssConnected - m.rssBefore) / int64(m.load.clients) }

// printSummary gives, per load, the medians over runs, ours beside Node.
func printSummary(cfg realtimeConfig, all []measurement) {
	fmt.Printf("\nmedians of %d run(s): p50 / p99 | server CPU during delivery | RSS after | memory per connection\n", cfg.runs)
	for _, l := range cfg.loads {
		fmt.Printf("%-38s", l)
		for _, srv := range cfg.servers {
			var p50, p99, cpu []time.Duration
			var rss, per []int64
			for _, m := range all {
				if m.server == srv && m.load == l {
					p50, p99, cpu = append(p50, m.p50), append(p99, m.p99), append(cpu, m.cpu)
					rss, per = append(rss, m.rssAfter), append(per, m.perConn())
				}
			}
			fmt.Printf(" | %s %s / %s, CPU %s, RSS %s, %s/conn", srv, ms(median(p50)), ms(median(p99)),
				cpuMs(median(cpu)), mb(median(rss)), kb(median(per)))
		}
		fmt.Println()
	}
}

func median[T cmp.Ordered](v []T) T {
	slices.Sort(v)
	return v[len(v)/2]
}

func ms(d time.Duration) string    { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }
func cpuMs(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }
func mb(b int64) string            { return fmt.Sprintf("%.0fMB", float64(b)/(1<<20)) }
func kb(b int64) string            { return fmt.Sprintf("%.1fKB", float64(b)/(1<<10)) }
func percentile(d []time.Duration, p int) time.Duration {
	return d[min(len(d)-1, len(d)*p/100)]
}

// server is a server process under load.
type server struct {
	cmd     *exec.Cmd
	url     string
	project string
	send    func(ctx context.Context, l loadSpec) error // sends the load's events, on its schedule
	cleanup func()
}

func (s *server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
	}
	if s.cleanup != nil {
		s.cleanup()
	}
}

func measureRealtime(ctx context.Context, cfg realtimeConfig, srv string, l loadSpec) (measurement, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	m := measurement{server: srv, load: l}
	var s *server
	var err error
	switch srv {
	case "node":
		s, err = startNode(ctx, cfg)
	case "ours":
		s, err = startOurs(ctx, cfg, cfg.vibegrapher)
	default:
		s, err = startOurs(ctx, cfg, cfg.binaries[srv])
	}
	if s != nil {
		defer s.stop()
	}
	if err != nil {
		return m, err
	}
	pid := s.cmd.Process.Pid
	time.Sleep(500 * time.Millisecond) // let start-up settle
	if _, m.rssBefore, err = procUsage(pid); err != nil {
		return m, err
	}

	// Connect the clients, a share per Node process.
	var procs []*clientProc
	defer func() {
		for _, p := range procs {
			p.close()
		}
	}()
	for start := 0; start < l.clients; start += cfg.clientsPerProcess {
		n := min(cfg.clientsPerProcess, l.clients-start)
		p, err := startClients(ctx, cfg, s.url, s.project, n, l.events)
		if err != nil {
			return m, err
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		if err := p.wait(ctx, "ready"); err != nil {
			return m, fmt.Errorf("connecting clients: %w", err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	cpu0, rss, err := procUsage(pid)
	if err != nil {
		return m, err
	}
	m.rssConnected = rss

	sendErr := make(chan error, 1)
	go func() { sendErr <- s.send(ctx, l) }()
	var lat []time.Duration
	for _, p := range procs {
		err := p.wait(ctx, "done")
		if err != nil {
			// Out of time: ask every process for what it has.
			for _, q := range procs {
				q.closeStdin()
			}
			if err = p.wait(context.Background(), "done"); err != nil {
				return m, err
			}
		}
		m.missing += p.result.Missing
		m.dups += p.result.Dups
		for _, us := range p.result.LatUS {
			lat = append(lat, time.Duration(us)*time.Microsecond)
		}
	}
	cpu1, rss, err := procUsage(pid)
	if err != nil {
		return m, err
	}
	m.cpu, m.rssAfter = cpu1-cpu0, rss
	if err := <-sendErr; err != nil {
		return m, fmt.Errorf("sending events: %w", err)
	}
	if len(lat) == 0 {
		return m, errors.New("no event reached a client")
	}
	slices.Sort(lat)
	m.p50, m.p99, m.max = percentile(lat, 50), percentile(lat, 99), lat[len(lat)-1]
	return m, nil
}

// startOurs starts `vibegrapher api --realtime` on a fresh database with one
// project; its events are committed by a DO block in PostgreSQL.
func startOurs(ctx context.Context, cfg realtimeConfig, bin string) (*server, error) {
	pool, dbURL, drop, err := freshDatabase(ctx, cfg.dbURL)
	if err != nil {
		return nil, err
	}
	s := &server{cleanup: func() { pool.Close(); drop() }}
	project, err := (&db.Store{Pool: pool}).CreateProject(ctx, domain.NewProject{Name: "load"})
	if err != nil {
		return s, err
	}
	s.project = project.ID
	port, err := freePort()
	if err != nil {
		return s, err
	}
	staged, unstage, err := stagedBinary(bin)
	if err != nil {
		return s, err
	}
	s.cleanup = func() { pool.Close(); drop(); unstage() }
	s.cmd = exec.Command(staged, "api", "--realtime")
	s.cmd.Dir = os.TempDir() // no .env from the working directory
	s.cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "HOST=127.0.0.1", "PORT="+strconv.Itoa(port),
		"LOG_LEVEL=warn", "API_TOKEN=", "CORS_ORIGINS=*")
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		return s, err
	}
	s.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	pad := cfg.payload - payloadOverhead()
	s.send = func(ctx context.Context, l loadSpec) error {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		if dir := os.Getenv("RT_TRACE_DIR"); dir != "" {
			return commitTraced(ctx, conn.Conn(), commitEvents(project.ID, l, pad), dir)
		}
		_, err = conn.Exec(ctx, commitEvents(project.ID, l, pad))
		return err
	}
	return s, waitHealthy(ctx, s.url)
}

// commitEvents is a DO block that commits l.events events of project, each
// in its own transaction (INSERT and pg_notify, the notification carrying
// the event as db.InTx's announcements do: db/notification.go), the
// i-th at start + i*l.every. It runs in PostgreSQL so the pacing does not
// depend on a client's round trips. It is the only writer, so its seqs commit
// in order and need no lock of their own (db.Emit's per-seq lock is for
// concurrent writers).
func commitEvents(project string, l loadSpec, pad int) string {
	return fmt.Sprintf(`DO $load$
DECLARE
  s bigint;
  p text;
  t0 timestamptz := clock_timestamp();
  pad text := repeat('x', %[1]d);
BEGIN
  FOR i IN 0..%[2]d LOOP
    IF %[3]d > 0 THEN
      PERFORM pg_sleep(greatest(0, extract(epoch FROM t0 + i * interval '%[3]d microseconds' - clock_timestamp())));
    END IF;
    p := jsonb_build_object('i', i, 'pad', pad, 'trace_id', 'load',
      'sent_at_us', (extract(epoch FROM t0 + i * interval '%[3]d microseconds') * 1000000)::bigint)::text;
    INSERT INTO events (project_id, name, payload) VALUES ('%[4]s', 'load', p::jsonb)
    RETURNING seq INTO s;
    PERFORM pg_notify(%[5]s, CASE WHEN octet_length(p) < 7900
      THEN s || E'\n' || s || ' %[4]s load ' || octet_length(p) || E'\n' || p ELSE s::text END);
    COMMIT;
  END LOOP;
END
$load$`, pad, l.events-1, l.every.Microseconds(),
		uuid.MustParse(project).String(), quoteLiteral(db.EventsChannel))
}

// commitTraced runs the DO block of commitEvents and also records when each
// event's COMMIT returned (an unlogged table, one more INSERT per event, in
// the next event's transaction), into dir/commits-*.txt as "seq at_us": with
// the traces of bench/realtime-node/tail-trace.patch and clients.js it splits
// an event's latency into commit, NOTIFY, read, fan-out and client
// (bench/realtime-node/tail.py).
func commitTraced(ctx context.Context, conn *pgx.Conn, do, dir string) error {
	if _, err := conn.Exec(ctx, "CREATE UNLOGGED TABLE commit_times (seq bigint, at_us bigint)"); err != nil {
		return err
	}
	do = strings.Replace(do, "    COMMIT;\n",
		"    COMMIT;\n    INSERT INTO commit_times VALUES (s, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);\n", 1)
	if _, err := conn.Exec(ctx, do); err != nil {
		return err
	}
	rows, _ := conn.Query(ctx, "SELECT seq, at_us FROM commit_times ORDER BY seq")
	var b strings.Builder
	var seq, at int64
	if _, err := pgx.ForEachRow(rows, []any{&seq, &at}, func() error {
		fmt.Fprintf(&b, "%d %d\n", seq, at)
		return nil
	}); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, fmt.Sprintf("commits-%d.txt", time.Now().UnixMicro())), []byte(b.String()), 0o644)
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// payloadOverhead is the size of a delivered payload with an empty pad: the
// pad makes up the rest of -payload.
func payloadOverhead() int {
	b, _ := json.Marshal(map[string]any{"i": 100, "pad": "", "trace_id": "load", "sent_at_us": time.Now().UnixMicro(),
		"seq": 1000, "project_id": uuid.NewString()})
	return len(b)
}

// startNode starts bench/realtime-node/server.js; its events are emitted
// from memory when asked.
func startNode(ctx context.Context, cfg realtimeConfig) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{project: uuid.NewString(), url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	s.cmd = exec.Command("node", "server.js", strconv.Itoa(port))
	s.cmd.Dir = cfg.benchDir
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		return s, err
	}
	pad := cfg.payload - payloadOverhead()
	s.send = func(ctx context.Context, l loadSpec) error {
		q := url.Values{"project": {s.project}, "count": {strconv.Itoa(l.events)},
			"every_ms": {strconv.FormatFloat(float64(l.every.Microseconds())/1000, 'f', -1, 64)}, "pad": {strconv.Itoa(pad)}}
		req, err := http.NewRequestWithContext(ctx, "POST", s.url+"/emit?"+q.Encode(), nil)
		if err != nil {
			return err
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusAccepted {
			return fmt.Errorf("node /emit: %s", res.Status)
		}
		return nil
	}
	return s, waitHealthy(ctx, s.url)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitHealthy(ctx context.Context, base string) error {
	c := &http.Client{Timeout: time.Second}
	for {
		res, err := c.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server at %s never became healthy: %w", base, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// clientProc is one Node process of clients.js.
type clientProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan clientLine
	stderr *strings.Builder
	result clientLine
	once   sync.Once
}

type clientLine struct {
	Type    string  `json:"type"`
	LatUS   []int64 `json:"lat_us"`
	Missing int     `json:"missing"`
	Dups    int     `json:"dups"`
}

func startClients(ctx context.Context, cfg realtimeConfig, url, project string, n, events int) (*clientProc, error) {
	p := &clientProc{lines: make(chan clientLine, 2), stderr: &strings.Builder{}}
	p.cmd = exec.Command("node", "clients.js", url, project, strconv.Itoa(n), strconv.Itoa(events))
	p.cmd.Dir = cfg.benchDir
	p.cmd.Env = append(os.Environ(), "TRANSPORT="+cfg.transport)
	p.cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 256<<20)
		for sc.Scan() {
			var l clientLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				p.lines <- l
			}
		}
	}()
	return p, nil
}

// wait reads the process's next line, which must be of type want.
func (p *clientProc) wait(ctx context.Context, want string) error {
	select {
	case l, ok := <-p.lines:
		if !ok {
			_ = p.cmd.Wait()
			return fmt.Errorf("clients.js ended before %q: %s", want, strings.TrimSpace(p.stderr.String()))
		}
		if l.Type != want {
			return fmt.Errorf("clients.js said %q, expected %q", l.Type, want)
		}
		p.result = l
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *clientProc) closeStdin() { _ = p.stdin.Close() }

// close ends the process: closing stdin makes it disconnect and exit.
func (p *clientProc) close() {
	p.once.Do(func() {
		p.closeStdin()
		done := make(chan struct{})
		go func() {
			for range p.lines {
			}
			_ = p.cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
	})
}

// freshDatabase creates and migrates a database of its own on the server;
// it returns a pool on it, its URL, and a function that drops it.
func freshDatabase(ctx context.Context, serverURL string) (*pgxpool.Pool, string, func(), error) {
	u, name, drop, err := scratchDatabase(serverURL, "vgload")
	if err != nil {
		return nil, "", nil, err
	}
	admin, err := connectAdmin(ctx, serverURL)
	if err != nil {
		return nil, "", nil, err
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, "", nil, err
	}
	dbURL := u.String()
	q := u.Query()
	q.Set("pool_max_conns", "4")
	u.RawQuery = q.Encode()
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		drop()
		return nil, "", nil, err
	}
	schema, err := db.NewSchema(pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		err = schema.Migrate(ctx)
	}
	if err != nil {
		pool.Close()
		drop()
		return nil, "", nil, fmt.Errorf("migrate: %w", err)
	}
	return pool, dbURL, drop, nil
}
