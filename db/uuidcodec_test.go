package db_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// uuid.UUID arguments take pgx's own uuid codec (db.Configure), not the
// driver.Valuer path, and mean the same in every place they are used.
func TestUUIDArguments(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	id := uuid.New()

	plan := conn.Conn().TypeMap().PlanEncode(pgtype.UUIDOID, pgtype.BinaryFormatCode, id)
	if got := fmt.Sprintf("%T", plan); got != "*db.uuidEncodePlan" {
		t.Errorf("uuid.UUID argument planned as %s, want *db.uuidEncodePlan", got)
	}
	var asUUID, asText string
	var equal bool
	if err := conn.QueryRow(ctx, `SELECT $1::uuid::text, $2::text, $1::uuid = $3::uuid`, id, id, id.String()).Scan(&asUUID, &asText, &equal); err != nil {
		t.Fatal(err)
	}
	if asUUID != id.String() || asText != id.String() || !equal {
		t.Fatalf("uuid %s sent as %q (uuid) and %q (text), equal to its string form: %v", id, asUUID, asText, equal)
	}
	var null *string
	if err := conn.QueryRow(ctx, `SELECT $1::uuid::text`, (*uuid.UUID)(nil)).Scan(&null); err != nil || null != nil {
		t.Fatalf("a nil *uuid.UUID: %v, %v; want NULL", null, err)
	}
}
