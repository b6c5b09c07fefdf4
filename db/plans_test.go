package db_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// A new connection of the service's pool runs a statement's generic plan
// from its first execution (db.genericPlans), unless DATABASE_URL sets
// plan_cache_mode itself, as a parameter or in its options.
func TestStatementsArePlannedOncePerConnection(t *testing.T) {
	t.Parallel()
	base := dbtest.NewURL(t)
	for _, tc := range []struct {
		name, param, options, want string
		generic                    bool
	}{
		{name: "default", want: "force_generic_plan", generic: true},
		{name: "parameter", param: "auto", want: "auto"},
		{name: "options", options: "-c plan_cache_mode=force_custom_plan", want: "force_custom_plan"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(base)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			if tc.param != "" {
				q.Set("plan_cache_mode", tc.param)
			}
			if tc.options != "" {
				q.Set("options", tc.options)
			}
			u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20") // pgx does not read "+" as a space
			ctx := context.Background()
			pool, err := db.Open(ctx, u.String())
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			conn, err := pool.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Release()
			var mode string
			if err := conn.QueryRow(ctx, "SHOW plan_cache_mode").Scan(&mode); err != nil {
				t.Fatal(err)
			}
			if mode != tc.want {
				t.Fatalf("plan_cache_mode = %q, want %q", mode, tc.want)
			}
			// The plan of a statement's first execution on the connection:
			// a generic one keeps the parameter, a custom one its value.
			if _, err := conn.Conn().Prepare(ctx, "first_use", `SELECT 1 FROM sessions WHERE id = $1`); err != nil {
				t.Fatal(err)
			}
			plan := explain(t, conn, `EXPLAIN EXECUTE first_use('00000000-0000-0000-0000-000000000001')`, pgx.QueryExecModeSimpleProtocol)
			if generic := strings.Contains(plan, "$1"); generic != tc.generic {
				t.Fatalf("generic plan at the first execution: %v, want %v; the plan:\n%s", generic, tc.generic, plan)
			}
		})
	}
}
