package dbtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/db"
)

// Pool returns a pool of at most maxConns connections (pgxpool's default
// when 0) on the database at url, as New configures it, closed when t ends.
func Pool(t testing.TB, url string, maxConns int) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("dbtest: parse %s: %v", url, err)
	}
	db.Configure(cfg)
	if maxConns > 0 {
		cfg.MaxConns = int32(maxConns)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("dbtest: connect: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// HoldSlots runs n transactions of db.InTx on pool that hold their slots
// (db/slots.go) until release is called or the test ends; it returns once
// they have their connections. Call it after Pool: the cleanups run the
// other way round, so a failed test releases them before the pool closes
// rather than hang in pool.Close.
func HoldSlots(t testing.TB, pool *pgxpool.Pool, n int) (release func()) {
	t.Helper()
	ch := make(chan struct{})
	var once sync.Once
	var holders sync.WaitGroup
	release = func() {
		once.Do(func() { close(ch) })
		holders.Wait()
	}
	t.Cleanup(release)
	for range n {
		held := make(chan error, 1)
		holders.Go(func() {
			err := db.InTx(context.Background(), pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(context.Background(), "SELECT 1"); err != nil {
					return err
				}
				held <- nil
				<-ch
				return nil
			})
			held <- err // a failure before the slot was held, or nothing waits for it
		})
		if err := <-held; err != nil {
			t.Fatalf("dbtest: hold a slot: %v", err)
		}
	}
	return release
}

// WaitForWaiting waits up to 10 s until pool has want transactions waiting
// for a slot in class (db.ClassJob, db.ClassOther), and fails t otherwise.
func WaitForWaiting(t testing.TB, pool *pgxpool.Pool, class, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for db.PoolSlots(pool).Waiting[class] != want {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for a slot in class %d: %d, want %d", class, db.PoolSlots(pool).Waiting[class], want)
		}
		time.Sleep(time.Millisecond)
	}
}
