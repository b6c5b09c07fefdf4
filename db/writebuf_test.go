package db_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// groupBatch is a batch the size of a group of 64 steps' ends: 64 statements
// with 6 KB of arguments each.
func groupBatch() *pgx.Batch {
	b := &pgx.Batch{}
	reply := strings.Repeat("r", 4096)
	event := strings.Repeat("e", 2048)
	for range 64 {
		b.Queue(`SELECT length($1::text) + length($2::text)`, reply, event)
	}
	return b
}

// sendAll sends b by send on c and reads every result.
func sendAll(tb testing.TB, c *pgx.Conn, b *pgx.Batch, send func(context.Context, *pgx.Conn, *pgx.Batch) pgx.BatchResults) {
	br := send(context.Background(), c, b)
	for range b.QueuedQueries {
		var n int
		if err := br.QueryRow().Scan(&n); err != nil || n != 4096+2048 {
			tb.Fatalf("a statement of the batch: %d, %v", n, err)
		}
	}
	if err := br.Close(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkGroupBatch sends a group's batch as pgx does alone (its write
// buffer grows from 1 KB by a quarter at a time) and as a transaction's
// batches go (the buffer grown for the batch first), one after the other on
// one connection.
func BenchmarkGroupBatch(b *testing.B) {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dbtest.New(b).Config().ConnString())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	for _, bench := range []struct {
		name string
		send func(context.Context, *pgx.Conn, *pgx.Batch) pgx.BatchResults
	}{
		{"pgx", func(ctx context.Context, c *pgx.Conn, b *pgx.Batch) pgx.BatchResults { return c.SendBatch(ctx, b) }},
		{"reserved", db.SendBatchReserved},
	} {
		b.Run(bench.name, func(b *testing.B) {
			sendAll(b, c, groupBatch(), bench.send) // prepared
			b.ReportAllocs()
			for b.Loop() {
				sendAll(b, c, groupBatch(), bench.send)
			}
		})
	}
}

// writeBufferCap is the capacity of pgx's write buffer on c (the unexported
// field wbuf of its pgproto3.Frontend).
func writeBufferCap(t *testing.T, c *pgx.Conn) int {
	t.Helper()
	f := reflect.ValueOf(c.PgConn().Frontend()).Elem().FieldByName("wbuf")
	if !f.IsValid() {
		t.Fatal("pgproto3.Frontend has no field wbuf: see db/writebuf.go")
	}
	return f.Cap()
}

// A batch that fails before it is written leaves the connection's write
// buffer as pgx would have (1 KB), not grown for it; the connection then
// serves as before.
func TestABatchNotSentLeavesNoReservedBuffer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dbtest.New(t).Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	b := &pgx.Batch{}
	b.Queue(`SELECT $1::text`, make(chan int)) // cannot be encoded
	b.Queue(`SELECT length($1::text)`, strings.Repeat("x", 1<<20))
	if err := db.SendBatchReserved(ctx, c, b).Close(); err == nil {
		t.Fatal("a batch with an argument that cannot be encoded was sent")
	}
	if n := writeBufferCap(t, c); n > 1024 {
		t.Errorf("the write buffer kept %d bytes after a batch that was not sent, want at most 1024", n)
	}
	sendAll(t, c, groupBatch(), db.SendBatchReserved)
}

// A batch sent on a connection that pgx has closed (a statement whose
// context ended) fails as pgx's own SendBatch does, and does not touch the
// buffer pgx writes its Terminate message from (under -race, a race).
func TestABatchOnAClosedConnectionFails(t *testing.T) {
	t.Parallel()
	c, err := pgx.Connect(context.Background(), dbtest.New(t).Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Exec(ctx, `SELECT pg_sleep(5)`); err == nil {
		t.Fatal("a statement outlived its context")
	}
	if !c.IsClosed() {
		t.Fatal("pgx did not close the connection of a statement whose context ended")
	}
	if err := db.SendBatchReserved(context.Background(), c, groupBatch()).Close(); err == nil {
		t.Error("a batch on a closed connection did not fail")
	}
	<-c.PgConn().CleanupDone() // pgx's Terminate written
}
