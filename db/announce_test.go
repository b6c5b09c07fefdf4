package db_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// A transaction of InTx on a pool announces its events after COMMIT: to the
// functions registered with OnCommit at once, and with a NOTIFY of its
// highest seq for the other processes. A transaction that rolls back
// announces nothing, and one without events neither.
func TestInTxAnnouncesCommittedEvents(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	listener, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Release()
	if _, err := listener.Exec(ctx, "LISTEN "+pgx.Identifier{db.EventsChannel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	local := make(chan int64, 10)
	stop := db.OnCommit(pool, func(seq int64) { local <- seq })

	project := uuid.NewString()
	emit := func(n int, fail error) (last int64, err error) {
		err = db.InTx(ctx, pool, func(tx pgx.Tx) error {
			for i := range n {
				if last, err = db.Emit(ctx, tx, project, dbtest.Event{Name: "test_event", Payload: map[string]any{"i": i}}); err != nil {
					return err
				}
			}
			return fail
		})
		return last, err
	}
	rolledBack := errors.New("roll back")
	if _, err := emit(1, rolledBack); !errors.Is(err, rolledBack) {
		t.Fatal(err)
	}
	if _, err := emit(0, nil); err != nil {
		t.Fatal(err)
	}
	seq, err := emit(3, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-local:
		if got != seq {
			t.Fatalf("OnCommit got seq %d, want %d (the transaction's last)", got, seq)
		}
	default:
		t.Fatal("OnCommit was not called by the time InTx returned")
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := listener.Conn().WaitForNotification(waitCtx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Payload != strconv.FormatInt(seq, 10) {
		t.Fatalf("NOTIFY payload %q, want %d", n.Payload, seq)
	}

	// After stop, the function is no longer called; the NOTIFY still goes.
	stop()
	if seq, err = emit(1, nil); err != nil {
		t.Fatal(err)
	}
	if n, err = listener.Conn().WaitForNotification(waitCtx); err != nil || n.Payload != strconv.FormatInt(seq, 10) {
		t.Fatalf("NOTIFY after stop: %v, %v; want %d", n, err, seq)
	}
	select {
	case got := <-local:
		t.Fatalf("OnCommit called with %d after stop", got)
	default:
	}
}

// A process that stops closes its pool right after its last commit; with
// FlushAnnouncements first, the NOTIFY of that commit is still sent.
func TestFlushAnnouncementsBeforeClose(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	listener, err := pgx.Connect(ctx, pool.Config().ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, "LISTEN "+pgx.Identifier{db.EventsChannel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	var seq int64
	err = db.InTx(ctx, pool, func(tx pgx.Tx) error {
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
	if n.Payload != strconv.FormatInt(seq, 10) {
		t.Fatalf("NOTIFY payload %q, want %d", n.Payload, seq)
	}
}
