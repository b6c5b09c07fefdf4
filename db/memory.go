package db

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

const memorySQL = `SELECT items::text FROM agent_memory WHERE session_key = $1 AND agent = $2 ORDER BY position`

// PendingMemory is an agent's memory read with a transaction's next batch
// (ReadMemoryLater). Result returns it once that batch has run.
type PendingMemory struct {
	items json.RawMessage
	err   error
	read  bool
}

// Result is the memory, one JSON array of items.
func (m *PendingMemory) Result() (json.RawMessage, error) {
	if !m.read {
		return nil, errors.New("read memory: the transaction did not run the read")
	}
	return m.items, m.err
}

// ReadMemoryLater reads the stored input items of an agent in a session, in
// order, as one JSON array (the items of every turn, one after the other),
// in q, appended to dst[:0] (nil for a new slice): a worker reads a whole
// conversation for every model call, and a buffer kept for the next one
// spares allocating and clearing one that size each time. In a transaction
// of InTx the read is queued like a write, to go with the transaction's next
// statement or COMMIT: a step reads its memory in the batch that commits its
// start, instead of in a round trip of its own after it. Elsewhere it reads
// at once.
//
// The items are read as text and joined as they are, not decoded: they were
// checked when they were written (PostgreSQL parsed them into jsonb), and a
// session's memory grows by a turn per message while every model call reads
// all of it. (pgx scans jsonb into a json.RawMessage with json.Unmarshal,
// which checks and copies every byte once more.)
//
// A memory that does not read as items is m's error, not the batch's: the
// transaction still commits (it changed nothing that depends on the read).
func ReadMemoryLater(ctx context.Context, q Querier, sessionKey, agent string, dst []byte) *PendingMemory {
	m := &PendingMemory{}
	b := &pgx.Batch{}
	b.Queue(memorySQL, sessionKey, agent).Query(func(rows pgx.Rows) error {
		m.items, m.err = joinMemory(rows, dst)
		m.read = true
		return rows.Err() // the statement's own failure fails the batch
	})
	batchLater(ctx, q, b) // Result tells whether it ran
	return m
}

// joinMemory joins the rows of memorySQL into one JSON array, appended to
// dst[:0].
func joinMemory(rows pgx.Rows, dst []byte) (json.RawMessage, error) {
	out := dst[:0]
	if cap(out) == 0 {
		out = make([]byte, 0, 8<<10)
	}
	out = append(out, '[')
	for rows.Next() {
		// The row's bytes, valid until the next row: copied into out.
		items := bytes.TrimSpace(rows.RawValues()[0])
		if len(items) < 2 || items[0] != '[' || items[len(items)-1] != ']' {
			return nil, fmt.Errorf("read memory: a turn's items are not a JSON array: %.40q", items)
		}
		items = bytes.TrimSpace(items[1 : len(items)-1])
		if len(items) == 0 {
			continue
		}
		if need := len(out) + len(items) + 2; need > cap(out) {
			// Doubling: append grows a large slice by a quarter, which
			// copied a long memory four or five times over.
			grown := make([]byte, len(out), max(2*cap(out), need))
			copy(grown, out)
			out = grown
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, items...)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "read memory")
	}
	return append(out, ']'), nil
}
