package db

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/event"
)

// This file holds what the vibecode workers store. Every write is keyed so
// that a job retried or rescued after a crash writes nothing twice: assistant
// messages and diffs by a step key, memory by a turn key, model replies by a
// call key.

// ErrTurnGone means the user message no longer exists (its session was
// cleared): the work for it stops quietly.
var ErrTurnGone = errors.New("the message was deleted")

// Turn is a user message being processed, with what the loop needs.
type Turn struct {
	Message    domain.ConversationMessage
	Session    domain.VibecodeSession
	Position   int64
	Branch     string
	BaseCommit string
	// BaseCode is the project's code at BaseCommit: what patches apply to.
	BaseCode string
	repo     uuid.UUID
}

// StartTurn loads a user message for processing. The first time, it marks the
// message running and pins the branch head as the base every patch of this
// message applies to. Each of also runs in the same transaction (the step's
// job_status, for one commit instead of two).
func (s *Store) StartTurn(ctx context.Context, messageID string, also ...func(pgx.Tx, *Turn) error) (Turn, error) {
	var t Turn
	err := InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		t, err = loadTurn(ctx, tx, messageID, true)
		if err != nil {
			return err
		}
		if t.BaseCommit == "" {
			head, err := BranchHead(NewGitStorage(ctx, tx, t.repo), t.Branch)
			if err != nil {
				return err
			}
			t.BaseCommit = head.String()
		}
		if t.Message.Status != nil && *t.Message.Status == domain.StatusQueued {
			running := domain.StatusRunning
			t.Message.Status = &running
		}
		_, err = tx.Exec(ctx, `UPDATE messages SET status = $2, base_commit = $3 WHERE id = $1`,
			t.Message.ID, *t.Message.Status, t.BaseCommit)
		if err != nil {
			return wrap(err, "start message")
		}
		for _, f := range also {
			if err := f(tx, &t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return t, err
	}
	t.BaseCode, err = scriptAt(ctx, s.Pool, t.repo, plumbing.NewHash(t.BaseCommit))
	return t, err
}

func loadTurn(ctx context.Context, q Querier, messageID string, forUpdate bool) (Turn, error) {
	var t Turn
	var base *string
	var sid, sproject uuid.UUID
	sql := `SELECT ` + prefixed("m", messageColumns) + `, m.position, m.base_commit, p.branch, p.repository_id,
			s.id, s.project_id, s.openai_session_key, s.session_type, s.node_id, s.created_at, s.updated_at
		FROM messages m JOIN projects p ON p.id = m.project_id JOIN sessions s ON s.id = m.session_id
		WHERE m.id = $1 AND m.role = 'user'`
	if forUpdate {
		sql += ` FOR UPDATE OF m`
	}
	sess := &t.Session
	msg, err := scanMessage(q.QueryRow(ctx, sql, messageID), &t.Position, &base, &t.Branch, &t.repo,
		&sid, &sproject, &sess.OpenAISessionKey, &sess.SessionType, &sess.NodeID, &sess.CreatedAt, &sess.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, ErrTurnGone
	}
	if err != nil {
		return t, wrap(err, "read message")
	}
	t.Message = msg
	if base != nil {
		t.BaseCommit = *base
	}
	sess.ID, sess.ProjectID = sid.String(), sproject.String()
	sess.CreatedAt, sess.UpdatedAt = sess.CreatedAt.UTC(), sess.UpdatedAt.UTC()
	return t, nil
}

// lockTurn locks a user message until the transaction ends and returns its
// status and position: what a step's writes need to stay idempotent, in one
// query.
func lockTurn(ctx context.Context, tx pgx.Tx, messageID string) (status *string, position int64, err error) {
	err = tx.QueryRow(ctx, `SELECT status, position FROM messages WHERE id = $1 AND role = 'user' FOR UPDATE`, messageID).Scan(&status, &position)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, ErrTurnGone
	}
	return status, position, wrap(err, "lock message")
}

// prefixed qualifies a column list with a table alias.
func prefixed(alias, columns string) string {
	return alias + "." + strings.ReplaceAll(columns, ", ", ", "+alias+".")
}

// EarlierMessagePending reports whether a user message sent before this one
// in the same session is still waiting or running: messages of a session are
// processed one at a time, in order. An earlier message whose current job
// was cancelled or discarded outside the loop (River UI, a rescue after a
// crash on the last attempt) would block the session for ever: it is ended
// as failed here instead.
func (s *Store) EarlierMessagePending(ctx context.Context, messageID string) (bool, error) {
	rows, err := s.Pool.Query(ctx, `
		SELECT e.id, coalesce(j.state::text, 'missing')
		FROM messages e JOIN messages m ON m.session_id = e.session_id
		LEFT JOIN river_job j ON j.id = e.job_id
		WHERE m.id = $1 AND e.role = 'user' AND e.position < m.position AND e.status IN ('queued', 'running')
		ORDER BY e.position`, messageID)
	if err != nil {
		return false, wrap(err, "check earlier messages")
	}
	type earlier struct{ id, state string }
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (earlier, error) {
		var e earlier
		var id uuid.UUID
		err := r.Scan(&id, &e.state)
		e.id = id.String()
		return e, err
	})
	if err != nil {
		return false, wrap(err, "check earlier messages")
	}
	for _, e := range list {
		if e.state != "cancelled" && e.state != "discarded" && e.state != "missing" {
			return true, nil
		}
		t, err := loadTurn(ctx, s.Pool, e.id, false)
		if errors.Is(err, ErrTurnGone) {
			continue
		}
		if err != nil {
			return false, err
		}
		if err := s.FailTurn(ctx, &t, "its job was "+e.state+" before the message was answered", nil); err != nil {
			return false, err
		}
	}
	return false, nil
}

// StoredCall returns the model reply stored under key, if any.
func (s *Store) StoredCall(ctx context.Context, key string) (json.RawMessage, bool, error) {
	var raw []byte
	err := s.Pool.QueryRow(ctx, `SELECT response FROM model_calls WHERE call_key = $1`, key).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	return raw, err == nil, wrap(err, "read model call")
}

// AssistantMessage is one reply of an agent, stored with the model call
// behind it.
type AssistantMessage struct {
	Turn       *Turn
	CallKey    string          // the model call's key, also the message's step key
	Response   json.RawMessage // the raw OpenAI response
	ResponseID string
	Agent      string
	Iteration  int
	Content    string
	Patch      *string
	Usage      domain.TokenUsage
	// Delta is streamed text not yet sent as vibecode_delta: it is emitted
	// here, before conversation_message, instead of in a transaction of its own.
	Delta string
}

// RecordReply stores a model reply and the assistant message made of it, and
// emits conversation_message and token_usage, in one transaction. A reply
// stored before (a retried job) changes nothing and emits nothing.
func (s *Store) RecordReply(ctx context.Context, a AssistantMessage) (domain.ConversationMessage, error) {
	var m domain.ConversationMessage
	err := InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		if _, _, err := lockTurn(ctx, tx, a.Turn.Message.ID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO model_calls (call_key, message_id, response) VALUES ($1, $2, $3)
			ON CONFLICT (call_key) DO NOTHING`, a.CallKey, a.Turn.Message.ID, a.Response)
		if err != nil {
			return wrap(err, "store model call")
		}
		inserted := tag.RowsAffected() == 1
		usage, err := json.Marshal(a.Usage)
		if err != nil {
			return err
		}
		responses, err := json.Marshal([]json.RawMessage{a.Response})
		if err != nil {
			return wrap(err, "store assistant message: encode the model's response")
		}
		m, err = scanMessage(tx.QueryRow(ctx, `
			INSERT INTO messages (id, session_id, project_id, role, agent, iteration, content, patch, token_usage,
				trace_id, reply_to, openai_response, last_response_id, step_key)
			VALUES ($1, $2, $3, 'assistant', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
			ON CONFLICT (step_key) DO UPDATE SET step_key = EXCLUDED.step_key
			RETURNING `+messageColumns,
			uuid.New(), a.Turn.Session.ID, a.Turn.Session.ProjectID, a.Agent, a.Iteration, a.Content, a.Patch, usage,
			a.Turn.Message.TraceID, a.Turn.Message.ID, responses, a.ResponseID, a.CallKey))
		if err != nil {
			return wrap(err, "store assistant message")
		}
		if !inserted {
			return nil
		}
		if a.Delta != "" {
			if _, err := Emit(ctx, tx, a.Turn.Session.ProjectID, event.VibecodeDelta{
				SessionID: a.Turn.Session.ID, MessageID: a.Turn.Message.ID, TraceID: a.Turn.Message.TraceID,
				Agent: a.Agent, Iteration: a.Iteration, Delta: a.Delta,
			}); err != nil {
				return err
			}
		}
		if err := EmitMessage(ctx, tx, a.Turn.Session.ProjectID, m); err != nil {
			return err
		}
		_, err = Emit(ctx, tx, a.Turn.Session.ProjectID, event.TokenUsage{
			SessionID: a.Turn.Session.ID, MessageID: m.ID, ReplyTo: a.Turn.Message.ID,
			TraceID: a.Turn.Message.TraceID, Usage: a.Usage, Timestamp: time.Now().UTC(),
		})
		return err
	})
	return m, err
}

// TurnEnd is how a step of the loop ends, written in one transaction: the
// items the turn adds to an agent's memory, and then either the next job
// (Enqueue), or the end of the user message (Status and Outcome, plus a Diff
// when approved).
type TurnEnd struct {
	Agent   string
	TurnKey string
	Items   json.RawMessage // JSON array of input items
	Enqueue func(tx pgx.Tx) (jobID int64, err error)
	Status  string // final status of the user message, or "" to go on
	// Outcome is the vibecode_response; EndTurn fills in the ids and status.
	Outcome  event.VibecodeResponse
	Diff     *domain.Diff
	DiffStep string
	// Complete, when set, runs last in the transaction: the worker
	// completes its job there (River's JobCompleteTx) with its job_status.
	Complete func(tx pgx.Tx) error
}

// EndTurn writes e. It is idempotent: memory and diffs are keyed, and the
// final status and vibecode_response are written only by the first caller.
func (s *Store) EndTurn(ctx context.Context, t *Turn, e TurnEnd) error {
	return InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		status, position, err := lockTurn(ctx, tx, t.Message.ID)
		if err != nil {
			return err
		}
		if status != nil && domain.IsFinal(*status) {
			return complete(tx, e)
		}
		if e.Items != nil {
			if _, err := tx.Exec(ctx, `INSERT INTO agent_memory (session_key, agent, turn_key, items) VALUES ($1, $2, $3, $4)
				ON CONFLICT (session_key, agent, turn_key) DO NOTHING`, t.Session.OpenAISessionKey, e.Agent, e.TurnKey, e.Items); err != nil {
				return wrap(err, "store memory")
			}
		}
		if e.Enqueue != nil {
			jobID, err := e.Enqueue(tx)
			if err != nil {
				return err
			}
			// The message follows its current job, so that a job cancelled
			// or discarded outside the loop can be noticed (EarlierMessagePending).
			if _, err := tx.Exec(ctx, `UPDATE messages SET job_id = $2 WHERE id = $1`, t.Message.ID, jobID); err != nil {
				return wrap(err, "record job")
			}
		}
		if e.Status == "" {
			return complete(tx, e)
		}
		outcome := e.Outcome
		outcome.SessionID, outcome.MessageID, outcome.TraceID, outcome.Status = t.Session.ID, t.Message.ID, t.Message.TraceID, e.Status
		if e.Diff != nil {
			d, err := insertDiff(ctx, tx, e.Diff, e.DiffStep)
			if err != nil {
				return err
			}
			outcome.DiffID = &d.ID
			if _, err := tx.Exec(ctx, `UPDATE messages SET diff_id = $2 WHERE id = $1`, t.Message.ID, d.ID); err != nil {
				return wrap(err, "link diff")
			}
			if _, err := Emit(ctx, tx, t.Session.ProjectID, event.DiffCreated{Diff: d, DiffID: d.ID, TraceID: t.Message.TraceID}); err != nil {
				return err
			}
		}
		raw, err := json.Marshal(outcome)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE messages SET status = $2, outcome = $3 WHERE id = $1`, t.Message.ID, e.Status, raw); err != nil {
			return wrap(err, "finish message")
		}
		if err := wakeNextMessage(ctx, tx, t.Session.ID, position); err != nil {
			return err
		}
		if _, err = Emit(ctx, tx, t.Session.ProjectID, outcome); err != nil {
			return err
		}
		return complete(tx, e)
	})
}

func complete(tx pgx.Tx, e TurnEnd) error {
	if e.Complete == nil {
		return nil
	}
	return e.Complete(tx)
}

// TurnUsage sums the token usage of every reply to a user message.
func (s *Store) TurnUsage(ctx context.Context, messageID string) (domain.TokenUsage, error) {
	rows, err := s.Pool.Query(ctx, `SELECT token_usage FROM messages WHERE reply_to = $1 AND token_usage IS NOT NULL ORDER BY position`, messageID)
	if err != nil {
		return domain.TokenUsage{}, wrap(err, "read usage")
	}
	list, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return domain.TokenUsage{}, wrap(err, "read usage")
	}
	var sum domain.TokenUsage
	for _, raw := range list {
		var u domain.TokenUsage
		if err := json.Unmarshal(raw, &u); err != nil {
			return sum, err
		}
		sum = sum.Add(u)
	}
	return sum, nil
}

// Reply returns the assistant message an agent stored for a user message in
// an iteration, the latest when there are several.
func (s *Store) Reply(ctx context.Context, messageID, agent string, iteration int) (domain.ConversationMessage, error) {
	m, err := scanMessage(s.Pool.QueryRow(ctx, `SELECT `+messageColumns+` FROM messages
		WHERE reply_to = $1 AND agent = $2 AND iteration = $3 ORDER BY position DESC LIMIT 1`, messageID, agent, iteration))
	if errors.Is(err, pgx.ErrNoRows) {
		return m, ErrTurnGone
	}
	return m, wrap(err, "read reply")
}

// FailTurn ends a user message as failed with a message a person can act on;
// complete, when set, runs in the same transaction (see TurnEnd.Complete).
func (s *Store) FailTurn(ctx context.Context, t *Turn, reason string, complete func(pgx.Tx) error) error {
	usage, _ := s.TurnUsage(ctx, t.Message.ID)
	return s.EndTurn(ctx, t, TurnEnd{Status: domain.StatusFailed, Outcome: event.VibecodeResponse{Error: &reason, TokenUsage: usage}, Complete: complete})
}
