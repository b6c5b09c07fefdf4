package realtime_test

import (
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vibegrapher/vibegrapher/api/realtime"
)

// A websocket connection is pinged every PingInterval while it answers, and
// closed when a PONG is late; the pings come from one timer, not a goroutine
// per connection.
func TestHeartbeat(t *testing.T) {
	const interval, timeout = 50 * time.Millisecond, 2 * time.Second
	e := newEnv(t, func(o *realtime.Options) { o.PingInterval, o.PingTimeout = interval, timeout })
	url := "ws" + strings.TrimPrefix(e.URL, "http") + "/socket.io/?EIO=4&transport=websocket"

	base := runtime.NumGoroutine()
	const n = 20
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
		_ = c.SetReadDeadline(time.Now().Add(wait))
		_, msg, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var open struct{ PingInterval, PingTimeout int64 }
		if !strings.HasPrefix(string(msg), "0") || json.Unmarshal(msg[1:], &open) != nil ||
			open.PingInterval != interval.Milliseconds() || open.PingTimeout != timeout.Milliseconds() {
			t.Fatalf("OPEN packet %q", msg)
		}
		// Socket.IO's CONNECT, else the server waits for it on a timer of its own.
		if err := c.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
			t.Fatal(err)
		}
		// Its answer can come after a PING (every 50 ms here, and the
		// CONNECT reads the outbox): a client answers that meanwhile.
		for {
			if _, msg, err = c.ReadMessage(); err != nil {
				t.Fatalf("CONNECT: %v", err)
			}
			if string(msg) != "2" {
				break
			}
			if err := c.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				t.Fatal(err)
			}
		}
		if !strings.HasPrefix(string(msg), "40") {
			t.Fatalf("CONNECT: %q", msg)
		}
	}
	// Every connection is pinged, again and again, while it answers.
	var lastPong time.Time // of conns[0]
	for round := range 4 {
		for i, c := range conns {
			_ = c.SetReadDeadline(time.Now().Add(wait))
			_, msg, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("round %d, connection %d: %v", round, i, err)
			}
			if string(msg) != "2" {
				t.Fatalf("round %d, connection %d: got %q, want a PING", round, i, msg)
			}
			if err := c.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				lastPong = time.Now()
			}
		}
	}

	// A connection that stops answering is closed after the timeout; the
	// others, answering meanwhile, are not.
	done := make(chan struct{})
	errs := make(chan error, n)
	for _, c := range conns[1:] {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				_ = c.SetReadDeadline(time.Now().Add(wait))
				_, msg, err := c.ReadMessage()
				if err == nil && string(msg) != "2" {
					err = fmt.Errorf("got %q, want a PING", msg)
				}
				if err == nil {
					err = c.WriteMessage(websocket.TextMessage, []byte("3"))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// Per connection, the server has its reader goroutine and this test one
	// answering PINGs (but the quiet one's): no goroutine per connection for
	// the pings (the library's timers would add n).
	deadline := time.Now().Add(timeout / 2)
	for runtime.NumGoroutine()-base > 2*n+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // handshakes finishing
	}
	if g := runtime.NumGoroutine() - base; g > 2*n+2 {
		buf := make([]byte, 1<<20)
		t.Errorf("%d connections added %d goroutines: %s", n, g, buf[:runtime.Stack(buf, true)])
	}

	quiet := conns[0]
	_ = quiet.SetReadDeadline(time.Now().Add(wait))
	var closeErr error
	for {
		_, msg, err := quiet.ReadMessage()
		if err != nil {
			closeErr = err
			break
		}
		if string(msg) != "2" {
			t.Fatalf("got %q, want a PING", msg)
		}
	}
	// The server closed it: not this test's own read deadline.
	if ne, ok := closeErr.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the quiet connection was not closed within %v: %v", wait, closeErr)
	}
	d := time.Since(lastPong)
	if d < timeout {
		t.Errorf("closed %v after the last PONG, before the %v timeout", d, timeout)
	}
	if limit := interval + timeout + 3*time.Second; d > limit { // slack for a loaded machine
		t.Errorf("closed %v after the last PONG, later than %v", d, limit)
	}
	time.Sleep(time.Second) // the others keep answering
	close(done)
	for range n - 1 {
		if err := <-errs; err != nil {
			t.Errorf("an answering connection: %v", err)
		}
	}
}
