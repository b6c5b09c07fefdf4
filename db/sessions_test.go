package db_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/event"
)

// Clearing a session, or deleting its project, while a step of its message
// ends clears it, and the step ends quietly: neither is a deadlock
// PostgreSQL breaks by failing one (DELETE /sessions/{id} a 500). The clear
// (the delete) locked the session and then waited for the message the step
// held; the step's reply, a row that refers to the session, waited for the
// session.
// The interleaving is forced by holding the messages table: the step waits
// to insert its reply, the clear holds its session and waits to delete the
// messages. Whether the two then meet in the deadlock depends on timing
// (without the fix about one round in thirty deadlocked here), so the test
// tries ten times.
func TestClearingASessionWhileItsMessageEndsIsNoDeadlock(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	for i := range 5 {
		for _, step := range []struct {
			name string
			end  func(db.Turn, *db.AssistantMessage) error
		}{
			{"an end", func(turn db.Turn, reply *db.AssistantMessage) error {
				return store.EndTurn(context.Background(), &turn, db.TurnEnd{Reply: reply, Status: domain.StatusAnswered,
					Outcome: event.VibecodeResponse{Response: &reply.Content}})
			}},
			// A reply stored before the step's end (a step of several calls).
			{"a reply", func(_ db.Turn, reply *db.AssistantMessage) error {
				_, err := store.RecordReply(context.Background(), *reply)
				return err
			}},
		} {
			clearDuringEnd(t, store, fmt.Sprintf("a clear during %s %d", step.name, i), "DELETE /sessions/{id}", step.end,
				func(_ domain.Project, sess domain.VibecodeSession) error {
					return store.ClearSession(context.Background(), sess.ID)
				})
			clearDuringEnd(t, store, fmt.Sprintf("a delete during %s %d", step.name, i), "DELETE /projects/{id}", step.end,
				func(p domain.Project, _ domain.VibecodeSession) error {
					return store.DeleteProject(context.Background(), p.ID)
				})
		}
	}
}

func clearDuringEnd(t *testing.T, store *db.Store, name, what string, end func(db.Turn, *db.AssistantMessage) error,
	clear func(domain.Project, domain.VibecodeSession) error) {
	t.Helper()
	ctx := context.Background()
	pool := store.Pool
	p, sess, accepted, turn, _ := startedStep(t, store, name)

	blocker, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(ctx) //nolint:errcheck
	if _, err := blocker.Exec(ctx, `LOCK TABLE messages IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	waiters := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if dbtest.Count(t, pool, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %d transactions wait", n)
			}
		}
	}
	answer := "Hello."
	ended := make(chan error, 1)
	go func() {
		ended <- end(turn, &db.AssistantMessage{Turn: &turn, CallKey: accepted.MessageID + "/vibecoder/1/1", Response: json.RawMessage(`{"id":"resp_1"}`),
			ResponseID: "resp_1", Agent: domain.AgentVibeCoder, Iteration: 1, Content: answer})
	}()
	waiters(1) // the step holds its message, its reply waits
	cleared := make(chan error, 1)
	go func() { cleared <- clear(p, sess) }()
	waiters(2) // the clear holds its session, its delete waits
	if err := blocker.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-cleared; err != nil {
		t.Errorf("%s during a step's end: %v", what, err)
	}
	if err := <-ended; err != nil && !errors.Is(err, db.ErrTurnGone) {
		t.Errorf("the step's end during a clear: %v", err)
	}
	if n := dbtest.Count(t, pool, `SELECT count(*) FROM messages WHERE session_id = $1`, sess.ID); n != 0 {
		t.Errorf("after %s the session holds %d messages", what, n)
	}
}
