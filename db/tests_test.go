package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
)

// A run on a diff named in another spelling of its UUID ("urn:uuid:…",
// which the API accepts) is queued: the diff's id went to PostgreSQL as the
// client spelled it, which PostgreSQL refused (a 500).
func TestARunOnADiffNamedByURNIsQueued(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	p, sess, alpha, turnA, _ := startedStep(t, store, "urn")
	diffID := endWithDiff(t, store, p, sess, alpha, &turnA, p.CurrentCode+"# x\n")
	tc, err := store.CreateTest(ctx, p.ID, domain.NewTestCase{Name: "t", Code: "pass"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	urn := "urn:uuid:" + diffID
	if _, err := db.ParseID("diff", urn); err != nil {
		t.Fatalf("ParseID refuses %q: %v", urn, err)
	}
	if _, err := store.StartRun(ctx, uuid.New(), tc.ID, &urn, func(pgx.Tx, string) (int64, error) { return 1, nil }); err != nil {
		t.Errorf("POST /tests/{id}/run with diff_id %q: %v (code %q)", urn, err, domain.ErrorCodeOf(err))
	}
}
