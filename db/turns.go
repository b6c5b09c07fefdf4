package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

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

// GoneMessages returns those of ids, user messages whose model calls are in
// flight, that no longer exist (their session was cleared, their project
// deleted): one query for all of a worker's calls (jobs.Liveness).
func GoneMessages(ctx context.Context, q Querier, ids []string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT w.id::text FROM unnest($1::uuid[]) AS w (id)
		WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = w.id)`, ids)
	if err != nil {
		return nil, wrap(err, "look for deleted messages")
	}
	gone, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return gone, wrap(err, "look for deleted messages")
}

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
	// calls are the keys of the model replies stored for the message when
	// the step started (see StoredCall).
	calls []string
}

// ErrEarlierMessage means StartTurn found a message of the session sent before
// this one still queued or running, and started nothing: see
// EarlierMessagePending.
var ErrEarlierMessage = errors.New("an earlier message of the session has not ended")

// StartTurn loads a user message for processing. The first time, it marks the
// message running and pins the branch head as the base every patch of this
// message applies to. With inOrder, it starts nothing while an earlier message
// of the session is queued or running (ErrEarlierMessage). Each of also runs
// in the same transaction (the step's job_status and the read of its agent's
// memory, queued to go with COMMIT: one round trip for the three).
func (s *Store) StartTurn(ctx context.Context, messageID string, inOrder bool, also ...func(pgx.Tx, *Turn) error) (Turn, error) {
	st := &start{ctx: ctx, messageID: messageID, inOrder: inOrder, also: also}
	var t Turn
	var err error
	if pool, ok := s.Pool.(*pgxpool.Pool); ok {
		t, err = s.startStep(pool, st)
	} else {
		t, err = s.startAlone(st)
	}
	if err != nil {
		return t, err
	}
	t.BaseCode, err = scriptAt(ctx, s.Pool, t.repo, plumbing.NewHash(t.BaseCommit))
	return t, err
}

// startTurn is StartTurn's one statement: it locks the message, marks it
// running, pins its base commit (the branch head, or the zero hash on a
// branch without commits, as BranchHead) and returns the turn with the keys
// of the replies stored for it.
func startTurn(ctx context.Context, tx pgx.Tx, messageID string, inOrder bool) (Turn, error) {
	return scanStart(tx.QueryRow(ctx, startSQL, messageID, plumbing.ZeroHash.String(), inOrder), inOrder)
}

var startSQL = `
		UPDATE messages m SET
			status = CASE m.status WHEN 'queued' THEN 'running' ELSE m.status END,
			base_commit = coalesce(m.base_commit, (SELECT r.target FROM git_references r
				WHERE r.repository_id = p.repository_id AND r.name = 'refs/heads/' || p.branch), $2)
		FROM projects p, sessions s
		WHERE m.id = $1 AND m.role = 'user' AND p.id = m.project_id AND s.id = m.session_id
			AND NOT ($3 AND EXISTS (SELECT 1 FROM messages e WHERE e.session_id = m.session_id AND e.role = 'user'
				AND e.position < m.position AND e.status IN ('queued', 'running')))
		RETURNING ` + prefixed("m", messageColumns) + `, m.position, m.base_commit, p.branch, p.repository_id,
			s.id, s.project_id, s.openai_session_key, s.session_type, s.node_id, s.created_at, s.updated_at,
			(SELECT coalesce(array_agg(c.call_key), '{}') FROM model_calls c WHERE c.message_id = m.id)`

// scanStart reads startSQL's row.
func scanStart(r pgx.Row, inOrder bool) (Turn, error) {
	var t Turn
	var sid, sproject uuid.UUID
	sess := &t.Session
	msg, err := scanMessage(r,
		&t.Position, &t.BaseCommit, &t.Branch, &t.repo,
		&sid, &sproject, &sess.OpenAISessionKey, &sess.SessionType, &sess.NodeID, &sess.CreatedAt, &sess.UpdatedAt, &t.calls)
	if errors.Is(err, pgx.ErrNoRows) && inOrder {
		return t, ErrEarlierMessage // or gone: EarlierMessagePending tells
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return t, ErrTurnGone
	}
	if err != nil {
		return t, wrap(err, "start message")
	}
	t.Message = msg
	sess.ID, sess.ProjectID = sid.String(), sproject.String()
	sess.CreatedAt, sess.UpdatedAt = sess.CreatedAt.UTC(), sess.UpdatedAt.UTC()
	return t, nil
}

func loadTurn(ctx context.Context, q Querier, messageID string) (Turn, error) {
	var t Turn
	var base *string
	var sid, sproject uuid.UUID
	sess := &t.Session
	msg, err := scanMessage(q.QueryRow(ctx, `SELECT `+prefixed("m", messageColumns)+`, m.position, m.base_commit, p.branch, p.repository_id,
			s.id, s.project_id, s.openai_session_key, s.session_type, s.node_id, s.created_at, s.updated_at
		FROM messages m JOIN projects p ON p.id = m.project_id JOIN sessions s ON s.id = m.session_id
		WHERE m.id = $1 AND m.role = 'user'`, messageID), &t.Position, &base, &t.Branch, &t.repo,
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

// lockedTurn is what a step's writes need of the user message to stay
// idempotent, read under its row lock.
type lockedTurn struct {
	status   *string
	position int64
	// usage is the sum of the token usage of the replies stored before the
	// lock was taken, when asked for.
	usage domain.TokenUsage
}

// lockSQL's usage is the replies' and the failed calls' (RecordFailedCall),
// in the order they were stored, so that their sum is labelled with the
// last (domain.TokenUsage.Add).
const lockSQL = `SELECT status, position, CASE WHEN $2 THEN ARRAY(SELECT u FROM (
			SELECT r.token_usage::text AS u, r.created_at AS at, r.position AS pos FROM messages r
				WHERE r.reply_to = $1 AND r.token_usage IS NOT NULL
			UNION ALL
			SELECT c.token_usage::text, c.created_at, NULL FROM model_calls c
				WHERE c.message_id = $1 AND c.token_usage IS NOT NULL) calls
			ORDER BY at, pos) END
		FROM messages WHERE id = $1 AND role = 'user' FOR UPDATE`

// pendingLock is the message's lock queued with the transaction's next
// batch.
type pendingLock struct {
	l    lockedTurn
	err  error
	ran  bool // the lock's statement came back (p.err is its answer)
	read func() error
}

// lockTurnLater locks a user message until the transaction ends, with the
// transaction's next statement (rowLater); result returns its status and
// position, and with usage the sum of its replies' token usage.
func lockTurnLater(ctx context.Context, tx pgx.Tx, messageID string, usage bool) *pendingLock {
	p := &pendingLock{}
	p.read = rowLater(ctx, tx, lockSQL, []any{messageID, usage}, func(r pgx.Row) error {
		p.l, p.err = scanLock(r)
		p.ran = true
		var pgErr *pgconn.PgError
		if errors.As(p.err, &pgErr) {
			return p.err
		}
		return nil
	})
	return p
}

// result is the lock's answer. A message that is gone is ErrTurnGone even
// when a statement after the lock in its batch then failed (a reply's row
// refers to the message).
func (p *pendingLock) result() (lockedTurn, error) {
	err := p.read()
	switch {
	case p.ran && p.err != nil:
		return lockedTurn{}, p.err
	case err != nil && p.ran: // the lock held; a statement sent with it failed
		return lockedTurn{}, wrap(err, "end step")
	case err != nil:
		return lockedTurn{}, wrap(err, "lock message")
	}
	return p.l, p.err
}

// scanLock reads lockSQL's row.
func scanLock(r pgx.Row) (lockedTurn, error) {
	var l lockedTurn
	var usages [][]byte
	err := r.Scan(&l.status, &l.position, &usages)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, ErrTurnGone
	}
	if err != nil {
		return l, wrap(err, "lock message")
	}
	for _, raw := range usages {
		var u domain.TokenUsage
		if err := json.Unmarshal(raw, &u); err != nil {
			return l, fmt.Errorf("read usage: %w", err)
		}
		l.usage = l.usage.Add(u)
	}
	return l, nil
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
	list, err := collectOrphans(rows)
	if err != nil {
		return false, wrap(err, "check earlier messages")
	}
	for _, e := range list {
		if !jobStateOver(e.state) {
			return true, nil
		}
		if _, err := s.failOrphanedMessage(ctx, e.id, e.state); err != nil {
			return false, err
		}
	}
	return false, nil
}

// StoredCall returns the model reply stored under key, if any. A key the
// message had no reply under when its step started (Turn.calls) is not
// looked up: only this step could have stored it since.
func (s *Store) StoredCall(ctx context.Context, t *Turn, key string) (json.RawMessage, bool, error) {
	if !slices.Contains(t.calls, key) {
		return nil, false, nil
	}
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
		// The session before the message, as EndTurn holds them: the
		// reply refers to the session, and its key-share lock of it,
		// taken after the message's, was a deadlock with a clear or a
		// project's delete (session, then its messages).
		if err := later(ctx, tx, holdSessionSQL, a.Turn.Session.ID); err != nil {
			return wrap(err, "hold session")
		}
		lock := lockTurnLater(ctx, tx, a.Turn.Message.ID, false)
		reply, err := queueReply(ctx, tx, a)
		if err != nil {
			return err
		}
		if _, err := lock.result(); err != nil {
			return err
		}
		m, _, err = reply.emit(ctx, tx)
		return err
	})
	return m, err
}

// RecordFailedCall keeps a model call that failed after the model worked on
// it (its response ended "incomplete" or "failed"): its response and usage
// under key, which must be the call's key made unique per attempt, so that
// the user message's token_usage counts what was billed; and emits
// token_usage, whose message_id is then the user message's (no reply message
// exists). Nothing happens when the message is gone or the key is stored
// already.
func (s *Store) RecordFailedCall(ctx context.Context, t *Turn, key string, response json.RawMessage, usage domain.TokenUsage) error {
	raw, err := json.Marshal(usage)
	if err != nil {
		return err
	}
	err = InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		lock := lockTurnLater(ctx, tx, t.Message.ID, false)
		var inserted bool
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO model_calls (call_key, message_id, response, token_usage) VALUES ($1, $2, $3, $4)
			ON CONFLICT (call_key) DO NOTHING`, key, t.Message.ID, response, raw).Exec(func(tag pgconn.CommandTag) error {
			inserted = tag.RowsAffected() == 1
			return nil
		})
		read := batchLater(ctx, tx, b)
		if _, err := lock.result(); err != nil {
			return err
		}
		if err := read(); err != nil {
			return wrap(err, "store failed model call")
		}
		if !inserted {
			return nil
		}
		return QueueEvent(ctx, tx, t.Session.ProjectID, event.TokenUsage{
			SessionID: t.Session.ID, MessageID: t.Message.ID, ReplyTo: t.Message.ID,
			TraceID: t.Message.TraceID, Usage: usage, Timestamp: time.Now().UTC(),
		})
	})
	if errors.Is(err, ErrTurnGone) {
		return nil
	}
	return err
}

// pendingReply is a model reply's two rows, queued to go with the
// transaction's next statement (queueReply); emit reads what they returned.
type pendingReply struct {
	a        AssistantMessage
	m        domain.ConversationMessage
	inserted bool
	err      error
	read     func() error
}

// queueReply queues the rows of a model reply in the caller's transaction,
// which locks the user message before them (lockTurnLater), to go with its
// next statement. The message's INSERT runs after the model call's in the
// batch, so it can tell whether the call is new. The raw response is stored
// once, in model_calls; GetMessage reads it there by the message's step key,
// which is the call's key.
func queueReply(ctx context.Context, tx pgx.Tx, a AssistantMessage) (*pendingReply, error) {
	usage, err := json.Marshal(a.Usage)
	if err != nil {
		return nil, err
	}
	p := &pendingReply{a: a}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO model_calls (call_key, message_id, response) VALUES ($1, $2, $3)
		ON CONFLICT (call_key) DO NOTHING`, a.CallKey, a.Turn.Message.ID, a.Response).Exec(func(tag pgconn.CommandTag) error {
		p.inserted = tag.RowsAffected() == 1
		return nil
	})
	b.Queue(`
		INSERT INTO messages (id, session_id, project_id, role, agent, iteration, content, patch, token_usage,
			trace_id, reply_to, last_response_id, step_key)
		VALUES ($1, $2, $3, 'assistant', $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (step_key) DO UPDATE SET step_key = EXCLUDED.step_key
		RETURNING `+messageColumns,
		uuid.New(), a.Turn.Session.ID, a.Turn.Session.ProjectID, a.Agent, a.Iteration, a.Content, a.Patch, usage,
		a.Turn.Message.TraceID, a.Turn.Message.ID, a.ResponseID, a.CallKey).QueryRow(func(r pgx.Row) error {
		p.m, p.err = scanMessage(r)
		var pgErr *pgconn.PgError
		if errors.As(p.err, &pgErr) {
			return p.err
		}
		return nil
	})
	p.read = batchLater(ctx, tx, b)
	return p, nil
}

// emit returns the stored assistant message and whether the reply is new,
// and when it is, queues its events: the last streamed text not sent yet
// (vibecode_delta), conversation_message and token_usage.
func (p *pendingReply) emit(ctx context.Context, tx pgx.Tx) (domain.ConversationMessage, bool, error) {
	if err := p.read(); err != nil {
		return p.m, false, wrap(err, "store model reply")
	}
	if p.err != nil {
		return p.m, false, wrap(p.err, "store model reply")
	}
	a, m := p.a, p.m
	if !p.inserted {
		return m, false, nil
	}
	if a.Delta != "" {
		if err := QueueEvent(ctx, tx, a.Turn.Session.ProjectID, event.VibecodeDelta{
			SessionID: a.Turn.Session.ID, MessageID: a.Turn.Message.ID, TraceID: a.Turn.Message.TraceID,
			Agent: a.Agent, Iteration: a.Iteration, Delta: a.Delta,
		}); err != nil {
			return m, true, err
		}
	}
	if err := EmitMessage(ctx, tx, a.Turn.Session.ProjectID, m); err != nil {
		return m, true, err
	}
	err := QueueEvent(ctx, tx, a.Turn.Session.ProjectID, event.TokenUsage{
		SessionID: a.Turn.Session.ID, MessageID: m.ID, ReplyTo: a.Turn.Message.ID,
		TraceID: a.Turn.Message.TraceID, Usage: a.Usage, Timestamp: time.Now().UTC(),
	})
	return m, true, err
}

// TurnEnd is how a step of the loop ends, written in one transaction: the
// model reply the step acts on, the items the turn adds to an agent's memory,
// and then either the next job (Enqueue), or the end of the user message
// (Status and Outcome, plus a Diff when approved).
type TurnEnd struct {
	// Reply, when set, is stored first (as RecordReply): the reply and what
	// is done with it commit together, so nothing acts on a reply that is
	// not stored.
	Reply   *AssistantMessage
	Agent   string
	TurnKey string
	Items   json.RawMessage // JSON array of input items
	// Next, when set, is the job that goes on with the user message (which
	// then goes on: Status stays empty), made of the stored Reply (nil
	// when there is none). Enqueue inserts it: a group's ends insert
	// their next jobs together, in one statement, with the Enqueue of the
	// first of them.
	Next    func(reply *domain.ConversationMessage) JobArgs
	Enqueue EnqueueJobs
	Status  string // final status of the user message, or "" to go on
	// Outcome is the vibecode_response; EndTurn fills in the ids, the
	// status and the token usage of the message's replies.
	Outcome  event.VibecodeResponse
	Diff     *domain.Diff
	DiffStep string
	// Complete, when set, completes the worker's job in the transaction.
	Complete *Completion
	// Told, when set, is a turn of another agent's memory written with this
	// step's: what that agent should know of the step, having no step of its
	// own that would tell it.
	Told *MemoryTurn
	// IfJobEnded ends the message only if, once it is locked, its job is
	// still cancelled, discarded or gone: the orphan sweep's end, which a
	// retry from River UI between its look and its end must not undo.
	IfJobEnded bool
}

// JobArgs are a River job's arguments (river.JobArgs).
type JobArgs interface{ Kind() string }

// EnqueueJobs inserts jobs in tx and returns their ids, in the order of
// jobs.
type EnqueueJobs func(tx pgx.Tx, jobs []JobArgs) ([]int64, error)

// laterEnd is what an end writes after the other ends of its transaction
// have written theirs (settleEnds): its next job (TurnEnd.Next), inserted
// with the others' in one statement, and then what it writes once the job
// has an id; or the read of its diff's row, sent with the others' in one
// batch, after which the rest of the end is written.
type laterEnd struct {
	next    JobArgs
	enqueue EnqueueJobs
	then    func(jobID int64) error

	read func() error
}

// settleEnds writes the later parts of a transaction's ends (nil for an end
// without one): the next jobs in one insert, whose round trip also carries
// the diffs' inserts queued before it, then the diffs' reads (a round trip
// when no insert carried them).
func settleEnds(tx pgx.Tx, ends []*laterEnd) error {
	var jobs []JobArgs
	var enqueue EnqueueJobs
	for _, l := range ends {
		if l != nil && l.next != nil {
			jobs = append(jobs, l.next)
			if enqueue == nil {
				enqueue = l.enqueue
			}
		}
	}
	if len(jobs) > 0 {
		ids, err := enqueue(tx, jobs)
		if err == nil && len(ids) != len(jobs) {
			err = fmt.Errorf("%d job ids for %d jobs", len(ids), len(jobs))
		}
		if err != nil {
			return wrap(err, "enqueue the next jobs")
		}
		for _, l := range ends {
			if l != nil && l.next != nil {
				if err := l.then(ids[0]); err != nil {
					return err
				}
				ids = ids[1:]
			}
		}
	}
	for _, l := range ends {
		if l != nil && l.read != nil {
			if err := l.read(); err != nil {
				return err
			}
		}
	}
	return nil
}

// MemoryTurn is a turn of an agent's memory: its items (a JSON array of
// input items) under a key unique for the agent's session.
type MemoryTurn struct {
	Agent   string
	TurnKey string
	Items   json.RawMessage
}

// Completion completes a worker's job in the transaction that ends its step
// (EndTurn) or its test run (FinishRun). In EndTurn, Job (CompleteJob) goes
// in the transaction's first batch, with the message's lock and the reply,
// since nothing it writes depends on them; Event (the job_status) is queued
// after every other event of the step, so clients see the job completed
// after what it did.
type Completion struct {
	Job   func(tx pgx.Tx) error
	Event func(tx pgx.Tx) error
}

// EndTurn writes e. It is idempotent: replies, memory and diffs are keyed,
// and the final status and vibecode_response are written only by the first
// caller. It takes two round trips: BEGIN, the message's lock, the reply's
// rows and the job's completion; then what depends on the lock and the reply
// (events, memory, status, the next message's wake-up), and COMMIT. A step
// that enqueues the next job sends River's insert between them, and one that
// creates a diff its insert, whose row the rest of the end needs.
func (s *Store) EndTurn(ctx context.Context, t *Turn, e TurnEnd) error {
	pool, ok := s.Pool.(*pgxpool.Pool)
	switch {
	case !ok:
		return s.endAlone(ctx, t, e)
	case e.groupable():
		return s.endStep(pool, &ending{ctx: ctx, t: t, e: e})
	}
	endingsOf(pool).count(ranAlone, 1)
	return s.endAlone(ctx, t, e)
}

// endAlone ends a step in a transaction of its own.
func (s *Store) endAlone(ctx context.Context, t *Turn, e TurnEnd) error {
	ended := false // this call wrote the message's final status
	err := InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		if err := holdProjects(ctx, tx, diffProjects([]*ending{{t: t, e: e}})); err != nil {
			return err
		}
		finish, err := queueEnd(ctx, tx, t, e)
		if err != nil {
			return err
		}
		var rest *laterEnd
		if ended, rest, err = finish(); err != nil {
			return err
		}
		return settleEnds(tx, []*laterEnd{rest})
	})
	if err == nil && ended {
		endsOf(s.Pool).count(e.Status)
	}
	return err
}

// holdProjects queues the key shares of projects in tx, in their order: the
// projects of the diffs that an end, or a group of ends, creates
// (diffProjects), held before any session. The diff refers to its project,
// and that key share, taken after the session's, was a deadlock with a
// project's delete (the project, then its sessions); in a group, taken
// with its end after another end's session of the project, it was too.
func holdProjects(ctx context.Context, tx pgx.Tx, projects []string) error {
	for _, project := range projects {
		if err := later(ctx, tx, holdProjectSQL, project); err != nil {
			return wrap(err, "hold project")
		}
	}
	return nil
}

// queueEnd queues the first batch of a step's end in tx: the locks, the
// reply's rows and the job's completion. finish reads the lock (sending the
// batch when nothing has) and writes the rest, queued for COMMIT; ended
// reports whether it wrote (or, with its later part, writes) the message's
// final status, and rest is the later part of the end, for settleEnds, when
// it has one.
func queueEnd(ctx context.Context, tx pgx.Tx, t *Turn, e TurnEnd) (finish func() (ended bool, rest *laterEnd, err error), err error) {
	if e.Next != nil && (e.Status != "" || e.Enqueue == nil) {
		return nil, errors.New("a step's end with a next job needs its Enqueue, and ends no message")
	}
	// The session before the message: a clear and a project's delete
	// lock the session, then its messages. The reply and a diff refer
	// to the session, and their key-share lock of it, taken after the
	// message's, was a deadlock with either (one of them failed). With a
	// diff, its project is held before this (holdProjects).
	if err := later(ctx, tx, holdSessionSQL, t.Session.ID); err != nil {
		return nil, wrap(err, "hold session")
	}
	lock := lockTurnLater(ctx, tx, t.Message.ID, e.Status != "")
	var pending *pendingReply
	if e.Reply != nil {
		var err error
		if pending, err = queueReply(ctx, tx, *e.Reply); err != nil {
			return nil, err
		}
	}
	if e.Complete != nil && e.Complete.Job != nil {
		if err := e.Complete.Job(tx); err != nil {
			if _, lerr := lock.result(); lock.ran && lerr != nil {
				return nil, lerr // the lock failed first (or the message is gone)
			}
			return nil, err
		}
	}
	return func() (bool, *laterEnd, error) { return finishEnd(ctx, tx, t, e, lock, pending) }, nil
}

// finishEnd is the rest of queueEnd.
func finishEnd(ctx context.Context, tx pgx.Tx, t *Turn, e TurnEnd, lock *pendingLock, pending *pendingReply) (bool, *laterEnd, error) {
	l, err := lock.result()
	if err != nil {
		return false, nil, err
	}
	if e.IfJobEnded {
		var ended bool
		if err := tx.QueryRow(ctx, `SELECT `+jobOver+`
			FROM messages m LEFT JOIN river_job j ON j.id = m.job_id WHERE m.id = $1`, t.Message.ID).Scan(&ended); err != nil {
			return false, nil, wrap(err, "check the message's job")
		}
		if !ended {
			return false, nil, nil
		}
	}
	var reply *domain.ConversationMessage
	if pending != nil {
		m, inserted, err := pending.emit(ctx, tx)
		if err != nil {
			return false, nil, err
		}
		if inserted { // else it was stored before the lock and is in l.usage
			l.usage = l.usage.Add(e.Reply.Usage)
		}
		reply = &m
	}
	if l.status != nil && domain.IsFinal(*l.status) {
		return false, nil, completed(tx, e)
	}
	for _, m := range []*MemoryTurn{{e.Agent, e.TurnKey, e.Items}, e.Told} {
		if m == nil || m.Items == nil {
			continue
		}
		if err := later(ctx, tx, `INSERT INTO agent_memory (session_key, agent, turn_key, items) VALUES ($1, $2, $3, $4)
			ON CONFLICT (session_key, agent, turn_key) DO NOTHING`, t.Session.OpenAISessionKey, m.Agent, m.TurnKey, m.Items); err != nil {
			return false, nil, wrap(err, "store memory")
		}
	}
	if e.Next != nil {
		next := e.Next(reply)
		if next == nil {
			return false, nil, errors.New("a step's end with a next job made none of its reply")
		}
		return false, &laterEnd{next: next, enqueue: e.Enqueue, then: func(jobID int64) error {
			// The message follows its current job, so that a job cancelled
			// or discarded outside the loop can be noticed
			// (EarlierMessagePending).
			if err := later(ctx, tx, `UPDATE messages SET job_id = $2 WHERE id = $1`, t.Message.ID, jobID); err != nil {
				return wrap(err, "record job")
			}
			return completed(tx, e)
		}}, nil
	}
	if e.Status == "" {
		return false, nil, completed(tx, e)
	}
	outcome := e.Outcome
	outcome.SessionID, outcome.MessageID, outcome.TraceID, outcome.Status = t.Session.ID, t.Message.ID, t.Message.TraceID, e.Status
	outcome.TokenUsage = l.usage
	if e.Diff == nil {
		return true, nil, endMessage(ctx, tx, t, e, l, outcome)
	}
	// The diff's row (its id and times, for the events) is read with the
	// transaction's next batch, a group's diffs together, and the rest of
	// the end is written when it comes.
	var restErr error
	read := insertDiffLater(ctx, tx, e.Diff, e.DiffStep, func(d domain.Diff) {
		outcome.DiffID = &d.ID
		if err := later(ctx, tx, `UPDATE messages SET diff_id = $2 WHERE id = $1`, t.Message.ID, d.ID); err != nil {
			restErr = wrap(err, "link diff")
			return
		}
		if err := QueueEvent(ctx, tx, t.Session.ProjectID, event.DiffCreated{Diff: d, DiffID: d.ID, TraceID: t.Message.TraceID}); err != nil {
			restErr = err
			return
		}
		restErr = endMessage(ctx, tx, t, e, l, outcome)
	})
	return true, &laterEnd{read: func() error {
		if err := read(); err != nil {
			return err
		}
		return restErr
	}}, nil
}

// endMessage writes the end of the user message of a step that ends it
// with outcome, once the rest of finishEnd is written.
func endMessage(ctx context.Context, tx pgx.Tx, t *Turn, e TurnEnd, l lockedTurn, outcome event.VibecodeResponse) error {
	raw, err := json.Marshal(outcome)
	if err != nil {
		return err
	}
	if err := later(ctx, tx, `UPDATE messages SET status = $2, outcome = $3 WHERE id = $1`, t.Message.ID, e.Status, raw); err != nil {
		return wrap(err, "finish message")
	}
	// The turns a commit kept for this message's next round (CommitDiff)
	// go with its end: the session's next message is reviewed afresh
	// since that commit.
	if err := laterAs(ctx, tx, "forget memory kept past a commit", `DELETE FROM agent_memory
		WHERE session_key = $1 AND forget_when_ended AND split_part(turn_key, '/', 1) = $2`,
		t.Session.OpenAISessionKey, t.Message.ID); err != nil {
		return wrap(err, "forget memory kept past a commit")
	}
	if err := wakeNextMessage(ctx, tx, t.Session.ID, l.position); err != nil {
		return err
	}
	if err := QueueEvent(ctx, tx, t.Session.ProjectID, outcome); err != nil {
		return err
	}
	return completed(tx, e)
}

// MessageEnds counts the user messages a pool's transactions ended, by their
// final status (domain.StatusAnswered, …): how messages end, which their
// jobs' outcomes do not say (a failed message completes its job, and a
// message that makes a diff is two jobs).
type MessageEnds map[string]int64

type messageEnds struct {
	mu sync.Mutex
	by map[string]int64
}

var poolEnds sync.Map // the Store's DB (a *pgxpool.Pool) → *messageEnds

func endsOf(pool any) *messageEnds {
	if m, ok := poolEnds.Load(pool); ok {
		return m.(*messageEnds)
	}
	m, _ := poolEnds.LoadOrStore(pool, &messageEnds{by: map[string]int64{}})
	return m.(*messageEnds)
}

func (m *messageEnds) count(status string) {
	m.mu.Lock()
	m.by[status]++
	m.mu.Unlock()
}

// PoolMessageEnds returns the messages pool's transactions ended so far, by
// status.
func PoolMessageEnds(pool *pgxpool.Pool) MessageEnds {
	m := endsOf(pool)
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.by)
}

// completed queues the job_status of e's completion, if any.
func completed(tx pgx.Tx, e TurnEnd) error {
	if e.Complete == nil || e.Complete.Event == nil {
		return nil
	}
	return e.Complete.Event(tx)
}

// PendingMessage is a message read with a transaction's next batch
// (MessageLater, ReplyLater): a step's start commits with the reads its work
// begins with, instead of making a round trip for each after it.
type PendingMessage struct {
	m    domain.ConversationMessage
	err  error
	read func() error
}

// Result is the message, once the batch it went with has run (or, when
// nothing sent it, after sending it on its own).
func (p *PendingMessage) Result() (domain.ConversationMessage, error) {
	if err := p.read(); err != nil {
		return domain.ConversationMessage{}, err
	}
	return p.m, p.err
}

// messageLater reads one message of sql in q (rowLater); missing is the
// message's error when there is no row.
func messageLater(ctx context.Context, q Querier, missing error, sql string, args ...any) *PendingMessage {
	p := &PendingMessage{}
	p.read = rowLater(ctx, q, sql, args, func(r pgx.Row) error {
		p.m, p.err = scanMessage(r)
		var pgErr *pgconn.PgError
		switch {
		case errors.Is(p.err, pgx.ErrNoRows):
			p.err = missing // the row's absence is the reader's to judge
		case errors.As(p.err, &pgErr):
			return p.err // the statement failed: so does the transaction
		}
		// Decoding happens here, after the statement ran: a COMMIT in the
		// same batch has committed, and must not be reported as failed.
		return nil
	})
	return p
}

// MessageLater reads the message id in q as GetMessage does, without its
// raw model response.
func MessageLater(ctx context.Context, q Querier, id string) *PendingMessage {
	u, err := ParseID("message", id)
	if err != nil {
		return &PendingMessage{err: err, read: func() error { return nil }}
	}
	return messageLater(ctx, q, domain.NotFound("message", id), `SELECT `+messageColumns+` FROM messages WHERE id = $1`, u)
}

// ReplyLater reads in q the assistant message an agent stored for a user
// message in an iteration, the latest when there are several; ErrTurnGone
// when there is none.
func ReplyLater(ctx context.Context, q Querier, messageID, agent string, iteration int) *PendingMessage {
	return messageLater(ctx, q, ErrTurnGone, replySQL, messageID, agent, iteration)
}

const replySQL = `SELECT ` + messageColumns + ` FROM messages
		WHERE reply_to = $1 AND agent = $2 AND iteration = $3 ORDER BY position DESC LIMIT 1`

// FailTurn ends a user message as failed with a message a person can act on;
// complete, when set, completes the job in the same transaction (see
// TurnEnd.Complete).
func (s *Store) FailTurn(ctx context.Context, t *Turn, reason string, complete *Completion) error {
	return s.EndTurn(ctx, t, TurnEnd{Status: domain.StatusFailed, Outcome: event.VibecodeResponse{Error: &reason}, Complete: complete})
}
