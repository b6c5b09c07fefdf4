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
func sendBatch(ctx context.Context, c *pgx.Conn, b *pgx.Batch) pgx.BatchResults {
	if n := reserveFor(b); n > minReserve {
		c.PgConn().Frontend().Send(reserveWrite(n))
	}
	return c.SendBatch(ctx, b)
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
		// Bind's header and statement name (pgx's are 74 bytes),
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
// is appended to by its value (pgproto3.Frontend.Send): what pgx encodes
// next then goes in without growing it again.
type reserveWrite int

func (reserveWrite) Frontend()           {}
func (reserveWrite) Decode([]byte) error { return nil }
func (n reserveWrite) Encode(dst []byte) ([]byte, error) {
	return slices.Grow(dst, int(n)), nil
}
