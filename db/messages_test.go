package db_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/event"
	"github.com/vibegrapher/vibegrapher/domain/patch"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
)

// GetMessage returns the raw response of an assistant message from its model
// call, and for a row written before replies were stored once, from the copy
// the row holds.
func TestGetMessageReturnsTheRawResponse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	p, sess := newSession(t, store, "raw responses")
	user, stored, copied := uuid.New(), uuid.New(), uuid.New()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO messages (id, session_id, project_id, role, agent, content, trace_id, status) VALUES ($1, $2, $3, 'user', 'user', 'hi', 't', 'answered')`,
			[]any{user, sess.ID, p.ID}},
		{`INSERT INTO messages (id, session_id, project_id, role, agent, content, trace_id, reply_to, step_key) VALUES ($1, $2, $3, 'assistant', 'vibecoder', 'a', 't', $4, 'call/1')`,
			[]any{stored, sess.ID, p.ID, user}},
		{`INSERT INTO model_calls (call_key, message_id, response) VALUES ('call/1', $1, '{"id": "resp_1", "object": "response"}')`,
			[]any{user}},
		{`INSERT INTO messages (id, session_id, project_id, role, agent, content, trace_id, reply_to, step_key, openai_response) VALUES ($1, $2, $3, 'assistant', 'vibecoder', 'b', 't', $4, 'call/old', '[{"id": "resp_0", "object": "response"}]')`,
			[]any{copied, sess.ID, p.ID, user}},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[uuid.UUID]string{
		stored: `[{"id":"resp_1","object":"response"}]`,
		copied: `[{"id":"resp_0","object":"response"}]`,
		user:   `[]`,
	} {
		m, err := store.GetMessage(ctx, id.String())
		if err != nil {
			t.Fatal(err)
		}
		var got any // compacted, and its keys in order, as want's
		if err := json.Unmarshal(m.OpenAIResponse, &got); err != nil {
			t.Fatalf("%s: %s: %v", m.Content, m.OpenAIResponse, err)
		}
		if g, _ := json.Marshal(got); string(g) != want {
			t.Errorf("message %q: openai_response %s, want %s", m.Content, m.OpenAIResponse, want)
		}
	}
}

// SubmitMessage with River's insert as its enqueue: the check of the session
// and of the id, BEGIN and the job's insert go in one round trip, the message,
// its event, River's notification and COMMIT in another. An unknown session
// and a repeated id leave no job behind.
func TestSubmitMessageInTwoRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, counted := countedPool(t)
	store := &db.Store{Pool: pool}
	client, err := jobargs.NewInsertOnlyClient(pool, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	enqueue := func(ctx context.Context, tx pgx.Tx, ids []string) ([]int64, error) {
		jobs := make([]int64, len(ids))
		for i, id := range ids {
			res, err := client.InsertTx(ctx, tx, jobargs.VibecodeArgs{MessageID: id, Iteration: 1}, nil)
			if err != nil {
				return nil, err
			}
			jobs[i] = res.Job.ID
		}
		return jobs, nil
	}
	_, sess := newSession(t, store, "two round trips")
	// River asks the server's version on its first insert.
	if _, err := store.SubmitMessage(ctx, sess.ID, domain.NewMessage{Prompt: "first"}, enqueue); err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	before := counted.count()
	first, err := store.SubmitMessage(ctx, sess.ID, domain.NewMessage{Prompt: "hi", MessageID: &id}, enqueue)
	if err != nil {
		t.Fatal(err)
	}
	if sent := counted.since(before); len(sent) != 2 {
		t.Errorf("a message took %d round trips, want 2: %q", len(sent), sent)
	}
	// The first job done, a repeat's insert would make a new one if it
	// were not rolled back.
	if _, err := pool.Exec(ctx, `UPDATE river_job SET state = 'completed', finalized_at = now()`); err != nil {
		t.Fatal(err)
	}
	again, err := store.SubmitMessage(ctx, sess.ID, domain.NewMessage{Prompt: "hi", MessageID: &id}, enqueue)
	if err != nil || again != first {
		t.Errorf("the same message again: %+v, %v; want %+v", again, err, first)
	}
	if _, err := store.SubmitMessage(ctx, uuid.NewString(), domain.NewMessage{Prompt: "hi"}, enqueue); domain.ErrorCodeOf(err) != domain.ENOTFOUND {
		t.Errorf("a message to an unknown session: %v, want not found", err)
	}
	if n := dbtest.Count(t, pool, `SELECT count(*) FROM river_job`); n != 2 {
		t.Errorf("%d jobs, want the two messages'", n)
	}
	if n := dbtest.Count(t, pool, `SELECT count(*) FROM messages`); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
}

// MessageLater and ReplyLater in a transaction of InTx read with its COMMIT:
// one round trip for BEGIN, both reads and COMMIT. A missing message is the
// read's error (not found; ErrTurnGone for a reply), not the transaction's.
// On the pool they read at once.
func TestMessageReadsGoWithCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, counted := countedPool(t)
	store := &db.Store{Pool: pool}
	p, sess := newSession(t, store, "reads with commit")
	user, review := uuid.NewString(), uuid.NewString()
	if _, err := pool.Exec(ctx, `INSERT INTO messages (id, session_id, project_id, role, agent, content, trace_id, status) VALUES ($1, $2, $3, 'user', 'user', 'make it polite', 't', 'running');
		`, user, sess.ID, p.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO messages (id, session_id, project_id, role, agent, iteration, content, trace_id, reply_to) VALUES ($1, $2, $3, 'assistant', 'evaluator', 1, 'be kinder', 't', $4)`,
		review, sess.ID, p.ID, user); err != nil {
		t.Fatal(err)
	}
	var msg, reply, noMsg, noReply *db.PendingMessage
	before := counted.count()
	if err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
		msg, reply = db.MessageLater(ctx, tx, user), db.ReplyLater(ctx, tx, user, domain.AgentEvaluator, 1)
		noMsg, noReply = db.MessageLater(ctx, tx, uuid.NewString()), db.ReplyLater(ctx, tx, user, domain.AgentEvaluator, 2)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if sent := counted.since(before); len(sent) != 1 {
		t.Errorf("four reads in a transaction: %d round trips, want 1: %q", len(sent), sent)
	}
	if m, err := msg.Result(); err != nil || m.Content != "make it polite" {
		t.Errorf("the message: %+v, %v", m, err)
	}
	if m, err := reply.Result(); err != nil || m.Content != "be kinder" || m.ID != review {
		t.Errorf("the review: %+v, %v", m, err)
	}
	if _, err := noMsg.Result(); domain.ErrorCodeOf(err) != domain.ENOTFOUND {
		t.Errorf("a missing message: %v, want not found", err)
	}
	if _, err := noReply.Result(); !errors.Is(err, db.ErrTurnGone) {
		t.Errorf("a missing reply: %v, want ErrTurnGone", err)
	}
	if m, err := db.ReplyLater(ctx, pool, user, domain.AgentEvaluator, 1).Result(); err != nil || m.ID != review {
		t.Errorf("the review read on the pool: %+v, %v", m, err)
	}
}

// A step's end is two round trips: BEGIN, the message's lock, the reply's
// rows and the job's completion; then the events, memory, status and COMMIT.
// The events keep their order, the job's last; a second end of the same step
// (a retried job) writes and emits nothing new.
func TestEndTurnInTwoRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, counted := countedPool(t)
	store := &db.Store{Pool: pool}
	p, sess, accepted, turn, jobID := startedStep(t, store, "two round trips at the end")
	jobState := func() (state string, finalized *time.Time) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT state, finalized_at FROM river_job WHERE id = $1`, jobID).Scan(&state, &finalized); err != nil {
			t.Fatal(err)
		}
		return state, finalized
	}
	var completions int
	end := func() error {
		answer := "Hello."
		return store.EndTurn(ctx, &turn, db.TurnEnd{
			Reply: &db.AssistantMessage{Turn: &turn, CallKey: accepted.MessageID + "/vibecoder/1/1", Response: json.RawMessage(`{"id":"resp_1"}`),
				ResponseID: "resp_1", Agent: domain.AgentVibeCoder, Iteration: 1, Content: answer, Usage: domain.TokenUsage{PromptTokens: 3, CompletionTokens: 2, TotalTokens: 5}},
			Agent: domain.AgentVibeCoder, TurnKey: accepted.MessageID + "/1", Items: json.RawMessage(`[{"role":"user","content":"hi"}]`),
			Status: domain.StatusAnswered, Outcome: event.VibecodeResponse{Response: &answer},
			Complete: &db.Completion{
				Job: func(tx pgx.Tx) error {
					completions++
					return db.CompleteJob(ctx, tx, jobID)
				},
				Event: func(tx pgx.Tx) error {
					return db.QueueEvent(ctx, tx, p.ID, dbtest.Event{Name: "job_done", Payload: map[string]any{}})
				},
			},
		})
	}
	before := counted.count()
	if err := end(); err != nil {
		t.Fatal(err)
	}
	sent := counted.since(before)
	if len(sent) != 2 {
		t.Errorf("the end of a step: %d round trips, want 2: %q", len(sent), sent)
	}
	// The session's hold, the message's lock, then the reply's rows, then
	// the job's completion: the lock order of every writer (the session, the
	// message, then its job).
	if first := sent[0]; !strings.HasPrefix(first, "batch of 6: begin | SELECT 1 FROM sessions WHERE id = $1 FOR KEY SHARE | SELECT status, position") ||
		!(strings.Index(first, "INSERT INTO model_calls") < strings.Index(first, "UPDATE river_job")) {
		t.Errorf("the first batch of a step's end: %q", first)
	}
	names := func() []string {
		t.Helper()
		all, err := db.EventsAfter(ctx, pool, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range all {
			out = append(out, e.Name)
		}
		return out
	}
	want := []string{"project_created", "session_created", "conversation_message", // the POST's
		"conversation_message", "token_usage", "vibecode_response", "job_done"}
	if got := names(); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	state, finalized := jobState()
	if state != "completed" || finalized == nil {
		t.Fatalf("the job after its step's end: %s, finalized at %v; want completed", state, finalized)
	}
	if err := end(); err != nil {
		t.Fatal(err)
	}
	if got := names(); !slices.Equal(got, append(want, "job_done")) {
		t.Errorf("after the same end again: %v, want only the job's event more", got)
	}
	if n := dbtest.Count(t, pool, `SELECT count(*) FROM messages WHERE role = 'assistant'`); n != 1 || completions != 2 {
		t.Errorf("%d replies, %d completions; want 1 and 2", n, completions)
	}
	if again, at := jobState(); again != "completed" || at == nil || !at.Equal(*finalized) {
		t.Errorf("the job after a second end: %s, finalized at %v; want as it was (%v)", again, at, finalized)
	}

	// A message deleted meanwhile (its session cleared): the end and a
	// reply stored on its own answer ErrTurnGone, though the reply's rows
	// after the lock fail on their reference to it.
	if _, err := pool.Exec(ctx, `DELETE FROM messages WHERE session_id = $1`, sess.ID); err != nil {
		t.Fatal(err)
	}
	turn.Message.ID = accepted.MessageID
	if err := end(); !errors.Is(err, db.ErrTurnGone) {
		t.Errorf("the end of a deleted message's step: %v, want ErrTurnGone", err)
	}
	if _, err := store.RecordReply(ctx, db.AssistantMessage{Turn: &turn, CallKey: accepted.MessageID + "/vibecoder/1/2", Response: json.RawMessage(`{}`),
		Agent: domain.AgentVibeCoder, Iteration: 1, Content: "late"}); !errors.Is(err, db.ErrTurnGone) {
		t.Errorf("a reply to a deleted message: %v, want ErrTurnGone", err)
	}
}

// startedStep is a message of a new session of a new project named name,
// its turn started, and its step's job running (as River leaves it for the
// worker that calls EndTurn).
func startedStep(t *testing.T, store *db.Store, name string) (domain.Project, domain.VibecodeSession, domain.MessageAccepted, db.Turn, int64) {
	t.Helper()
	ctx := context.Background()
	p, sess := newSession(t, store, name)
	accepted, err := store.SubmitMessage(ctx, sess.ID, domain.NewMessage{Prompt: "hi"}, func(_ context.Context, _ pgx.Tx, ids []string) ([]int64, error) { return make([]int64, len(ids)), nil })
	if err != nil {
		t.Fatal(err)
	}
	turn, err := store.StartTurn(ctx, accepted.MessageID, true)
	if err != nil {
		t.Fatal(err)
	}
	var jobID int64
	if err := store.Pool.QueryRow(ctx, `INSERT INTO river_job (kind, args, state, attempt, max_attempts, attempted_at)
		VALUES ('vibecode', '{}', 'running', 1, 25, now()) RETURNING id`).Scan(&jobID); err != nil {
		t.Fatal(err)
	}
	return p, sess, accepted, turn, jobID
}

// endWithDiff ends the started step turn of the message accepted with an
// Evaluator-approved diff that makes the project's code patched, and
// returns the diff's id.
func endWithDiff(t *testing.T, store *db.Store, p domain.Project, sess domain.VibecodeSession, accepted domain.MessageAccepted, turn *db.Turn, patched string) string {
	t.Helper()
	ctx := context.Background()
	if err := store.EndTurn(ctx, turn, db.TurnEnd{Status: domain.StatusDiffCreated, DiffStep: accepted.MessageID + "/diff",
		Diff: &domain.Diff{ProjectID: p.ID, SessionID: &sess.ID, MessageID: &accepted.MessageID, BaseCommit: turn.BaseCommit,
			TargetBranch: p.CurrentBranch, DiffContent: patch.Unified(p.CurrentCode, patched, domain.ScriptPath),
			Status: domain.DiffEvaluatorApproved, VibecoderPrompt: "hi", CommitMessage: "c"}}); err != nil {
		t.Fatal(err)
	}
	var diffID string
	if err := store.Pool.QueryRow(ctx, `SELECT id::text FROM diffs WHERE message_id = $1`, accepted.MessageID).Scan(&diffID); err != nil {
		t.Fatal(err)
	}
	return diffID
}

// newSession creates a project named name and a session of it.
func newSession(t *testing.T, store *db.Store, name string) (domain.Project, domain.VibecodeSession) {
	t.Helper()
	ctx := context.Background()
	p, err := store.CreateProject(ctx, domain.NewProject{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	sess, _, err := store.CreateSession(ctx, p.ID, domain.NewSession{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, sess
}

// A job completion that fails fails the step's end, which commits nothing,
// and the error names the completion (it goes in the batch of the message's
// lock, which then reported it as its own).
func TestEndTurnNamesAFailedCompletion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	_, _, accepted, turn, jobID := startedStep(t, store, "a failed completion")
	if _, err := pool.Exec(ctx, `
		CREATE FUNCTION refuse_completion() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'injected completion failure'; END $$;
		CREATE TRIGGER refuse_completion BEFORE UPDATE ON river_job FOR EACH ROW EXECUTE FUNCTION refuse_completion();`); err != nil {
		t.Fatal(err)
	}
	answer := "Hello."
	err := store.EndTurn(ctx, &turn, db.TurnEnd{
		Reply: &db.AssistantMessage{Turn: &turn, CallKey: accepted.MessageID + "/vibecoder/1/1", Response: json.RawMessage(`{"id":"resp_1"}`),
			ResponseID: "resp_1", Agent: domain.AgentVibeCoder, Iteration: 1, Content: answer},
		Status: domain.StatusAnswered, Outcome: event.VibecodeResponse{Response: &answer},
		Complete: &db.Completion{Job: func(tx pgx.Tx) error { return db.CompleteJob(ctx, tx, jobID) }},
	})
	want := "complete job " + strconv.FormatInt(jobID, 10) + ": "
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "injected completion failure") || strings.Contains(err.Error(), "lock message") {
		t.Fatalf("the step's end: %v; want the completion's failure, named %q", err, want)
	}
	if n := dbtest.Count(t, pool, `SELECT count(*) FROM messages WHERE role = 'assistant'`); n != 0 {
		t.Fatalf("%d replies stored by a step's end that failed", n)
	}
	if n := dbtest.Count(t, pool, `SELECT count(*) FROM events WHERE name IN ('vibecode_response', 'token_usage')`); n != 0 {
		t.Fatalf("%d events of a step's end that failed", n)
	}
	if n := dbtest.Count(t, pool, `SELECT count(*) FROM messages WHERE id = $1 AND status = 'running'`, accepted.MessageID); n != 1 {
		t.Fatal("the message is no longer running after its step's end failed")
	}
}

// The orphan sweep ends a message only if its job is still ended once the
// message is locked: a retry from River UI between the sweep's look and its
// end must not be undone.
func TestTheOrphanSweepLeavesAMessageWhoseJobCameBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	_, _, accepted, _, jobID := startedStep(t, store, "orphan")
	if _, err := pool.Exec(ctx, `UPDATE messages SET job_id = $2 WHERE id = $1`, accepted.MessageID, jobID); err != nil {
		t.Fatal(err)
	}
	status := func() string {
		var st string
		if err := pool.QueryRow(ctx, `SELECT status FROM messages WHERE id = $1`, accepted.MessageID).Scan(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	// The sweep saw the job cancelled; it has been retried since.
	if ended, err := db.FailOrphanedMessage(store, ctx, accepted.MessageID, "cancelled"); err != nil || ended || status() != "running" {
		t.Fatalf("with its job running: ended %v (%v), status %s", ended, err, status())
	}
	if _, err := pool.Exec(ctx, `UPDATE river_job SET state = 'cancelled', finalized_at = now() WHERE id = $1`, jobID); err != nil {
		t.Fatal(err)
	}
	if ended, err := db.FailOrphanedMessage(store, ctx, accepted.MessageID, "cancelled"); err != nil || !ended || status() != "failed" {
		t.Fatalf("with its job cancelled: ended %v (%v), status %s", ended, err, status())
	}
}
