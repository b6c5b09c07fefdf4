package db

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// genericPlans has PostgreSQL plan each statement of a connection once,
// unless DATABASE_URL sets plan_cache_mode itself (as a parameter, or with
// -c in its options).
//
// pgx prepares every statement on first use, and under the server's default
// (auto) PostgreSQL plans a prepared statement with its parameters at its
// first five executions on a connection before it keeps the generic plan,
// which every statement of the message path then keeps. So a long-lived
// connection gains nothing, but each connection a pool opens (a fresh
// process, a pool that grows in a burst) planned the whole path six times
// over, when the CPU was scarcest (the Bind times and the rows' figures:
// docs/benchmarks.md, twenty-fourth round).
//
// A generic plan cannot fold away a filter that may be missing
// (`$1 IS NULL OR project_id = $1`) and reads the whole table instead of
// the index: such a statement holds only the filters given (listDiffsSQL),
// and its plan is tested as TestFilteredDiffsAreReadThroughTheirIndex does.
//
// It is a SET after connecting rather than a startup parameter: a pooler in
// front of PostgreSQL (PgBouncer) refuses a connection whose startup packet
// names a parameter it does not know.
func genericPlans(cfg *pgx.ConnConfig) func(context.Context, *pgx.Conn) error {
	if _, set := cfg.RuntimeParams["plan_cache_mode"]; set || strings.Contains(cfg.RuntimeParams["options"], "plan_cache_mode") {
		return nil
	}
	return func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "SET plan_cache_mode = force_generic_plan")
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42704" {
			return nil // a server older than PostgreSQL 12 plans as it always did
		}
		return err
	}
}
