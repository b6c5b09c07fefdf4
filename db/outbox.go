package db

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/vibegrapher/vibegrapher/domain/event"
)

// EventsChannel is the LISTEN/NOTIFY channel that carries the seq of every new
// event to the realtime processes.
const EventsChannel = "vibegrapher_events"

// outboxLockID orders event writers. Sequence numbers are taken at INSERT but
// rows become visible at COMMIT; without this lock a transaction holding seq 7
// could commit after one holding seq 8, and a reader that already moved past 8
// would never see 7. The lock is held until the writer's transaction ends, so
// commits happen in seq order. Write events last in a transaction to keep the
// lock short.
const outboxLockID = 7_146_201_991

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
// through here; nothing is sent to clients that was not committed.
func Emit(ctx context.Context, q Querier, projectID string, e event.Event) (int64, error) {
	name := e.EventName()
	raw, err := json.Marshal(e)
	if err != nil {
		return 0, fmt.Errorf("encode %s event: %w", name, err)
	}
	if len(raw) == 0 || raw[0] != '{' {
		return 0, fmt.Errorf("%s event payload must be a JSON object", name)
	}
	if _, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, outboxLockID); err != nil {
		return 0, wrap(err, "lock outbox")
	}
	var seq int64
	err = q.QueryRow(ctx, `
		INSERT INTO events (project_id, name, payload) VALUES ($1, $2, $3) RETURNING seq`,
		projectID, name, raw).Scan(&seq)
	if err != nil {
		return 0, wrap(err, "write "+name+" event")
	}
	if _, err := q.Exec(ctx, `SELECT pg_notify($1, $2)`, EventsChannel, strconv.FormatInt(seq, 10)); err != nil {
		return 0, wrap(err, "notify "+name+" event")
	}
	return seq, nil
}
