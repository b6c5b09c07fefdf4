package db

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/domain"
)

// Submissions of messages are stored in groups under load (group commit,
// txgroups.go). A pool stores at most maxSubmitting groups at once; a
// submission that arrives when one is free is stored at once, alone, as
// before (two round trips). One that arrives when none is free waits, and
// when a group ends, the first of those waiting stores itself and the others
// (up to maxSubmitGroup) in one transaction: the checks go with BEGIN and one River
// insert of all their jobs, the messages and their events with COMMIT. In
// a burst, BEGIN, COMMIT (and its WAL flush), River's insert and its
// notification, and the round trips are then the group's rather than each
// message's; the checks, rows and events stay one statement per message
// (docs/benchmarks.md, "Ninth round").
//
// A group stores only what would be stored alone without a question. When
// one of its sessions is missing or one of its ids is taken (a repeat), the
// transaction is rolled back, those submissions are stored alone (where
// SubmitMessage answers repeats and missing sessions) and the others are
// tried once more as a group; when a group fails otherwise, each of its
// submissions is stored alone, outside the limit, as before: also when
// River's insert panics (the panic is then the group's failure, and only a
// submission whose insert panics alone panics, in its own request). An id
// twice in one group goes alone after it, as a repeat of the first.
//
// A request that is traced (its span sampled) is stored alone: a group's
// transaction and River's insert run in the context of its first
// submission, and otelriver links every job it inserts to that context's
// trace, which would put the others' jobs in a stranger's trace. With
// tracing on and OpenTelemetry's default sampler every request is sampled,
// so grouping needs tracing off or a sampling ratio (OTEL_TRACES_SAMPLER). The
// group's jobs are inserted with the enqueue of its first submission: the
// submissions to one pool in a process come from the same API server and
// River client.
const (
	// maxSubmitting bounds the groups a pool stores at once: with two, the
	// next group forms while one is stored. Two groups of up to 64 did
	// better in the 500-session row than groups of 16 or four at once
	// (docs/benchmarks.md, ninth round). Jobs' transactions still go first
	// (slots.go).
	maxSubmitting  = 2
	maxSubmitGroup = 64
	// submitGroupTimeout bounds a group's transaction, which runs on after
	// the request of the submission that stores it has ended (its client
	// left): the others wait for it.
	submitGroupTimeout = 30 * time.Second
)

// submission is a message to store and, once it ran, how it was stored.
type submission struct {
	ctx       context.Context
	sessionID string // as the client sent it
	m         newMessage
	enqueue   Enqueue

	out domain.MessageAccepted
	err error
}

// SubmissionStats counts a pool's submissions of messages by how they were
// stored: Alone, with a transaction of their own (a free place, a group of
// one, a traced request); Grouped, with others; Fallback, alone after their
// group could not store them (a repeat, a missing session, a failure).
type SubmissionStats = GroupStats

// PoolSubmissions returns the submission statistics of pool.
func PoolSubmissions(pool *pgxpool.Pool) SubmissionStats {
	return submissionsOf(pool).statsNow()
}

var poolSubmissions sync.Map // *pgxpool.Pool → *txGroups[*submission]

func submissionsOf(pool *pgxpool.Pool) *txGroups[*submission] {
	return groupsOf[*submission](&poolSubmissions, pool, maxSubmitting, maxSubmitGroup)
}

// submit stores sub: at once and alone when a group may start, else with
// the others waiting.
func (s *Store) submit(pool *pgxpool.Pool, sub *submission) (domain.MessageAccepted, error) {
	alone := func(sub *submission) { sub.out, sub.err = s.submitAlone(sub) }
	if submissionsOf(pool).do(sub.ctx, sub, alone, func(group []*submission) []bool { return storeGroup(s, group) }) == leftWaiting {
		return domain.MessageAccepted{}, wrap(sub.ctx.Err(), "store message")
	}
	return sub.out, sub.err
}

// storeGroup stores the submissions of group: a group of one alone, more
// in one transaction (storeTogether), tried twice at most. It returns which
// it stored; the others are stored alone.
func storeGroup(s *Store, group []*submission) (stored []bool) {
	stored = make([]bool, len(group))
	// A repeat, or a submission whose request has ended, is stored alone.
	subs, index := groupMembers(group, func(sub *submission) string { return sub.m.id.String() }, func(sub *submission) context.Context { return sub.ctx }, false)
	at := make(map[*submission]int, len(subs))
	for i, sub := range subs {
		at[sub] = index[i]
	}
	for range 2 {
		if len(subs) == 1 {
			subs[0].out, subs[0].err = s.submitAlone(subs[0])
			stored[at[subs[0]]] = true
		}
		if len(subs) < 2 {
			return stored
		}
		var ok bool
		if subs, ok = storeTogether(s, subs); ok {
			for _, sub := range subs {
				stored[at[sub]] = true
			}
			return stored
		}
	}
	return stored
}

// storeTogether stores subs in one transaction and returns them. When one
// of them is to be stored alone (its session missing, its id taken), it
// stores none and returns the others, to try again; when the transaction
// fails otherwise, none and nothing.
func storeTogether(s *Store, subs []*submission) (again []*submission, ok bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(subs[0].ctx), submitGroupTimeout)
	defer cancel()
	out := make([]domain.MessageAccepted, len(subs))
	msgs := make([]newMessage, len(subs))
	// groupTx and not inGroupTx: the group waits for its sessions' locks
	// as a submission alone does. They are held only by other submissions,
	// the other group's among them, and a lock timeout made whole groups
	// fall back under load.
	err := groupTx(ctx, s.Pool, func(tx pgx.Tx) error {
		// The sessions' locks in one order first: each check takes its
		// own again (they are re-entrant), and two groups taking them in
		// their submissions' orders could deadlock.
		keys := make([]int64, len(subs))
		for i, sub := range subs {
			keys[i] = sessionLock(sub.m.session)
		}
		slices.Sort(keys)
		if err := later(ctx, tx, `SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) WITH ORDINALITY AS u(k, i) ORDER BY i`, slices.Compact(keys)); err != nil {
			return wrap(err, "lock sessions")
		}
		ids := make([]string, len(subs))
		for i, sub := range subs {
			msgs[i] = sub.m
			msgs[i].checkLater(ctx, tx)
			ids[i] = sub.m.id.String()
		}
		jobs, err := subs[0].enqueue(ctx, tx, ids)
		for i := range msgs {
			if rerr := msgs[i].read(); err == nil {
				err = rerr
			}
		}
		switch {
		case err != nil:
			return err
		case len(jobs) != len(ids):
			return fmt.Errorf("enqueue returned %d job ids for %d messages", len(jobs), len(ids))
		}
		for i := range msgs {
			if msgs[i].found != nil || msgs[i].exists {
				return errNotAlone
			}
		}
		for i := range msgs {
			if out[i], err = msgs[i].store(ctx, tx, jobs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, errNotAlone) {
		for i, sub := range subs {
			if msgs[i].found == nil && !msgs[i].exists {
				again = append(again, sub)
			}
		}
		return again, false
	}
	if err != nil {
		return nil, false
	}
	for i, sub := range subs {
		sub.out = out[i]
	}
	return subs, true
}

// errNotAlone rolls back a group that holds a submission to be stored alone.
var errNotAlone = errors.New("a submission of the group is to be stored alone")
