package db_test

import (
	"context"
	"strings"
	"testing"

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
