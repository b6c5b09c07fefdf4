package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// Queued events go with the transaction's next statement, in order, and a
// statement after them sees them; Query, QueryRow, Exec and SendBatch all
// carry them; the transaction begins with its first statement.
func TestQueuedWritesGoWithTheNextStatement(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	p := uuid.NewString()
	queue := func(tx pgx.Tx, name string) {
		t.Helper()
		if err := db.QueueEvent(ctx, tx, p, dbtest.Event{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
		var first, xid int64
		queue(tx, "a")
		if err := tx.QueryRow(ctx, `SELECT count(*), txid_current() FROM events WHERE project_id = $1`, p).Scan(&first, &xid); err != nil {
			return err
		}
		if first != 1 {
			t.Errorf("QueryRow saw %d queued events, want 1", first)
		}
		queue(tx, "b")
		rows, err := tx.Query(ctx, `SELECT name FROM events WHERE project_id = $1 ORDER BY seq`, p)
		if err != nil {
			return err
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(names) != 2 || names[1] != "b" {
			t.Errorf("Query saw %v, want [a b]", names)
		}
		queue(tx, "c")
		if _, err := tx.Exec(ctx, `SELECT pg_sleep(0) FROM events WHERE project_id = $1`, p); err != nil {
			return err
		}
		queue(tx, "d")
		b := &pgx.Batch{}
		var n, again int64
		b.Queue(`SELECT count(*), txid_current() FROM events WHERE project_id = $1`, p).QueryRow(func(r pgx.Row) error { return r.Scan(&n, &again) })
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		if n != 4 || again != xid {
			t.Errorf("SendBatch saw %d events in transaction %d, want 4 in %d", n, again, xid)
		}
		if _, err := db.Emit(ctx, tx, p, dbtest.Event{Name: "e"}); err != nil {
			return err
		}
		queue(tx, "f") // sent before COMMIT
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	all, err := db.EventsAfter(ctx, pool, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var names string
	for _, e := range all {
		names += e.Name
	}
	if names != "abcdef" {
		t.Fatalf("committed events %q, want abcdef in order", names)
	}
	noConnHeld(t, pool)
}

// noConnHeld fails when a connection of pool stays acquired (the NOTIFY after
// a commit takes one for a moment).
func noConnHeld(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); pool.Stat().AcquiredConns() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still acquired", pool.Stat().AcquiredConns())
		}
	}
}

// A queued write that fails fails the transaction: nothing of it commits.
func TestAFailedQueuedWriteRollsBack(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	p := uuid.NewString()
	for _, next := range []string{"statement", "commit"} {
		err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
			if _, err := db.Emit(ctx, tx, p, dbtest.Event{Name: "before"}); err != nil {
				return err
			}
			if err := db.QueueEvent(ctx, tx, "not a uuid", dbtest.Event{Name: "bad"}); err != nil {
				return err
			}
			if next == "statement" {
				var one int
				return tx.QueryRow(ctx, `SELECT $1::int`, 1).Scan(&one)
			}
			return nil
		})
		if err == nil {
			t.Fatalf("a bad queued event before the %s: no error", next)
		}
		if n := dbtest.Count(t, pool, `SELECT count(*) FROM events`); n != 0 {
			t.Fatalf("a bad queued event before the %s: %d events committed", next, n)
		}
	}
	// A transaction that ran nothing commits nothing and holds no connection.
	if err := db.InTx(ctx, pool, func(pgx.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	rolledBack := errors.New("roll back")
	if err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
		_ = db.QueueEvent(ctx, tx, p, dbtest.Event{Name: "dropped"})
		return rolledBack
	}); !errors.Is(err, rolledBack) {
		t.Fatal(err)
	}
	if n := dbtest.Count(t, pool, `SELECT count(*) FROM events`); n != 0 {
		t.Fatalf("%d events after a rollback", n)
	}
	noConnHeld(t, pool)
}

// A transaction that only queued writes sends BEGIN, the writes and COMMIT
// together; its savepoints (Begin) commit and roll back their own part; and
// a connection is reusable after a transaction whose COMMIT batch failed.
func TestQueuedWritesCommitWithTheirBatch(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	p := uuid.NewString()
	if err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
		if tx.Conn() != nil {
			t.Error("a transaction that sent nothing holds a connection")
		}
		return db.QueueEvent(ctx, tx, p, dbtest.Event{Name: "only"})
	}); err != nil {
		t.Fatal(err)
	}
	if n := dbtest.Count(t, pool, `SELECT count(*) FROM events WHERE name = 'only'`); n != 1 {
		t.Fatalf("%d events committed, want 1", n)
	}
	if err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
		for _, name := range []string{"kept", "undone"} {
			sp, err := tx.Begin(ctx)
			if err != nil {
				return err
			}
			if _, err := db.Emit(ctx, sp, p, dbtest.Event{Name: name}); err != nil {
				return err
			}
			end := sp.Commit
			if name == "undone" {
				end = sp.Rollback
			}
			if err := end(ctx); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Two savepoints side by side: rolling back the first, while the
	// second is open, undoes both.
	if err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
		first, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := db.Emit(ctx, first, p, dbtest.Event{Name: "first"}); err != nil {
			return err
		}
		second, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := db.Emit(ctx, second, p, dbtest.Event{Name: "second"}); err != nil {
			return err
		}
		if err := first.Rollback(ctx); err != nil {
			return err
		}
		if _, err := second.Exec(ctx, `SELECT 1`); err != nil {
			return err // the connection is still the transaction's
		}
		if err := first.Commit(ctx); err == nil {
			t.Error("a savepoint committed after its rollback")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var names []string
	rows, err := pool.Query(ctx, `SELECT name FROM events WHERE name <> 'only' ORDER BY seq`)
	if err == nil {
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || len(names) != 1 || names[0] != "kept" {
		t.Fatalf("after a committed and a rolled-back savepoint: %v %v, want [kept]", names, err)
	}
	for range 3 {
		err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
			return db.QueueEvent(ctx, tx, "not a uuid", dbtest.Event{Name: "bad"})
		})
		if err == nil {
			t.Fatal("a bad queued write at COMMIT: no error")
		}
	}
	var one int
	if err := pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		t.Fatalf("the pool after failed commits: %v", err)
	}
	noConnHeld(t, pool)
}

// BenchmarkQueuedEvents is a step's ending transaction as far as the outbox
// goes: five events queued, then COMMIT.
//
//	go test -run '^$' -bench QueuedEvents -benchmem ./db/
func BenchmarkQueuedEvents(b *testing.B) {
	pool := dbtest.New(b)
	ctx := context.Background()
	p := uuid.NewString()
	for b.Loop() {
		if err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
			for _, name := range []string{"vibecode_delta", "conversation_message", "token_usage", "vibecode_response", "job_status"} {
				if err := db.QueueEvent(ctx, tx, p, dbtest.Event{Name: name}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}
