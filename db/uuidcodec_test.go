package db_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// configuredConn is a connection of a pool set up as the service's
// (db.Configure), for the test's life.
func configuredConn(t *testing.T) *pgxpool.Conn {
	t.Helper()
	conn, err := dbtest.New(t).Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Release)
	return conn
}

// uuid.UUID arguments take pgx's own uuid codec (db.Configure), not the
// driver.Valuer path, and mean the same in every place they are used.
func TestUUIDArguments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := configuredConn(t)
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

// A uuid column scans into a uuid.UUID by copying its bytes (db.Configure),
// and into a *uuid.UUID as nil for NULL, as through uuid.UUID's Scan.
func TestUUIDScans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := configuredConn(t)
	var id uuid.UUID
	plan := conn.Conn().TypeMap().PlanScan(pgtype.UUIDOID, pgtype.BinaryFormatCode, &id)
	if got := fmt.Sprintf("%T", plan); got != "db.scanUUIDPlan" {
		t.Errorf("a uuid scanned into uuid.UUID is planned as %s, want db.scanUUIDPlan", got)
	}
	want := uuid.New()
	var some, none *uuid.UUID
	var asText string
	if err := conn.QueryRow(ctx, `SELECT $1::uuid, $1::uuid, NULL::uuid, $1::uuid`, want.String()).Scan(&id, &some, &none, &asText); err != nil {
		t.Fatal(err)
	}
	if id != want || some == nil || *some != want || none != nil || asText != want.String() {
		t.Fatalf("scanned %s, %v, %v, %q; want %s, a pointer to it, nil and its text", id, some, none, asText, want)
	}
	var ids []uuid.UUID
	if err := conn.QueryRow(ctx, `SELECT ARRAY[$1::uuid, $1::uuid]`, want.String()).Scan(&ids); err != nil || len(ids) != 2 || ids[0] != want || ids[1] != want {
		t.Fatalf("an array of uuids scanned as %v, %v; want two of %s", ids, err, want)
	}
}
