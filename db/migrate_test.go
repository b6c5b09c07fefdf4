package db_test

import (
	"context"
	"errors"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// A service that keeps running through `vibegrapher reset-db` connects anew
// while the reset drops and recreates the tables (River polls every second).
// A connection made then prepares its statements on the old tables and
// types; left open, the next request it serves would fail ("cached plan must
// not change result type": River's job-state enum is created anew). Reset
// therefore ends the sessions again once the schema is back.
func TestAResetEndsTheSessionsThatConnectedWhileItRan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u := dbtest.NewURL(t)
	as := func(app string) string {
		v, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		q := v.Query()
		q.Set("application_name", app)
		v.RawQuery = q.Encode()
		return v.String()
	}
	connect := func(app string) *pgx.Conn {
		c, err := pgx.Connect(ctx, as(app))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	pool, err := pgxpool.New(ctx, as("vg-reset"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	schema, err := db.NewSchema(pool, nil)
	if err != nil {
		t.Fatal(err)
	}

	// A session of the reset's own application_name, which Reset leaves
	// open, holds goose's version table: Reset ends the other sessions, then
	// waits for it before it drops anything.
	holder := connect("vg-reset")
	hold, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hold.Exec(ctx, "LOCK TABLE goose_db_version IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- schema.Reset(ctx) }()
	watcher := connect("vg-reset")
	waitUntil(t, func() bool {
		// This database's: the tests' databases are clones of one template,
		// so goose's table has the same oid in all of them.
		return dbtest.Count(t, watcher, `SELECT count(*) FROM pg_locks
			WHERE NOT granted AND relation = 'goose_db_version'::regclass
				AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`) > 0
	}, "the reset to wait for goose's table")

	// The service connects now and runs a statement on River's jobs, which
	// pgx prepares and keeps for the connection.
	service := connect("vg-service")
	const jobState = "SELECT state FROM river_job WHERE id = $1"
	if _, err := service.Exec(ctx, jobState, 0); err != nil {
		t.Fatal(err)
	}
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, done); err != nil {
		t.Fatalf("reset: %v", err)
	}

	_, err = service.Exec(ctx, jobState, 0)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		t.Fatal("a session that connected during the reset is still open after it")
	case errors.As(err, &pgErr) && pgErr.Code != "57P01": // admin_shutdown: the session was ended
		t.Fatalf("a session that connected during the reset is still open after it, and its statement fails: %v", err)
	}
	if !service.IsClosed() {
		t.Fatalf("the session that connected during the reset: %v, and it is not closed", err)
	}
}
