package db_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
)

func TestEventsReadBack(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	a, b := uuid.NewString(), uuid.NewString()

	latest, err := db.LatestSeq(ctx, pool)
	if err != nil || latest != 0 {
		t.Fatalf("LatestSeq on an empty outbox = %d, %v", latest, err)
	}
	var seqs []int64
	err = db.InTx(ctx, pool, func(tx pgx.Tx) error {
		for i, p := range []string{a, b, a} {
			seq, err := db.Emit(ctx, tx, p, dbtest.Event{Name: "test_event", Payload: map[string]any{"i": i, "trace_id": "t"}})
			if err != nil {
				return err
			}
			seqs = append(seqs, seq)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A transaction that rolls back leaves no event behind.
	rolledBack := errors.New("roll back")
	err = db.InTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := db.Emit(ctx, tx, a, dbtest.Event{Name: "never"}); err != nil {
			return err
		}
		return rolledBack
	})
	if !errors.Is(err, rolledBack) {
		t.Fatal(err)
	}

	all, err := db.EventsAfter(ctx, pool, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].Seq != seqs[0] || all[2].Seq != seqs[2] || all[1].ProjectID != b || all[0].Name != "test_event" {
		t.Fatalf("EventsAfter(0) = %+v, want seqs %v", all, seqs)
	}
	if string(all[2].Payload) != `{"i": 2, "trace_id": "t"}` || all[0].CreatedAt.IsZero() {
		t.Fatalf("payload %s, created_at %v", all[2].Payload, all[0].CreatedAt)
	}
	if page, _ := db.EventsAfter(ctx, pool, seqs[0], 1); len(page) != 1 || page[0].Seq != seqs[1] {
		t.Fatalf("EventsAfter(first, limit 1) = %+v", page)
	}
	ofA, err := db.ProjectEventsAfter(ctx, pool, a, 0, 10)
	if err != nil || len(ofA) != 2 || ofA[0].Seq != seqs[0] || ofA[1].Seq != seqs[2] {
		t.Fatalf("ProjectEventsAfter(a) = %+v, %v", ofA, err)
	}
	if later, _ := db.ProjectEventsAfter(ctx, pool, a, seqs[0], 10); len(later) != 1 || later[0].Seq != seqs[2] {
		t.Fatalf("ProjectEventsAfter(a, first) = %+v", later)
	}
	if none, err := db.ProjectEventsAfter(ctx, pool, "not-a-uuid", 0, 10); err != nil || len(none) != 0 {
		t.Fatalf("malformed project id: %+v, %v", none, err)
	}
	// The rolled-back event took a seq: the latest is still the last committed.
	if latest, err := db.LatestSeq(ctx, pool); err != nil || latest != seqs[2] {
		t.Fatalf("LatestSeq = %d, %v; want %d", latest, err, seqs[2])
	}
}

func TestDeleteEventsBefore(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	p := uuid.NewString()
	for range 3 {
		if _, err := db.Emit(ctx, pool, p, dbtest.Event{Name: "e"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE events SET created_at = now() - interval '2 days' WHERE seq < (SELECT max(seq) FROM events)`); err != nil {
		t.Fatal(err)
	}
	n, err := db.DeleteEventsBefore(ctx, pool, time.Now().Add(-24*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("DeleteEventsBefore = %d, %v; want 2", n, err)
	}
	left, err := db.EventsAfter(ctx, pool, 0, 10)
	if err != nil || len(left) != 1 {
		t.Fatalf("left %+v, %v", left, err)
	}
}

func TestProjectExists(t *testing.T) {
	t.Parallel()
	store := &db.Store{Pool: dbtest.New(t)}
	ctx := context.Background()
	p, err := store.CreateProject(ctx, domain.NewProject{Name: "exists"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{p.ID, true},
		{uuid.NewString(), false},
		{"", false},
		{"not-a-uuid", false},
		{"'; DROP TABLE projects; --", false},
	} {
		got, err := db.ProjectExists(ctx, store.Pool, tc.id)
		if err != nil || got != tc.want {
			t.Errorf("ProjectExists(%q) = %v, %v; want %v", tc.id, got, err, tc.want)
		}
	}
}

// A deleted project is known by its project_deleted until the retention
// drops it; a live project, an unknown id and a malformed one have none.
func TestProjectDeletedSeq(t *testing.T) {
	t.Parallel()
	store := &db.Store{Pool: dbtest.New(t)}
	ctx := context.Background()
	kept, err := store.CreateProject(ctx, domain.NewProject{Name: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := store.CreateProject(ctx, domain.NewProject{Name: "gone"})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.DeleteProject(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	last, err := db.LatestSeq(ctx, store.Pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   string
		want int64
	}{
		{gone.ID, last},
		{kept.ID, 0},
		{uuid.NewString(), 0},
		{"not-a-uuid", 0},
	} {
		if got, err := db.ProjectDeletedSeq(ctx, store.Pool, tc.id); err != nil || got != tc.want {
			t.Errorf("ProjectDeletedSeq(%q) = %d, %v; want %d", tc.id, got, err, tc.want)
		}
	}
	if _, err := db.DeleteEventsBefore(ctx, store.Pool, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, err := db.ProjectDeletedSeq(ctx, store.Pool, gone.ID); err != nil || got != 0 {
		t.Errorf("after the retention: %d, %v", got, err)
	}
}

// TestEventsAfterNeverSkips is the property the realtime role relies on:
// concurrent writers commit out of seq order, and some roll back, yet a
// reader that follows "seq > last seen" never passes over an event that
// commits later, and is not held up by one that rolled back.
func TestEventsAfterNeverSkips(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	p := uuid.NewString()
	const writers, perWriter = 6, 25
	rolledBack := errors.New("roll back")

	var wg sync.WaitGroup
	var mu sync.Mutex
	committed := 0
	for range writers {
		wg.Go(func() {
			for range perWriter {
				err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
					if _, err := db.Emit(ctx, tx, p, dbtest.Event{Name: "e"}); err != nil {
						return err
					}
					// Hold the transaction open a little after taking a seq.
					time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
					if rand.IntN(5) == 0 {
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
				committed++
				mu.Unlock()
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	var seen []int64
	last := int64(0)
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true // one more read after the last commit
		default:
		}
		page, err := db.EventsAfter(ctx, pool, last, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			seen = append(seen, e.Seq)
			last = e.Seq
		}
	}
	all, err := db.EventsAfter(ctx, pool, 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != committed || len(seen) != len(all) {
		t.Fatalf("reader saw %d events, outbox has %d, want %d", len(seen), len(all), committed)
	}
	for i := range all {
		if seen[i] != all[i].Seq {
			t.Fatalf("reader saw seq %d at %d, outbox has %d", seen[i], i, all[i].Seq)
		}
	}
}

// TestReadersWaitForAWriterInFlight: an event committed after an earlier
// seq's transaction is not delivered, nor counted in LatestSeq, until that
// transaction ends; a rollback then releases it at once.
func TestReadersWaitForAWriterInFlight(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	p := uuid.NewString()
	emit := func(tx pgx.Tx) int64 {
		t.Helper()
		seq, err := db.Emit(ctx, tx, p, dbtest.Event{Name: "e"})
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	commitOne := func() int64 {
		t.Helper()
		var seq int64
		if err := db.InTx(ctx, pool, func(tx pgx.Tx) error { seq = emit(tx); return nil }); err != nil {
			t.Fatal(err)
		}
		return seq
	}
	first := commitOne()

	for _, end := range []string{"commit", "rollback"} {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		slow := emit(tx)
		fast := commitOne()
		if got, err := db.EventsAfter(ctx, pool, first, 10); err != nil || len(got) != 0 {
			t.Fatalf("%s: EventsAfter delivered %d events past seq %d, whose writer still runs (err %v)", end, len(got), slow, err)
		}
		if latest, err := db.LatestSeq(ctx, pool); err != nil || latest >= slow {
			t.Fatalf("%s: LatestSeq = %d, %v while seq %d is in flight", end, latest, err, slow)
		}
		want := []int64{slow, fast}
		if end == "commit" {
			err = tx.Commit(ctx)
		} else {
			err, want = tx.Rollback(ctx), []int64{fast}
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.EventsAfter(ctx, pool, first, 10)
		if err != nil || len(got) != len(want) || got[0].Seq != want[0] || got[len(got)-1].Seq != fast {
			t.Fatalf("%s: EventsAfter = %+v, %v; want seqs %v", end, got, err, want)
		}
		if latest, err := db.LatestSeq(ctx, pool); err != nil || latest != fast {
			t.Fatalf("%s: LatestSeq = %d, %v; want %d", end, latest, err, fast)
		}
		first = fast
	}
}
