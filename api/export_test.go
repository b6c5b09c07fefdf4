package api

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// EnqueueVibecode is the db.Enqueue that POST /sessions/{id}/messages
// passes.
func (s *Server) EnqueueVibecode(ctx context.Context, tx pgx.Tx, messageIDs []string) ([]int64, error) {
	return s.enqueueVibecode(ctx, tx, messageIDs)
}
