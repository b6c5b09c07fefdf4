package realtime_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/vibegrapher/vibegrapher/api/realtime"
	"github.com/vibegrapher/vibegrapher/internal/sockettest"
)

// rawClient speaks engine.io/Socket.IO over a plain websocket, so a test
// can stop reading and let the server's writes back up.
type rawClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialRaw(t *testing.T, base string) *rawClient {
	t.Helper()
	return dialRawWith(t, base, nil, nil)
}

// dialRawWith is dialRaw with the client's connection wrapped (nil: as is),
// and, for an https base, TLS configured by tlsConf.
func dialRawWith(t *testing.T, base string, wrap func(net.Conn) net.Conn, tlsConf *tls.Config) *rawClient {
	t.Helper()
	u := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
	// A small receive buffer, so that a client that stops reading fills the
	// server's side after a few hundred kilobytes.
	nd := &net.Dialer{
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			}); err != nil {
				return err
			}
			return serr
		},
	}
	d := websocket.Dialer{HandshakeTimeout: wait, TLSClientConfig: tlsConf, NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := nd.DialContext(ctx, network, addr)
		if err != nil || wrap == nil {
			return conn, err
		}
		return wrap(conn), nil
	}}
	conn, res, err := d.Dial(u, http.Header{})
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	res.Body.Close()
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn}
	if open := c.read(); !strings.HasPrefix(open, "0{") {
		t.Fatalf("engine.io open: %q", open)
	}
	c.write("40")
	if ok := c.read(); !strings.HasPrefix(ok, "40{") {
		t.Fatalf("namespace connect: %q", ok)
	}
	return c
}

func (c *rawClient) write(msg string) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		c.t.Fatal(err)
	}
}

// subscribe subscribes to project (without since) and reads the ack.
func (c *rawClient) subscribe(project string) {
	c.t.Helper()
	c.write(fmt.Sprintf(`420["subscribe",{"project_id":%q}]`, project))
	if ack := c.read(); !strings.HasPrefix(ack, "430") || !strings.Contains(ack, `"ok":true`) {
		c.t.Fatalf("subscribe ack: %q", ack)
	}
}

// read returns the next engine.io message other than a ping (answered).
func (c *rawClient) read() string {
	c.t.Helper()
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(wait))
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if string(msg) == "2" {
			c.write("3")
			continue
		}
		return string(msg)
	}
}

// event reads the next Socket.IO event: 42["name",payload].
func (c *rawClient) event() (string, map[string]any) {
	c.t.Helper()
	msg := c.read()
	var args []json.RawMessage
	if !strings.HasPrefix(msg, "42") || json.Unmarshal([]byte(msg[2:]), &args) != nil || len(args) != 2 {
		c.t.Fatalf("not an event: %.200q", msg)
	}
	var name string
	var payload map[string]any
	if json.Unmarshal(args[0], &name) != nil || json.Unmarshal(args[1], &payload) != nil {
		c.t.Fatalf("malformed event: %.200q", msg)
	}
	return name, payload
}

// A client that stops reading must neither hold up the others nor lose or
// reorder its own events: what the kernel cannot take waits for it.
func TestSlowClientDoesNotHoldUpOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.project()

	slow := dialRaw(t, e.URL)
	slow.subscribe(p)
	fast := e.dial(t)
	fast.Subscribe(p)

	// About 8 MB for each client, in three transactions: more than the
	// socket buffers of the client that does not read hold, so writes to it
	// must wait, and later events queue behind them.
	const batches, n, size = 3, 40, 64 << 10
	pad := strings.Repeat("x", size)
	var seqs []int64
	for b := range batches {
		batch := emitPadded(t, e, p, "big", b*n, n, size)
		// The client that reads gets everything while the other reads nothing.
		fast.expect(batch...)
		seqs = append(seqs, batch...)
	}

	for i, want := range seqs {
		name, payload := slow.event()
		if name != "big" || payload["seq"] != float64(want) || payload["i"] != float64(i) || payload["project_id"] != p ||
			payload["pad"] != pad {
			t.Fatalf("slow client's event %d: %s seq %v i %v, want seq %d", i, name, payload["seq"], payload["i"], want)
		}
	}
}

// A client that stops reading is dropped once the server holds more than
// MaxQueuedBytes for it, and the server lets go of what it held. It has
// received its events in order up to where it stopped; reconnecting with
// since it gets every one it missed, then the live ones. A client reading on
// the same project gets every event throughout. Before, the server queued
// everything for the client that did not read until the ping timeout
// (45 s of every event).
func TestAClientTooFarBehindIsDropped(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	e := newEnv(t, func(o *realtime.Options) { o.Meter = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)) })
	p := e.project()

	slow := dialRaw(t, e.URL)
	slow.subscribe(p)
	fast := e.dial(t)
	fast.Subscribe(p)

	seqs := emitUntilDropped(t, e, p, func(batch []int64) { fast.expect(batch...) })

	// What the dropped client gets: its events in order, then the end of
	// the connection (not a Socket.IO disconnect, which clients take for a
	// kick and do not reconnect after).
	got := slow.readUntilDropped(seqs)
	if got == len(seqs) {
		t.Fatal("the dropped client got every event: it was not behind")
	}

	// It reconnects and catches up from its last seq.
	since := int64(0)
	if got > 0 {
		since = seqs[got-1]
	}
	back := e.dial(t)
	// The ack follows the replay: a few hundred events of 64 KiB, which
	// the client decodes first (over 10 s once, under -race in a full CI run).
	back.AckWait = 4 * sockettest.Wait
	if ack := back.Subscribe(p, since); ack["replayed"] != float64(len(seqs)-got) {
		t.Fatalf("ack %v, want %d replayed", ack, len(seqs)-got)
	}
	back.expect(seqs[got:]...)
	live := e.emit(p, "live", map[string]any{})
	back.expect(live)
	fast.expect(live)

	wantDropped(t, reader, map[string]int64{"websocket": 1, "polling": 0})
}

// readUntilDropped reads the events of a client that was dropped, which
// must be seqs in order up to where it stopped, then the end of the
// connection (not a Socket.IO disconnect, which clients take for a kick and
// do not reconnect after); it returns how many it got.
func (c *rawClient) readUntilDropped(seqs []int64) int {
	t := c.t
	t.Helper()
	got := 0
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(wait))
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the connection of the dropped client stayed open after %d events", got)
			}
			return got
		}
		if string(msg) == "2" {
			continue // a PING: not answered, the client is gone
		}
		if strings.HasPrefix(string(msg), "41") {
			t.Fatalf("the dropped client was sent a Socket.IO disconnect: %q", msg)
		}
		var args []json.RawMessage
		var payload struct {
			Seq int64 `json:"seq"`
		}
		if !strings.HasPrefix(string(msg), "42") || json.Unmarshal(msg[2:], &args) != nil || len(args) != 2 ||
			json.Unmarshal(args[1], &payload) != nil || got >= len(seqs) || payload.Seq != seqs[got] {
			t.Fatalf("the dropped client's event %d: %.100q, want seq %d", got, msg, seqs[got])
		}
		got++
	}
}

// Over TLS terminated in this process the websocket is written as a plain
// socket is: a client that stops reading is dropped once the server holds
// more than MaxQueuedBytes for it, having got its events in order up to
// there, and counted as a websocket. Before, a *tls.Conn was written by the
// library's own websocket writer: engine.io's buffer ahead of it was
// bounded (enginequeue.go), but the drop counted as polling, and one more
// flush of up to MaxQueuedBytes could wait in that writer.
func TestAClientTooFarBehindOverTLSIsDropped(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	e := newEnvServing(t, serving{tls: true}, func(o *realtime.Options) {
		o.Meter = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	})
	p := e.project()
	tlsConf := e.srv.Client().Transport.(*http.Transport).TLSClientConfig
	slow, fast := dialRawWith(t, e.URL, nil, tlsConf), dialRawWith(t, e.URL, nil, tlsConf)
	for _, c := range []*rawClient{slow, fast} {
		c.subscribe(p)
	}

	// The client that reads gets everything while the other reads nothing.
	seqs := emitUntilDropped(t, e, p, func(batch []int64) {
		for _, want := range batch {
			if name, payload := fast.event(); name != "big" || payload["seq"] != float64(want) {
				t.Fatalf("the reading client's event: %s seq %v, want %d", name, payload["seq"], want)
			}
		}
	})
	if got := slow.readUntilDropped(seqs); got == len(seqs) {
		t.Fatal("the dropped client got every event: it was not behind")
	}
	wantDropped(t, reader, map[string]int64{"websocket": 1, "polling": 0})
}

// emitUntilDropped commits transactions of 40 events of 64 KiB ("big", i
// counting from 0) to project, handing each transaction's seqs to took (the
// client that reads), until the server has dropped the other connection,
// the client that does not read: past the bound and whatever the kernel's
// buffers hold (up to 4 MB each way here), and far less than 60 MB. It fails
// unless the drop came past MaxQueuedBytes and the server then holds
// nothing, and returns every seq committed.
func emitUntilDropped(t *testing.T, e *env, project string, took func(batch []int64)) []int64 {
	t.Helper()
	const n, size = 40, 64 << 10
	var seqs []int64
	for i := 0; e.RT.ConnectionCount() > 1; i++ {
		if len(seqs)*size > 60<<20 {
			t.Fatalf("the client that does not read was not dropped after %d MB (MaxQueuedBytes %d)", len(seqs)*size>>20, realtime.MaxQueuedBytes)
		}
		batch := emitPadded(t, e, project, "big", i*n, n, size)
		took(batch)
		seqs = append(seqs, batch...)
	}
	if len(seqs)*size < realtime.MaxQueuedBytes {
		t.Fatalf("dropped after %d bytes, below MaxQueuedBytes", len(seqs)*size)
	}
	if b := e.RT.PendingBytes(); b != 0 {
		t.Fatalf("%d bytes still wait once the client that did not read is gone", b)
	}
	return seqs
}

// wantDropped checks socketio.connections.behind for each transport.
func wantDropped(t *testing.T, reader *sdkmetric.ManualReader, want map[string]int64) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for transport, w := range want {
		if n := counterValue(rm, "socketio.connections.behind", "transport", transport); n != w {
			t.Fatalf("socketio.connections.behind{transport=%s} = %d, want %d", transport, n, w)
		}
	}
}

// counterValue is an Int64 counter's value for one attribute.
func counterValue(rm metricdata.ResourceMetrics, name, key, value string) int64 {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != name || !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				if v, ok := dp.Attributes.Value(attribute.Key(key)); ok && v.AsString() == value {
					return dp.Value
				}
			}
		}
	}
	return 0
}
