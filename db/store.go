package db

import (
	"strconv"

	"github.com/google/uuid"

	"github.com/vibegrapher/vibegrapher/domain"
)

// Store is the application's access to PostgreSQL.
type Store struct {
	Pool DB
}

// ParseID parses a client-given id; a malformed one is simply not found.
func ParseID(kind, id string) (uuid.UUID, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return uuid.Nil, domain.NotFound(kind, strconv.Quote(id))
	}
	return u, nil
}
