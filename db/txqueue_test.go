package db_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
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

// announceSQL is the announcement of committed events (db/outbox.go).
const announceSQL = "SELECT pg_notify($1, $2)"

// roundTrips counts the statements and batches a pool's connections send:
// each is a write and a wait for the answer. It also keeps the SQLSTATE of
// each statement that failed.
type roundTrips struct {
	mu     sync.Mutex
	sent   []string // each statement's first line; a batch's as "batch: …"
	failed []string // the codes of the statements that failed
}

func (r *roundTrips) fail(err error) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, pgErr.Code)
}

// failures is how many statements failed with the SQLSTATE code.
func (r *roundTrips) failures(code string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.failed {
		if c == code {
			n++
		}
	}
	return n
}

func (r *roundTrips) add(s string) {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, s)
}

// since is what was sent after the first n, but for the announcements of
// commits, which the pool's announcer sends when it will.
func (r *roundTrips) since(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(r.sent[n:]), func(s string) bool { return s == announceSQL })
}

// matching is what since(n) returns that starts with prefix: a statement
// sent on its own, or a batch ("batch of …") when prefix says so.
func (r *roundTrips) matching(n int, prefix string) []string {
	return slices.DeleteFunc(r.since(n), func(s string) bool { return !strings.HasPrefix(s, prefix) })
}

// containing is what since(n) returns that holds sub, alone or in a batch.
func (r *roundTrips) containing(n int, sub string) []string {
	return slices.DeleteFunc(r.since(n), func(s string) bool { return !strings.Contains(s, sub) })
}

func (r *roundTrips) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sent)
}

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.add(d.SQL)
	return ctx
}
func (r *roundTrips) TraceQueryEnd(_ context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	r.fail(d.Err)
}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	var firsts []string // each statement's first line
	for _, q := range d.Batch.QueuedQueries {
		line, _, _ := strings.Cut(strings.TrimSpace(q.SQL), "\n")
		firsts = append(firsts, line)
	}
	r.add("batch of " + strconv.Itoa(len(firsts)) + ": " + strings.Join(firsts, " | "))
	return ctx
}
func (r *roundTrips) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	r.fail(d.Err)
}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// countedPool is a pool on a fresh database whose round trips are counted;
// configure, when given, changes its configuration first.
func countedPool(t *testing.T, configure ...func(*pgxpool.Config)) (*pgxpool.Pool, *roundTrips) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dbtest.New(t).Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range configure {
		c(cfg)
	}
	counted := &roundTrips{}
	cfg.ConnConfig.Tracer = counted
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, counted
}

// River's insert notification, sent by InsertTx in a transaction of InTx,
// goes with COMMIT instead of on its own: a job inserted with the
// transaction's other writes costs one round trip for the insert and one for
// the rest and COMMIT. The workers are notified when the transaction commits,
// and not when it rolls back.
func TestRiverInsertNotificationGoesWithCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, counted := countedPool(t)
	client, err := jobargs.NewInsertOnlyClient(pool, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	listener, err := pgx.Connect(ctx, pool.Config().ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close(context.Background()) })
	if _, err := listener.Exec(ctx, `LISTEN "public.river_insert"`); err != nil {
		t.Fatal(err)
	}
	if err := pool.Ping(ctx); err != nil { // the pool's first connection, outside the count
		t.Fatal(err)
	}
	insert := func(messageID string, fail bool) error {
		return db.InTx(ctx, pool, func(tx pgx.Tx) error {
			if _, err := client.InsertTx(ctx, tx, jobargs.VibecodeArgs{MessageID: messageID, Iteration: 1}, nil); err != nil {
				return err
			}
			if err := db.QueueEvent(ctx, tx, uuid.NewString(), dbtest.Event{Name: "inserted"}); err != nil {
				return err
			}
			if fail {
				return errors.New("rolled back")
			}
			return nil
		})
	}
	notified := func() string {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		n, err := listener.WaitForNotification(wctx)
		if err != nil {
			return ""
		}
		return n.Payload
	}

	// Rolled back: no notification. (River notifies a queue at most once
	// per jobargs.FetchCooldown; the wait for one covers it.)
	if err := insert(uuid.NewString(), true); err == nil {
		t.Fatal("the transaction did not roll back")
	}
	if got := notified(); got != "" {
		t.Fatalf("a rolled-back insert notified the workers: %s", got)
	}
	before := counted.count()
	if err := insert(uuid.NewString(), false); err != nil {
		t.Fatal(err)
	}
	if sent := counted.since(before); len(sent) != 2 {
		t.Errorf("inserting a job with an event took %d round trips, want 2 (the insert with BEGIN; the notification and the event with COMMIT): %q", len(sent), sent)
	}
	if got := notified(); got != `{"queue": "vibecode"}` {
		t.Fatalf("after the commit the workers were notified with %q, want the vibecode queue", got)
	}
	if n := dbtest.Count(t, pool, `SELECT count(*) FROM river_job`); n != 1 {
		t.Fatalf("%d jobs, want the committed one", n)
	}
}
