package db

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Configure sets up every connection of a pool the way the service's queries
// expect; Open calls it, and so do the test pools (dbtest). Its statements
// are planned once per connection (genericPlans).
//
// google/uuid's UUID is a driver.Valuer, so pgx encoded every uuid argument
// through its Valuer path: Value() formats the id as a string, which pgx then
// parses back into 16 bytes for the binary protocol, planning that inner
// encode again on every call (3.8 % of the server's CPU under the pipeline
// load). Converted to pgtype.UUID first, it takes pgx's own uuid codec: the
// 16 bytes copied, the plan memoized.
//
// Read back, a uuid column scanned into a uuid.UUID went through its
// sql.Scanner: pgx formatted the 16 bytes as a string, which Scan parsed
// back, at every row (4 allocations and about 240 ns a column,
// BenchmarkUUIDScan; a step's start scans six). The uuid codec registered
// here copies the bytes.
func Configure(cfg *pgxpool.Config) {
	plans := genericPlans(cfg.ConnConfig)
	after := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		m := c.TypeMap()
		m.TryWrapEncodePlanFuncs = append([]pgtype.TryWrapEncodePlanFunc{tryWrapUUIDEncodePlan}, m.TryWrapEncodePlanFuncs...)
		m.RegisterType(&pgtype.Type{Name: "uuid", OID: pgtype.UUIDOID, Codec: uuidCodec{}})
		if plans != nil {
			if err := plans(ctx, c); err != nil {
				return fmt.Errorf("set plan_cache_mode: %w", err)
			}
		}
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

// uuidCodec is pgx's uuid codec that scans the binary form into a
// uuid.UUID directly.
type uuidCodec struct{ pgtype.UUIDCodec }

func (c uuidCodec) PlanScan(m *pgtype.Map, oid uint32, format int16, target any) pgtype.ScanPlan {
	if _, ok := target.(*uuid.UUID); ok && format == pgtype.BinaryFormatCode {
		return scanUUIDPlan{}
	}
	return c.UUIDCodec.PlanScan(m, oid, format, target)
}

type scanUUIDPlan struct{}

// Scan leaves dst as it is for NULL, as uuid.UUID's Scan does; a nullable
// column is scanned into a **uuid.UUID, which pgx sets to nil.
func (scanUUIDPlan) Scan(src []byte, dst any) error {
	if src == nil {
		return nil
	}
	if len(src) != len(uuid.UUID{}) {
		return fmt.Errorf("invalid length for a uuid: %d", len(src))
	}
	copy(dst.(*uuid.UUID)[:], src)
	return nil
}
