package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/domain/event"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// EventsChannel is the LISTEN/NOTIFY channel that carries the seq of every new
// event to the realtime processes.
const EventsChannel = "vibegrapher_events"

// Writers take no common lock: seq is taken at INSERT and the row becomes
// visible at COMMIT, so transactions may commit out of seq order, and a
// reader can see seq 8 while 7 is still in flight. Each writer therefore
// holds a transaction-scoped advisory lock on its own seq (seqLockBase+seq),
// taken in the statement that inserts the row, and readers deliver only the
// settled prefix of the outbox: they stop at a missing seq while its writer
// runs (outbox_order.go). Before, one global lock held until COMMIT made
// every event-writing transaction in the service wait for the previous one's
// commit: it was the limit on messages per second.
const seqLockBase int64 = 0x5647 << 48

// emitMarker names the Emit statement in pg_stat_activity (see emitsRunning).
const emitMarker = "/* vibegrapher:emit */"

// Event is one row of the outbox, as the realtime role delivers it.
type Event struct {
	Seq       int64           `json:"seq"`
	ProjectID string          `json:"project_id"`
	Name      string          `json:"name"`
	Payload   json.RawMessage `json:"payload"`
	CreatedAt time.Time       `json:"created_at"`
}

// Emit writes an event for project in the caller's transaction and notifies
// the realtime processes when it commits. Every event in the product goes
// through here (or QueueEvent); nothing is sent to clients that was not
// committed.
func Emit(ctx context.Context, q Querier, projectID string, e event.Event) (int64, error) {
	return emit(ctx, q, emitSQL, projectID, e)
}

// EmitIfProjectExists is Emit for a transaction that holds no row under the
// project, which DeleteProject could therefore delete meanwhile: a job that
// reports its status or streams text while its project is deleted. It
// writes nothing (seq 0) once the project is gone, and otherwise keeps the
// project's row from being deleted until the transaction ends (FOR KEY
// SHARE, as a foreign key would), so a DeleteProject running meanwhile
// waits and its project_deleted comes after the event. A client sees
// nothing of a project after its project_deleted.
//
// A transaction that locked a row under the project (a message, a run)
// needs none of this, and must not take it: DeleteProject locks the
// project before it deletes the rows under it, the opposite order.
func EmitIfProjectExists(ctx context.Context, q Querier, projectID string, e event.Event) (int64, error) {
	if err := later(ctx, q, holdProjectSQL, projectID); err != nil {
		return 0, wrap(err, "lock project")
	}
	seq, err := emit(ctx, q, emitIfProjectSQL, projectID, e)
	if errors.Is(err, pgx.ErrNoRows) { // no project, no row
		return 0, nil
	}
	return seq, err
}

func emit(ctx context.Context, q Querier, sql, projectID string, e event.Event, args ...any) (int64, error) {
	name, raw, err := encodeEvent(e)
	if err != nil {
		return 0, err
	}
	// One round trip: the row and the lock on its seq (taken before the
	// statement ends, so a reader that finds no Emit running and no lock
	// knows the writer has finished). In a transaction of InTx the
	// notification is sent after COMMIT; elsewhere it is queued in the
	// transaction, as PostgreSQL does, at the cost of its commit lock.
	et, deferred := q.(*eventTx)
	var seq int64
	err = q.QueryRow(ctx, sql, append([]any{projectID, name, raw, seqLockBase, EventsChannel, deferred}, args...)...).Scan(&seq, nil, nil)
	if err != nil {
		return 0, wrap(err, "write "+name+" event")
	}
	if deferred {
		et.written(Event{Seq: seq, ProjectID: projectID, Name: name, Payload: raw})
	}
	traceEvent(ctx, name, seq)
	return seq, nil
}

// QueueEvent is Emit for a caller that needs no seq: in a transaction of InTx
// the event is written with the transaction's next statement or its COMMIT,
// in the order of the writes (txqueue.go), and its error is that statement's.
func QueueEvent(ctx context.Context, q Querier, projectID string, e event.Event) error {
	et, ok := q.(*eventTx)
	if !ok {
		_, err := Emit(ctx, q, projectID, e)
		return err
	}
	name, raw, err := encodeEvent(e)
	if err != nil {
		return err
	}
	qq := &pgx.QueuedQuery{SQL: emitSQL, Arguments: []any{projectID, name, raw, seqLockBase, EventsChannel, true}}
	qq.QueryRow(func(r pgx.Row) error {
		var seq int64
		if err := r.Scan(&seq, nil, nil); err != nil {
			return wrap(err, "write "+name+" event")
		}
		et.written(Event{Seq: seq, ProjectID: projectID, Name: name, Payload: raw})
		traceEvent(ctx, name, seq)
		return nil
	})
	et.queued = append(et.queued, qq)
	return nil
}

// holdProject reports whether the project exists and, when it does, keeps
// its row from being deleted until the transaction ends, as
// EmitIfProjectExists does, for a transaction that emits through a caller's
// function.
func holdProject(ctx context.Context, q Querier, projectID string) (bool, error) {
	err := q.QueryRow(ctx, holdProjectSQL, projectID).Scan(nil)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, wrap(err, "lock project")
}

// emitSQL writes an event: the row, the lock on its seq and, unless $6, the
// notification.
const emitSQL = emitMarker + `
		WITH ins AS (
			INSERT INTO events (project_id, name, payload, created_at) VALUES ($1, $2, $3, clock_timestamp()) RETURNING seq)
		` + emitLockAndNotify

// holdProjectSQL and holdMessageSQL keep a project's or a user message's row
// from being deleted until the transaction ends (FOR KEY SHARE, as a
// foreign key would); a DeleteProject or ClearSession that holds it makes
// them wait, then find it gone. They go in a statement of their own before
// the event's (with it, in one round trip): a statement of emitMarker's
// waiting on a row lock would read as a writer in flight to the outbox's
// readers (emitsRunning), which would hold every project's delivery and
// X-Event-Seq behind it, for a seq it has not taken yet.
const (
	holdProjectSQL = `SELECT 1 FROM projects WHERE id = $1 FOR KEY SHARE`
	holdMessageSQL = `SELECT 1 FROM messages WHERE id = $1 AND role = 'user' FOR KEY SHARE`
	// holdSessionSQL is the session's key share that a step's writes and a
	// commit take before their messages (docs/reliability.md, lock order).
	holdSessionSQL = `SELECT 1 FROM sessions WHERE id = $1 FOR KEY SHARE`
	// holdSessionsOfSQL is the key shares of the sessions of the user
	// messages $1, in id order, that a group of steps' starts or of deltas
	// takes before their messages, as a project's delete takes them.
	holdSessionsOfSQL = `SELECT 1 FROM sessions WHERE id IN (SELECT session_id FROM messages WHERE id = ANY($1::uuid[]))
			ORDER BY id FOR KEY SHARE`
)

// emitIfProjectSQL is emitSQL that writes nothing (no row) when the project
// is gone (EmitIfProjectExists, after holdProjectSQL).
const emitIfProjectSQL = emitMarker + `
		WITH project AS (
			SELECT id FROM projects WHERE id = $1),
		ins AS (
			INSERT INTO events (project_id, name, payload, created_at)
			SELECT id, $2::text, $3::jsonb, clock_timestamp() FROM project RETURNING seq)
		` + emitLockAndNotify

// emitIfMessageSQL is emitSQL that writes nothing (no row) when the user
// message $7 is gone (EmitDelta, after holdMessageSQL).
const emitIfMessageSQL = emitMarker + `
		WITH message AS (
			SELECT 1 FROM messages WHERE id = $7 AND role = 'user' AND project_id = $1::uuid),
		ins AS (
			INSERT INTO events (project_id, name, payload, created_at)
			SELECT $1::uuid, $2::text, $3::jsonb, clock_timestamp() FROM message RETURNING seq)
		` + emitLockAndNotify

const emitLockAndNotify = `SELECT seq, pg_advisory_xact_lock($4 + seq)::text, CASE WHEN $6 THEN '' ELSE pg_notify($5, seq::text)::text END FROM ins`

func encodeEvent(e event.Event) (string, []byte, error) {
	name := e.EventName()
	raw, err := json.Marshal(e)
	if err != nil {
		return name, nil, fmt.Errorf("encode %s event: %w", name, err)
	}
	if len(raw) == 0 || raw[0] != '{' {
		return name, nil, fmt.Errorf("%s event payload must be a JSON object", name)
	}
	return name, raw, nil
}

// traceEvent shows an event in the trace of the request or job that emits it.
func traceEvent(ctx context.Context, name string, seq int64) {
	trace.SpanFromContext(ctx).AddEvent(name, trace.WithAttributes(attribute.Int64("seq", seq)))
}

// EmitJobStatus emits job_status for a project, unless the project was
// deleted (EmitIfProjectExists): a job that ends after its project's
// deletion is not reported after project_deleted.
func (s *Store) EmitJobStatus(ctx context.Context, projectID string, e event.JobStatus) error {
	return InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		_, err := EmitIfProjectExists(ctx, tx, projectID, e)
		return err
	})
}

// eventTx is a transaction of InTx: it remembers the events written in it,
// to announce them after COMMIT, and holds the writes queued to go with its
// next statement (txqueue.go).
type eventTx struct {
	pgx.Tx  // nil until a lazy transaction has begun
	pool    *pgxpool.Pool
	held    *connTx // == Tx on a pool, once begun (txqueue.go)
	lastSeq int64
	events  []Event // written, in seq order (a transaction takes its seqs one after the other)
	unsure  bool    // events may not be what committed: announce lastSeq alone
	queued  []*pgx.QueuedQuery
}

// written records an event of the transaction, to announce after COMMIT.
func (et *eventTx) written(e Event) {
	et.lastSeq = max(et.lastSeq, e.Seq)
	// An event is announced as the hub will send it: its project id must be
	// the one a read would return (the canonical text of the uuid).
	et.unsure = et.unsure || !canonicalUUID(e.ProjectID)
	et.events = append(et.events, e)
}

// announced are the events to carry in the transaction's announcement:
// none when a savepoint was opened in it (one rolled back could have taken
// some of them back) or a project id was not in canonical form. The
// realtime processes read those from the outbox.
func (et *eventTx) announced() []Event {
	if et.unsure {
		return nil
	}
	return et.events
}

// canonicalUUID reports whether s is a uuid as PostgreSQL prints one.
func canonicalUUID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.String() == s
}

// notifyAfterCommit sends a notification (notification.go) to the realtime
// processes. A NOTIFY queued inside the writing transaction would take
// PostgreSQL's notify lock (one for the whole cluster) before its COMMIT and
// hold it through the WAL flush, so every event-writing transaction would
// commit one after the other; sent on its own, the NOTIFY writes no WAL that
// must be flushed and the lock is held for microseconds. If this process
// dies between the commit and the notification, the realtime role's poll
// (every 2 s) delivers the events instead.
func notifyAfterCommit(ctx context.Context, q Querier, payload string) {
	_, _ = q.Exec(ctx, `SELECT pg_notify($1, $2)`, EventsChannel, payload)
}
