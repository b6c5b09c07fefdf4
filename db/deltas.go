package db

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/domain/event"
)

// A model streams its text for seconds, and a step writes it as a
// vibecode_delta every DeltaInterval (75 ms): each a transaction of its own
// (BEGIN, the message's key share, the event, COMMIT and its WAL flush)
// while the answer streams. Hundreds of answers streaming at once write
// thousands a second, and the transactions, more than the rows, were most
// of PostgreSQL's work for them (docs/benchmarks.md, twenty-third round).
// Under load they are written in groups (group commit, txgroups.go), as
// steps are started and ended: one transaction, one round trip with its
// COMMIT, for the deltas that wait.
//
// A group writes what each delta would alone: a delta whose message is gone
// writes nothing and returns ErrTurnGone. When a statement of the group
// fails, or it cannot commit, each delta is written alone. A step's deltas
// are written one after another (the batcher waits for each), so a group
// holds at most one of a message and their order is the stream's.
const (
	// Two groups of up to 64, as for starts and ends.
	maxDeltaWriting = 2
	maxDeltaGroup   = 64
	// deltaGroupTimeout bounds a group's transaction, which runs on for the
	// others if the step that leads it ends.
	deltaGroupTimeout = 30 * time.Second
)

// delta is a vibecode_delta to write and, once it ran, how it went.
type delta struct {
	ctx context.Context
	t   *Turn
	e   event.VibecodeDelta
	err error
}

var poolDeltas sync.Map // *pgxpool.Pool → *txGroups[*delta]

func deltasOf(pool *pgxpool.Pool) *txGroups[*delta] {
	return groupsOf[*delta](&poolDeltas, pool, maxDeltaWriting, maxDeltaGroup)
}

// PoolDeltas counts the vibecode_delta events written on pool, by how
// (GroupStats).
func PoolDeltas(pool *pgxpool.Pool) GroupStats { return deltasOf(pool).statsNow() }

// EmitDelta emits a vibecode_delta of t's message while the message exists,
// holding it until COMMIT as a step's other writes do (a DELETE of its
// session or project waits, and its session_cleared or project_deleted
// comes after the delta): text of a deleted message is not sent after its
// deletion. When the message is gone it writes nothing and returns
// ErrTurnGone, for the step to stop.
func (s *Store) EmitDelta(ctx context.Context, t *Turn, agent string, iteration int, text string) error {
	d := &delta{ctx: ctx, t: t, e: event.VibecodeDelta{
		SessionID: t.Session.ID, MessageID: t.Message.ID, TraceID: t.Message.TraceID,
		Agent: agent, Iteration: iteration, Delta: text,
	}}
	pool, ok := s.Pool.(*pgxpool.Pool)
	if !ok {
		return s.emitDeltaAlone(d)
	}
	alone := func(d *delta) { d.err = s.emitDeltaAlone(d) }
	if deltasOf(pool).do(ctx, d, alone, func(group []*delta) []bool { return deltaGroup(s, group) }) == leftWaiting {
		return wrap(ctx.Err(), "emit vibecode_delta")
	}
	return d.err
}

// emitDeltaAlone writes d in a transaction of its own.
func (s *Store) emitDeltaAlone(d *delta) error {
	return InTx(d.ctx, s.Pool, func(tx pgx.Tx) error {
		if err := later(d.ctx, tx, holdMessageSQL, d.t.Message.ID); err != nil {
			return wrap(err, "lock message")
		}
		_, err := emit(d.ctx, tx, emitIfMessageSQL, d.t.Session.ProjectID, d.e, d.t.Message.ID)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrTurnGone
		}
		return err
	})
}

// deltaGroup writes the deltas of group in one transaction and returns which
// it wrote.
func deltaGroup(s *Store, group []*delta) (ran []bool) {
	ran = make([]bool, len(group))
	ds, index := groupMembers(group, func(d *delta) string { return d.t.Message.ID }, func(d *delta) context.Context { return d.ctx }, true)
	if len(ds) == 1 {
		ds[0].err = s.emitDeltaAlone(ds[0])
		ran[index[0]] = true
	}
	if len(ds) < 2 {
		return ran
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ds[0].ctx), deltaGroupTimeout)
	defer cancel()
	gone := make([]bool, len(ds))
	err := inGroupTx(ctx, s.Pool, func(tx pgx.Tx) error {
		et, ok := tx.(*eventTx)
		if !ok {
			return errors.New("a group's transaction is not InTx's")
		}
		// The sessions' key shares first, in id order, then the messages',
		// as a group of starts takes them (a project's delete takes them
		// before the messages); then the events, so that no statement of
		// emitMarker's waits on a row lock (holdMessageSQL).
		ids := make([]string, len(ds))
		for i, d := range ds {
			ids[i] = d.t.Message.ID
		}
		if err := later(ctx, tx, holdSessionsOfSQL, ids); err != nil {
			return wrap(err, "hold sessions")
		}
		for _, d := range ds {
			if err := later(ctx, tx, holdMessageSQL, d.t.Message.ID); err != nil {
				return wrap(err, "lock message")
			}
		}
		// The events go with COMMIT: the group waits for nothing they say.
		for i, d := range ds {
			name, raw, err := encodeEvent(d.e)
			if err != nil {
				return err
			}
			projectID := d.t.Session.ProjectID
			qq := &pgx.QueuedQuery{SQL: emitIfMessageSQL, Arguments: []any{projectID, name, raw, seqLockBase, EventsChannel, true, d.t.Message.ID}}
			qq.QueryRow(func(r pgx.Row) error {
				var seq int64
				err := r.Scan(&seq, nil, nil)
				if errors.Is(err, pgx.ErrNoRows) {
					gone[i] = true
					return nil
				}
				if err != nil {
					return wrap(err, "write "+name+" event")
				}
				et.written(Event{Seq: seq, ProjectID: projectID, Name: name, Payload: raw})
				traceEvent(d.ctx, name, seq)
				return nil
			})
			et.queued = append(et.queued, qq)
		}
		return nil
	})
	if err != nil {
		return ran // each is written alone
	}
	for i, d := range ds {
		if gone[i] {
			d.err = ErrTurnGone
		}
		ran[index[i]] = true
	}
	return ran
}
