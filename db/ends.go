package db

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The steps that end together are ended together under load (group
// commit, txgroups.go), as they start (starts.go). A group queues every
// end's first batch (the locks, the reply's rows, the job's completion),
// sends them in one batch with BEGIN, and the rest of every end with
// COMMIT: two round trips and one commit for the group instead of for each
// step. The ends that enqueue the next job (the VibeCoder's with a patch
// enqueues the Evaluator) insert their jobs together, in one statement
// after every end's writes (River's InsertManyTx), and the ends that create
// a diff (the Evaluator's approval) send their inserts together too, in
// that statement's round trip or one of their own, and write the rest of
// their ends (which needs the diff's id) when the rows come back
// (settleEnds): one more round trip for the group, still one BEGIN and one
// commit. An end with a diff
// holds its project's key share before its session's, as it does alone,
// and a project's delete locks the project before its sessions: so a group
// holds the projects of all its diffs (in id order) before any session,
// else it could hold one of a project's sessions for an end without a diff
// and wait for the project for another's diff while the delete held the
// project and waited for that session (docs/reliability.md, lock order).
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

// PoolEnds counts the steps ended on pool, by how (GroupStats).
func PoolEnds(pool *pgxpool.Pool) GroupStats { return endingsOf(pool).statsNow() }

// groupable reports whether e can end in a group: all but the orphan
// sweep's, which end a message only if its job ended (IfJobEnded), rare and
// off the path of a message's steps.
func (e TurnEnd) groupable() bool { return !e.IfJobEnded }

// endStep ends en, with others when they wait too.
func (s *Store) endStep(pool *pgxpool.Pool, en *ending) error {
	alone := func(en *ending) { en.err = s.endAlone(en.ctx, en.t, en.e) }
	if endingsOf(pool).do(en.ctx, en, alone, func(group []*ending) []bool { return endGroup(s, group) }) == leftWaiting {
		return wrap(en.ctx.Err(), "end step")
	}
	return en.err
}

// diffProjects are the projects of the ends in ens that create a diff, in
// id order, each once.
func diffProjects(ens []*ending) []string {
	var out []string
	for _, en := range ens {
		if en.e.Diff != nil {
			out = append(out, en.t.Session.ProjectID)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
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
		if err := holdProjects(ctx, tx, diffProjects(ens)); err != nil {
			return err
		}
		finishes := make([]func() (bool, *laterEnd, error), len(ens))
		for i, en := range ens {
			var err error
			if finishes[i], err = queueEnd(ctx, tx, en.t, en.e); err != nil {
				return err
			}
		}
		rest := make([]*laterEnd, len(ens))
		for i, finish := range finishes {
			var err error
			if ended[i], rest[i], err = finish(); err != nil {
				return err
			}
		}
		return settleEnds(tx, rest)
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
