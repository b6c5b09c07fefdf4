package db_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
)

// A name's next slug is one past the highest base-N taken, whatever other
// names share its first letters.
func TestSlugsOfNamesThatShareABeginning(t *testing.T) {
	ctx := context.Background()
	store := &db.Store{Pool: dbtest.New(t)}
	for _, c := range []struct{ name, want string }{
		{"Cafe", "cafe"},
		{"Cafe Bots", "cafe-bots"},
		{"Cafe Bots", "cafe-bots-2"},
		{"Cafe 10", "cafe-10"},
		{"Cafe2", "cafe2"},
		{"Cafe", "cafe-11"}, // cafe-bots is not a suffix of cafe
		{"Cafe Bots", "cafe-bots-3"},
		{"Caf", "caf"}, // cafe… is not caf-N
	} {
		p, err := store.CreateProject(ctx, domain.NewProject{Name: c.name})
		if err != nil {
			t.Fatal(err)
		}
		if p.Slug != c.want {
			t.Errorf("%q got slug %q, want %q", c.name, p.Slug, c.want)
		}
	}
}

// Creating a project reads the slugs taken under its name from an index, not
// by scanning every project: planned as pgx runs it after a few calls (a
// generic plan of the prepared statement), with sequential scans priced out, so
// that a plan without a usable index shows as a scan with no index condition.
func TestTakenSlugsAreReadFromAnIndex(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.New(t)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, q := range []string{
		"SET LOCAL enable_seqscan = off",
		"SET LOCAL plan_cache_mode = force_generic_plan",
		"PREPARE taken_slugs(text, text, text, text) AS " + db.TakenSlugs,
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := tx.Query(ctx, `EXPLAIN EXECUTE taken_slugs('cafe-bots', 'cafe-bots-', 'cafe-bots.', '^cafe-bots-[0-9]+$')`)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	// Each scan of the plan looks its rows up by a condition on an index:
	// a scan without one reads the whole table or index.
	text := strings.Join(plan, "\n")
	scans := strings.Count(text, "Seq Scan on") + strings.Count(text, "Index Scan on") + strings.Count(text, "Index Only Scan on")
	if conds := strings.Count(text, "Index Cond:"); scans == 0 || conds != scans || !strings.Contains(text, "projects_slug_prefix") {
		t.Errorf("the slugs under a name are read by scanning projects:\n%s", text)
	}
}
