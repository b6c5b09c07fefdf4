package db

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Configure sets up every connection of a pool the way the service's queries
// expect; Open calls it, and so do the test pools (dbtest).
//
// google/uuid's UUID is a driver.Valuer, so pgx encoded every uuid argument
// through its Valuer path: Value() formats the id as a string, which pgx then
// parses back into 16 bytes for the binary protocol, planning that inner
// encode again on every call (3.8 % of the server's CPU under the pipeline
// load). Converted to pgtype.UUID first, it takes pgx's own uuid codec: the
// 16 bytes copied, the plan memoized.
func Configure(cfg *pgxpool.Config) {
	after := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		m := c.TypeMap()
		m.TryWrapEncodePlanFuncs = append([]pgtype.TryWrapEncodePlanFunc{tryWrapUUIDEncodePlan}, m.TryWrapEncodePlanFuncs...)
		if after != nil {
			return after(ctx, c)
		}
		return nil
	}
}

func tryWrapUUIDEncodePlan(value any) (pgtype.WrappedEncodePlanNextSetter, any, bool) {
	if u, ok := value.(uuid.UUID); ok {
		return &uuidEncodePlan{}, pgtype.UUID{Bytes: u, Valid: true}, true
	}
	return nil, nil, false
}

type uuidEncodePlan struct{ next pgtype.EncodePlan }

func (p *uuidEncodePlan) SetNext(next pgtype.EncodePlan) { p.next = next }

func (p *uuidEncodePlan) Encode(value any, buf []byte) ([]byte, error) {
	return p.next.Encode(pgtype.UUID{Bytes: value.(uuid.UUID), Valid: true}, buf)
}
