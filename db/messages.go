package db

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/event"
)

const messageColumns = `id, session_id, role, agent, iteration, content, patch, diff_id, token_usage, trace_id, status, reply_to, created_at`

func scanMessage(r pgx.Row, extra ...any) (domain.ConversationMessage, error) {
	var m domain.ConversationMessage
	var id, session uuid.UUID
	var diff, replyTo *uuid.UUID
	var usage []byte
	dest := append([]any{&id, &session, &m.Role, &m.Agent, &m.Iteration, &m.Content, &m.Patch, &diff, &usage, &m.TraceID, &m.Status, &replyTo, &m.CreatedAt}, extra...)
	if err := r.Scan(dest...); err != nil {
		return m, err
	}
	m.ID, m.SessionID, m.CreatedAt = id.String(), session.String(), m.CreatedAt.UTC()
	m.DiffID, m.ReplyTo = uuidString(diff), uuidString(replyTo)
	if len(usage) > 0 {
		m.TokenUsage = &domain.TokenUsage{}
		if err := json.Unmarshal(usage, m.TokenUsage); err != nil {
			return m, err
		}
	}
	return m, nil
}

func uuidString(u *uuid.UUID) *string {
	if u == nil {
		return nil
	}
	s := u.String()
	return &s
}

// SubmitMessage stores a user message, enqueues its VibecodeJob through
// enqueue and emits conversation_message, in one transaction. A message id
// that exists already returns the first answer and changes nothing. On a
// pool, submissions that arrive while others are being stored share a
// transaction (submissions.go).
func (s *Store) SubmitMessage(ctx context.Context, sessionID string, in domain.NewMessage, enqueue Enqueue) (domain.MessageAccepted, error) {
	id, err := in.Validate()
	if err != nil {
		return domain.MessageAccepted{}, err
	}
	sid, err := ParseID("session", sessionID)
	if err != nil {
		return domain.MessageAccepted{}, err
	}
	sub := &submission{ctx: ctx, sessionID: sessionID, m: newMessage{session: sid, id: id, prompt: in.Prompt, trace: traceID(ctx)}, enqueue: enqueue}
	if pool, ok := s.Pool.(*pgxpool.Pool); ok {
		return s.submit(pool, sub)
	}
	return s.submitAlone(sub)
}

// submitAlone stores one submission in a transaction of its own, and answers
// what makes it fail: a repeat, a session deleted meanwhile.
func (s *Store) submitAlone(sub *submission) (domain.MessageAccepted, error) {
	ctx, id := sub.ctx, sub.m.id
	var out domain.MessageAccepted
	err := InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		m := sub.m // what the check finds is this attempt's, not sub's
		var err error
		out, err = m.submit(ctx, tx, sub.sessionID, sub.enqueue)
		return err
	})
	var repeated *repeatedMessage
	var pgErr *pgconn.PgError
	isPg := errors.As(err, &pgErr)
	switch {
	case err == nil:
		return out, nil
	case errors.As(err, &repeated), isPg && pgErr.Code == "23505" && pgErr.ConstraintName == "messages_pkey":
		// A repeat, or the same new id sent twice at once: the other
		// submission stored it.
		return firstAnswer(ctx, s.Pool, id, sub.sessionID, sub.m.prompt)
	case isPg && pgErr.Code == "23503" && pgErr.ConstraintName == "messages_session_id_fkey":
		return out, domain.NotFound("session", sub.sessionID) // deleted meanwhile
	case isPg && pgErr.Code == "40P01":
		// A deadlock PostgreSQL broke: the losing twin of a concurrent
		// repeat can wait on the first one's job while that job's worker
		// waits on the message. Answered as a repeat when it is one.
		if first, ferr := firstAnswer(ctx, s.Pool, id, sub.sessionID, sub.m.prompt); ferr == nil {
			return first, nil
		}
	}
	return out, err
}

// firstAnswer is existingSubmission for a session id as the client sent it.
func firstAnswer(ctx context.Context, q Querier, id uuid.UUID, sessionID, prompt string) (domain.MessageAccepted, error) {
	sid, err := ParseID("session", sessionID)
	if err != nil {
		return domain.MessageAccepted{}, err
	}
	return existingSubmission(ctx, q, id, sid.String(), prompt)
}

// repeatedMessage is submitMessage's answer for a message id that exists
// already: the caller's transaction rolls back and the first answer is read
// after it.
type repeatedMessage struct{}

func (*repeatedMessage) Error() string { return "the message exists already" }

// submitMessage is SubmitMessage inside the caller's transaction.
func submitMessage(ctx context.Context, tx pgx.Tx, sessionID string, id uuid.UUID, prompt string, enqueue Enqueue) (domain.MessageAccepted, error) {
	sid, err := ParseID("session", sessionID)
	if err != nil {
		return domain.MessageAccepted{}, err
	}
	m := newMessage{session: sid, id: id, prompt: prompt, trace: traceID(ctx)}
	return m.submit(ctx, tx, sessionID, enqueue)
}

// sessionLock is the transaction-scoped advisory lock a submission to the
// session holds from its check to its COMMIT, so that the messages of a
// session commit in the order their positions were drawn: a message's
// position comes from an identity at its insert, and a message that drew
// position 1 but committed after position 2 had started was not seen by its
// check for earlier messages, and ran beside it. The keys are apart from the
// outbox's seq locks (seqLockBase); two sessions that share one only wait
// for each other's COMMIT.
func sessionLock(session uuid.UUID) int64 {
	return sessionLockBase | int64(binary.BigEndian.Uint64(session[8:])&(1<<48-1))
}

const sessionLockBase int64 = 0x5653 << 48

// newMessage is a user message to store, and what the statement that checks
// it found.
type newMessage struct {
	session, id   uuid.UUID
	prompt, trace string

	project uuid.UUID
	exists  bool      // the id is taken
	now     time.Time // the transaction's
	found   error     // pgx.ErrNoRows: no such session
	read    func() error
}

// checkLater queues the statement that takes the session's submission lock
// (sessionLock) and finds the session, whether the message exists and the
// transaction's time, to go with BEGIN and the job's insert (one round trip
// for the three).
func (m *newMessage) checkLater(ctx context.Context, tx pgx.Tx) {
	m.read = rowLater(ctx, tx, `SELECT s.project_id, EXISTS (SELECT 1 FROM messages WHERE id = $1), now()
		FROM (SELECT pg_advisory_xact_lock($3)) l, sessions s WHERE s.id = $2`,
		[]any{m.id, m.session, sessionLock(m.session)}, func(r pgx.Row) error {
			if m.found = r.Scan(&m.project, &m.exists, &m.now); errors.Is(m.found, pgx.ErrNoRows) {
				return nil // the job's insert goes on, and is rolled back
			}
			return m.found
		})
}

// submit checks the session and the id and enqueues the job in one round
// trip (checkLater), then inserts the message with its job id and that time
// (as its column's default would), queued with its event to go with COMMIT
// (store). A missing session or a repeated id rolls the transaction back,
// the job's insert with it. A repeat's job insert, when the first job is
// still to run, meets it in River's unique index and locks its row until the
// rollback, one round trip later (a worker completing that job waits that
// long; nothing the repeat holds waits on the worker). A rolled back insert
// also spends River's insert notification for its queue (one per
// jobargs.FetchCooldown per process): a job inserted by the same process in
// those 2 ms waits for the workers' poll.
// (An UPDATE that set job_id on the new row after the insert was, before, the
// costliest statement of a message for PostgreSQL: a second version of the
// row in every index of messages.) Two submissions of one id at once both
// pass the check; the second fails on the primary key at COMMIT, and
// SubmitMessage answers it as a repeat.
func (m *newMessage) submit(ctx context.Context, tx pgx.Tx, sessionID string, enqueue Enqueue) (domain.MessageAccepted, error) {
	m.checkLater(ctx, tx)
	jobs, err := enqueue(ctx, tx, []string{m.id.String()})
	if rerr := m.read(); err == nil {
		err = rerr
	}
	switch {
	case errors.Is(m.found, pgx.ErrNoRows):
		return domain.MessageAccepted{}, domain.NotFound("session", sessionID)
	case m.found != nil:
		return domain.MessageAccepted{}, wrap(m.found, "store message")
	case err != nil:
		return domain.MessageAccepted{}, err
	case m.exists:
		return domain.MessageAccepted{}, &repeatedMessage{}
	}
	return m.store(ctx, tx, jobs[0])
}

// store queues the checked message's insert, with its job's id, and its
// conversation_message.
func (m *newMessage) store(ctx context.Context, tx pgx.Tx, jobID int64) (domain.MessageAccepted, error) {
	if err := later(ctx, tx, `INSERT INTO messages (id, session_id, project_id, role, agent, content, trace_id, status, job_id, created_at)
		VALUES ($1, $2, $3, 'user', 'user', $4, $5, 'queued', $6, $7)`, m.id, m.session, m.project, m.prompt, m.trace, jobID, m.now); err != nil {
		return domain.MessageAccepted{}, wrap(err, "store message")
	}
	queued := domain.StatusQueued
	msg := domain.ConversationMessage{ID: m.id.String(), SessionID: m.session.String(), Role: domain.RoleUser, Agent: domain.AgentUser,
		Content: m.prompt, TraceID: m.trace, Status: &queued, CreatedAt: m.now.UTC()}
	if err := EmitMessage(ctx, tx, m.project.String(), msg); err != nil {
		return domain.MessageAccepted{}, err
	}
	return domain.MessageAccepted{SessionID: msg.SessionID, MessageID: msg.ID, JobID: jobID, TraceID: m.trace, Status: domain.StatusQueued}, nil
}

// traceID is "trace_" (the OpenAI Agents SDK's form of a trace id) and the
// OpenTelemetry trace id of the request that submits a message, 32 hex
// digits, so the trace_id the API returns finds the message's trace; random
// hex digits when tracing is off.
func traceID(ctx context.Context) string {
	if sc := oteltrace.SpanContextFromContext(ctx); sc.HasTraceID() {
		return "trace_" + sc.TraceID().String()
	}
	return "trace_" + strings.ReplaceAll(uuid.NewString(), "-", "")
}

// existingSubmission answers a repeated message id with the first answer.
func existingSubmission(ctx context.Context, q Querier, id uuid.UUID, sessionID, prompt string) (domain.MessageAccepted, error) {
	var session uuid.UUID
	var role, content, trace string
	var jobID *int64
	err := q.QueryRow(ctx, `SELECT session_id, role, content, trace_id, job_id FROM messages WHERE id = $1`, id).
		Scan(&session, &role, &content, &trace, &jobID)
	if err != nil {
		return domain.MessageAccepted{}, wrap(err, "read message")
	}
	if session.String() != sessionID || role != domain.RoleUser || content != prompt {
		return domain.MessageAccepted{}, &domain.Error{Code: domain.ECONFLICT, Field: "message_id",
			Message: "message " + id.String() + " already exists with a different session or prompt"}
	}
	out := domain.MessageAccepted{SessionID: sessionID, MessageID: id.String(), TraceID: trace, Status: domain.StatusQueued}
	if jobID != nil {
		out.JobID = *jobID
	}
	return out, nil
}

// EmitMessage emits conversation_message for a stored message: the message,
// its id again as message_id, and the first lines of its patch.
func EmitMessage(ctx context.Context, q Querier, projectID string, m domain.ConversationMessage) error {
	return QueueEvent(ctx, q, projectID, event.ConversationMessage{ConversationMessage: m, MessageID: m.ID, PatchPreview: patchPreview(m.Patch)})
}

func patchPreview(patch *string) *string {
	if patch == nil {
		return nil
	}
	lines := strings.SplitAfter(*patch, "\n")
	if len(lines) > 10 {
		lines = lines[:10]
	}
	p := strings.TrimRight(strings.Join(lines, ""), "\n")
	return &p
}

// ListMessages returns a session's conversation, oldest first.
func (s *Store) ListMessages(ctx context.Context, sessionID string) ([]domain.ConversationMessage, error) {
	sess, err := getSession(ctx, s.Pool, sessionID, false)
	if err != nil {
		return nil, err
	}
	rows, err := s.Pool.Query(ctx, `SELECT `+messageColumns+` FROM messages WHERE session_id = $1 ORDER BY position`, sess.ID)
	if err != nil {
		return nil, wrap(err, "list messages")
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.ConversationMessage, error) { return scanMessage(r) })
	return list, wrap(err, "list messages")
}

// GetMessage returns one message with the raw OpenAI responses behind it: the
// model call an assistant message was made of (model_calls, under the
// message's step key), or, for rows written before replies were stored once,
// the copy in messages.openai_response.
func (s *Store) GetMessage(ctx context.Context, id string) (domain.FullMessage, error) {
	u, err := ParseID("message", id)
	if err != nil {
		return domain.FullMessage{}, err
	}
	var full domain.FullMessage
	var raw []byte
	full.ConversationMessage, err = scanMessage(s.Pool.QueryRow(ctx,
		`SELECT `+prefixed("m", messageColumns)+`,
			coalesce(m.openai_response, (SELECT jsonb_build_array(c.response) FROM model_calls c WHERE c.call_key = m.step_key)),
			m.last_response_id
		FROM messages m WHERE m.id = $1`, u),
		&raw, &full.LastResponseID)
	if errors.Is(err, pgx.ErrNoRows) {
		return full, domain.NotFound("message", id)
	}
	if err != nil {
		return full, wrap(err, "read message")
	}
	full.OpenAIResponse = raw
	if len(raw) == 0 {
		full.OpenAIResponse = json.RawMessage("[]")
	}
	return full, nil
}

// Enqueue inserts the first VibecodeJob of each of new user messages in tx
// and returns their ids, in order; the api passes River's InsertManyTx (one
// statement for all).
type Enqueue func(ctx context.Context, tx pgx.Tx, messageIDs []string) ([]int64, error)
