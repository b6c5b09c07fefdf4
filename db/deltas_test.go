package db_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain"
)

// emittingDeltas writes a vibecode_delta of each of rs ("text of" its
// message id), each in a goroutine of its own; written(i) waits for rs[i]'s
// and returns its error.
func (s *steps) emittingDeltas(rs []*running) (written func(i int) error) {
	done := make([]chan error, len(rs))
	for i, r := range rs {
		done[i] = make(chan error, 1)
		go func() {
			done[i] <- s.store.EmitDelta(context.Background(), &r.turn, domain.AgentVibeCoder, 1, "text of "+r.m.MessageID)
		}()
	}
	return func(i int) error { return wait(s.t, done[i]) }
}

// moreConns gives the pool room for the lockers' transactions and the held
// deltas' beside the group's and the test's own reads.
func moreConns(c *pgxpool.Config) { c.MaxConns = 8 }

// deltaTexts are the vibecode_delta events written for the message id, their
// text in seq order.
func (s *steps) deltaTexts(id string) []string {
	s.t.Helper()
	rows, err := s.pool.Query(context.Background(), `SELECT payload->>'delta' FROM events
		WHERE name = 'vibecode_delta' AND payload->>'message_id' = $1 ORDER BY seq`, id)
	if err != nil {
		s.t.Fatal(err)
	}
	texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		s.t.Fatal(err)
	}
	return texts
}

// lockMessages locks the rows of rs' messages until unlock (holdLocks).
func (s *steps) lockMessages(rs []*running) (unlock func()) {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.m.MessageID
	}
	return holdLocks(s.t, s.pool, `SELECT 1 FROM messages WHERE id = ANY($1::uuid[]) FOR UPDATE`, ids)
}

// letHeldGo lets two held deltas go one after the other: the first's end
// hands the deltas waiting their group, and the second is let go only once
// they are in it (both at once could hand a second waiting delta a
// transaction of its own, as the first's leader had not taken it yet).
func (s *steps) letHeldGo(unlock []func(), written func(int) error) {
	s.t.Helper()
	unlock[0]()
	if err := written(0); err != nil {
		s.t.Fatalf("the first held delta: %v", err)
	}
	s.waitFor(func() bool { return db.PoolDeltas(s.pool).Waiting == 0 }, "the waiting deltas to go in one group")
	unlock[1]()
	if err := written(1); err != nil {
		s.t.Fatalf("the second held delta: %v", err)
	}
}

// Deltas written while both places for them are taken wait, and go in one
// transaction, in the batch with its COMMIT: each message its own event with
// its text; a message deleted meanwhile (its session cleared) gets none and
// its step is told ErrTurnGone, as alone.
func TestDeltasThatWaitAreWrittenTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSteps(t, moreConns)
	held := s.startedSteps("held", 2)
	waiting := s.startedSteps("together", 4)
	gone := waiting[2]
	if err := s.store.ClearSession(ctx, gone.session.ID); err != nil {
		t.Fatal(err)
	}

	// The held two take both places and wait there for their messages'
	// rows, which another connection holds.
	unlock := []func(){s.lockMessages(held[:1]), s.lockMessages(held[1:])}
	heldWritten := s.emittingDeltas(held)
	waitForLockWaiters(t, s.pool, 2)
	written := s.emittingDeltas(waiting)
	s.waitFor(func() bool { return db.PoolDeltas(s.pool).Waiting == len(waiting) }, "the deltas to wait")
	before := s.counted.count()
	s.letHeldGo(unlock, heldWritten)
	for i, r := range waiting {
		err := written(i)
		if r == gone {
			if !errors.Is(err, db.ErrTurnGone) {
				t.Errorf("the gone message's delta: %v, want ErrTurnGone", err)
			}
			if texts := s.deltaTexts(r.m.MessageID); len(texts) != 0 {
				t.Errorf("the gone message got deltas %q", texts)
			}
			continue
		}
		if err != nil {
			t.Fatalf("delta of %s: %v", r.m.MessageID, err)
		}
		if texts := s.deltaTexts(r.m.MessageID); len(texts) != 1 || texts[0] != "text of "+r.m.MessageID {
			t.Errorf("message %s: deltas %q, want its text once", r.m.MessageID, texts)
		}
	}
	for _, r := range held {
		if texts := s.deltaTexts(r.m.MessageID); len(texts) != 1 {
			t.Errorf("held message %s: deltas %q, want its text once", r.m.MessageID, texts)
		}
	}

	// The waiting four went in one batch ending in COMMIT; the held two
	// alone, each with its COMMIT.
	var groups []string
	for _, b := range s.counted.containing(before, "vibegrapher:emit") {
		if strings.Count(b, "vibegrapher:emit") > 1 {
			groups = append(groups, b)
		}
	}
	if len(groups) != 1 || strings.Count(groups[0], "vibegrapher:emit") != len(waiting) || !strings.HasSuffix(strings.ToLower(groups[0]), "commit") {
		t.Errorf("the waiting deltas went in batches %q, want one of %d with COMMIT", groups, len(waiting))
	}
	if st := db.PoolDeltas(s.pool); st != (db.GroupStats{Alone: 2, Grouped: int64(len(waiting))}) {
		t.Errorf("deltas counted %+v, want the held two alone and the %d waiting grouped", st, len(waiting))
	}
}

// A group whose message row another transaction holds past the group's lock
// timeout is rolled back, and each of its deltas is written alone: once
// each, the one whose row was held when the holder lets it go.
func TestAGroupOfDeltasThatWaitsTooLongWritesEachAlone(t *testing.T) {
	t.Parallel()
	s := newSteps(t, moreConns)
	held := s.startedSteps("held", 2)
	waiting := s.startedSteps("together", 3)
	unlockHeld := []func(){s.lockMessages(held[:1]), s.lockMessages(held[1:])}
	unlockOne := s.lockMessages(waiting[1:2])
	heldWritten := s.emittingDeltas(held)
	waitForLockWaiters(t, s.pool, 2)
	written := s.emittingDeltas(waiting)
	s.waitFor(func() bool { return db.PoolDeltas(s.pool).Waiting == len(waiting) }, "the deltas to wait")
	s.letHeldGo(unlockHeld, heldWritten)
	for _, i := range []int{0, 2} {
		if err := written(i); err != nil {
			t.Fatalf("delta %d: %v", i, err)
		}
	}
	unlockOne()
	if err := written(1); err != nil {
		t.Fatalf("the held row's delta: %v", err)
	}
	for _, r := range waiting {
		if texts := s.deltaTexts(r.m.MessageID); len(texts) != 1 || texts[0] != "text of "+r.m.MessageID {
			t.Errorf("message %s: deltas %q, want its text once", r.m.MessageID, texts)
		}
	}
	if n := s.counted.failures("55P03"); n != 1 { // lock_not_available
		t.Errorf("%d statements gave up on a lock, want the group's one", n)
	}
	if st := db.PoolDeltas(s.pool); st != (db.GroupStats{Alone: 2, Fallback: int64(len(waiting))}) {
		t.Errorf("deltas counted %+v, want the held two alone and the %d of the rolled back group alone after it", st, len(waiting))
	}
}
