package db

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/vibegrapher/vibegrapher/domain"
)

// Page is a part of a list read newest first (created_at DESC, then id): the
// items that follow the one whose id is Before ("": from the first), at most
// Limit of them (0: all). The list continues from a row rather than skipping
// a count of them, so a page costs the same wherever it starts, and rows
// added or deleted meanwhile shift nothing into or out of the next page.
type Page struct {
	Limit  int
	Before string
}

// pageStart is where a Page starts: after the row (at, id) in newest-first
// order. A Page without Before starts after infinity, before every row, so
// that each list is one statement whose plan an index serves either way.
type pageStart struct {
	at pgtype.Timestamptz
	id uuid.UUID
}

// start reads where p starts. cursorSQL selects the created_at of the row
// with id $1 if that row is an item of this list (args are $2…). Before comes
// from a client, as a query parameter, so an id that is malformed or not in
// the list is a 400 naming it, not a 404 of the route.
func (p Page) start(ctx context.Context, q Querier, kind, cursorSQL string, args ...any) (pageStart, error) {
	if p.Before == "" {
		return pageStart{at: pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true}}, nil
	}
	id, err := uuid.Parse(p.Before)
	if err != nil {
		return pageStart{}, domain.Invalid("before", "must be the id of a %s of this list, got %q", kind, p.Before)
	}
	s := pageStart{id: id}
	err = q.QueryRow(ctx, cursorSQL, append([]any{id}, args...)...).Scan(&s.at)
	if errors.Is(err, pgx.ErrNoRows) {
		return pageStart{}, domain.Invalid("before", "%s %s is not in this list (deleted, or never in it); start again without before", kind, p.Before)
	}
	return s, wrap(err, "read where the page starts")
}

// limit is p.Limit as the parameter of a LIMIT: NULL, which is no limit,
// for 0.
func (p Page) limit() *int {
	if p.Limit <= 0 {
		return nil
	}
	return &p.Limit
}
