package realtime

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"unsafe"

	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	engine "github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// The write side of engine.io's websocket transport, replaced.
//
// In servers/engine/v3 v3.0.6 every packet to every socket went through a
// queue that started a goroutine when idle, and a room broadcast built a
// gorilla PreparedMessage (a fake connection, a 4 KB buffer, a copy of the
// frame) per socket, used once. Under fan-out to 1,000 sockets that was a
// fifth of the server's CPU plus most of its garbage, and the hub spent its
// time handing work to a thousand new goroutines that then competed with it.
//
// websocketTransport frames packets itself and writes them straight to the
// socket's file descriptor without blocking, on the caller's goroutine, as
// Node's socket.io does; only when the kernel's send buffer is full does the
// rest wait in a per-connection buffer that one goroutine drains. The hub
// uses the same path to write a run of events to a socket in one system call
// (writeDirect). The engine's own packets (acks, error events, heartbeats)
// join that buffer too, in the order they are written: the transport stays
// writable while frames wait, so the engine holds none of them back, and an
// ack the hub sends after a replay comes after the replay and before the
// live events the hub writes next. Over TLS terminated in this process (a
// *tls.Conn, no file descriptor to write records to) every write goes
// through that buffer and its goroutine: the same order, the same bound,
// a goroutine per burst as the library had. The answers to a client's
// websocket PING and close frames take the same path (answerPing,
// answerClose), in place of gorilla's, which wrote them outside it: into a
// frame written in part, and with a one second write deadline left on the
// socket. Reading, handshakes, upgrades from polling, engine.io's pings and
// close stay the library's. Per-message deflate is not configured, so frames
// are never compressed.

// MaxQueuedBytes bounds what the server holds for one client that reads
// slower than its events come: the frames its websocket's kernel send buffer
// has not taken. A client further behind is disconnected (as a dropped
// connection: Socket.IO clients reconnect by themselves) and catches up by
// subscribing again with since, from the outbox, which still holds every
// event. A few of the largest events (a project's code is up to 1 MiB)
// fit, so a client that reads at its link's pace through a burst stays.
const MaxQueuedBytes = 8 << 20

// errBehind is why a client further than MaxQueuedBytes behind is dropped.
var errBehind = errors.New("the client is more than MaxQueuedBytes behind")

// websocketCtor builds the websocket transport (registered in New).
type websocketCtor struct {
	engine.WebSocketBuilder
	behind func() // a connection was dropped for being MaxQueuedBytes behind (set by New)
}

func (c *websocketCtor) New(ctx *types.HttpContext) transports.Transport {
	t := &websocketTransport{conn: ctx.Websocket, net: ctx.Websocket.NetConn(), viaEngine: true, behind: c.behind}
	// A plain socket is written without blocking, on the caller's
	// goroutine. Any other connection (TLS terminated in this process: a
	// *tls.Conn, whose records only its own Write may encrypt) is written
	// by the draining goroutine alone, every frame through pending, so it
	// keeps the same order and the same MaxQueuedBytes bound.
	if sc, ok := t.net.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			t.fd = rc
		}
	}
	// Before the library's reader starts (in NewWebSocket), which calls them.
	t.conn.SetPingHandler(t.answerPing)
	t.conn.SetCloseHandler(t.answerClose)
	t.Websocket = transports.NewWebSocket(ctx)
	return t
}

type websocketTransport struct {
	transports.Websocket
	conn *types.WebSocketConn
	net  net.Conn
	fd   syscall.RawConn // nil: not a plain socket; drain writes everything

	mu       sync.Mutex
	pending  []byte // frames waiting for the kernel's send buffer, in order
	draining bool   // a goroutine is writing pending
	writing  int    // bytes that goroutine is writing now, taken from pending (it holds them)
	owed     int    // engine Sends whose "drain" is due when pending is written
	failed   bool
	closed   bool     // the answer to the client's close frame is written or queued: no frame follows it
	pong     []byte   // the PONG answering the client's last PING, which drain writes after the frames it takes
	queued   int64    // bytes ever put in pending
	sent     int64    // bytes of pending drain has written, of queued
	written  []waiter // whenWritten's, in the order of their marks
	// viaEngine: engine.io may hold packets for this socket that are not
	// written yet, so the hub's events go through it, behind them. A new
	// transport starts so: on an upgrade from polling, the engine sends
	// what it buffered only after it made this the socket's transport.
	// The first engine Send (not the upgrade's probe answer) ends it: the
	// engine has handed over all it held, and as the transport never stops
	// being writable it holds nothing back again.
	viaEngine bool

	behind func() // called when the connection is dropped for being MaxQueuedBytes behind

	hb heartbeatState // guarded by heartbeats.mu
}

// Send is the engine's: its packets, in order. The engine calls it from its
// flush, on the goroutine that wrote the packet, while the transport is
// writable, which it always is: while frames wait, the packets join them,
// in the order they were written, as the hub's events do.
func (t *websocketTransport) Send(packets []*packet.Packet) {
	var frames []byte
	for _, p := range packets {
		var err error
		if frames, err = t.appendPacket(frames, p); err != nil {
			go t.conn.Emit("error", err)
			return
		}
	}
	t.mu.Lock()
	if t.failed || t.closed {
		t.mu.Unlock()
		return
	}
	if !probeAnswer(packets) {
		t.viaEngine = false
	}
	if t.draining {
		t.queue(frames)
		t.owed++
		t.mu.Unlock()
		return
	}
	if t.writeNow(frames) {
		t.mu.Unlock()
		// Written: the engine's batch is done. (Not "ready": the transport
		// never stopped being writable, and the engine is inside its flush.)
		t.Emit("drain")
		return
	}
	t.owed++
	t.mu.Unlock()
}

// probeAnswer reports whether packets are the PONG "probe" an upgrade
// sends on the new transport before it is the socket's.
func probeAnswer(packets []*packet.Packet) bool {
	return len(packets) == 1 && packets[0].Type == packet.PONG
}

// writeDirect writes frames (whole websocket frames, see appendTextFrame)
// in order with every earlier writeDirect and engine Send, and reports
// whether it took them. It does not while engine.io may hold packets for
// the socket (viaEngine): the caller then goes through the engine, behind
// them. Once it takes frames it takes all that follow, queued behind what
// waits for the kernel when it must.
func (t *websocketTransport) writeDirect(frames []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.failed, t.closed:
		return true // the socket is closing; nothing more reaches it
	case t.viaEngine:
		return false
	case t.draining:
		t.queue(frames)
	default:
		t.writeNow(frames)
	}
	return true
}

// waiter is a whenWritten callback, due once sent reaches mark.
type waiter struct {
	mark int64
	fn   func()
}

// queue puts frames behind those waiting for the kernel (t.mu is held and
// a drain runs), unless the client would then be more than MaxQueuedBytes
// behind: then its connection is dropped, and what waited is let go. Only
// frames that must wait behind others count against the bound: a write to
// a connection with nothing waiting is taken whatever its size, so one
// large event (or replay page) never keeps a client from progressing.
func (t *websocketTransport) queue(frames []byte) {
	if len(t.pending)+t.writing+len(frames) > MaxQueuedBytes {
		t.fail(errBehind)
		return
	}
	t.pending = append(t.pending, frames...)
	t.queued += int64(len(frames))
}

// pingFrame is engine.io's PING packet ("2") as a websocket text frame.
var pingFrame = []byte{0x80 | websocket.TextMessage, 1, '2'}

// ping sends engine.io's PING (heartbeats). Its place among the other
// frames does not matter, so it goes behind whatever waits for the socket;
// its 3 bytes do not count against MaxQueuedBytes (the ping timeout
// judges a client that does not read them).
func (t *websocketTransport) ping() {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.failed || t.closed:
	case t.draining:
		t.pending = append(t.pending, pingFrame...)
		t.queued += int64(len(pingFrame))
	default:
		t.writeNow(pingFrame)
	}
}

// answerPing answers a client's websocket PING (gorilla's ping handler, on
// the connection's reader) with its PONG, in order with the other frames:
// at once when nothing waits for the socket, else after the frames waiting
// now, when drain takes them. A PONG, like engine.io's PING, does not count
// against MaxQueuedBytes; at most one waits, the latest (RFC 6455 5.5.3
// allows answering only the most recent PING), so a client that sends
// PINGs and reads nothing cannot grow what the server holds for it.
func (t *websocketTransport) answerPing(data string) error {
	frame := appendFrame(nil, websocket.PongMessage, []byte(data))
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.failed || t.closed:
	case t.draining:
		t.pong = frame
	default:
		t.writeNow(frame)
	}
	return nil
}

// answerClose answers a client's close frame (gorilla's close handler, on
// the connection's reader) with a close frame of the same code, behind what
// waits for the socket, and ends the transport's writes. The library then
// closes the connection, which ends a drain still writing.
func (t *websocketTransport) answerClose(code int, _ string) error {
	frame := appendFrame(nil, websocket.CloseMessage, websocket.FormatCloseMessage(code, ""))
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.failed || t.closed:
	case t.draining:
		t.pending = append(t.pending, frame...)
		t.queued += int64(len(frame))
	default:
		t.writeNow(frame)
	}
	t.closed = true
	return nil
}

// writeNow writes what the kernel takes without waiting and hands the rest
// to a draining goroutine; it reports whether all of it was written. t.mu is
// held and nothing is pending.
func (t *websocketTransport) writeNow(frames []byte) bool {
	n, err := t.tryWrite(frames)
	if err != nil {
		t.fail(err)
		return true
	}
	if n == len(frames) {
		return true
	}
	// The transport stays writable: what the engine writes meanwhile must
	// queue here, behind these frames and before the hub's next ones, not in
	// the engine's buffer until they are written (Send).
	t.pending = append(t.pending[:0], frames[n:]...)
	t.queued += int64(len(frames) - n)
	t.draining = true
	go t.drain()
	return false
}

// tryWrite writes as much of b as the socket takes now (nothing when it is
// not a plain socket: drain writes it).
func (t *websocketTransport) tryWrite(b []byte) (int, error) {
	if t.fd == nil {
		return 0, nil
	}
	n := 0
	var werr error
	err := t.fd.Write(func(fd uintptr) bool {
		for n < len(b) {
			// A raw system call: the socket is non-blocking, so this returns
			// at once, and the scheduler need not hand this goroutine's P to
			// another thread for the duration (a thousand hand-offs per
			// broadcast otherwise).
			m, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[n])), uintptr(len(b)-n))
			switch {
			case errno == syscall.EINTR:
				continue
			case errno == syscall.EAGAIN:
				return true // full: do not wait
			case errno != 0:
				werr = errno
				return true
			}
			n += int(m)
		}
		return true
	})
	return n, cmpErr(werr, err)
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// whenWritten reports whether frames wait for the kernel to take them; if
// so, fn is called (once, on another goroutine) when those frames are
// written or the socket failed. Frames queued after this call do not delay
// it: the hub's replays wait so for a client that reads slower than they
// read the outbox, rather than queue its whole history here, and a steady
// stream of live events to the socket's other rooms, which may keep frames
// waiting all the time, does not hold a replay up beyond what it wrote.
func (t *websocketTransport) whenWritten(fn func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.draining || t.failed {
		return false
	}
	t.written = append(t.written, waiter{mark: t.queued, fn: fn})
	return true
}

// drain writes pending, and a PONG that waits after it, waiting for the
// socket, until nothing is left. After each write it calls the whenWritten
// callbacks whose frames are written.
func (t *websocketTransport) drain() {
	for {
		t.mu.Lock()
		b, pong := t.pending, t.pong
		t.pending, t.pong = nil, nil
		t.writing = len(b)
		if len(b)+len(pong) == 0 || t.failed {
			t.draining, t.writing = false, 0
			owed := t.owed
			t.owed = 0
			written := t.written
			t.written = nil
			t.mu.Unlock()
			for range owed {
				t.Emit("drain")
			}
			for _, w := range written {
				w.fn()
			}
			return
		}
		t.mu.Unlock()
		// b ends with a whole frame (only its first may have been begun by
		// writeNow), so the PONG goes between frames.
		bufs := net.Buffers{b, pong}
		_, err := bufs.WriteTo(t.net)
		t.mu.Lock()
		if err != nil {
			t.fail(err)
		}
		t.sent += int64(len(b))
		var due []waiter
		if !t.failed {
			n := 0
			for n < len(t.written) && t.written[n].mark <= t.sent {
				n++
			}
			due, t.written = t.written[:n:n], t.written[n:]
		}
		t.mu.Unlock()
		for _, w := range due {
			w.fn()
		}
	}
}

// fail stops writing and lets the library close the connection (on another
// goroutine: the caller may be the hub, which the close reports back to).
// The close also closes the socket, which ends a drain waiting in a write.
func (t *websocketTransport) fail(err error) {
	if t.failed {
		return
	}
	t.failed = true
	t.pending = nil
	if errors.Is(err, errBehind) && t.behind != nil {
		t.behind()
	}
	if errors.Is(err, errBehind) || websocket.IsUnexpectedCloseError(err) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		go t.conn.Emit("close")
	} else {
		go t.conn.Emit("error", err)
	}
}

// appendPacket frames an engine.io packet. A room broadcast carries its
// engine.io encoding, made once for every socket.
func (t *websocketTransport) appendPacket(b []byte, p *packet.Packet) ([]byte, error) {
	var data types.BufferInterface
	if p.Options != nil && p.Options.WsPreEncodedFrame != nil {
		data = p.Options.WsPreEncodedFrame
	} else {
		var err error
		if data, err = t.Parser().EncodePacket(p, t.SupportsBinary()); err != nil {
			return b, err
		}
	}
	opcode := byte(websocket.BinaryMessage)
	if _, ok := data.(*types.StringBuffer); ok {
		opcode = websocket.TextMessage
	}
	return appendFrame(b, opcode, data.Bytes()), nil
}

// appendTextFrame appends a Socket.IO packet as the websocket text frame of
// an engine.io message ("4" + packet).
func appendTextFrame(b []byte, sioPacket []byte) []byte {
	b = appendFrameHeader(b, websocket.TextMessage, len(sioPacket)+1)
	b = append(b, '4')
	return append(b, sioPacket...)
}

// appendFrame appends one final, unmasked websocket frame (RFC 6455 5.2).
func appendFrame(b []byte, opcode byte, payload []byte) []byte {
	return append(appendFrameHeader(b, opcode, len(payload)), payload...)
}

func appendFrameHeader(b []byte, opcode byte, n int) []byte {
	b = append(b, 0x80|opcode)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		return append(b, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}
