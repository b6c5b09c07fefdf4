package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// holdLocks runs lockSQL in a transaction of its own and keeps what it took
// until release (or the test's end): the tests' way to stop another
// transaction at a chosen statement, so that two transactions interleave
// as they would by chance under load.
func holdLocks(t *testing.T, pool db.DB, lockSQL string, args ...any) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(ctx) }) //nolint:errcheck // a no-op after release
	if _, err := tx.Exec(ctx, lockSQL, args...); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// waitForLockWaiters returns once n transactions of the test's database
// wait for a lock.
func waitForLockWaiters(t *testing.T, pool db.DB, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if lockWaiters(t, pool) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d transactions wait for a lock", n)
		}
	}
}

// lockWaiters is how many transactions of the test's database wait for a
// lock now.
func lockWaiters(t *testing.T, pool db.DB) int {
	t.Helper()
	return dbtest.Count(t, pool, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)
}
