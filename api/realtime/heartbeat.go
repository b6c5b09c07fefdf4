package realtime

import (
	"sync"
	"time"

	engine "github.com/zishang520/socket.io/servers/engine/v3"
)

// engine.io's heartbeat for websocket connections, from one timer.
//
// servers/engine/v3 v3.0.6 pings each connection with utils.SetTimeout, which
// parks a goroutine per timer: one goroutine (and its stack) per connection
// for its whole life, plus a timer and a channel. heartbeats does the same
// job for every websocket connection of the process from one time.AfterFunc:
// every pingInterval a connection is sent a PING, and if its PONG does not
// come within pingTimeout the connection is closed ("ping timeout"), as the
// library does (protocol 4: the server pings, the client answers).
//
// The library's socket takes the heartbeat's start from the request context
// (HttpContext.SetTransportReady) when its transport needs initializing, as
// a websocket does; takeOver swaps that callback for one that registers the
// connection here, in the engine's "connection" event, which runs before the
// callback. Polling connections (and websocket ones not written by
// websocketTransport) keep the library's heartbeat.
//
// Since every connection waits the same interval, and the same timeout,
// entries due later are always queued later: two FIFO queues, in due order,
// replace a timer per connection. An entry is stale (skipped) when its
// connection's generation moved on: a PONG, a ping sent, or the connection
// closed.
type heartbeats struct {
	interval, timeout time.Duration

	mu      sync.Mutex
	pings   beatQueue // connections due a PING
	pongs   beatQueue // connections that must have answered by then
	timer   *time.Timer
	armed   time.Time // when timer fires; zero when it is not set
	stopped bool
}

// beat is one connection's next heartbeat step.
type beat struct {
	due time.Time
	t   *websocketTransport
	gen uint32
}

// heartbeatState is a connection's part of heartbeats, guarded by its mu.
type heartbeatState struct {
	sock    engine.Socket // nil: the library's heartbeat runs
	gen     uint32
	waiting bool // a PING was sent and its PONG has not come
}

func newHeartbeats(interval, timeout time.Duration) *heartbeats {
	h := &heartbeats{interval: interval, timeout: timeout}
	h.timer = time.AfterFunc(time.Hour, h.fire)
	h.timer.Stop()
	return h
}

// takeOver moves the heartbeat of a new engine.io connection here when its
// transport is websocketTransport; it runs in the engine's "connection"
// event.
func (h *heartbeats) takeOver(sock engine.Socket) {
	t, ok := sock.Transport().(*websocketTransport)
	if !ok || sock.Protocol() != 4 {
		return
	}
	ctx := sock.Request()
	if ctx == nil || ctx.TakeTransportReady() == nil {
		return // no pending start: the library's heartbeat runs (or never will)
	}
	ctx.SetTransportReady(func() { h.start(t, sock) })
	_ = sock.On("heartbeat", func(...any) { h.pong(t) })
}

// start begins a connection's heartbeat: its first PING is due after the
// interval.
func (h *heartbeats) start(t *websocketTransport, sock engine.Socket) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t.hb.sock = sock
	t.hb.gen++
	h.pings.push(beat{due: time.Now().Add(h.interval), t: t, gen: t.hb.gen})
	h.armLocked()
}

// pong is a PONG from the connection: its next PING is due after the
// interval. A PONG nobody asked for changes nothing.
func (h *heartbeats) pong(t *websocketTransport) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !t.hb.waiting {
		return
	}
	t.hb.waiting = false
	t.hb.gen++
	h.pings.push(beat{due: time.Now().Add(h.interval), t: t, gen: t.hb.gen})
	h.armLocked()
}

// fire sends the PINGs that are due and closes the connections whose PONG
// is late.
func (h *heartbeats) fire() {
	var ping []*websocketTransport
	var late []engine.Socket
	h.mu.Lock()
	h.armed = time.Time{}
	now := time.Now()
	for b, ok := h.pings.due(now); ok; b, ok = h.pings.due(now) {
		t := b.t
		if b.gen != t.hb.gen || t.hb.sock.ReadyState() == "closed" {
			continue
		}
		t.hb.gen++
		t.hb.waiting = true
		h.pongs.push(beat{due: now.Add(h.timeout), t: t, gen: t.hb.gen})
		ping = append(ping, t)
	}
	for b, ok := h.pongs.due(now); ok; b, ok = h.pongs.due(now) {
		t := b.t
		if b.gen != t.hb.gen || t.hb.sock.ReadyState() == "closed" {
			continue
		}
		t.hb.gen++
		t.hb.waiting = false
		late = append(late, t.hb.sock)
	}
	h.armLocked()
	h.mu.Unlock()

	for _, t := range ping {
		t.ping()
	}
	for _, sock := range late {
		go closeForTimeout(sock)
	}
}

// closeForTimeout closes a connection whose PONG did not come, as the
// library's heartbeat does.
func closeForTimeout(sock engine.Socket) {
	if s, ok := sock.(interface{ OnClose(string, ...error) }); ok {
		s.OnClose("ping timeout")
		return
	}
	sock.Close(true)
}

// armLocked sets the timer for the earliest entry. h.mu is held.
func (h *heartbeats) armLocked() {
	var next time.Time
	if b, ok := h.pings.peek(); ok {
		next = b.due
	}
	if b, ok := h.pongs.peek(); ok && (next.IsZero() || b.due.Before(next)) {
		next = b.due
	}
	if h.stopped || next.IsZero() || (!h.armed.IsZero() && !next.Before(h.armed)) {
		return
	}
	h.armed = next
	h.timer.Reset(max(0, time.Until(next)))
}

// stop ends the heartbeats (the server is closing).
func (h *heartbeats) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	h.timer.Stop()
	h.pings, h.pongs = beatQueue{}, beatQueue{}
	h.armed = time.Time{}
}

// beatQueue is a FIFO of beats in due order.
type beatQueue struct {
	q    []beat
	head int
}

func (q *beatQueue) push(b beat) {
	if q.head > 0 && q.head >= len(q.q)/2 {
		// Reuse the space of popped entries.
		n := copy(q.q, q.q[q.head:])
		clear(q.q[n:])
		q.q, q.head = q.q[:n], 0
	}
	q.q = append(q.q, b)
}

func (q *beatQueue) peek() (beat, bool) {
	if q.head == len(q.q) {
		return beat{}, false
	}
	return q.q[q.head], true
}

// due pops the first entry if it is due at now.
func (q *beatQueue) due(now time.Time) (beat, bool) {
	b, ok := q.peek()
	if !ok || b.due.After(now) {
		return beat{}, false
	}
	q.q[q.head] = beat{}
	q.head++
	if q.head == len(q.q) {
		q.q, q.head = q.q[:0], 0
	}
	return b, true
}
