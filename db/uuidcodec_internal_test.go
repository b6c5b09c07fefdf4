package db

import (
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// BenchmarkUUIDEncode encodes a uuid.UUID argument for the binary protocol as
// pgx does by default (its driver.Valuer path) and with Configure's plan.
func BenchmarkUUIDEncode(b *testing.B) {
	id := uuid.New()
	for _, c := range []struct {
		name      string
		configure bool
	}{{"valuer", false}, {"codec", true}} {
		b.Run(c.name, func(b *testing.B) {
			m := pgtype.NewMap()
			if c.configure {
				m.TryWrapEncodePlanFuncs = append([]pgtype.TryWrapEncodePlanFunc{tryWrapUUIDEncodePlan}, m.TryWrapEncodePlanFuncs...)
			}
			buf := make([]byte, 0, 64)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = m.Encode(pgtype.UUIDOID, pgtype.BinaryFormatCode, id, buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUUIDScan plans and scans a uuid column into a uuid.UUID, as every
// row a query returns does: by default (its sql.Scanner) and with
// Configure's codec.
func BenchmarkUUIDScan(b *testing.B) {
	id := uuid.New()
	for _, c := range []struct {
		name      string
		configure bool
	}{{"scanner", false}, {"codec", true}} {
		b.Run(c.name, func(b *testing.B) {
			m := pgtype.NewMap()
			if c.configure {
				m.RegisterType(&pgtype.Type{Name: "uuid", OID: pgtype.UUIDOID, Codec: uuidCodec{}})
			}
			var got uuid.UUID
			b.ReportAllocs()
			for b.Loop() {
				plan := m.PlanScan(pgtype.UUIDOID, pgtype.BinaryFormatCode, &got)
				if err := plan.Scan(id[:], &got); err != nil || got != id {
					b.Fatal(got, err)
				}
			}
		})
	}
}
