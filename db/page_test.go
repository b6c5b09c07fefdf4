package db_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// A page of projects or of a test's runs is read from an index in the
// list's order, from where the page starts to its limit: no scan of the
// table, and no sort of the rows after the page's start, however many there
// are. Planned as the service's connections run the statements from their
// first call (a generic plan of the prepared statement, db.genericPlans), on
// a few thousand rows.
func TestPagedListsAreReadInIndexOrder(t *testing.T) {
	ctx := context.Background()
	tx := planTx(t,
		`INSERT INTO git_repositories (id) SELECT gen_random_uuid() FROM generate_series(1, 3000)`,
		`INSERT INTO projects (id, repository_id, name, slug, branch, created_at)
			SELECT id, id, 'p' || n, 'p-' || n, 'main', now() - n * interval '1 minute'
			FROM (SELECT id, row_number() OVER () AS n FROM git_repositories) r`,
		`INSERT INTO test_cases (id, project_id, name, code, timeout_seconds)
			SELECT gen_random_uuid(), id, 't', 'pass', 5 FROM projects`,
		`INSERT INTO test_runs (id, test_id, project_id, commit, status, created_at)
			SELECT gen_random_uuid(), t.id, t.project_id, 'c', 'passed', now() - n * interval '1 second'
			FROM (SELECT * FROM test_cases LIMIT 1) t, generate_series(1, 3000) n`,
		`INSERT INTO test_runs (id, test_id, project_id, commit, status)
			SELECT gen_random_uuid(), id, project_id, 'c', 'passed' FROM test_cases`,
		"ANALYZE projects, test_runs",
		"SET LOCAL plan_cache_mode = force_generic_plan",
		"PREPARE list_projects(timestamptz, uuid, bigint) AS "+db.ListProjectsSQL,
		"PREPARE list_runs(uuid, timestamptz, uuid, bigint) AS "+db.ListRunsSQL,
	)
	// The test with 3,000 runs, and one of its runs as a page's start.
	var test, cursor string
	if err := tx.QueryRow(ctx, `SELECT test_id, id FROM test_runs WHERE created_at < now() - interval '10 minutes' LIMIT 1`).Scan(&test, &cursor); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, explain, index string }{
		{"first page of projects", `EXPLAIN EXECUTE list_projects('infinity', '00000000-0000-0000-0000-000000000000', 50)`, "projects_newest"},
		{"later page of projects", `EXPLAIN EXECUTE list_projects(now() - interval '1 day', gen_random_uuid(), 50)`, "projects_newest"},
		{"first page of runs", `EXPLAIN EXECUTE list_runs('` + test + `', 'infinity', '00000000-0000-0000-0000-000000000000', 50)`, "test_runs_test_newest"},
		{"later page of runs", `EXPLAIN EXECUTE list_runs('` + test + `', now() - interval '10 minutes', '` + cursor + `', 50)`, "test_runs_test_newest"},
	} {
		text := explain(t, tx, c.explain)
		if !strings.Contains(text, c.index) || strings.Contains(text, "Sort") || strings.Contains(text, "Seq Scan") {
			t.Errorf("%s is not read from %s in the list's order:\n%s", c.name, c.index, text)
		}
	}
}

// A project's or a session's diffs are read through its index, whichever
// filters the request gives, with the plan pgx's prepared statement runs on
// the service's connections (a generic one, db.genericPlans), on thousands
// of rows.
func TestFilteredDiffsAreReadThroughTheirIndex(t *testing.T) {
	ctx := context.Background()
	tx := planTx(t,
		`INSERT INTO git_repositories (id) SELECT gen_random_uuid() FROM generate_series(1, 2000)`,
		`INSERT INTO projects (id, repository_id, name, slug, branch)
			SELECT id, id, 'p' || n, 'p-' || n, 'main' FROM (SELECT id, row_number() OVER () AS n FROM git_repositories) r`,
		`INSERT INTO sessions (id, project_id, openai_session_key, session_type)
			SELECT gen_random_uuid(), id, 'k-' || id, 'global' FROM projects`,
		`INSERT INTO diffs (id, project_id, session_id, base_commit, target_branch, diff_content, status)
			SELECT gen_random_uuid(), s.project_id, s.id, 'c', 'main', 'd',
				(ARRAY['evaluator_approved', 'human_approved', 'human_rejected', 'committed'])[1 + n % 4]
			FROM sessions s, generate_series(1, 20) n`,
		"ANALYZE projects, sessions, diffs",
		"SET LOCAL plan_cache_mode = force_generic_plan",
	)
	var project, session uuid.UUID
	if err := tx.QueryRow(ctx, `SELECT project_id, id FROM sessions LIMIT 1`).Scan(&project, &session); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name             string
		project, session *uuid.UUID
		status           string
		pending          bool
		index            string
	}{
		{"a project's", &project, nil, "", false, "diffs_project"},
		{"a project's, by status", &project, nil, "committed", false, "diffs_project"},
		{"a project's pending", &project, nil, "", true, "diffs_project"},
		{"a session's", nil, &session, "", false, "diffs_session"},
		{"a session's pending, by status", nil, &session, "human_approved", true, "diffs_session"},
	} {
		sql, args := db.ListDiffsSQL(c.project, c.session, c.status, c.pending)
		name := "list_diffs_" + strings.NewReplacer("'", "", " ", "_", ",", "").Replace(c.name)
		if _, err := tx.Exec(ctx, "PREPARE "+name+" AS "+sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		literals := make([]string, len(args))
		for i, a := range args {
			literals[i] = "'" + fmt.Sprint(a) + "'"
		}
		text := explain(t, tx, "EXPLAIN EXECUTE "+name+"("+strings.Join(literals, ", ")+")")
		if !strings.Contains(text, c.index) || strings.Contains(text, "Seq Scan") {
			t.Errorf("%s diffs are not read through %s:\n%s", c.name, c.index, text)
		}
	}
}

// planTx is a transaction on a fresh database for a test of plans, rolled
// back when the test ends, after the statements qs (rows, ANALYZE, SET
// LOCAL, PREPARE).
func planTx(t *testing.T, qs ...string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := dbtest.New(t).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(ctx) })
	for _, q := range qs {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return tx
}

// explain is the text of the plan that q's EXPLAIN statement prints.
func explain(t *testing.T, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, statement string, args ...any) string {
	t.Helper()
	rows, err := q.Query(context.Background(), statement, args...)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "\n")
}
