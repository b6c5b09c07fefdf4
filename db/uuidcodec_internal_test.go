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
	byDefaultAndConfigured(b, "valuer", func(m *pgtype.Map) {
		m.TryWrapEncodePlanFuncs = append([]pgtype.TryWrapEncodePlanFunc{tryWrapUUIDEncodePlan}, m.TryWrapEncodePlanFuncs...)
	}, func(b *testing.B, m *pgtype.Map) {
		buf := make([]byte, 0, 64)
		for b.Loop() {
			var err error
			if buf, err = m.Encode(pgtype.UUIDOID, pgtype.BinaryFormatCode, id, buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkUUIDScan plans and scans a uuid column into a uuid.UUID, as every
// row a query returns does: by default (its sql.Scanner) and with
// Configure's codec.
func BenchmarkUUIDScan(b *testing.B) {
	id := uuid.New()
	byDefaultAndConfigured(b, "scanner", func(m *pgtype.Map) {
		m.RegisterType(&pgtype.Type{Name: "uuid", OID: pgtype.UUIDOID, Codec: uuidCodec{}})
	}, func(b *testing.B, m *pgtype.Map) {
		var got uuid.UUID
		for b.Loop() {
			plan := m.PlanScan(pgtype.UUIDOID, pgtype.BinaryFormatCode, &got)
			if err := plan.Scan(id[:], &got); err != nil || got != id {
				b.Fatal(got, err)
			}
		}
	})
}

// byDefaultAndConfigured runs bench on pgx's default type map (as the
// sub-benchmark byDefault) and on one that configure changed as Configure
// does ("codec").
func byDefaultAndConfigured(b *testing.B, byDefault string, configure func(*pgtype.Map), bench func(*testing.B, *pgtype.Map)) {
	for _, name := range []string{byDefault, "codec"} {
		b.Run(name, func(b *testing.B) {
			m := pgtype.NewMap()
			if name == "codec" {
				configure(m)
			}
			b.ReportAllocs()
			bench(b, m)
		})
	}
}
