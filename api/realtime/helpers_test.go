package realtime_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/api/realtime"
	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/internal/sockettest"
)

// wait bounds every wait in these tests; nothing is timed, only bounded.
const wait = 10 * time.Second

// env is a realtime server on a fresh database, served over loopback.
type env struct {
	t     testing.TB
	Pool  *pgxpool.Pool
	Store *db.Store
	URL   string
	RT    *realtime.Server
	srv   *httptest.Server
}

func newEnv(t testing.TB, opts ...func(*realtime.Options)) *env {
	t.Helper()
	pool := dbtest.New(t)
	return newEnvOn(t, pool, opts...)
}

// newEnvOn starts a realtime server on an existing database.
func newEnvOn(t testing.TB, pool *pgxpool.Pool, opts ...func(*realtime.Options)) *env {
	t.Helper()
	return startEnv(t, pool, serving{}, opts...)
}

// newEnvWith is newEnv with setup run on the server before it serves or
// runs: where the test hooks of export_test.go go.
func newEnvWith(t testing.TB, setup func(*realtime.Server), opts ...func(*realtime.Options)) *env {
	t.Helper()
	return startEnv(t, dbtest.New(t), serving{setup: setup}, opts...)
}

// serving is how startEnv serves: setup runs on the server before it serves
// or runs (the test hooks of export_test.go), listener wraps the
// listener, and tls serves HTTPS (httptest's self-signed certificate).
type serving struct {
	setup    func(*realtime.Server)
	listener func(net.Listener) net.Listener
	tls      bool
}

// newEnvServing is newEnv served as s says.
func newEnvServing(t testing.TB, s serving, opts ...func(*realtime.Options)) *env {
	t.Helper()
	return startEnv(t, dbtest.New(t), s, opts...)
}

func startEnv(t testing.TB, pool *pgxpool.Pool, s serving, opts ...func(*realtime.Options)) *env {
	t.Helper()
	o := realtime.Options{
		Pool: pool, Log: slog.New(slog.DiscardHandler), CORSOrigins: []string{"*"},
		HeartbeatInterval: time.Hour,
		// Delivery must come from notifications; the poll would hide a bug.
		PollInterval: time.Hour,
	}
	for _, f := range opts {
		f(&o)
	}
	rt, err := realtime.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if s.setup != nil {
		s.setup(rt)
	}
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", rt.Handler())
	srv := httptest.NewUnstartedServer(mux)
	if s.listener != nil {
		srv.Listener = s.listener(srv.Listener)
	}
	if s.tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() {
		rt.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		srv.Close()
	})
	return &env{t: t, Pool: pool, Store: &db.Store{Pool: pool}, URL: srv.URL, RT: rt, srv: srv}
}

// otherProcess is a pool of its own on e's database, as another process of
// the service has: its commits reach e's hub by NOTIFY only.
func (e *env) otherProcess() *pgxpool.Pool {
	e.t.Helper()
	pool, err := pgxpool.NewWithConfig(context.Background(), e.Pool.Config().Copy())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(pool.Close)
	return pool
}

// project creates a project (which writes its project_created event).
func (e *env) project() string {
	e.t.Helper()
	p, err := e.Store.CreateProject(context.Background(), domain.NewProject{Name: "realtime test"})
	if err != nil {
		e.t.Fatal(err)
	}
	return p.ID
}

// emit writes one event in a committed transaction and returns its seq.
func (e *env) emit(project, name string, payload map[string]any) int64 {
	e.t.Helper()
	var seq int64
	err := db.InTx(context.Background(), e.Pool, func(tx pgx.Tx) error {
		var err error
		seq, err = db.Emit(context.Background(), tx, project, dbtest.Event{Name: name, Payload: payload})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return seq
}

func (e *env) latestSeq() int64 {
	e.t.Helper()
	seq, err := db.LatestSeq(context.Background(), e.Pool)
	if err != nil {
		e.t.Fatal(err)
	}
	return seq
}

// event is what a client received.
type event = sockettest.Event

func waitTimer() <-chan time.Time { return time.After(sockettest.Wait) }

// client is a Go socket.io client (the zishang520 one) on e.
type client struct{ *sockettest.Client }

type dialOption = sockettest.Option

var (
	withTransport = sockettest.WithTransport
	withAuth      = sockettest.WithAuth
	withQuery     = sockettest.WithQuery
)

// connect opens a connection and waits for its outcome.
func (e *env) connect(t testing.TB, opts ...dialOption) (*client, error) {
	t.Helper()
	c, err := sockettest.Connect(t, e.URL, opts...)
	if err != nil {
		return nil, err
	}
	return &client{c}, nil
}

// dial connects and fails the test unless it succeeds.
func (e *env) dial(t testing.TB, opts ...dialOption) *client {
	t.Helper()
	return &client{sockettest.Dial(t, e.URL, opts...)}
}

// expect reads the next events and checks their seqs.
func (c *client) expect(seqs ...int64) []event {
	c.T().Helper()
	var got []event
	for _, want := range seqs {
		ev := c.Next()
		if ev.Seq() != want {
			c.T().Fatalf("got event %s seq %d, want seq %d (%v)", ev.Name, ev.Seq(), want, ev.Payload)
		}
		got = append(got, ev)
	}
	return got
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// emitPadded commits n events of the project in one transaction, each named
// name with its number i (first, first+1, …) and size bytes of padding
// ("pad"), and returns their seqs.
func emitPadded(t *testing.T, e *env, project, name string, first, n, size int) []int64 {
	t.Helper()
	pad := strings.Repeat("x", size)
	var seqs []int64
	err := db.InTx(context.Background(), e.Pool, func(tx pgx.Tx) error {
		for i := range n {
			seq, err := db.Emit(context.Background(), tx, project, dbtest.Event{Name: name, Payload: map[string]any{"i": first + i, "pad": pad}})
			if err != nil {
				return err
			}
			seqs = append(seqs, seq)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}
