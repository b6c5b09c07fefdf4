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
	pool := store.Pool
	p, sess, accepted, turn, _ := startedStep(t, store, name)

	release := holdLocks(t, pool, `LOCK TABLE messages IN SHARE MODE`)
	answer := "Hello."
	ended := make(chan error, 1)
	go func() {
		ended <- end(turn, &db.AssistantMessage{Turn: &turn, CallKey: accepted.MessageID + "/vibecoder/1/1", Response: json.RawMessage(`{"id":"resp_1"}`),
			ResponseID: "resp_1", Agent: domain.AgentVibeCoder, Iteration: 1, Content: answer})
	}()
	waitForLockWaiters(t, pool, 1) // the step holds its message, its reply waits
	cleared := make(chan error, 1)
	go func() { cleared <- clear(p, sess) }()
	waitForLockWaiters(t, pool, 2) // the clear holds its session, its delete waits
	release()
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

// A session cleared while its project is deleted: both succeed. The delete
// removed the agents' memory and then (by the cascade) the sessions, while
// a clear holds its session and then deletes its messages and its memory: a
// deadlock, a 500 for one of the two. The interleaving is forced by holding
// the messages table: the clear holds its session and waits to delete its
// messages, the delete waits for the session.
func TestClearingASessionWhileItsProjectIsDeletedIsNoDeadlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	for i := range 3 {
		p, sess, _, _, _ := startedStep(t, store, fmt.Sprintf("cleared and deleted %d", i))
		if _, err := pool.Exec(ctx, `INSERT INTO agent_memory (session_key, agent, turn_key, items) VALUES ($1, 'vibecoder', '1', '[]')`,
			sess.OpenAISessionKey); err != nil {
			t.Fatal(err)
		}
		release := holdLocks(t, pool, `LOCK TABLE messages IN SHARE MODE`)
		cleared := make(chan error, 1)
		go func() { cleared <- store.ClearSession(ctx, sess.ID) }()
		waitForLockWaiters(t, pool, 1) // the clear holds its session
		deleted := make(chan error, 1)
		go func() { deleted <- store.DeleteProject(ctx, p.ID) }()
		waitForLockWaiters(t, pool, 2) // the delete waits for the session
		release()
		if err := <-cleared; err != nil {
			t.Errorf("%d: DELETE /sessions/{id} during its project's delete: %v", i, err)
		}
		if err := <-deleted; err != nil {
			t.Errorf("%d: DELETE /projects/{id} during a clear of its session: %v", i, err)
		}
		if n := dbtest.Count(t, pool, `SELECT count(*) FROM agent_memory WHERE session_key = $1`, sess.OpenAISessionKey); n != 0 {
			t.Errorf("%d: after both, %d rows of memory remain", i, n)
		}
	}
}

// A session asked for while its project is deleted is not found: the
// answer waits for the delete. A session that existed with the key was
// read after the insert did nothing; with the delete committed meanwhile
// that read found no row (a 500), and before it, the answer was a session
// of a project being deleted. The delete is held by a third transaction
// holding the agents' memory, which the delete removes after it holds the
// project.
func TestASessionCreatedWhileItsProjectIsDeletedIsNotFound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	p, _ := newSession(t, store, "created while deleted")
	release := holdLocks(t, pool, `LOCK TABLE agent_memory IN ACCESS EXCLUSIVE MODE`)
	deleted := make(chan error, 1)
	go func() { deleted <- store.DeleteProject(ctx, p.ID) }()
	for deadline := time.Now().Add(10 * time.Second); lockWaiters(t, pool) < 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the delete does not wait")
		}
	}
	created := make(chan error, 1)
	go func() {
		sess, _, err := store.CreateSession(ctx, p.ID, domain.NewSession{}, nil)
		if err == nil {
			err = fmt.Errorf("session %s answered", sess.ID)
		}
		created <- err
	}()
	// The create waits for the delete, or (without the fix) answers at once.
	for deadline := time.Now().Add(10 * time.Second); lockWaiters(t, pool) < 2 && len(created) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the create neither waits nor answers")
		}
	}
	release()
	if err := <-deleted; err != nil {
		t.Errorf("DELETE /projects/{id}: %v", err)
	}
	if err := <-created; domain.ErrorCodeOf(err) != domain.ENOTFOUND {
		t.Errorf("POST /projects/{id}/sessions during its project's delete: %v, want not found", err)
	}
}
