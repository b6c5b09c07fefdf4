package realtime_test

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A websocket client's PING frames (Go and Node clients, proxies and health
// checkers send them; browsers do not) are answered through the transport's
// own ordered writes. The library's gorilla connection answered them itself
// (WriteControl), outside the transport's queue: a PONG could land inside a
// frame the transport had written only part of, and it set a write deadline
// of one second on the socket that nothing reset, so the transport's writes
// failed once it passed and the connection was closed.

// slowReader is a client connection that reads at most 2 KB at a time and
// pauses before each read, so the server's writes to it keep backing up.
type slowReader struct{ net.Conn }

func (c slowReader) Read(b []byte) (int, error) {
	time.Sleep(50 * time.Microsecond)
	return c.Conn.Read(b[:min(len(b), 2<<10)])
}

// pongs records the payloads of the PONG frames a client receives (on its
// reading goroutine), which must come in the order of its PINGs.
type pongs struct {
	t    *testing.T
	got  []string
	last int
}

func (p *pongs) handle(data string) error {
	n, err := strconv.Atoi(strings.TrimPrefix(data, "p"))
	if err != nil || !strings.HasPrefix(data, "p") || n <= p.last {
		p.t.Errorf("PONG %q after PONG p%d", data, p.last)
		return nil
	}
	p.last = n
	p.got = append(p.got, data)
	return nil
}

func TestClientPingsDuringSlowWrites(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"plain", false}, {"tls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvServing(t, serving{tls: tc.tls})
			p := e.project()
			tlsConf := e.srv.Client().Transport.(*http.Transport).TLSClientConfig
			c := dialRawWith(t, e.URL, func(c net.Conn) net.Conn { return slowReader{c} }, tlsConf)
			pg := &pongs{t: t}
			c.conn.SetPongHandler(pg.handle)
			subscribe := fmt.Sprintf(`421["subscribe",{"project_id":%q}]`, p)
			c.write(subscribe)
			if ack := c.read(); !strings.HasPrefix(ack, "431") || !strings.Contains(ack, `"ok":true`) {
				t.Fatalf("subscribe ack: %q", ack)
			}

			// PINGs throughout, while about 5 MB of events are written to a
			// client that reads slowly, so that most writes are partial.
			var sent atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(500 * time.Microsecond):
					}
					n := sent.Add(1)
					if err := c.conn.WriteControl(websocket.PingMessage, []byte("p"+strconv.FormatInt(n, 10)), time.Now().Add(wait)); err != nil {
						t.Errorf("ping %d: %v", n, err)
						return
					}
				}
			})
			const batches, n, size = 4, 20, 64 << 10
			pad := strings.Repeat("x", size)
			var seqs []int64
			for b := range batches {
				seqs = append(seqs, emitPadded(t, e, p, "big", b*n, n, size)...)
			}
			for i, want := range seqs {
				name, payload := c.event()
				if name != "big" || payload["seq"] != float64(want) || payload["i"] != float64(i) || payload["pad"] != pad {
					t.Fatalf("event %d: %s seq %v i %v, want seq %d", i, name, payload["seq"], payload["i"], want)
				}
			}
			close(stop)
			wg.Wait()

			// One more PING: its PONG comes before the answer to a request
			// sent after it. Then, quiet for longer than the one second
			// deadline gorilla gives a PONG's write, a live event.
			last := sent.Add(1)
			if err := c.conn.WriteControl(websocket.PingMessage, []byte("p"+strconv.FormatInt(last, 10)), time.Now().Add(wait)); err != nil {
				t.Fatal(err)
			}
			c.write(subscribe)
			if ack := c.read(); !strings.HasPrefix(ack, "431") || !strings.Contains(ack, `"ok":true`) {
				t.Fatalf("subscribe ack: %q", ack)
			}
			if pg.last != int(last) {
				t.Fatalf("the last PONG is p%d, want p%d (%d PONGs for %d PINGs)", pg.last, last, len(pg.got), last)
			}
			time.Sleep(1500 * time.Millisecond)
			live := e.emit(p, "live", map[string]any{})
			if name, payload := c.event(); name != "live" || payload["seq"] != float64(live) {
				t.Fatalf("live event: %s seq %v, want %d", name, payload["seq"], live)
			}
			t.Logf("%d PONGs for %d PINGs", len(pg.got), last)
		})
	}
}

// A client's close frame is answered with one of the same code when nothing
// waits for its socket, and otherwise ends what it receives cleanly: whole
// events in order, then the end of the connection, never a close frame
// inside one of them.
func TestClientCloseIsAnsweredInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.project()

	t.Run("nothing waits", func(t *testing.T) {
		c := dialRaw(t, e.URL)
		if err := c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "bye"), time.Now().Add(wait)); err != nil {
			t.Fatal(err)
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(wait))
		_, msg, err := c.conn.ReadMessage()
		if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Fatalf("after a close: %q, %v; want the close answered with code %d", msg, err, websocket.CloseGoingAway)
		}
	})

	t.Run("frames wait", func(t *testing.T) {
		c := dialRawWith(t, e.URL, func(c net.Conn) net.Conn { return slowReader{c} }, nil)
		c.subscribe(p)
		const n, size = 40, 64 << 10
		seqs := emitPadded(t, e, p, "big", 0, n, size)
		name, _ := c.event()
		if name != "big" {
			t.Fatalf("first event %s", name)
		}
		if err := c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(wait)); err != nil {
			t.Fatal(err)
		}
		got := 1 + c.readUntilDropped(seqs[1:])
		t.Logf("%d of %d events before the end", got, n)
	})
}
