// Command vibegrapher-load measures the realtime role: commit-to-client
// latency and deliveries per second, for a number of Socket.IO clients in one
// project room.
//
//	go run ./cmd/vibegrapher-load -clients 1,100,1000 -events 300 -rate 50
//
// For each client count it creates a fresh database on the PostgreSQL server
// of -database-url (and drops it afterwards), starts an in-process realtime
// server on loopback, connects the clients (the zishang520 Go client, over
// websocket) and subscribes them to one project, then commits -events events
// with db.Emit at -rate per second. Latency is from right after the writer's
// tx.Commit to the moment a client's handler has the event. Every run is
// bounded by -timeout. Results are in docs/realtime.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/api/realtime"
	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain"
)

// subcommands are the measurements other than the default realtime one,
// each registered from its own file's init: `vibegrapher-load NAME flags…`.
var subcommands = map[string]func(args []string) error{}

func main() {
	if len(os.Args) > 1 {
		if run, ok := subcommands[os.Args[1]]; ok {
			if err := run(os.Args[2:]); err != nil {
				fatal(err)
			}
			return
		}
	}
	clients := flag.String("clients", "1,100,1000", "comma-separated client counts, one run each")
	events := flag.Int("events", 300, "events to commit per run")
	rate := flag.Float64("rate", 50, "events committed per second; 0: as fast as one writer can commit")
	dbURL := flag.String("database-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"a PostgreSQL server; each run creates and drops its own database on it")
	timeout := flag.Duration("timeout", 2*time.Minute, "upper bound of one run")
	flag.Parse()

	var counts []int
	for _, f := range strings.Split(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 5000 {
			fatal(fmt.Errorf("-clients: %q is not a count from 1 to 5000", f))
		}
		counts = append(counts, n)
	}
	if *events < 1 || *events > 100_000 || *rate < 0 {
		fatal(errors.New("-events must be 1..100000 and -rate not negative"))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pace := "unthrottled"
	if *rate > 0 {
		pace = fmt.Sprintf("%g/s", *rate)
	}
	fmt.Printf("vibegrapher-load: %d events per run, committed %s by one writer; %s, %d CPUs, %s/%s\n",
		*events, pace, runtime.Version(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	fmt.Println("latency from commit: receive time minus the time right after tx.Commit returned;")
	fmt.Println("latency from send: receive time minus the time taken before the transaction began")
	fmt.Printf("%8s %7s %11s %7s %5s | %9s %9s %9s | %9s %9s | %12s\n", "clients", "events", "deliveries", "missing", "dups",
		"commit50", "commit99", "max", "send50", "send99", "deliveries/s")
	for _, n := range counts {
		r, err := measure(ctx, *dbURL, n, *events, *rate, *timeout)
		if err != nil {
			fatal(fmt.Errorf("%d clients: %w", n, err))
		}
		fmt.Printf("%8d %7d %11d %7d %5d | %9s %9s %9s | %9s %9s | %12.0f\n", n, *events, r.deliveries, r.missing, r.duplicates,
			ms(r.commit.p50), ms(r.commit.p99), ms(r.commit.max), ms(r.send.p50), ms(r.send.p99), r.perSecond)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "vibegrapher-load:", err)
	os.Exit(1)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

type result struct {
	deliveries, missing, duplicates int
	commit, send                    percentiles
	perSecond                       float64 // deliveries over [first send, last receipt]
}

type percentiles struct{ p50, p99, max time.Duration }

func percentilesOf(d []time.Duration) percentiles {
	slices.Sort(d)
	return percentiles{p50: d[len(d)*50/100], p99: d[min(len(d)-1, len(d)*99/100)], max: d[len(d)-1]}
}

func measure(ctx context.Context, serverURL string, clients, events int, rate float64, timeout time.Duration) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pool, drop, err := freshDatabase(ctx, serverURL)
	if err != nil {
		return result{}, err
	}
	defer drop()
	defer pool.Close()

	store := &db.Store{Pool: pool}
	project, err := store.CreateProject(ctx, domain.NewProject{Name: "load"})
	if err != nil {
		return result{}, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt, err := realtime.New(realtime.Options{Pool: pool, Log: quiet, CORSOrigins: []string{"*"}})
	if err != nil {
		return result{}, err
	}
	defer rt.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", rt.Handler())
	httpSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = httpSrv.Serve(ln) }()
	defer httpSrv.Close()
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	go func() { _ = rt.Run(runCtx) }()

	base := "http://" + ln.Addr().String()
	conns, err := connectAll(ctx, base, project.ID, clients, events)
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	if err != nil {
		return result{}, err
	}

	// Commit at a steady rate; record each event's commit time by seq.
	committed := make(map[int64]time.Time, events)
	var pace <-chan time.Time
	if rate > 0 {
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		pace = tick.C
	}
	first := time.Now()
	for i := range events {
		if pace != nil {
			select {
			case <-ctx.Done():
				return result{}, fmt.Errorf("writing events: %w", ctx.Err())
			case <-pace:
			}
		}
		seq, err := emit(ctx, pool, project.ID, i)
		if err != nil {
			return result{}, err
		}
		committed[seq] = time.Now()
		if i == 0 {
			first = committed[seq]
		}
	}

	// Wait for every client to have every event, or the run's bound.
	for _, c := range conns {
		select {
		case <-c.complete:
		case <-ctx.Done():
		}
	}

	var r result
	var fromCommit, fromSend []time.Duration
	var firstSent, last time.Time
	for _, c := range conns {
		seen := map[int64]bool{}
		for _, g := range c.received() {
			t0, ok := committed[g.seq]
			if !ok || seen[g.seq] {
				r.duplicates++
				continue
			}
			seen[g.seq] = true
			fromCommit = append(fromCommit, g.at.Sub(t0))
			fromSend = append(fromSend, g.at.Sub(g.sentAt))
			if g.at.After(last) {
				last = g.at
			}
			if firstSent.IsZero() || g.sentAt.Before(firstSent) {
				firstSent = g.sentAt
			}
		}
		r.deliveries += len(seen)
		r.missing += events - len(seen)
	}
	if len(fromCommit) == 0 {
		return r, errors.New("no event reached a client")
	}
	r.commit, r.send = percentilesOf(fromCommit), percentilesOf(fromSend)
	if firstSent.IsZero() || firstSent.After(first) {
		firstSent = first
	}
	r.perSecond = float64(r.deliveries) / last.Sub(firstSent).Seconds()
	return r, nil
}

// emit commits one event the way the product does: db.Emit in the
// transaction, the send time in the payload.
func emit(ctx context.Context, pool *pgxpool.Pool, project string, i int) (int64, error) {
	sent := time.Now()
	var seq int64
	err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
		var err error
		seq, err = db.Emit(ctx, tx, project, loadEvent{I: i, SentAtUS: sent.UnixMicro(), TraceID: "load"})
		return err
	})
	return seq, err
}

// freshDatabase creates and migrates a database of its own on the server.
func freshDatabase(ctx context.Context, serverURL string) (*pgxpool.Pool, func(), error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, nil, fmt.Errorf("-database-url: %w", err)
	}
	if u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost" && u.Hostname() != "::1" {
		return nil, nil, errors.New("-database-url must be a loopback server: this command creates and drops databases")
	}
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return nil, nil, err
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("vgload_%d_%d", os.Getpid(), time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, nil, err
	}
	drop := func() {
		c, err := pgx.Connect(context.Background(), serverURL)
		if err != nil {
			fmt.Fprintln(os.Stderr, "vibegrapher-load: drop", name+":", err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			fmt.Fprintln(os.Stderr, "vibegrapher-load: drop", name+":", err)
		}
	}
	u.Path = "/" + name
	q := u.Query()
	q.Set("pool_max_conns", "10")
	u.RawQuery = q.Encode()
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		drop()
		return nil, nil, err
	}
	schema, err := db.NewSchema(pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		err = schema.Migrate(ctx)
	}
	if err != nil {
		pool.Close()
		drop()
		return nil, nil, fmt.Errorf("migrate: %w", err)
	}
	return pool, drop, nil
}

// connectAll connects n clients, a few at a time, and subscribes each.
func connectAll(ctx context.Context, base, project string, n, events int) ([]*loadClient, error) {
	conns := make([]*loadClient, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := dial(ctx, base, project, events)
			conns[i] = c
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	live := slices.DeleteFunc(conns, func(c *loadClient) bool { return c == nil })
	if err := <-errs; err != nil {
		return live, err
	}
	return live, nil
}

// loadEvent is the event the load command commits: its index and send time.
type loadEvent struct {
	I        int    `json:"i"`
	SentAtUS int64  `json:"sent_at_us"`
	TraceID  string `json:"trace_id"`
}

func (loadEvent) EventName() string { return "load" }
