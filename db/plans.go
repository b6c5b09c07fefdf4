package db

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// genericPlans has PostgreSQL plan each statement of a connection once,
// unless the URL says otherwise (plan_cache_mode=auto as a parameter of
// DATABASE_URL, or -c plan_cache_mode=… in its options, restores the
// server's default).
//
// pgx prepares every statement on first use. Under the server's default
// (auto) PostgreSQL plans a prepared statement's first five executions on a
// connection with their parameters and only then settles on the generic
// plan: in its statement log, the first Bind of a statement on a new
// connection took 1–3 ms, the next five 0.2–0.9 ms each, every later one
// 0.01–0.03 ms (docs/benchmarks.md, twenty-fourth round). Every statement
// a message runs settles on the generic plan, so a long-lived connection
// gains nothing; but a pool grows in a burst, and each connection it opens
// then planned the message path six times over when the CPU was scarcest.
// Checked on a database of 500,000 jobs, 500,000 events and 300,000
// messages: the generic plans of the 229 statements with parameters that
// the test suite and the load ran (River's maintenance among them) reach
// every large table through an index, as their plans with parameters do,
// but for one: a list of diffs whose statement allowed for each filter to
// be missing (`$1 IS NULL OR project_id = $1`) read the whole table, so a
// statement now holds only the filters given (listDiffsSQL). A statement
// with parameters that may be missing is written so too, and its plan
// tested as TestPagedListsAreReadInIndexOrder does.
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
