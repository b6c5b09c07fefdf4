package db

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/jackc/pgx/v5"
)

// sendBatch sends b on c with c's write buffer grown beforehand to about
// what b takes (reserveFor).
//
// pgx encodes a whole batch into its connection's write buffer, which it
// shrinks back to 1 KB after every write. A group's batch (db/txgroups.go:
// 64 steps' ends are a few hundred KB) then grew it from 1 KB by append, a
// quarter at a time once past 256 bytes, copying all of it at each step: some
// 25 allocations and about four times the batch in copies. That was a fifth
// of the service's CPU while a burst's first answers were stored
// (docs/benchmarks.md, "Seventeenth round").
//
// Only the buffer's capacity changes, never its bytes. A closed connection
// is left alone (pgx writes its Terminate message from another goroutine),
// and so is a busy one. A batch that fails before it is written (an argument
// that cannot be encoded, a context that has ended) leaves the buffer as pgx
// would have. When the batch holds a statement new to the connection, pgx
// first writes its Parse messages, which takes the reserved buffer away, and
// the batch grows the buffer as before.
func sendBatch(ctx context.Context, c *pgx.Conn, b *pgx.Batch) pgx.BatchResults {
	n := reserveFor(b)
	if n <= minReserve || c.IsClosed() || c.PgConn().IsBusy() {
		return c.SendBatch(ctx, b)
	}
	f := c.PgConn().Frontend()
	f.Send(reserveWrite(n))
	br := c.SendBatch(ctx, b)
	if !c.IsClosed() {
		f.Send(reserveWrite(0))
	}
	return br
}

// minReserve is the size of pgx's write buffer after a write: a batch that
// fits it needs nothing reserved.
const minReserve = 1024

// reserveFor estimates the bytes b's statements take in pgx's write buffer
// once they are prepared on the connection (Bind, Describe and Execute, and
// their arguments). Arguments of a type it does not size count a little; a
// statement's first use on a connection (Parse, with its text) takes more,
// which the buffer then grows for as before.
func reserveFor(b *pgx.Batch) int {
	n := 0
	for _, q := range b.QueuedQueries {
		// Bind's header and statement name (pgx's names are 58 bytes),
		// Describe and Execute.
		n += 128
		for _, a := range q.Arguments {
			n += 8 + argSize(a) // its length and format code, and itself
		}
	}
	return n
}

func argSize(a any) int {
	switch v := a.(type) {
	case string:
		return len(v)
	case []byte:
		return len(v)
	case json.RawMessage:
		return len(v)
	case *string:
		if v != nil {
			return len(*v)
		}
	case []string:
		return arraySize(v)
	case [][]byte: // River's insert of many jobs
		return arraySize(v)
	}
	return 16
}

// arraySize is the size of an array argument: its header, and each element
// with its length.
func arraySize[T string | []byte](v []T) int {
	n := 24
	for _, e := range v {
		n += 4 + len(e)
	}
	return n
}

// reserveWrite is a message of no bytes whose encoding grows the buffer it
// is appended to (pgproto3.Frontend.Send) by its value, so that what pgx
// encodes next goes in without growing it again; reserveWrite(0) gives an
// empty buffer grown that way, not written, pgx's own size back. (With
// pgproto3's tracing on, each is traced as a message of no bytes.)
type reserveWrite int

func (reserveWrite) Frontend()           {}
func (reserveWrite) Decode([]byte) error { return nil }
func (n reserveWrite) Encode(dst []byte) ([]byte, error) {
	if n == 0 {
		if len(dst) == 0 && cap(dst) > minReserve {
			return make([]byte, 0, minReserve), nil
		}
		return dst, nil
	}
	return slices.Grow(dst, int(n)), nil
}
