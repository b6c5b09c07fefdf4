package realtime

import (
	"sync"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	engine "github.com/zishang520/socket.io/servers/engine/v3"
)

// engine.io's own buffer, bounded as transport.go bounds a websocket's.
//
// engine.io holds a connection's packets in its write buffer until the
// transport can take them: for a long-polling client, until its next GET.
// A client that stops polling (a frozen tab whose connection stays open)
// had every event of its rooms buffered there until the ping timeout, and a
// replay went into it page after page without waiting. engineQueues counts
// the bytes of that buffer from engine.io's own events, "packetCreate" (a
// packet joins the buffer) and "flush" (the whole buffer goes to the
// transport): it drops a connection more than MaxQueuedBytes behind, and
// tells a replay waiting for its client when its page has left. Only
// connections that start on polling are followed: the websocket transport
// never makes engine.io wait, so its buffer empties at each packet.

type engineQueues struct {
	conns  sync.Map // engine.Socket → *engineQueue
	behind func()   // a connection was dropped for being MaxQueuedBytes behind (set by New)
}

// engineQueue is one connection's part of engineQueues.
type engineQueue struct {
	mu      sync.Mutex
	bytes   int      // in engine.io's buffer since its last flush
	dropped bool     // closed for being behind
	written []func() // whenWritten's: called at the next flush (or close)
}

// follow starts counting a new connection's buffer; it runs in the
// engine's "connection" event.
func (qs *engineQueues) follow(conn engine.Socket) {
	if _, ok := conn.Transport().(*websocketTransport); ok {
		return
	}
	q := &engineQueue{}
	qs.conns.Store(conn, q)
	_ = conn.On("packetCreate", func(args ...any) {
		if p, ok := args[0].(*packet.Packet); ok && q.add(p) {
			if qs.behind != nil {
				qs.behind()
			}
			// Not on this goroutine: it may be the hub's, which the close
			// reports back to.
			go conn.Close(true)
		}
	})
	_ = conn.On("flush", func(...any) { q.flushed() })
	_ = conn.Once("close", func(...any) {
		qs.conns.Delete(conn)
		q.flushed()
	})
}

// add counts a packet that joins the buffer, and reports whether the
// connection must now be dropped: the packet waits behind others and the
// client would be more than MaxQueuedBytes behind. (A packet that joins
// an empty buffer is taken whatever its size, as transport.go's queue.)
func (q *engineQueue) add(p *packet.Packet) bool {
	n := 0
	if b, ok := p.Data.(interface{ Len() int }); ok {
		n = b.Len()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.dropped {
		return false
	}
	if q.bytes > 0 && q.bytes+n > MaxQueuedBytes {
		q.dropped = true
		return true
	}
	q.bytes += n
	return false
}

// flushed empties the count and calls whenWritten's callbacks.
func (q *engineQueue) flushed() {
	q.mu.Lock()
	q.bytes = 0
	written := q.written
	q.written = nil
	q.mu.Unlock()
	for _, fn := range written {
		fn()
	}
}

// whenWritten reports whether packets wait in engine.io's buffer for conn;
// if so, fn is called (once) when they go to the transport or the
// connection closed.
func (qs *engineQueues) whenWritten(conn engine.Socket, fn func()) bool {
	v, ok := qs.conns.Load(conn)
	if !ok {
		return false
	}
	q := v.(*engineQueue)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.bytes == 0 || q.dropped {
		return false
	}
	q.written = append(q.written, fn)
	return true
}

// queued is the bytes engine.io holds for conn.
func (qs *engineQueues) queued(conn engine.Socket) int {
	v, ok := qs.conns.Load(conn)
	if !ok {
		return 0
	}
	q := v.(*engineQueue)
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}
