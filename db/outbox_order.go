package db

import (
	"context"
	"time"
)

// Readers of the outbox deliver in seq order, and writers may commit out of
// it (see Emit). A missing seq below a visible one is either a transaction
// still in flight, which will commit or roll back, or one that rolled back.
// It is settled, and the events after it may be delivered, once its writer is
// known to have finished:
//
//  1. the seq was taken before the read that saw the gap (seqs are taken in
//     order, and a later one was already visible);
//  2. no Emit statement that started before that read is still running: the
//     writer has left the statement that took the seq and its lock;
//  3. then no one holds the lock on that seq: the writer's transaction ended;
//  4. then a fresh read decides: the row is there (committed) or it never
//     will be (rolled back).
//
// A gap that is not settled ends the batch; the writer's commit notification
// (or the next poll, after a rollback) reads again from there. The checks run
// only when a batch has a gap, so a quiet or ordered outbox costs one query
// as before. pg_stat_activity's query text must be tracked
// (track_activities, on by default) for check 2.

// contiguous reports whether events follow after with no missing seq.
func contiguous(after int64, events []Event) bool {
	for _, e := range events {
		if e.Seq != after+1 {
			return false
		}
		after = e.Seq
	}
	return true
}

// settledEvents returns the settled prefix of an outbox read that had gaps.
func settledEvents(ctx context.Context, q Querier, after int64, limit int, first []Event, readAt time.Time) ([]Event, error) {
	seen := first[len(first)-1].Seq // gaps below it were taken before readAt (1)
	running, err := emitsRunning(ctx, q, readAt)
	if err != nil || running {
		return cutAtGap(after, first), err
	}
	locked, err := lockedSeqs(ctx, q, after+1, seen) // (3)
	if err != nil {
		return cutAtGap(after, first), err
	}
	again, _, err := eventsAfter(ctx, q, after, limit) // (4)
	if err != nil {
		return nil, err
	}
	out := again[:0]
	prev := after
	for _, e := range again {
		// A gap [prev+1, e.Seq-1] is settled when all of it was taken
		// before the first read and none of it is locked.
		if e.Seq != prev+1 && (e.Seq-1 > seen || anyIn(locked, prev+1, e.Seq-1)) {
			break
		}
		out = append(out, e)
		prev = e.Seq
	}
	return out, nil
}

// cutAtGap is the part of events before the first missing seq.
func cutAtGap(after int64, events []Event) []Event {
	for i, e := range events {
		if e.Seq != after+1 {
			return events[:i]
		}
		after = e.Seq
	}
	return events
}

func anyIn(seqs []int64, lo, hi int64) bool {
	for _, s := range seqs {
		if s >= lo && s <= hi {
			return true
		}
	}
	return false
}

// emitsRunning reports whether an Emit statement that started before t is
// still running in this database.
func emitsRunning(ctx context.Context, q Querier, t time.Time) (bool, error) {
	var running bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'
			AND query_start <= $1 AND starts_with(query, $2))`, t, emitMarker).Scan(&running)
	return running, wrap(err, "check running event writers")
}

// lockedSeqs returns the seqs in [lo, hi] whose writers are still in their
// transactions.
func lockedSeqs(ctx context.Context, q Querier, lo, hi int64) ([]int64, error) {
	rows, err := q.Query(ctx, `SELECT k - $1 FROM (
			SELECT (l.classid::bigint << 32) | l.objid::bigint AS k FROM pg_locks l
			WHERE l.locktype = 'advisory' AND l.objsubid = 1
				AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())) a
		WHERE k BETWEEN $1 + $2 AND $1 + $3`, seqLockBase, lo, hi)
	if err != nil {
		return nil, wrap(err, "check event writers' locks")
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			return nil, wrap(err, "check event writers' locks")
		}
		out = append(out, s)
	}
	return out, wrap(rows.Err(), "check event writers' locks")
}

// settledSeq is the highest seq up to which the outbox is settled.
func settledSeq(ctx context.Context, q Querier) (int64, error) {
	var top int64
	var readAt time.Time
	if err := q.QueryRow(ctx, `SELECT coalesce(max(seq), 0), clock_timestamp() FROM events`).Scan(&top, &readAt); err != nil {
		return 0, wrap(err, "read latest event seq")
	}
	// A writer inside Emit (for microseconds) holds a seq that is not known
	// yet: wait for the statements that began before the read to end. Later
	// ones take seqs above top. A statement still running after giveUp is
	// stuck, and its seq is left to the readers' checks.
	giveUp := time.Now().Add(2 * time.Second)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		running, err := emitsRunning(ctx, q, readAt)
		if err != nil {
			return 0, err
		}
		if !running || time.Now().After(giveUp) {
			break
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(wait):
		}
	}
	locked, err := lockedSeqs(ctx, q, 1, top)
	if err != nil {
		return 0, err
	}
	for _, s := range locked {
		top = min(top, s-1)
	}
	return top, nil
}
