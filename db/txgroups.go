package db

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"
)

// txGroups runs transactions of one kind in groups under load (group
// commit): at most maxRunning at once; one that comes when fewer run goes
// alone, as it would without grouping; one that comes when maxRunning run
// waits, and when one ends, the first waiting runs itself and the others
// waiting (up to maxGroup) in one transaction. BEGIN, COMMIT (and its WAL
// flush) and the round trips are then the group's rather than each one's.
type txGroups[M any] struct {
	maxRunning, maxGroup int

	mu      sync.Mutex
	waiting []*groupTurn[M]
	running int
	stats   GroupStats
}

// GroupStats counts the transactions of one kind that a pool's txGroups
// ran, by how: Alone, with a transaction of their own (one was free, its
// group had no other, or it was traced); Grouped, with others; Fallback,
// alone after their group could not run them. Waiting is how many wait for
// a group now.
type GroupStats struct {
	Waiting                  int
	Alone, Grouped, Fallback int64
}

// groupsOf returns the txGroups of pool in all (a map of pools to their
// queues of one kind), made with the given limits the first time.
func groupsOf[M any](all *sync.Map, pool *pgxpool.Pool, maxRunning, maxGroup int) *txGroups[M] {
	if q, ok := all.Load(pool); ok {
		return q.(*txGroups[M])
	}
	q, _ := all.LoadOrStore(pool, &txGroups[M]{maxRunning: maxRunning, maxGroup: maxGroup})
	return q.(*txGroups[M])
}

// statsNow returns q's statistics.
func (q *txGroups[M]) statsNow() GroupStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := q.stats
	st.Waiting = len(q.waiting)
	return st
}

// count counts n members run as how.
func (q *txGroups[M]) count(how groupOutcome, n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch how {
	case ranAlone:
		q.stats.Alone += int64(n)
	case ranInGroup:
		q.stats.Grouped += int64(n)
	case ranAfterGroup:
		q.stats.Fallback += int64(n)
	}
}

// groupTurn is a member waiting for a transaction.
type groupTurn[M any] struct {
	member M
	turn   chan bool // true: run the next group; false: its group ran
	// how its group ran it: ranInGroup, or ranAlone when no other member
	// ran; leftWaiting (the zero value below) when it did not run it.
	how groupOutcome
}

// How do ran a member.
type groupOutcome int

const (
	leftWaiting   groupOutcome = iota // its ctx ended while it waited: not run
	ranAlone                          // alone: a transaction was free, or its group had no other
	ranInGroup                        // by its group, with others
	ranAfterGroup                     // alone, after its group did not run it
)

// do runs m alone (alone) when a transaction may start now, else in a group
// (together), which runs the members it can and returns which those are; a
// member it did not run then runs alone, in its own goroutine. A member
// whose ctx ends while it waits leaves without running.
//
// A member whose ctx is traced (its span sampled) runs alone: a group's
// transaction runs in the context of its first member, and its statements
// (River's insert, which otelriver links to that context's trace) would go
// in a stranger's trace. With tracing on and OpenTelemetry's default
// sampler every request is sampled, so grouping needs tracing off or a
// sampling ratio (OTEL_TRACES_SAMPLER).
func (q *txGroups[M]) do(ctx context.Context, m M, alone func(M), together func([]M) []bool) groupOutcome {
	if trace.SpanContextFromContext(ctx).IsSampled() {
		alone(m)
		q.count(ranAlone, 1)
		return ranAlone
	}
	q.mu.Lock()
	if q.running < q.maxRunning {
		q.running++
		q.mu.Unlock()
		defer q.next()
		alone(m)
		q.count(ranAlone, 1)
		return ranAlone
	}
	gt := &groupTurn[M]{member: m, turn: make(chan bool, 1)}
	defer func() { q.count(gt.how, 1) }()
	q.waiting = append(q.waiting, gt)
	q.mu.Unlock()
	var lead bool
	select {
	case lead = <-gt.turn:
	case <-ctx.Done():
		if q.leave(gt) {
			gt.how = leftWaiting
			return leftWaiting
		}
		lead = <-gt.turn // taken into a group or handed the next one
	}
	if lead {
		q.runGroup(gt, together)
	}
	if gt.how == leftWaiting { // not run by its group
		gt.how = ranAfterGroup
		alone(m)
	}
	return gt.how
}

// runGroup runs the group first leads and hands the turn on, also when
// together panics: the others of the group and those waiting must not wait
// for ever.
func (q *txGroups[M]) runGroup(first *groupTurn[M], together func([]M) []bool) {
	group := q.group(first)
	defer func() {
		for _, other := range group[1:] {
			other.turn <- false
		}
		q.next()
	}()
	members := make([]M, len(group))
	for i, g := range group {
		members[i] = g.member
	}
	ran := together(members)
	n := 0
	for _, r := range ran {
		if r {
			n++
		}
	}
	for i, r := range ran {
		switch {
		case r && n == 1:
			group[i].how = ranAlone
		case r:
			group[i].how = ranInGroup
		}
	}
}

// leave takes gt out of the members waiting, when it still is one.
func (q *txGroups[M]) leave(gt *groupTurn[M]) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.Index(q.waiting, gt)
	if i < 0 {
		return false
	}
	q.waiting = slices.Delete(q.waiting, i, i+1)
	return true
}

// next hands the transaction that has ended to the first member waiting, or
// frees it.
func (q *txGroups[M]) next() {
	q.mu.Lock()
	if len(q.waiting) == 0 {
		q.running--
		q.mu.Unlock()
		return
	}
	first := q.waiting[0]
	q.waiting = q.waiting[1:]
	q.mu.Unlock()
	first.turn <- true
}

// group is first and the members waiting after it, up to maxGroup.
func (q *txGroups[M]) group(first *groupTurn[M]) []*groupTurn[M] {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(len(q.waiting), q.maxGroup-1)
	group := append([]*groupTurn[M]{first}, q.waiting[:n]...)
	q.waiting = q.waiting[n:]
	return group
}

// groupMembers returns the members of group a transaction can run together,
// with each one's index in group: one per key (a key twice is a repeat, run
// alone after it) and none whose ctx has ended (run alone, to fail with its
// ctx's error). With byKey they come in the order of their keys, so that
// two groups that lock their members' rows lock them in one order and
// cannot wait for each other; otherwise in the group's order.
func groupMembers[M any](group []M, key func(M) string, ctx func(M) context.Context, byKey bool) (members []M, index []int) {
	seen := make(map[string]bool, len(group))
	for i, m := range group {
		k := key(m)
		if seen[k] || ctx(m).Err() != nil {
			continue
		}
		seen[k] = true
		members, index = append(members, m), append(index, i)
	}
	if !byKey {
		return members, index
	}
	order := make([]int, len(members))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(key(members[a]), key(members[b])) })
	sorted, sortedIndex := make([]M, len(members)), make([]int, len(members))
	for i, o := range order {
		sorted[i], sortedIndex[i] = members[o], index[o]
	}
	return sorted, sortedIndex
}

// groupLockTimeout bounds what a group's transaction waits for a row lock:
// one member whose row another transaction holds (a commit's git work, a
// project's delete) would stop every member of its group and one of the
// two places of its kind. Past it the group fails and each member runs
// alone, where the one that waits waits as before.
const groupLockTimeout = "100ms"

// inGroupTx runs fn in a transaction of InTx for a group of steps (starts,
// ends): with groupLockTimeout, and a panic in fn (in one member's callback)
// rolls it back and returns as a failure (groupTx).
func inGroupTx(ctx context.Context, pool DB, fn func(pgx.Tx) error) error {
	return groupTx(ctx, pool, func(tx pgx.Tx) error {
		if err := later(ctx, tx, `SELECT set_config('lock_timeout', $1, true)`, groupLockTimeout); err != nil {
			return err
		}
		return fn(tx)
	})
}

// groupTx runs fn in a transaction of InTx for a group of members of other
// transactions. A panic in fn rolls it back and returns as a failure, so that
// each member runs alone and only the one at fault panics, in its own
// goroutine; it is logged with its stack, since a panic of the group's own
// code would otherwise show only as members run alone (GroupStats.Fallback).
func groupTx(ctx context.Context, pool DB, fn func(pgx.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			slog.Default().WarnContext(ctx, "a group's transaction panicked; its members run alone",
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if perr, ok := p.(error); ok {
				err = fmt.Errorf("a group's transaction panicked: %w", perr)
			} else {
				err = fmt.Errorf("a group's transaction panicked: %v", p)
			}
		}
	}()
	return InTx(ctx, pool, fn)
}
