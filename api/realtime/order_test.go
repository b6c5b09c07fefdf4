package realtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// Events reach a socket in seq order also when some of them waited in
// engine.io's buffer: a client that stalled and catches up, and one that
// upgrades from polling to websocket with events buffered, got later events
// written straight to the socket ahead of the buffered ones (found by a
// probe: "seq 675 after 1282", "499 500 501 2 3 4").

// writeUntil commits 4 KB events to project from two writers until stop is
// called, which waits for them.
func writeUntil(e *env, project string) (stop func()) {
	pad := strings.Repeat("y", 4<<10)
	var done atomic.Bool
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for !done.Load() {
				e.emit(project, "e", map[string]any{"pad": pad})
			}
		})
	}
	return func() { done.Store(true); wg.Wait() }
}

func TestEventsStayInOrderWhenAStalledClientCatchesUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.project()
	c := dialRaw(t, e.URL)
	c.subscribe(p)
	stop := writeUntil(e, p)
	defer stop()
	// Not reading until the socket's send buffer fills and events wait (not
	// a fixed time, which at a fast writer's pace could pass MaxQueuedBytes
	// and drop the client).
	e.backedUp()
	var last int64
	for i := range 2000 { // reading while the writers go on
		_, payload := c.event()
		seq := int64(payload["seq"].(float64))
		if seq <= last {
			t.Fatalf("event %d: seq %d after %d", i, seq, last)
		}
		last = seq
	}
}

func TestEventsStayInOrderAcrossAnUpgradeFromPolling(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.project()
	c := openPolling(t, e.URL)
	c.post(fmt.Sprintf(`420["subscribe",{"project_id":%q}]`, p))
	for acked := false; !acked; {
		for _, m := range c.get() {
			if strings.HasPrefix(m, "430") {
				if !strings.Contains(m, `"ok":true`) {
					t.Fatalf("subscribe ack %q", m)
				}
				acked = true
			}
		}
	}
	stop := writeUntil(e, p)
	time.Sleep(300 * time.Millisecond) // no poll outstanding: events wait in engine.io's buffer
	ws, res, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(e.URL, "http")+"/socket.io/?EIO=4&transport=websocket&sid="+c.sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte("2probe")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "3probe" {
		t.Fatalf("probe answer %q %v", msg, err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("5")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	stop()
	last, n := int64(0), 0
	for {
		_ = ws.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, msg, err := ws.ReadMessage()
		if err != nil {
			break // everything written was read
		}
		seq, ok := eventSeq(string(msg))
		if !ok {
			continue
		}
		if seq <= last {
			t.Fatalf("event %d over websocket: seq %d after %d", n, seq, last)
		}
		last, n = seq, n+1
	}
	if n == 0 {
		t.Fatal("no event came over the websocket")
	}
}

// backedUp waits until the server's writes to a client that does not read
// wait for it.
func (e *env) backedUp() {
	e.t.Helper()
	for deadline := time.Now().Add(wait); e.RT.PendingBytes() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			e.t.Fatal("the server's writes to the client that does not read never backed up (or it was dropped)")
		}
	}
}

// pollingClient speaks engine.io's polling transport.
type pollingClient struct {
	t    *testing.T
	base string
	sid  string
}

func openPolling(t *testing.T, base string) *pollingClient {
	t.Helper()
	res, err := http.Get(base + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var hs struct {
		Sid string `json:"sid"`
	}
	if !strings.HasPrefix(string(b), "0") || json.Unmarshal(b[1:], &hs) != nil {
		t.Fatalf("handshake %q", b)
	}
	c := &pollingClient{t: t, base: base, sid: hs.Sid}
	c.post("40")
	if got := c.get(); !strings.HasPrefix(got[0], "40") {
		t.Fatalf("namespace connect: %q", got)
	}
	return c
}

func (c *pollingClient) url() string {
	return c.base + "/socket.io/?EIO=4&transport=polling&sid=" + c.sid
}

// get polls once and returns the engine.io messages.
func (c *pollingClient) get() []string {
	c.t.Helper()
	res, err := http.Get(c.url())
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return strings.Split(string(b), "\x1e")
}

func (c *pollingClient) post(msg string) {
	c.t.Helper()
	res, err := http.Post(c.url(), "text/plain", strings.NewReader(msg))
	if err != nil {
		c.t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "ok" {
		c.t.Fatalf("post %q: %d %q", msg, res.StatusCode, b)
	}
}

// eventSeq is the seq of an engine.io message that is a Socket.IO event.
func eventSeq(msg string) (int64, bool) {
	var args []json.RawMessage
	if !strings.HasPrefix(msg, "42[") || json.Unmarshal([]byte(msg[2:]), &args) != nil || len(args) != 2 {
		return 0, false
	}
	var p struct {
		Seq int64 `json:"seq"`
	}
	return p.Seq, json.Unmarshal(args[1], &p) == nil && p.Seq > 0
}

// The ack of a subscribe with since comes after the replayed events and
// before the live ones that follow, also on a socket whose writes are backed
// up: the ack waited in engine.io's buffer while the events went on in the
// connection's own, and came after every live event written meanwhile.
func TestTheAckComesBetweenTheReplayAndLiveEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.project()
	since := e.latestSeq()
	// About 8 MB of history: more than the socket buffers of a client that
	// does not read hold, so the replay's writes wait, and so may the ack.
	pad := strings.Repeat("h", 64<<10)
	err := db.InTx(context.Background(), e.Pool, func(tx pgx.Tx) error {
		for i := range 120 {
			if _, err := db.Emit(context.Background(), tx, p, dbtest.Event{Name: "history", Payload: map[string]any{"i": i, "pad": pad}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	c := dialRaw(t, e.URL)
	c.write(fmt.Sprintf(`420["subscribe",{"project_id":%q,"since":%d}]`, p, since))
	stop := writeUntil(e, p)
	// Not reading until the replay backs up. A replay writes at most
	// MaxReplayBytes at a time and waits for the client to take it, so the
	// writers go on until the ack has been read: live events follow it.
	e.backedUp()

	last, before := since, 0
	var ack map[string]any
	for ack == nil {
		msg := c.read()
		if strings.HasPrefix(msg, "430") {
			var args []map[string]any
			if err := json.Unmarshal([]byte(msg[3:]), &args); err != nil || len(args) != 1 || args[0]["ok"] != true {
				t.Fatalf("subscribe ack %.200q", msg)
			}
			ack = args[0]
			continue
		}
		seq, ok := eventSeq(msg)
		if !ok || seq <= last {
			t.Fatalf("before the ack, after seq %d: %.200q", last, msg)
		}
		last, before = seq, before+1
	}
	stop()
	end := e.latestSeq()
	if replayed := ack["replayed"].(float64); int(replayed) != before {
		t.Fatalf("the ack came after %d events; it says %v were replayed", before, replayed)
	}
	after := 0
	for last < end {
		seq, ok := eventSeq(c.read())
		if !ok || seq <= last {
			t.Fatalf("after the ack, after seq %d: seq %d", last, seq)
		}
		last, after = seq, after+1
	}
	if after == 0 {
		t.Fatal("no live event followed the ack: the test wrote none after the replay")
	}
}
