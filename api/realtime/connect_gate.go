package realtime

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// The connect gate works around a race in servers/socket/v3 v3.0.6: a
// namespace sends its CONNECT answer (socket._onconnect) before the client
// registers the socket for the namespace (the Add callback that fills
// Client.nsps). A client that emits as soon as it is connected — a frontend
// subscribing in on("connect") — can have its first packet decoded in that
// window; the server then finds no socket for it, logs "invalid state" and
// closes the connection. Node's socket.io has the same order but one thread.
//
// The gate holds a connection's packets after its CONNECT until the
// connection handler (or the middleware that refuses it) has run, which is
// after the registration. It travels from the decoder to the handler in the
// CONNECT packet's auth map, which becomes the socket's Handshake().Auth.

// gateKey is the auth key that carries the gate; clients cannot send a gate.
const gateKey = "\x00vibegrapher-connect-gate"

// gateTimeout bounds how long a connection's packets wait for its gate, for
// a CONNECT that never completes (the connection is closing).
const gateTimeout = 10 * time.Second

type gate struct {
	once sync.Once
	ch   chan struct{}
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// openGate lets the socket's connection deliver its packets again.
func openGate(sock *socket.Socket) {
	if g, ok := sock.Handshake().Auth[gateKey].(*gate); ok {
		g.open()
	}
}

// gatedParser is the default parser with gated decoders.
type gatedParser struct{ parser.Parser }

func (p gatedParser) NewDecoder() parser.Decoder {
	d := &gatedDecoder{Decoder: p.Parser.NewDecoder()}
	// Registered before the Client's listener, so it sees CONNECT first.
	_ = d.Decoder.On("decoded", d.ondecoded)
	return d
}

// gatedDecoder decodes one connection's packets.
type gatedDecoder struct {
	parser.Decoder
	pending atomic.Pointer[gate]
}

func (d *gatedDecoder) ondecoded(args ...any) {
	p, _ := args[0].(*parser.Packet)
	if p == nil || p.Type != parser.CONNECT || p.Nsp != "/" {
		return
	}
	g := &gate{ch: make(chan struct{})}
	auth, _ := p.Data.(map[string]any)
	if auth == nil {
		auth = map[string]any{}
		p.Data = auth
	}
	auth[gateKey] = g
	d.pending.Store(g)
}

// Add waits for a pending CONNECT to complete before decoding what follows.
func (d *gatedDecoder) Add(data any) error {
	if g := d.pending.Load(); g != nil {
		t := time.NewTimer(gateTimeout)
		select {
		case <-g.ch:
		case <-t.C:
		}
		t.Stop()
		d.pending.CompareAndSwap(g, nil)
	}
	return decodeAside(d.Decoder, data)
}

// decodeAside decodes a message on a goroutine of its own and waits for it.
// A Socket.IO packet is handled while it is decoded, and a CONNECT goes deep
// (namespace, middlewares, the answer's encoding and write): on the
// connection's reader goroutine that would grow its stack to 8–16 KB, which
// it keeps while it waits for the next message, for the connection's whole
// life. Clients send few Socket.IO packets (their PONGs stay in engine.io),
// so a short-lived goroutine each costs little.
func decodeAside(d parser.Decoder, data any) error {
	done := make(chan error, 1)
	go func() {
		// On the reader goroutine the emitter recovered a panic in the
		// decoder; here it would end the process.
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("socket.io: decoding a packet panicked: %v", r)
			}
		}()
		done <- d.Add(data)
	}()
	return <-done
}
