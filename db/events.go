package db

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/domain/event"
)

// The outbox's read side: the realtime role follows the events table by seq
// (only its settled prefix: see Emit and outbox_order.go) and replays a
// project's history to clients that reconnect.

// EventsAfter returns up to limit events with seq > afterSeq, oldest first.
// Every event it returns is committed, and every event with a smaller seq is
// committed or will never be (its transaction rolled back), so a reader that
// remembers the last seq it saw misses nothing. It stops before a seq whose
// writer is still running.
func EventsAfter(ctx context.Context, q Querier, afterSeq int64, limit int) ([]Event, error) {
	events, readAt, err := eventsAfter(ctx, q, afterSeq, limit)
	if err != nil || contiguous(afterSeq, events) {
		return events, err
	}
	return settledEvents(ctx, q, afterSeq, limit, events, readAt)
}

func eventsAfter(ctx context.Context, q Querier, afterSeq int64, limit int) ([]Event, time.Time, error) {
	rows, err := q.Query(ctx, `
		SELECT seq, project_id::text, name, payload, created_at, clock_timestamp()
		FROM events WHERE seq > $1 ORDER BY seq LIMIT $2`, afterSeq, limit)
	if err != nil {
		return nil, time.Time{}, wrap(err, "read events")
	}
	var readAt time.Time
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
		var e Event
		err := r.Scan(&e.Seq, &e.ProjectID, &e.Name, payloadBytes(&e), &e.CreatedAt, &readAt)
		return e, err
	})
	if err != nil {
		return nil, readAt, wrap(err, "read events")
	}
	return events, readAt, nil
}

// ProjectEventsAfter returns up to limit events of one project with
// seq > afterSeq, oldest first. A malformed project id has no events.
func ProjectEventsAfter(ctx context.Context, q Querier, projectID string, afterSeq int64, limit int) ([]Event, error) {
	id, err := uuid.Parse(projectID)
	if err != nil {
		return nil, nil
	}
	rows, err := q.Query(ctx, `
		SELECT seq, project_id::text, name, payload, created_at
		FROM events WHERE project_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, id, afterSeq, limit)
	if err != nil {
		return nil, wrap(err, "read project events")
	}
	return collectEvents(rows)
}

// payloadBytes scans an event's jsonb payload as the bytes PostgreSQL sends:
// pgx runs json.Unmarshal (a full validation and a copy) for a
// *json.RawMessage target but copies the bytes for a *[]byte. The payload was
// validated when it was written, and the realtime hub passes it on as bytes.
func payloadBytes(e *Event) *[]byte { return (*[]byte)(&e.Payload) }

func collectEvents(rows pgx.Rows) ([]Event, error) {
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
		var e Event
		err := r.Scan(&e.Seq, &e.ProjectID, &e.Name, payloadBytes(&e), &e.CreatedAt)
		return e, err
	})
	if err != nil {
		return nil, wrap(err, "read events")
	}
	return events, nil
}

// LatestSeq returns the highest settled seq, 0 when there are no events:
// every event up to it is committed or never will be, so a client that asks
// for the events after it misses nothing that commits later.
func LatestSeq(ctx context.Context, q Querier) (int64, error) {
	return settledSeq(ctx, q)
}

// SeqIssued is the highest seq the outbox ever handed out, committed or not,
// pruned or not (0 before the first). A client's since above it comes from
// another history: the database was reset or restored.
func SeqIssued(ctx context.Context, q Querier) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('events', 'seq')), 0)`).Scan(&n)
	return n, wrap(err, "read the outbox's sequence")
}

// DeleteEventsBefore deletes the events created before cutoff and returns how
// many it deleted. Clients that reconnect with an older `since` then get the
// history that is left.
func DeleteEventsBefore(ctx context.Context, q Querier, cutoff time.Time) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM events WHERE created_at < $1`, cutoff)
	if err != nil {
		return 0, wrap(err, "delete old events")
	}
	// Where deleted projects stood in the list of projects, kept as long as
	// their project_deleted events (ListProjects).
	if _, err := q.Exec(ctx, `DELETE FROM deleted_projects WHERE deleted_at < $1`, cutoff); err != nil {
		return 0, wrap(err, "delete old places of deleted projects")
	}
	// The ids of deleted tests, refused to a create sent again as long as
	// their test_deleted events are kept (CreateTest).
	if _, err := q.Exec(ctx, `DELETE FROM deleted_tests WHERE deleted_at < $1`, cutoff); err != nil {
		return 0, wrap(err, "delete old ids of deleted tests")
	}
	return tag.RowsAffected(), nil
}

// ProjectExists reports whether a project with this id exists. A malformed id
// does not.
func ProjectExists(ctx context.Context, q Querier, id string) (bool, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return false, nil
	}
	var ok bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM projects WHERE id = $1)`, u).Scan(&ok); err != nil {
		return false, wrap(err, "look up project")
	}
	return ok, nil
}

// ProjectDeletedSeq returns the seq of a deleted project's project_deleted
// event, 0 when the outbox has none: the project exists, never did, or was
// deleted before the retention (DeleteEventsBefore) dropped its events. A
// client that was away when its project was deleted learns it from here.
func ProjectDeletedSeq(ctx context.Context, q Querier, id string) (int64, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return 0, nil
	}
	var seq int64
	// Backwards along events_project_seq: the project's last event is its
	// project_deleted.
	err = q.QueryRow(ctx, `SELECT seq FROM events WHERE project_id = $1 AND name = $2 ORDER BY seq DESC LIMIT 1`,
		u, event.ProjectDeleted{}.EventName()).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return seq, wrap(err, "look up the project's deletion")
}
