package realtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// rawClient speaks engine.io/Socket.IO over a plain websocket, so a test
// can stop reading and let the server's writes back up.
type rawClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialRaw(t *testing.T, base string) *rawClient {
	t.Helper()
	u := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
	// A small receive buffer, so that a client that stops reading fills the
	// server's side after a few hundred kilobytes.
	d := websocket.Dialer{HandshakeTimeout: wait, NetDialContext: (&net.Dialer{
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			}); err != nil {
				return err
			}
			return serr
		},
	}).DialContext}
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
	slow.write(fmt.Sprintf(`420["subscribe",{"project_id":%q}]`, p))
	if ack := slow.read(); !strings.HasPrefix(ack, "430") || !strings.Contains(ack, `"ok":true`) {
		t.Fatalf("subscribe ack: %q", ack)
	}
	fast := e.dial(t)
	fast.Subscribe(p)

	// About 8 MB for each client, in three transactions: more than the
	// socket buffers of the client that does not read hold, so writes to it
	// must wait, and later events queue behind them.
	const batches, n, size = 3, 40, 64 << 10
	pad := strings.Repeat("x", size)
	var seqs []int64
	for b := range batches {
		var batch []int64
		err := db.InTx(context.Background(), e.Pool, func(tx pgx.Tx) error {
			for i := range n {
				seq, err := db.Emit(context.Background(), tx, p, dbtest.Event{Name: "big", Payload: map[string]any{"i": b*n + i, "pad": pad}})
				if err != nil {
					return err
				}
				batch = append(batch, seq)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
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
