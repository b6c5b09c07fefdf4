package db

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The steps that end together are ended together under load (group
// commit, txgroups.go), as they start (starts.go): the ends that neither
// enqueue the next job nor create a diff, among them the end of every
// message answered with text. A group queues every end's first batch (the
// locks, the reply's rows, the job's completion), sends them in one batch
// with BEGIN, and the rest of every end with COMMIT: two round trips and
// one commit for the group instead of for each step.
//
// When a statement of the group fails (a message gone since its step
// began, say), or it cannot commit, the group is rolled back and each of
// its steps ends alone, as before: an end is idempotent, its rows keyed.
// A traced step ends alone (txGroups.do).
const (
	// As for starts (starts.go).
	maxEnding       = 2
	maxEndGroup     = 64
	endGroupTimeout = 30 * time.Second
)

// ending is a step to end and, once it ran, how it ended.
type ending struct {
	ctx context.Context
	t   *Turn
	e   TurnEnd

	err error
}

var poolEndings sync.Map // *pgxpool.Pool → *txGroups[*ending]

func endingsOf(pool *pgxpool.Pool) *txGroups[*ending] {
	return groupsOf[*ending](&poolEndings, pool, maxEnding, maxEndGroup)
}

// PoolEnds counts the steps ended on pool, by how (GroupStats): the ends
// that enqueue a job or create a diff count as alone.
func PoolEnds(pool *pgxpool.Pool) GroupStats { return endingsOf(pool).statsNow() }

// groupable reports whether e can end in a group: its transaction is two
// round trips whatever the others do.
func (e TurnEnd) groupable() bool { return e.Diff == nil && e.Enqueue == nil && !e.IfJobEnded }

// endStep ends en, with others when they wait too.
func (s *Store) endStep(pool *pgxpool.Pool, en *ending) error {
	alone := func(en *ending) { en.err = s.endAlone(en.ctx, en.t, en.e) }
	if endingsOf(pool).do(en.ctx, en, alone, func(group []*ending) []bool { return endGroup(s, group) }) == leftWaiting {
		return wrap(en.ctx.Err(), "end step")
	}
	return en.err
}

// endGroup ends the steps of group in one transaction and returns which it
// ended.
func endGroup(s *Store, group []*ending) (ran []bool) {
	ran = make([]bool, len(group))
	// In the order of their sessions, then messages: each end takes its
	// session's key share before its message, and a project's delete locks
	// the project's sessions in id order before their messages; ends taken
	// in the order of their messages could hold one session's key share and
	// wait for another's while the delete holds that one and waits for the
	// first (docs/reliability.md, lock order).
	ens, index := groupMembers(group, func(en *ending) string { return en.t.Session.ID + "/" + en.t.Message.ID },
		func(en *ending) context.Context { return en.ctx }, true)
	if len(ens) == 1 {
		ens[0].err = s.endAlone(ens[0].ctx, ens[0].t, ens[0].e)
		ran[index[0]] = true
	}
	if len(ens) < 2 {
		return ran
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ens[0].ctx), endGroupTimeout)
	defer cancel()
	ended := make([]bool, len(ens))
	err := inGroupTx(ctx, s.Pool, func(tx pgx.Tx) error {
		finishes := make([]func() (bool, error), len(ens))
		for i, en := range ens {
			var err error
			if finishes[i], err = queueEnd(ctx, tx, en.t, en.e); err != nil {
				return err
			}
		}
		for i, finish := range finishes {
			var err error
			if ended[i], err = finish(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return ran // each ends alone
	}
	for i, en := range ens {
		if ended[i] {
			endsOf(s.Pool).count(en.e.Status)
		}
		ran[index[i]] = true
	}
	return ran
}
