package db

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The outbox's read side: the realtime role follows the events table by seq
// (see Emit for why seq order is commit order) and replays a project's history
// to clients that reconnect.

// EventsAfter returns up to limit events with seq > afterSeq, oldest first.
// Every event it returns is committed, and so is every event with a smaller
// seq, so a reader that remembers the last seq it saw misses nothing.
func EventsAfter(ctx context.Context, q Querier, afterSeq int64, limit int) ([]Event, error) {
	rows, err := q.Query(ctx, `
		SELECT seq, project_id::text, name, payload, created_at
		FROM events WHERE seq > $1 ORDER BY seq LIMIT $2`, afterSeq, limit)
	if err != nil {
		return nil, wrap(err, "read events")
	}
	return collectEvents(rows)
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

func collectEvents(rows pgx.Rows) ([]Event, error) {
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
		var e Event
		err := r.Scan(&e.Seq, &e.ProjectID, &e.Name, &e.Payload, &e.CreatedAt)
		return e, err
	})
	if err != nil {
		return nil, wrap(err, "read events")
	}
	return events, nil
}

// LatestSeq returns the highest committed seq, 0 when there are no events.
// Because commits happen in seq order, everything up to it is visible too.
func LatestSeq(ctx context.Context, q Querier) (int64, error) {
	var seq int64
	if err := q.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM events`).Scan(&seq); err != nil {
		return 0, wrap(err, "read latest event seq")
	}
	return seq, nil
}

// DeleteEventsBefore deletes the events created before cutoff and returns how
// many it deleted. Clients that reconnect with an older `since` then get the
// history that is left.
func DeleteEventsBefore(ctx context.Context, q Querier, cutoff time.Time) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM events WHERE created_at < $1`, cutoff)
	if err != nil {
		return 0, wrap(err, "delete old events")
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
