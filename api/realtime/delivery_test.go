package realtime_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

func TestRoomDelivery(t *testing.T) {
	// Websocket only: the Go client's polling transport queues its writes
	// behind the pending long poll (clients/engine/v3 polling.go), so an
	// emit waits up to pingInterval. Polling is covered by the JavaScript
	// client (TestJavaScriptClient).
	t.Parallel()
	e := newEnv(t)
	a, b := e.project(), e.project()
	a1 := e.dial(t)
	a2 := e.dial(t)
	b1 := e.dial(t)
	for _, c := range []*client{a1, a2} {
		if ack := c.Subscribe(a); ack["replayed"] != float64(0) {
			t.Fatalf("ack %v", ack)
		}
	}
	b1.Subscribe(b)

	s1 := e.emit(a, "vibecode_delta", map[string]any{"trace_id": "tr-1", "delta": "Hel"})
	s2 := e.emit(a, "vibecode_delta", map[string]any{"trace_id": "tr-1", "delta": "lo", "seq": "spoofed"})
	sb := e.emit(b, "job_status", map[string]any{"state": "running"})
	s3 := e.emit(a, "vibecode_response", map[string]any{"status": "answered"})

	for _, c := range []*client{a1, a2} {
		got := c.expect(s1, s2, s3)
		first := got[0]
		if first.Name != "vibecode_delta" || first.Payload["project_id"] != a || first.Payload["trace_id"] != "tr-1" || first.Payload["delta"] != "Hel" {
			t.Fatalf("first event = %s %v", first.Name, first.Payload)
		}
		if got[2].Name != "vibecode_response" || got[2].Payload["status"] != "answered" {
			t.Fatalf("third event = %s %v", got[2].Name, got[2].Payload)
		}
	}
	// b1 got b's event and none of a's: a's last event came before
	// this sentinel, so it would have arrived first.
	sentinel := e.emit(b, "job_status", map[string]any{"state": "completed"})
	b1.expect(sb, sentinel)
}

func TestRolledBackTransactionEmitsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.project()
	c := e.dial(t)
	c.Subscribe(p)

	rollback := errors.New("roll back")
	err := db.InTx(context.Background(), e.Pool, func(tx pgx.Tx) error {
		if _, err := db.Emit(context.Background(), tx, p, dbtest.Event{Name: "diff_created", Payload: map[string]any{"id": "never"}}); err != nil {
			return err
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatal(err)
	}
	sentinel := e.emit(p, "code_changed", map[string]any{"commit": "abc"})
	c.expect(sentinel)
}

func TestUnsubscribeStopsDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p, other := e.project(), e.project()
	c := e.dial(t)
	c.Subscribe(p)
	c.Subscribe(other)
	c.expect(e.emit(p, "e", map[string]any{}))

	if ack := c.Request("unsubscribe", map[string]any{"project_id": p}); ack["ok"] != true || ack["project_id"] != p {
		t.Fatalf("unsubscribe ack %v", ack)
	}
	e.emit(p, "e", map[string]any{"after": "unsubscribe"})
	c.expect(e.emit(other, "sentinel", map[string]any{}))

	// leave_project with a bare id, and again: leaving twice is fine.
	for range 2 {
		if ack := c.Request("leave_project", other); ack["ok"] != true {
			t.Fatalf("leave_project ack %v", ack)
		}
	}
	// join_project with a bare id brings p back.
	if ack := c.Request("join_project", p); ack["ok"] != true {
		t.Fatalf("join_project ack %v", ack)
	}
	e.emit(other, "e", map[string]any{})
	c.expect(e.emit(p, "sentinel", map[string]any{}))
}

func TestTwoServersDeliverToTheirOwnClients(t *testing.T) {
	t.Parallel()
	e1 := newEnv(t)
	e2 := newEnvOn(t, e1.Pool)
	p := e1.project()
	c1, c2 := e1.dial(t), e2.dial(t)
	c1.Subscribe(p)
	c2.Subscribe(p)
	var seqs []int64
	for i := range 20 {
		seqs = append(seqs, e1.emit(p, "e", map[string]any{"i": i}))
	}
	c1.expect(seqs...)
	c2.expect(seqs...)
	if e1.RT.ConnectionCount() != 1 || e2.RT.ConnectionCount() != 1 {
		t.Fatalf("connections: %d and %d, want 1 each", e1.RT.ConnectionCount(), e2.RT.ConnectionCount())
	}
}

// A writer in another process announces its events in the NOTIFY
// (db/notification.go): the hub sends them as announced, without reading
// the outbox, when every event before them has gone out. An announcement
// that skips a seq, or carries only a seq, is read from the outbox, in seq
// order. To tell the two paths apart, the rows here say "outbox" and the
// announcements "notification" (a real writer announces the row it wrote).
func TestAnnouncedEventsAreSentWithoutARead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.project()
	c := e.dial(t)
	c.Subscribe(p)
	ctx := context.Background()
	write := func(announce string) (seq int64) {
		t.Helper()
		err := pgx.BeginFunc(ctx, e.Pool, func(tx pgx.Tx) error {
			err := tx.QueryRow(ctx, `INSERT INTO events (project_id, name, payload) VALUES ($1, 'e', '{"from": "outbox"}') RETURNING seq`, p).Scan(&seq)
			if err != nil || announce == "" {
				return err
			}
			payload := fmt.Sprintf("%d", seq)
			if announce == "event" {
				body := `{"from":"notification"}`
				payload = fmt.Sprintf("%d\n%d %s e %d\n%s", seq, seq, p, len(body), body)
			}
			_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, db.EventsChannel, payload)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	from := func(ev event) any { return ev.Payload["from"] }

	if got := c.expect(write("event")); from(got[0]) != "notification" {
		t.Fatalf("an announced event next in line came from the %v", from(got[0]))
	}
	silent := write("") // committed, announced by no one (yet)
	announced := write("event")
	if got := c.expect(silent, announced); from(got[0]) != "outbox" || from(got[1]) != "outbox" {
		t.Fatalf("events after a gap came from the %v and the %v, want both read", from(got[0]), from(got[1]))
	}
	if got := c.expect(write("seq")); from(got[0]) != "outbox" {
		t.Fatalf("an event announced by its seq alone came from the %v", from(got[0]))
	}
}

// Writers in this process and in another one commit out of seq order, and
// some roll back: a subscribed client gets every committed event once, in
// seq order, whether the hub sent it as announced, held it for an earlier
// seq still being announced, or read the outbox past a rolled-back one.
func TestConcurrentWritersDeliverInSeqOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	elsewhere := e.otherProcess()
	p := e.project()
	c := e.dial(t)
	c.Subscribe(p)

	var mu sync.Mutex
	var committed []int64
	wrote := map[int64][3]int{} // seq → the w, i, k of its payload
	rolledBack := errors.New("roll back")
	var wg sync.WaitGroup
	for w := range 8 {
		pool := e.Pool
		if w%2 == 1 {
			pool = elsewhere
		}
		wg.Go(func() {
			for i := range 15 {
				var seqs []int64
				err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
					for k := range 1 + (w+i)%3 {
						seq, err := db.Emit(ctx, tx, p, dbtest.Event{Name: "e", Payload: map[string]any{"w": w, "i": i, "k": k}})
						if err != nil {
							return err
						}
						seqs = append(seqs, seq)
						mu.Lock()
						wrote[seq] = [3]int{w, i, k}
						mu.Unlock()
						time.Sleep(time.Duration((w*7+i*3+k)%4) * time.Millisecond)
					}
					if (w+i)%7 == 3 {
						return rolledBack
					}
					return nil
				})
				if errors.Is(err, rolledBack) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				committed = append(committed, seqs...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(committed)
	got := c.expect(append(committed, e.emit(p, "sentinel", map[string]any{}))...)
	for _, ev := range got[:len(committed)] {
		want := wrote[ev.Seq()]
		if ev.Name != "e" || ev.Payload["project_id"] != p || ev.Payload["w"] != float64(want[0]) || ev.Payload["i"] != float64(want[1]) || ev.Payload["k"] != float64(want[2]) {
			t.Fatalf("seq %d arrived as %s %v, written with w, i, k = %v", ev.Seq(), ev.Name, ev.Payload, want)
		}
	}
}

// A seq announced alone is read; when the read stops at an earlier seq whose
// writer is still in its transaction, and that transaction then rolls back
// (which announces nothing), the hub reads again on its own and delivers,
// rather than waiting for the poll (an hour in these tests).
func TestSeqAnnouncedAloneBehindARollback(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	elsewhere := e.otherProcess()
	p := e.project()
	c := e.dial(t)
	c.Subscribe(p)

	taken, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	releaseWriter := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseWriter() // before the pool's cleanup, which waits for the writer's connection
	rolledBack := errors.New("roll back")
	done := make(chan error, 1)
	go func() {
		done <- db.InTx(ctx, elsewhere, func(tx pgx.Tx) error {
			if _, err := db.Emit(ctx, tx, p, dbtest.Event{Name: "never", Payload: map[string]any{}}); err != nil {
				return err
			}
			close(taken)
			<-release
			return rolledBack
		})
	}()
	<-taken
	var seq int64
	err := pgx.BeginFunc(ctx, e.Pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO events (project_id, name, payload) VALUES ($1, 'after', '{}') RETURNING seq`, p).Scan(&seq); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, db.EventsChannel, strconv.FormatInt(seq, 10))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the hub reads, and stops before the open transaction's seq
	releaseWriter()
	if err := <-done; !errors.Is(err, rolledBack) {
		t.Fatal(err)
	}
	c.expect(seq)
}
