package db

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The steps that start together are started together under load (group
// commit, txgroups.go), as submissions are stored (submissions.go). A
// group's transaction sends every message's start (StartTurn's UPDATE) in
// one batch with BEGIN, then what each start queues (its job_status, its
// memory read) with COMMIT: two round trips and one commit for the group
// instead of for each step (docs/benchmarks.md, sixteenth round).
//
// A group starts only what would start alone without a failure: when one of
// its statements fails, or it cannot commit, each of its steps starts alone
// (a start is idempotent: its UPDATE keeps a running message's status and
// base commit, and its queued writes were rolled back). A message gone, or
// waiting for an earlier one, is answered so from the group as it would be
// alone. A traced step (its span sampled) starts alone (txGroups.do).
const (
	// Two groups of up to 64, as for submissions: with two, the next group
	// forms while one runs. Four or eight at once, tried for ends, did no
	// better in the 500-session row (docs/benchmarks.md, sixteenth round).
	maxStarting   = 2
	maxStartGroup = 64
	// startGroupTimeout bounds a group's transaction, which runs on after
	// the job of the step that leads it has ended: the others wait for it.
	startGroupTimeout = 30 * time.Second
)

// start is a step to start and, once it ran, how it started.
type start struct {
	ctx       context.Context
	messageID string
	inOrder   bool
	also      []func(pgx.Tx, *Turn) error

	t   Turn
	err error
}

var poolStarts sync.Map // *pgxpool.Pool → *txGroups[*start]

func startsOf(pool *pgxpool.Pool) *txGroups[*start] {
	return groupsOf[*start](&poolStarts, pool, maxStarting, maxStartGroup)
}

// PoolStarts counts the steps started on pool, by how (GroupStats).
func PoolStarts(pool *pgxpool.Pool) GroupStats { return startsOf(pool).statsNow() }

// startStep starts st, with others when they wait too.
func (s *Store) startStep(pool *pgxpool.Pool, st *start) (Turn, error) {
	alone := func(st *start) { st.t, st.err = s.startAlone(st) }
	if startsOf(pool).do(st.ctx, st, alone, func(group []*start) []bool { return startGroup(s, group) }) == leftWaiting {
		return Turn{}, wrap(st.ctx.Err(), "start message")
	}
	return st.t, st.err
}

// startAlone starts st in a transaction of its own.
func (s *Store) startAlone(st *start) (Turn, error) {
	var t Turn
	err := InTx(st.ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		if t, err = startTurn(st.ctx, tx, st.messageID, st.inOrder); err != nil {
			return err
		}
		for _, f := range st.also {
			if err := f(tx, &t); err != nil {
				return err
			}
		}
		return nil
	})
	return t, err
}

// startGroup starts the steps of group in one transaction and returns which
// it started.
func startGroup(s *Store, group []*start) (ran []bool) {
	ran = make([]bool, len(group))
	sts, index := groupMembers(group, func(st *start) string { return st.messageID }, func(st *start) context.Context { return st.ctx }, true)
	if len(sts) == 1 {
		sts[0].t, sts[0].err = s.startAlone(sts[0])
		ran[index[0]] = true
	}
	if len(sts) < 2 {
		return ran
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(sts[0].ctx), startGroupTimeout)
	defer cancel()
	turns := make([]Turn, len(sts))
	errs := make([]error, len(sts))
	err := inGroupTx(ctx, s.Pool, func(tx pgx.Tx) error {
		// The sessions' key shares first, in id order, as a step's end and
		// a project's delete take them before the messages: the UPDATEs
		// below lock messages of several sessions, which a delete could
		// otherwise hold one of while it waits for another.
		ids := make([]string, len(sts))
		for i, st := range sts {
			ids[i] = st.messageID
		}
		if err := later(ctx, tx, holdSessionsOfSQL, ids); err != nil {
			return wrap(err, "hold sessions")
		}
		reads := make([]func() error, len(sts))
		for i, st := range sts {
			reads[i] = rowLater(ctx, tx, startSQL, []any{st.messageID, plumbing.ZeroHash.String(), st.inOrder}, func(r pgx.Row) error {
				turns[i], errs[i] = scanStart(r, st.inOrder)
				if pgErr := (*pgconn.PgError)(nil); errors.As(errs[i], &pgErr) {
					return errs[i] // the statement failed: the group does
				}
				return nil
			})
		}
		for i := range sts {
			if err := reads[i](); err != nil {
				return err
			}
			if errs[i] != nil && !errors.Is(errs[i], ErrTurnGone) && !errors.Is(errs[i], ErrEarlierMessage) {
				return errs[i]
			}
		}
		for i, st := range sts {
			if errs[i] != nil {
				continue
			}
			for _, f := range st.also {
				if err := f(tx, &turns[i]); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return ran // each starts alone
	}
	for i, st := range sts {
		st.t, st.err = turns[i], errs[i]
		ran[index[i]] = true
	}
	return ran
}
