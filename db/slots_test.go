package db_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// When every connection is taken, a job's transaction that comes after two
// requests' still gets the next free connection: a job finishes work a
// person already waits for. Requests keep their order among themselves.
func TestJobTransactionsGoFirstWhenThePoolIsBusy(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t, dbtest.NewURL(t), 1)
	var all sync.WaitGroup
	t.Cleanup(all.Wait) // after release, before the pool closes
	release := dbtest.HoldSlots(t, pool, 1)

	var mu sync.Mutex
	var order []string
	run := func(ctx context.Context, name string) {
		all.Go(func() {
			err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
					return err
				}
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	run(context.Background(), "request 1")
	dbtest.WaitForWaiting(t, pool, db.ClassOther, 1)
	run(context.Background(), "request 2")
	dbtest.WaitForWaiting(t, pool, db.ClassOther, 2)
	run(db.ForJob(context.Background()), "job")
	dbtest.WaitForWaiting(t, pool, db.ClassJob, 1)
	release()
	all.Wait()

	want := []string{"job", "request 1", "request 2"}
	if len(order) != len(want) || order[0] != want[0] || order[1] != want[1] || order[2] != want[2] {
		t.Errorf("transactions ran in the order %q, want %q", order, want)
	}
	s := db.PoolSlots(pool)
	if s.Free != 1 || s.Waits[db.ClassJob] != 1 || s.Waits[db.ClassOther] != 2 || s.WaitTime[db.ClassOther] <= 0 {
		t.Errorf("slots after: %+v, want 1 free, 1 job and 2 other waits with their time", s)
	}
}

// A transaction whose context ends while it waits for a slot fails with
// the context's error and takes no slot with it (slots_internal_test.go
// has the race of a context that ends as a slot is handed over).
func TestAWaitThatEndsKeepsNoSlot(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t, dbtest.NewURL(t), 2)
	release := dbtest.HoldSlots(t, pool, 2)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	failed := make(chan error, 1)
	go func() {
		failed <- db.InTx(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "SELECT 1")
			return err
		})
	}()
	dbtest.WaitForWaiting(t, pool, db.ClassOther, 1) // it waits for a slot, not in pgxpool
	cancel()
	if err := <-failed; !errors.Is(err, context.Canceled) {
		t.Fatalf("a wait whose context ended: %v, want context.Canceled", err)
	}
	release()
	if s := db.PoolSlots(pool); s.Free != 2 || s.Waiting != [2]int{} || s.Waits[db.ClassOther] != 1 {
		t.Fatalf("slots after: %+v, want both free, none waiting, one wait", s)
	}
	// Both slots are still there to take.
	dbtest.HoldSlots(t, pool, 2)()
}
