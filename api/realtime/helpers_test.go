package realtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	sio "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/vibegrapher/vibegrapher/api/realtime"
	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
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
}

func newEnv(t testing.TB, opts ...func(*realtime.Options)) *env {
	t.Helper()
	pool := dbtest.New(t)
	return newEnvOn(t, pool, opts...)
}

// newEnvOn starts a realtime server on an existing database.
func newEnvOn(t testing.TB, pool *pgxpool.Pool, opts ...func(*realtime.Options)) *env {
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
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", rt.Handler())
	srv := httptest.NewServer(mux)
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
	return &env{t: t, Pool: pool, Store: &db.Store{Pool: pool}, URL: srv.URL, RT: rt}
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
		seq, err = db.Emit(context.Background(), tx, project, name, payload)
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
type event struct {
	Name    string
	Payload map[string]any
}

func (ev event) seq() int64 {
	f, _ := ev.Payload["seq"].(float64)
	return int64(f)
}

// inbox collects what a client receives, without bound, for the test to read
// in order.
type inbox[T any] struct {
	mu     sync.Mutex
	items  []T
	signal chan struct{}
}

func newInbox[T any]() *inbox[T] { return &inbox[T]{signal: make(chan struct{}, 1)} }

func (b *inbox[T]) push(v T) {
	b.mu.Lock()
	b.items = append(b.items, v)
	b.mu.Unlock()
	select {
	case b.signal <- struct{}{}:
	default:
	}
}

// pending is how many items are waiting.
func (b *inbox[T]) pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.items)
}

func waitTimer() <-chan time.Time { return time.After(wait) }

// next waits for the next item; ok is false after the wait.
func (b *inbox[T]) next() (v T, ok bool) {
	deadline := time.After(wait)
	for {
		b.mu.Lock()
		if len(b.items) > 0 {
			v = b.items[0]
			b.items = b.items[1:]
			b.mu.Unlock()
			return v, true
		}
		b.mu.Unlock()
		select {
		case <-b.signal:
		case <-deadline:
			return v, false
		}
	}
}

// client is a Go socket.io client (the zishang520 one) on e.
type client struct {
	t          testing.TB
	sock       *sio.Socket
	events     *inbox[event] // every event but heartbeats and errors
	heartbeats *inbox[map[string]any]
	errors     *inbox[map[string]any]
	connected  chan struct{}
	connectErr chan error
	gone       chan string // disconnect reasons
}

type dialOption func(*sio.Options)

func withTransport(name string) dialOption {
	return func(o *sio.Options) {
		switch name {
		case "websocket":
			o.SetTransports(types.NewSet(sio.WebSocket))
		case "polling":
			o.SetTransports(types.NewSet(sio.Polling))
		}
	}
}

func withAuth(auth map[string]any) dialOption { return func(o *sio.Options) { o.SetAuth(auth) } }

func withQuery(q url.Values) dialOption { return func(o *sio.Options) { o.SetQuery(q) } }

// connectTimeout bounds opening the engine connection. The Go client
// (clients/socket/v3 v3.0.6) has three races on a fast connect, all worked
// around here:
//   - Manager.Open subscribes to the engine's "open" after starting the
//     engine, so the event can be missed and the manager never opens: open
//     gives up after connectTimeout and connect starts over;
//   - Manager.Open arms its connect timer after that subscription, so when
//     "open" came first the timer is never cleared and closes the open
//     connection when it fires: the manager's timeout is set far out of reach;
//   - Socket.Connect can send CONNECT twice when the engine opens while it
//     runs, which the server rightly refuses: the socket is created only once
//     its manager is open.
const connectTimeout = 2 * time.Second

// open opens the engine connection, then the socket, and returns without
// waiting for the socket's outcome. errRetry means the manager missed its
// open.
func (e *env) open(t testing.TB, opts ...dialOption) (*client, error) {
	t.Helper()
	o := sio.DefaultOptions()
	o.SetReconnection(false)
	o.SetAutoConnect(false)
	o.SetTimeout(24 * time.Hour)
	o.SetTransports(types.NewSet(sio.WebSocket))
	for _, f := range opts {
		f(o)
	}
	m := sio.NewManager(e.URL, o)
	opened := make(chan error, 1)
	m.Open(func(err error) { opened <- err })
	select {
	case err := <-opened:
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
	case <-time.After(connectTimeout):
		if eng := m.Engine(); eng != nil {
			eng.Close()
		}
		return nil, errRetry
	}

	c := &client{
		t: t, events: newInbox[event](), heartbeats: newInbox[map[string]any](), errors: newInbox[map[string]any](),
		connected: make(chan struct{}, 1), connectErr: make(chan error, 1), gone: make(chan string, 4),
	}
	sock := m.Socket("/", o)
	c.sock = sock
	_ = sock.On("connect", func(...any) {
		select {
		case c.connected <- struct{}{}:
		default:
		}
	})
	_ = sock.On("connect_error", func(args ...any) {
		err, _ := args[0].(error)
		if err == nil {
			err = fmt.Errorf("%v", args)
		}
		select {
		case c.connectErr <- err:
		default:
		}
	})
	_ = sock.On("disconnect", func(args ...any) {
		reason, _ := args[0].(string)
		select {
		case c.gone <- reason:
		default:
		}
	})
	sock.OnAny(func(args ...any) {
		name, _ := args[0].(string)
		var payload map[string]any
		if len(args) > 1 {
			payload, _ = args[1].(map[string]any)
		}
		switch name {
		case "heartbeat":
			c.heartbeats.push(payload)
		case "error":
			c.errors.push(payload)
		default:
			c.events.push(event{Name: name, Payload: payload})
		}
	})
	t.Cleanup(func() { sock.Disconnect() })
	sock.Connect()
	return c, nil
}

var errRetry = errors.New("the manager missed its open")

// connect opens a connection and waits for its outcome: the client, or the
// error the server answered with.
func (e *env) connect(t testing.TB, opts ...dialOption) (*client, error) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		c, err := e.open(t, opts...)
		if errors.Is(err, errRetry) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, err
		}
		select {
		case <-c.connected:
			return c, nil
		case err := <-c.connectErr:
			return nil, err
		case <-waitTimer():
			return nil, errors.New("connect: no outcome within the wait")
		}
	}
}

// dial connects and fails the test unless it succeeds.
func (e *env) dial(t testing.TB, opts ...dialOption) *client {
	t.Helper()
	c, err := e.connect(t, opts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return c
}

// request emits name with args and waits for the server's ack.
func (c *client) request(name string, args ...any) map[string]any {
	c.t.Helper()
	res := make(chan []any, 1)
	c.sock.Timeout(wait).EmitWithAck(name, args...)(func(a []any, err error) {
		if err != nil {
			a = []any{err}
		}
		res <- a
	})
	a := <-res
	if len(a) == 0 {
		c.t.Fatalf("%s %v: empty ack", name, args)
	}
	if err, ok := a[0].(error); ok {
		c.t.Fatalf("%s %v: %v", name, args, err)
	}
	m, ok := a[0].(map[string]any)
	if !ok {
		c.t.Fatalf("%s: ack %#v is not an object", name, a)
	}
	return m
}

// subscribe subscribes and fails the test unless the server agrees.
func (c *client) subscribe(project string, since ...int64) map[string]any {
	c.t.Helper()
	req := map[string]any{"project_id": project}
	if len(since) > 0 {
		req["since"] = since[0]
	}
	ack := c.request("subscribe", req)
	if ack["ok"] != true || ack["project_id"] != project {
		c.t.Fatalf("subscribe %s: ack %v", project, ack)
	}
	return ack
}

// next returns the next event the client received.
func (c *client) next() event {
	c.t.Helper()
	ev, ok := c.events.next()
	if !ok {
		c.t.Fatal("no event within the wait")
	}
	return ev
}

// expect reads the next events and checks their seqs.
func (c *client) expect(seqs ...int64) []event {
	c.t.Helper()
	var got []event
	for _, want := range seqs {
		ev := c.next()
		if ev.seq() != want {
			c.t.Fatalf("got event %s seq %d, want seq %d (%v)", ev.Name, ev.seq(), want, ev.Payload)
		}
		got = append(got, ev)
	}
	return got
}

// nextError returns the next `error` event.
func (c *client) nextError() map[string]any {
	c.t.Helper()
	e, ok := c.errors.next()
	if !ok {
		c.t.Fatal("no error event within the wait")
	}
	return e
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
