package db_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// A transaction of InTx on a pool announces its events after COMMIT: to the
// functions registered with OnCommit at once, with the events themselves,
// and with a NOTIFY of its highest seq and the events that fit, for the
// other processes. A transaction that rolls back announces nothing, and one
// without events neither.
func TestInTxAnnouncesCommittedEvents(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	listener := listenForEvents(t, pool)
	type announced struct {
		seq    int64
		events []db.Event
	}
	local := make(chan announced, 10)
	stop := db.OnCommit(pool, func(seq int64, events []db.Event) { local <- announced{seq, slices.Clone(events)} })

	project := uuid.NewString()
	emit := func(payloads []map[string]any, fail error) (seqs []int64, err error) {
		err = db.InTx(ctx, pool, func(tx pgx.Tx) error {
			for _, p := range payloads {
				seq, err := db.Emit(ctx, tx, project, dbtest.Event{Name: "test_event", Payload: p})
				if err != nil {
					return err
				}
				seqs = append(seqs, seq)
			}
			return fail
		})
		return seqs, err
	}
	rolledBack := errors.New("roll back")
	if _, err := emit([]map[string]any{{"i": -1}}, rolledBack); !errors.Is(err, rolledBack) {
		t.Fatal(err)
	}
	if _, err := emit(nil, nil); err != nil {
		t.Fatal(err)
	}
	payloads := []map[string]any{{"i": 0}, {"i": 1, "text": "two\nlines"}, {"i": 2}}
	seqs, err := emit(payloads, nil)
	if err != nil {
		t.Fatal(err)
	}
	last := seqs[len(seqs)-1]
	wantEvents := func(from string, got []db.Event, seqs []int64, payloads []map[string]any) {
		t.Helper()
		if len(got) != len(seqs) {
			t.Fatalf("%s carried %d events, want %d", from, len(got), len(seqs))
		}
		for i, e := range got {
			want, _ := json.Marshal(payloads[i])
			if e.Seq != seqs[i] || e.ProjectID != project || e.Name != "test_event" || string(e.Payload) != string(want) {
				t.Fatalf("%s event %d = %d %s %s %s, want %d %s test_event %s", from, i, e.Seq, e.ProjectID, e.Name, e.Payload, seqs[i], project, want)
			}
		}
	}
	select {
	case got := <-local:
		if got.seq != last {
			t.Fatalf("OnCommit got seq %d, want %d (the transaction's last)", got.seq, last)
		}
		wantEvents("OnCommit", got.events, seqs, payloads)
	default:
		t.Fatal("OnCommit was not called by the time InTx returned")
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	notified := func() (int64, []db.Event) {
		t.Helper()
		n, err := listener.WaitForNotification(waitCtx)
		if err != nil {
			t.Fatal(err)
		}
		seq, err := db.NotificationSeq(n.Payload)
		if err != nil {
			t.Fatalf("NOTIFY payload %q: %v", n.Payload, err)
		}
		events, err := db.NotificationEvents(n.Payload)
		if err != nil {
			t.Fatalf("NOTIFY payload %q: %v", n.Payload, err)
		}
		return seq, events
	}
	if seq, events := notified(); seq != last {
		t.Fatalf("NOTIFY announced seq %d, want %d", seq, last)
	} else {
		wantEvents("NOTIFY", events, seqs, payloads)
	}

	// An event too large for a notification is announced by its seq, and
	// so is every later one of the same NOTIFY; the hub reads them.
	big := []map[string]any{{"i": 3}, {"i": 4, "pad": strings.Repeat("x", 8000)}, {"i": 5}}
	if seqs, err = emit(big, nil); err != nil {
		t.Fatal(err)
	}
	<-local
	if seq, events := notified(); seq != seqs[2] {
		t.Fatalf("NOTIFY announced seq %d, want %d", seq, seqs[2])
	} else {
		wantEvents("NOTIFY with a large event", events, seqs[:1], big[:1])
	}

	// After stop, the function is no longer called; the NOTIFY still goes.
	stop()
	if seqs, err = emit(payloads[:1], nil); err != nil {
		t.Fatal(err)
	}
	if seq, events := notified(); seq != seqs[0] {
		t.Fatalf("NOTIFY after stop announced %d, want %d", seq, seqs[0])
	} else {
		wantEvents("NOTIFY after stop", events, seqs, payloads[:1])
	}
	select {
	case got := <-local:
		t.Fatalf("OnCommit called with %d after stop", got.seq)
	default:
	}
}

// A process that stops closes its pool right after its last commit; with
// FlushAnnouncements first, the NOTIFY of that commit is still sent.
func TestFlushAnnouncementsBeforeClose(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	listener := listenForEvents(t, pool)
	var seq int64
	err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
		var err error
		seq, err = db.Emit(ctx, tx, uuid.NewString(), dbtest.Event{Name: "test_event", Payload: map[string]any{"last": true}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	flushCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	db.FlushAnnouncements(flushCtx, pool)
	pool.Close()
	waitCtx, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel2()
	n, err := listener.WaitForNotification(waitCtx)
	if err != nil {
		t.Fatalf("no NOTIFY after the pool closed: %v", err)
	}
	if got, err := db.NotificationSeq(n.Payload); err != nil || got != seq {
		t.Fatalf("NOTIFY payload %q, want seq %d", n.Payload, seq)
	}
}

// What an announcement carries is exactly what committed. A transaction
// that opened a savepoint (one rolled back may have taken back an event the
// transaction recorded) or wrote a project id not as PostgreSQL prints it
// announces its seq alone, and the realtime processes read the outbox.
func TestAnnouncementsCarryOnlyWhatSurelyCommitted(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	listener := listenForEvents(t, pool)
	local := make(chan []db.Event, 10)
	defer db.OnCommit(pool, func(_ int64, events []db.Event) { local <- slices.Clone(events) })()
	project := uuid.NewString()
	var kept int64 // the seq of the transaction's last event that committed
	for name, fn := range map[string]func(tx pgx.Tx) error{
		"savepoint rolled back": func(tx pgx.Tx) error {
			sp, err := tx.Begin(ctx)
			if err != nil {
				return err
			}
			if _, err := db.Emit(ctx, tx, project, dbtest.Event{Name: "taken_back"}); err != nil {
				return err
			}
			if err := sp.Rollback(ctx); err != nil {
				return err
			}
			kept, err = db.Emit(ctx, tx, project, dbtest.Event{Name: "kept"})
			return err
		},
		"upper-case project id": func(tx pgx.Tx) error {
			var err error
			kept, err = db.Emit(ctx, tx, strings.ToUpper(project), dbtest.Event{Name: "kept"})
			return err
		},
	} {
		if err := db.InTx(ctx, pool, fn); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := <-local; len(got) != 0 {
			t.Errorf("%s: OnCommit was handed %d events, want none (read them)", name, len(got))
		}
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		n, err := listener.WaitForNotification(waitCtx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if seq, err := db.NotificationSeq(n.Payload); err != nil || seq != kept {
			t.Errorf("%s: NOTIFY %q announced seq %d (%v), want %d", name, n.Payload, seq, err, kept)
		}
		if events, err := db.NotificationEvents(n.Payload); err != nil || len(events) != 0 {
			t.Errorf("%s: NOTIFY %q carried events (%v)", name, n.Payload, err)
		}
	}
}

// Commits from many goroutines are announced by one sender, which batches
// what committed while it was sending: every NOTIFY parses, and every event
// it carries is the one written under that seq (run with -race: the sender
// and the committers share the batch's slices).
func TestAnnouncementsUnderConcurrentCommits(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	listener := listenForEvents(t, pool)
	project := uuid.NewString()
	var mu sync.Mutex
	written := map[int64]string{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 25 {
				err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
					body := fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)
					seq, err := db.Emit(ctx, tx, project, dbtest.Event{Name: "e", Payload: json.RawMessage(body)})
					mu.Lock()
					written[seq] = body
					mu.Unlock()
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	db.FlushAnnouncements(ctx, pool)
	top := int64(0)
	for seq := range written {
		top = max(top, seq)
	}
	carried := announcedUpTo(t, listener, top)
	for _, e := range carried {
		if e.ProjectID != project || e.Name != "e" || string(e.Payload) != written[e.Seq] {
			t.Fatalf("a NOTIFY carried seq %d %s %s %s, written %s", e.Seq, e.ProjectID, e.Name, e.Payload, written[e.Seq])
		}
	}
	if len(carried) == 0 {
		t.Fatal("no NOTIFY carried an event")
	}
}

// A burst of commits is announced by NOTIFYs at least NotifyEvery apart,
// each carrying the commits since the last: not one per commit, which would
// cost every listening connection a wake-up per commit.
func TestAnnouncementsOfABurstAreSpaced(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	listener := listenForEvents(t, pool)
	var mu sync.Mutex
	var starts []time.Time
	db.WatchNotifies(pool, func(at time.Time) {
		mu.Lock()
		starts = append(starts, at)
		mu.Unlock()
	})
	project := uuid.NewString()
	const commits = 40
	var last int64
	for i := range commits {
		err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
			var err error
			last, err = db.Emit(ctx, tx, project, dbtest.Event{Name: "e", Payload: map[string]any{"i": i}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if carried := announcedUpTo(t, listener, last); len(carried) != commits {
		t.Errorf("the NOTIFYs carried %d events, want the %d committed", len(carried), commits)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(starts); i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < db.NotifyEvery {
			t.Fatalf("NOTIFY %d went %v after the one before, want at least %v (%d NOTIFYs for %d commits)", i, gap, db.NotifyEvery, len(starts), commits)
		}
	}
}

// announcedUpTo reads the listener's NOTIFYs until one announces seq top
// and returns the events they carried, each checked to be at or below its
// notification's seq.
func announcedUpTo(t *testing.T, listener *pgx.Conn, top int64) []db.Event {
	t.Helper()
	var carried []db.Event
	for announced := int64(0); announced < top; {
		waitCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		n, err := listener.WaitForNotification(waitCtx)
		cancel()
		if err != nil {
			t.Fatalf("announced up to %d of %d: %v", announced, top, err)
		}
		seq, err := db.NotificationSeq(n.Payload)
		if err != nil {
			t.Fatalf("NOTIFY %q: %v", n.Payload, err)
		}
		events, err := db.NotificationEvents(n.Payload)
		if err != nil {
			t.Fatalf("NOTIFY %q: %v", n.Payload, err)
		}
		for _, e := range events {
			if e.Seq > seq {
				t.Fatalf("a NOTIFY up to seq %d carried seq %d", seq, e.Seq)
			}
		}
		carried = append(carried, events...)
		announced = max(announced, seq)
	}
	return carried
}

// listenForEvents is a connection of its own LISTENing on db.EventsChannel,
// as another process's realtime role has.
func listenForEvents(t *testing.T, pool *pgxpool.Pool) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pool.Config().ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{db.EventsChannel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return conn
}
