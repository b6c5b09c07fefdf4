package db_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

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
	diffID := endWithDiff(t, store, p, sess, alpha, &turnA, patched)
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

	release := holdLocks(t, pool, `LOCK TABLE events IN SHARE MODE`)
	commitErr := make(chan error, 1)
	go func() { _, err := store.CommitDiff(ctx, diffID, ""); commitErr <- err }()
	waitForLockWaiters(t, pool, 1) // the commit's DELETE and UPDATE ran: mu's turn is marked, not committed
	endErr := make(chan error, 1)
	go func() { endErr <- store.FailTurn(ctx, &turnMu, "boom", nil) }()
	waitForLockWaiters(t, pool, 2) // mu's end ran its DELETE, which did not see the mark
	release()
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

// A step that ends with a diff while its project is deleted: both succeed.
// The diff refers to the project, and its key share of it came after the
// step's hold of its session and message, while the delete holds the
// project and then its sessions: a deadlock, a 500 for the delete or a
// failed step. The interleaving is forced by holding the diffs table: the
// step holds its session and waits to insert its diff, the delete waits for
// the session (or, with the fix, for the project).
func TestADiffEndingWhileItsProjectIsDeletedIsNoDeadlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	for i := range 3 {
		p, sess, accepted, turn, _ := startedStep(t, store, fmt.Sprintf("diff and delete %d", i))
		release := holdLocks(t, pool, `LOCK TABLE diffs IN SHARE MODE`)
		ended := make(chan error, 1)
		go func() {
			ended <- store.EndTurn(ctx, &turn, db.TurnEnd{Status: domain.StatusDiffCreated, DiffStep: accepted.MessageID + "/diff",
				Diff: &domain.Diff{ProjectID: p.ID, SessionID: &sess.ID, MessageID: &accepted.MessageID, BaseCommit: turn.BaseCommit,
					TargetBranch: p.CurrentBranch, DiffContent: patch.Unified(p.CurrentCode, p.CurrentCode+"# x\n", domain.ScriptPath),
					Status: domain.DiffEvaluatorApproved, VibecoderPrompt: "hi", CommitMessage: "c"}})
		}()
		waitForLockWaiters(t, pool, 1) // the step holds its session, its diff waits
		deleted := make(chan error, 1)
		go func() { deleted <- store.DeleteProject(ctx, p.ID) }()
		waitForLockWaiters(t, pool, 2) // the delete waits
		release()
		if err := <-ended; err != nil && !errors.Is(err, db.ErrTurnGone) {
			t.Errorf("%d: a step's end with a diff during its project's delete: %v", i, err)
		}
		if err := <-deleted; err != nil {
			t.Errorf("%d: DELETE /projects/{id} during a step's end with a diff: %v", i, err)
		}
		if n := dbtest.Count(t, pool, `SELECT count(*) FROM diffs WHERE project_id = $1`, p.ID); n != 0 {
			t.Errorf("%d: after the delete, %d diffs of the project remain", i, n)
		}
	}
}

// A commit while another message of its session ends with a diff: both
// succeed. The commit holds the session's messages under way and then its
// project, and the step's end holds the project's key share (for its diff)
// and then its message: the commit's FOR UPDATE of the project waited for
// that key share, a deadlock. The interleaving is forced by holding the
// project row FOR NO KEY UPDATE from a third transaction: the commit holds
// the message and waits for the project, the end holds the project's key
// share and waits for the message.
func TestACommitWhileADiffEndsIsNoDeadlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	noJobs := func(_ context.Context, _ pgx.Tx, ids []string) ([]int64, error) { return make([]int64, len(ids)), nil }
	for i := range 3 {
		p, sess, alpha, turnA, _ := startedStep(t, store, fmt.Sprintf("commit and diff %d", i))
		endWithDiff := func(turn *db.Turn, messageID, line string) error {
			return store.EndTurn(ctx, turn, db.TurnEnd{Status: domain.StatusDiffCreated, DiffStep: messageID + "/diff",
				Diff: &domain.Diff{ProjectID: p.ID, SessionID: &sess.ID, MessageID: &messageID, BaseCommit: turn.BaseCommit,
					TargetBranch: p.CurrentBranch, DiffContent: patch.Unified(p.CurrentCode, p.CurrentCode+line, domain.ScriptPath),
					Status: domain.DiffEvaluatorApproved, VibecoderPrompt: "hi", CommitMessage: "c"}})
		}
		if err := endWithDiff(&turnA, alpha.MessageID, "# alpha\n"); err != nil {
			t.Fatal(err)
		}
		var diffID string
		if err := pool.QueryRow(ctx, `SELECT id::text FROM diffs WHERE project_id = $1`, p.ID).Scan(&diffID); err != nil {
			t.Fatal(err)
		}
		beta, err := store.SubmitMessage(ctx, sess.ID, domain.NewMessage{Prompt: "beta"}, noJobs)
		if err != nil {
			t.Fatal(err)
		}
		turnB, err := store.StartTurn(ctx, beta.MessageID, true)
		if err != nil {
			t.Fatal(err)
		}
		release := holdLocks(t, pool, `SELECT 1 FROM projects WHERE id = $1 FOR NO KEY UPDATE`, p.ID)
		committed := make(chan error, 1)
		go func() {
			_, err := store.CommitDiff(ctx, diffID, "")
			committed <- err
		}()
		waitForLockWaiters(t, pool, 1) // the commit holds the message under way, waits for the project
		ended := make(chan error, 1)
		go func() { ended <- endWithDiff(&turnB, beta.MessageID, "# beta\n") }()
		waitForLockWaiters(t, pool, 2) // the end holds the project's key share, waits for its message
		release()
		if err := <-committed; err != nil {
			t.Errorf("%d: POST /diffs/{id}/commit while a message of its session ends with a diff: %v", i, err)
		}
		if err := <-ended; err != nil {
			t.Errorf("%d: a step's end with a diff during a commit: %v", i, err)
		}
		if n := dbtest.Count(t, pool, `SELECT count(*) FROM diffs WHERE project_id = $1 AND status = 'committed'`, p.ID); n != 1 {
			t.Errorf("%d: %d committed diffs, want 1", i, n)
		}
	}
}

// A diff's preview read while its project is deleted is not found, or the
// preview: the read of its project's row and then of its git objects can
// straddle the delete, which answered "object not found", a 500. Timing
// decides whether a read straddles it, so the test deletes many projects
// while reading their diff's preview.
func TestADiffPreviewedWhileItsProjectIsDeletedIsNotFound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := &db.Store{Pool: dbtest.New(t)}
	for i := range 20 {
		p, sess, accepted, turn, _ := startedStep(t, store, fmt.Sprintf("previewed %d", i))
		if err := store.EndTurn(ctx, &turn, db.TurnEnd{Status: domain.StatusDiffCreated, DiffStep: accepted.MessageID + "/diff",
			Diff: &domain.Diff{ProjectID: p.ID, SessionID: &sess.ID, MessageID: &accepted.MessageID, BaseCommit: turn.BaseCommit,
				TargetBranch: p.CurrentBranch, DiffContent: patch.Unified(p.CurrentCode, p.CurrentCode+"# x\n", domain.ScriptPath),
				Status: domain.DiffEvaluatorApproved, VibecoderPrompt: "hi", CommitMessage: "c"}}); err != nil {
			t.Fatal(err)
		}
		var diffID string
		if err := store.Pool.QueryRow(ctx, `SELECT id::text FROM diffs WHERE project_id = $1`, p.ID).Scan(&diffID); err != nil {
			t.Fatal(err)
		}
		deleted := make(chan error, 1)
		go func() { deleted <- store.DeleteProject(ctx, p.ID) }()
		for {
			_, err := store.PreviewDiff(ctx, diffID)
			if err != nil {
				if domain.ErrorCodeOf(err) != domain.ENOTFOUND {
					t.Errorf("%d: GET /diffs/{id}/preview during its project's delete: %v", i, err)
				}
				break
			}
		}
		if err := <-deleted; err != nil {
			t.Fatal(err)
		}
	}
}

// A commit of a session's diff while the session is cleared is no deadlock
// (a 500 for one of them). The commit locks the session's messages under
// way FOR SHARE in id order; the clear holds the session and then deletes
// its messages in the scan's order (position). With two messages under way
// whose ids sort the other way round from their positions, the commit
// holds the later message and waits for the earlier one, which the clear's
// DELETE holds while it waits for the later one: a deadlock, a 500 for one.
// The interleaving is forced by holding the later message FOR UPDATE.
func TestACommitWhileItsSessionIsClearedIsNoDeadlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	noJobs := func(_ context.Context, _ pgx.Tx, ids []string) ([]int64, error) { return make([]int64, len(ids)), nil }
	p, sess, alpha, turnA, _ := startedStep(t, store, "commit and clear")
	diffID := endWithDiff(t, store, p, sess, alpha, &turnA, p.CurrentCode+"# x\n")
	// Earlier position, larger id; later position, smaller id.
	first, second := "f0000000-0000-4000-8000-000000000001", "10000000-0000-4000-8000-000000000001"
	for _, id := range []string{first, second} {
		if _, err := store.SubmitMessage(ctx, sess.ID, domain.NewMessage{Prompt: "p", MessageID: &id}, noJobs); err != nil {
			t.Fatal(err)
		}
	}
	release := holdLocks(t, pool, `SELECT 1 FROM messages WHERE id = $1 FOR UPDATE`, second)
	committed := make(chan error, 1)
	go func() { _, err := store.CommitDiff(ctx, diffID, ""); committed <- err }()
	waitForLockWaiters(t, pool, 1) // the commit waits for the later message (the first in id order)
	cleared := make(chan error, 1)
	go func() { cleared <- store.ClearSession(ctx, sess.ID) }()
	waitForLockWaiters(t, pool, 2) // the clear deleted the earlier message and waits for the later one
	release()
	if err := <-committed; err != nil {
		t.Errorf("POST /diffs/{id}/commit while its session is cleared: %v", err)
	}
	if err := <-cleared; err != nil {
		t.Errorf("DELETE /sessions/{id} during a commit of its diff: %v", err)
	}
}

// A commit of a diff stored between a project delete's lock of the
// project's diffs and its lock of the project is no 500, nor is the delete:
// the commit holds the new diff (and its session's key share) and waits for
// the project, the delete holds the project and waits for the session or,
// in its cascade, the diff, and PostgreSQL fails one of them. That one is
// tried again and waits for the other: the commit then finds its diff gone
// with the project (404), or the delete deletes the committed project. The
// interleaving is forced by holding the project as another commit would.
func TestACommitOfADiffStoredDuringItsProjectsDeleteIsNoDeadlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	p, sess, alpha, turnA, _ := startedStep(t, store, "a commit during a delete")
	release := holdLocks(t, pool, `SELECT 1 FROM projects WHERE id = $1 FOR NO KEY UPDATE`, p.ID)
	deleted := make(chan error, 1)
	go func() { deleted <- store.DeleteProject(ctx, p.ID) }()
	waitForLockWaiters(t, pool, 1) // the delete locked the diffs (none) and waits for the project
	diffID := endWithDiff(t, store, p, sess, alpha, &turnA, p.CurrentCode+"# x\n")
	committed := make(chan error, 1)
	go func() { _, err := store.CommitDiff(ctx, diffID, ""); committed <- err }()
	waitForLockWaiters(t, pool, 2) // the commit holds the new diff and waits for the project
	release()
	if err := <-deleted; err != nil {
		t.Errorf("DELETE /projects/{id}: %v", err)
	}
	if err := <-committed; err != nil && domain.ErrorCodeOf(err) != domain.ENOTFOUND {
		t.Errorf("POST /diffs/{id}/commit of a diff stored during its project's delete: %v, want it committed or not found", err)
	}
	if n := dbtest.Count(t, pool, `SELECT count(*) FROM projects WHERE id = $1`, p.ID); n != 0 {
		t.Errorf("the project is still there")
	}
}
