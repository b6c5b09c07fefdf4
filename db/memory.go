package db

import (
	"context"
	"encoding/json"

	"github.com/jackc/pgx/v5"
)

// AgentMemory returns the stored input items of an agent in a session, in
// order, as JSON arrays (one per turn).
func (s *Store) AgentMemory(ctx context.Context, sessionKey, agent string) ([]json.RawMessage, error) {
	rows, err := s.Pool.Query(ctx, `SELECT items FROM agent_memory WHERE session_key = $1 AND agent = $2 ORDER BY position`, sessionKey, agent)
	if err != nil {
		return nil, wrap(err, "read memory")
	}
	list, err := pgx.CollectRows(rows, pgx.RowTo[json.RawMessage])
	return list, wrap(err, "read memory")
}
