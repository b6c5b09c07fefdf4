package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/patch"
)

// A message that ends while a commit of its session resets the Evaluator's
// memory keeps no Evaluator turn from before the commit: the session's next
// message is reviewed afresh. The commit's reset used to run its statements
// while the message ended, so its marks (made before the end, committed
// after the end's DELETE) stayed for good. The interleaving is forced by
// holding the events table: both transactions insert an event after their
// agent_memory statements.
func TestAMessageEndingDuringACommitKeepsNoTurnFromBeforeIt(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	p, sess, alpha, turnA, _ := startedStep(t, store, "race")
	patched := p.CurrentCode + "# reviewed\n"
	if err := store.EndTurn(ctx, &turnA, db.TurnEnd{Status: domain.StatusDiffCreated, DiffStep: alpha.MessageID + "/diff",
		Diff: &domain.Diff{ProjectID: p.ID, SessionID: &sess.ID, MessageID: &alpha.MessageID, BaseCommit: turnA.BaseCommit,
			TargetBranch: p.CurrentBranch, DiffContent: patch.Unified(p.CurrentCode, patched, domain.ScriptPath),
			Status: domain.DiffEvaluatorApproved, VibecoderPrompt: "hi", CommitMessage: "c"}}); err != nil {
		t.Fatal(err)
	}
	var diffID string
	if err := pool.QueryRow(ctx, `SELECT id::text FROM diffs WHERE project_id = $1`, p.ID).Scan(&diffID); err != nil {
		t.Fatal(err)
	}
	mu, err := store.SubmitMessage(ctx, sess.ID, domain.NewMessage{Prompt: "mu"}, func(_ context.Context, _ pgx.Tx, ids []string) ([]int64, error) { return make([]int64, len(ids)), nil })
	if err != nil {
		t.Fatal(err)
	}
	turnMu, err := store.StartTurn(ctx, mu.MessageID, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO agent_memory (session_key, agent, turn_key, items) VALUES ($1, $2, $3, '[]')`,
		sess.OpenAISessionKey, domain.AgentEvaluator, mu.MessageID+"/1"); err != nil {
		t.Fatal(err)
	}

	blocker, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blocker.Exec(ctx, `LOCK TABLE events IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	waiters := func(n int) {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if dbtest.Count(t, pool, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %d waiters", n)
			}
		}
	}
	commitErr := make(chan error, 1)
	go func() { _, err := store.CommitDiff(ctx, diffID, ""); commitErr <- err }()
	waiters(1) // the commit's DELETE and UPDATE ran: mu's turn is marked, not committed
	endErr := make(chan error, 1)
	go func() { endErr <- store.FailTurn(ctx, &turnMu, "boom", nil) }()
	waiters(2) // mu's end ran its DELETE, which did not see the mark
	if err := blocker.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-commitErr; err != nil {
		t.Fatal(err)
	}
	if err := <-endErr; err != nil {
		t.Fatal(err)
	}
	if n := dbtest.Count(t, pool, `SELECT count(*) FROM messages WHERE id = $1 AND status = 'failed'`, mu.MessageID); n != 1 {
		t.Fatalf("mu did not end")
	}
	if n := dbtest.Count(t, pool, `SELECT count(*) FROM agent_memory WHERE turn_key = $1`, mu.MessageID+"/1"); n != 0 {
		t.Errorf("mu ended, yet its Evaluator turn from before the commit is still in memory (%d row, forget_when_ended=%d)", n,
			dbtest.Count(t, pool, `SELECT count(*) FROM agent_memory WHERE turn_key = $1 AND forget_when_ended`, mu.MessageID+"/1"))
	}
}
