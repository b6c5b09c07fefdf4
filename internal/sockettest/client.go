// Package sockettest is a real Socket.IO client for tests: the zishang520 Go
// client, connected over websocket (or polling), with every received event
// kept in order for the test to read.
package sockettest

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	sio "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Wait bounds every wait; nothing is timed, only bounded.
const Wait = 10 * time.Second

// Event is what a client received.
type Event struct {
	Name    string
	Payload map[string]any
}

// Seq is the outbox sequence number the event carries.
func (ev Event) Seq() int64 {
	f, _ := ev.Payload["seq"].(float64)
	return int64(f)
}

// Inbox collects what a client receives, without bound, in order.
type Inbox[T any] struct {
	mu     sync.Mutex
	items  []T
	signal chan struct{}
}

func newInbox[T any]() *Inbox[T] { return &Inbox[T]{signal: make(chan struct{}, 1)} }

func (b *Inbox[T]) push(v T) {
	b.mu.Lock()
	b.items = append(b.items, v)
	b.mu.Unlock()
	select {
	case b.signal <- struct{}{}:
	default:
	}
}

// Pending is how many items are waiting to be read.
func (b *Inbox[T]) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.items)
}

// Next waits for the next item; ok is false after Wait.
func (b *Inbox[T]) Next() (v T, ok bool) {
	deadline := time.After(Wait)
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

// Client is one Socket.IO connection.
type Client struct {
	t          testing.TB
	Sock       *sio.Socket
	Events     *Inbox[Event] // every event but heartbeats and errors
	Heartbeats *Inbox[map[string]any]
	Errors     *Inbox[map[string]any]
	connected  chan struct{}
	connectErr chan error
	Gone       chan string // disconnect reasons
	// AckWait bounds the wait for an ack; zero is Wait. An ack that follows
	// a replay of megabytes, which the client decodes first, needs more
	// on a busy machine under -race.
	AckWait time.Duration
}

// Option changes how a client connects.
type Option func(*sio.Options)

// WithTransport picks "websocket" (the default here, as the frontend uses)
// or "polling".
func WithTransport(name string) Option {
	return func(o *sio.Options) {
		switch name {
		case "websocket":
			o.SetTransports(types.NewSet(sio.WebSocket))
		case "polling":
			o.SetTransports(types.NewSet(sio.Polling))
		}
	}
}

// WithAuth sets the handshake's auth object.
func WithAuth(auth map[string]any) Option { return func(o *sio.Options) { o.SetAuth(auth) } }

// WithQuery sets the handshake's query.
func WithQuery(q url.Values) Option { return func(o *sio.Options) { o.SetQuery(q) } }

// connectTimeout bounds opening the engine connection. The Go client
// (clients/socket/v3 v3.0.6) has three races on a fast connect, all worked
// around here:
//   - Manager.Open subscribes to the engine's "open" after starting the
//     engine, so the event can be missed and the manager never opens: open
//     gives up after connectTimeout and Connect starts over;
//   - Manager.Open arms its connect timer after that subscription, so when
//     "open" came first the timer is never cleared and closes the open
//     connection when it fires: the manager's timeout is set far out of reach;
//   - Socket.Connect can send CONNECT twice when the engine opens while it
//     runs, which the server rightly refuses: the socket is created only once
//     its manager is open.
const connectTimeout = 2 * time.Second

var errRetry = errors.New("the manager missed its open")

// Open opens the engine connection, then the socket, and returns without
// waiting for the socket's outcome.
func Open(t testing.TB, baseURL string, opts ...Option) (*Client, error) {
	t.Helper()
	o := sio.DefaultOptions()
	o.SetReconnection(false)
	o.SetAutoConnect(false)
	o.SetTimeout(24 * time.Hour)
	o.SetTransports(types.NewSet(sio.WebSocket))
	for _, f := range opts {
		f(o)
	}
	m := sio.NewManager(baseURL, o)
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

	c := &Client{
		t: t, Events: newInbox[Event](), Heartbeats: newInbox[map[string]any](), Errors: newInbox[map[string]any](),
		connected: make(chan struct{}, 1), connectErr: make(chan error, 1), Gone: make(chan string, 4),
	}
	sock := m.Socket("/", o)
	c.Sock = sock
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
		case c.Gone <- reason:
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
			c.Heartbeats.push(payload)
		case "error":
			c.Errors.push(payload)
		default:
			c.Events.push(Event{Name: name, Payload: payload})
		}
	})
	t.Cleanup(func() { sock.Disconnect() })
	sock.Connect()
	return c, nil
}

// Connect opens a connection and waits for its outcome: the client, or the
// error the server answered with.
func Connect(t testing.TB, baseURL string, opts ...Option) (*Client, error) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		c, err := Open(t, baseURL, opts...)
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
		case <-time.After(Wait):
			return nil, errors.New("connect: no outcome within the wait")
		}
	}
}

// Dial connects and fails the test unless it succeeds.
func Dial(t testing.TB, baseURL string, opts ...Option) *Client {
	t.Helper()
	c, err := Connect(t, baseURL, opts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return c
}

// Request emits name with args and waits for the server's ack, which must
// be an object.
func (c *Client) Request(name string, args ...any) map[string]any {
	c.t.Helper()
	res := make(chan []any, 1)
	c.Sock.Timeout(cmp.Or(c.AckWait, Wait)).EmitWithAck(name, args...)(func(a []any, err error) {
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

// Subscribe subscribes to a project's room (replaying from since when
// given) and fails the test unless the server agrees.
func (c *Client) Subscribe(project string, since ...int64) map[string]any {
	c.t.Helper()
	req := map[string]any{"project_id": project}
	if len(since) > 0 {
		req["since"] = since[0]
	}
	ack := c.Request("subscribe", req)
	if ack["ok"] != true || ack["project_id"] != project {
		c.t.Fatalf("subscribe %s: ack %v", project, ack)
	}
	return ack
}

// Next returns the next event the client received.
func (c *Client) Next() Event {
	c.t.Helper()
	ev, ok := c.Events.Next()
	if !ok {
		c.t.Fatal("no event within the wait")
	}
	return ev
}

// NextError returns the next `error` event.
func (c *Client) NextError() map[string]any {
	c.t.Helper()
	e, ok := c.Errors.Next()
	if !ok {
		c.t.Fatal("no error event within the wait")
	}
	return e
}

// T is the test the client belongs to.
func (c *Client) T() testing.TB { return c.t }
