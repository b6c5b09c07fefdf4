package db

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
)

// AgentMemory returns the stored input items of an agent in a session, in
// order, as one JSON array: the items of every turn, one after the other.
//
// The items are read as text and joined as they are, not decoded: they were
// checked when they were written (PostgreSQL parsed them into jsonb), and a
// session's memory grows by a turn per message while every model call reads
// all of it. (pgx scans jsonb into a json.RawMessage with json.Unmarshal,
// which checks and copies every byte once more.)
func (s *Store) AgentMemory(ctx context.Context, sessionKey, agent string) (json.RawMessage, error) {
	rows, err := s.Pool.Query(ctx, `SELECT items::text FROM agent_memory WHERE session_key = $1 AND agent = $2 ORDER BY position`, sessionKey, agent)
	if err != nil {
		return nil, wrap(err, "read memory")
	}
	defer rows.Close()
	out := make([]byte, 1, 8<<10)
	out[0] = '['
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
