package dbtest

import (
	"context"
	"testing"

	"github.com/vibegrapher/vibegrapher/db"
)

// Count returns the number query selects (a count(*), say) and fails t when
// the query fails, so that a check that nothing is left cannot pass because
// the query never ran.
func Count(t testing.TB, q db.Querier, query string, args ...any) int {
	t.Helper()
	var n int
	if err := q.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("dbtest: %s: %v", query, err)
	}
	return n
}
