package realtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// A client that catches up a long history while live events keep coming,
// to its project and to another project it receives live, completes its
// replay while that traffic goes on, and gets every event of its project
// once, in order (the replay, then the live ones), and every event of the
// other. The live traffic comes a little faster than the client reads (a
// client dropped for falling behind, catching up while the burst that
// dropped it goes on), so frames always wait for its socket. A parked
// replay now waits for what was queued when it parked; before, it waited
// for the socket's queue to be empty, which it never was: the replay
// stalled until the traffic stopped (or the client was dropped again).
func TestAReplayCompletesUnderSteadyLiveTraffic(t *testing.T) {
	t.Parallel()
	e := newEnvServing(t, serving{listener: func(l net.Listener) net.Listener { return smallSendBuffers{l, 64 << 10} }})
	ctx := context.Background()
	p, q := e.project(), e.project()
	since := e.latestSeq()
	const n, size = 1500, 256 // three pages
	const rate = 640 << 10    // what the client reads a second
	// 16 KB to the other project every 20 ms: 800 KB a second.
	const every, otherSize = 20 * time.Millisecond, 16 << 10
	emitPadded(t, e, p, "old", 0, n, size)

	// A client that reads at a bounded pace, in the room of q, replays p.
	var pc *paced
	c := dialRawWith(t, e.URL, func(conn net.Conn) net.Conn { pc = &paced{Conn: conn, rate: rate}; return pc }, nil)
	c.subscribe(q)
	c.write(fmt.Sprintf(`421["subscribe",{"project_id":%q,"since":%d}]`, p, since))

	// Live traffic at a steady pace, to q and to p, until the replay is
	// seen complete or for a generous bound.
	qpad := strings.Repeat("y", otherSize)
	done := make(chan struct{})
	var boundHit bool
	var writeErr error
	var qseqs []int64
	var wg sync.WaitGroup
	wg.Go(func() {
		bound := time.After(30 * time.Second) // about 3 s needed
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-bound:
				boundHit = true
				return
			case <-tick.C:
			}
			seq, err := emitOne(e, q, "other", map[string]any{"i": i, "pad": qpad})
			if err == nil {
				_, err = emitOne(e, p, "live", map[string]any{"i": i})
			}
			if err != nil {
				writeErr = err
				return
			}
			qseqs = append(qseqs, seq)
		}
	})
	stop := sync.OnceFunc(func() { close(done) })
	defer stop()

	var pseqs, gotQ []int64
	var sentinel int64
	for sentinel == 0 || len(pseqs) == 0 || pseqs[len(pseqs)-1] != sentinel {
		msg := c.read()
		switch {
		case strings.HasPrefix(msg, "431"):
			// After the replayed events, before the live ones.
			if !strings.Contains(msg, `"ok":true`) || !strings.Contains(msg, fmt.Sprintf(`"replayed":%d}`, len(pseqs))) {
				t.Fatalf("subscribe ack after %d events: %.300q", len(pseqs), msg)
			}
			stop()
			wg.Wait()
			if writeErr != nil {
				t.Fatal(writeErr)
			}
			if boundHit {
				t.Fatalf("the replay completed only after the live traffic stopped (%d events of the project received by then)", len(pseqs))
			}
			pc.rate = 1 << 30 // the rest at once
			sentinel = e.emit(p, "sentinel", map[string]any{})
		case strings.HasPrefix(msg, "42"):
			var args []json.RawMessage
			var payload struct {
				Seq       int64  `json:"seq"`
				ProjectID string `json:"project_id"`
			}
			if json.Unmarshal([]byte(msg[2:]), &args) != nil || len(args) != 2 || json.Unmarshal(args[1], &payload) != nil {
				t.Fatalf("not an event: %.200q", msg)
			}
			if payload.ProjectID == q {
				gotQ = append(gotQ, payload.Seq)
			} else {
				pseqs = append(pseqs, payload.Seq)
			}
		default:
			t.Fatalf("unexpected message %.200q", msg)
		}
	}
	want, err := db.ProjectEventsAfter(ctx, e.Pool, p, since, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(pseqs) != len(want) {
		t.Fatalf("got %d events of the project, want %d", len(pseqs), len(want))
	}
	for i, w := range want {
		if pseqs[i] != w.Seq {
			t.Fatalf("event %d of the project: seq %d, want %d", i, pseqs[i], w.Seq)
		}
	}
	if fmt.Sprint(gotQ) != fmt.Sprint(qseqs) {
		t.Fatalf("the other project's events: got %d, want %d, in order", len(gotQ), len(qseqs))
	}
}

// paced is a connection that reads at most rate bytes a second.
type paced struct {
	net.Conn
	rate  int
	start time.Time
	read  int
}

func (c *paced) Read(b []byte) (int, error) {
	if c.start.IsZero() {
		c.start = time.Now()
	}
	if due := c.start.Add(time.Duration(float64(c.read) / float64(c.rate) * float64(time.Second))); time.Until(due) > 0 {
		time.Sleep(time.Until(due))
	}
	b = b[:min(len(b), 4096)]
	n, err := c.Conn.Read(b)
	c.read += n
	return n, err
}

// emitOne is env.emit for another goroutine than the test's.
func emitOne(e *env, project, name string, payload map[string]any) (seq int64, err error) {
	err = db.InTx(context.Background(), e.Pool, func(tx pgx.Tx) error {
		seq, err = db.Emit(context.Background(), tx, project, dbtest.Event{Name: name, Payload: payload})
		return err
	})
	return seq, err
}

// smallSendBuffers accepts connections with a kernel send buffer of size
// bytes, not the megabytes Linux grows it to on loopback: what the client
// has not read waits in the server's connection, where the hub sees it.
type smallSendBuffers struct {
	net.Listener
	size int
}

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		err = tc.SetWriteBuffer(l.size)
	}
	return c, err
}
