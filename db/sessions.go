package db

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/event"
	"github.com/vibegrapher/vibegrapher/domain/pyast"
)

const sessionColumns = `id, project_id, openai_session_key, session_type, node_id, created_at, updated_at`

func scanSession(r pgx.Row) (domain.VibecodeSession, error) {
	var s domain.VibecodeSession
	var id, project uuid.UUID
	err := r.Scan(&id, &project, &s.OpenAISessionKey, &s.SessionType, &s.NodeID, &s.CreatedAt, &s.UpdatedAt)
	s.ID, s.ProjectID = id.String(), project.String()
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return s, err
}

// CreateSession starts a session of a project, or returns the existing one
// with the same memory key (created reports which). checkNode validates a
// node id against the agents of the project's current code, or the error
// parsing it gave; it runs before the transaction, on the agents kept for
// the commit (ProjectNodes), so that no connection waits on a parse.
func (s *Store) CreateSession(ctx context.Context, projectID string, in domain.NewSession,
	checkNode func(nodes []pyast.AgentNode, parseErr error, node string) error) (sess domain.VibecodeSession, created bool, err error) {
	typ := domain.SessionGlobal
	if in.NodeID != nil {
		typ = domain.SessionNode
		nodes, parseErr, err := s.projectNodes(ctx, projectID)
		if err != nil {
			return sess, false, err
		}
		if err := checkNode(nodes, parseErr, *in.NodeID); err != nil {
			return sess, false, err
		}
	}
	err = InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		p, err := loadProjectRow(ctx, tx, projectID, false)
		if err != nil {
			return err
		}
		// The project's key share, as the insert's reference to it takes,
		// but held before it: a session found by its key (the insert did
		// nothing) was read after a project's delete that committed
		// meanwhile, "no rows", a 500; or answered from a project being
		// deleted. The delete is waited for, and the project is not found.
		if err := holdRow(ctx, tx, "projects", "project", p.id.String(),
			&domain.Error{Code: domain.ENOTFOUND, Message: "create session: the project was deleted meanwhile"}); err != nil {
			return err
		}
		key := domain.SessionKey(p.id.String(), in.NodeID)
		sess, err = scanSession(tx.QueryRow(ctx, `
			INSERT INTO sessions (id, project_id, openai_session_key, session_type, node_id)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (openai_session_key) DO NOTHING
			RETURNING `+sessionColumns, uuid.New(), p.id, key, typ, in.NodeID))
		if err == nil {
			created = true
			_, err = Emit(ctx, tx, p.id.String(), event.SessionCreated{Session: sess, SessionID: sess.ID})
			return err
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return wrap(err, "create session")
		}
		sess, err = scanSession(tx.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE openai_session_key = $1`, key))
		return wrap(err, "read session")
	})
	return sess, created, err
}

// ListSessions returns a project's sessions, oldest first.
func (s *Store) ListSessions(ctx context.Context, projectID string) ([]domain.VibecodeSession, error) {
	p, err := loadProjectRow(ctx, s.Pool, projectID, false)
	if err != nil {
		return nil, err
	}
	// p.id, not projectID: an id in another of the forms ParseID accepts
	// (urn:uuid:…) is not one PostgreSQL reads.
	rows, err := s.Pool.Query(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE project_id = $1 ORDER BY created_at, id`, p.id)
	if err != nil {
		return nil, wrap(err, "list sessions")
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.VibecodeSession, error) { return scanSession(r) })
	return list, wrap(err, "list sessions")
}

// GetSession returns one session.
func (s *Store) GetSession(ctx context.Context, id string) (domain.VibecodeSession, error) {
	return getSession(ctx, s.Pool, id, false)
}

func getSession(ctx context.Context, q Querier, id string, forUpdate bool) (domain.VibecodeSession, error) {
	u, err := ParseID("session", id)
	if err != nil {
		return domain.VibecodeSession{}, err
	}
	sql := `SELECT ` + sessionColumns + ` FROM sessions WHERE id = $1`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	sess, err := scanSession(q.QueryRow(ctx, sql, u))
	if errors.Is(err, pgx.ErrNoRows) {
		return sess, domain.NotFound("session", id)
	}
	return sess, wrap(err, "read session")
}

// ClearSession deletes a session's messages and both agents' memory; the
// session itself stays, empty. Work still queued for its messages finds them
// gone and stops. A session with nothing to clear is left as it is, without
// session_cleared.
func (s *Store) ClearSession(ctx context.Context, id string) error {
	return InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		sess, err := getSession(ctx, tx, id, true)
		if err != nil {
			return err
		}
		queued, err := queuedJobsOf(ctx, tx, "m.session_id = $1", sess.ID)
		if err != nil {
			return err
		}
		messages, err := tx.Exec(ctx, `DELETE FROM messages WHERE session_id = $1`, sess.ID)
		if err != nil {
			return wrap(err, "delete messages")
		}
		if err := wakeJobsOfDeleted(ctx, tx, queued); err != nil {
			return err
		}
		memory, err := tx.Exec(ctx, `DELETE FROM agent_memory WHERE session_key = $1`, sess.OpenAISessionKey)
		if err != nil {
			return wrap(err, "delete memory")
		}
		if messages.RowsAffected() == 0 && memory.RowsAffected() == 0 {
			// Empty already (cleared before, by this request sent again or
			// another client): nothing changed, so updated_at stays and no
			// session_cleared is emitted.
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE sessions SET updated_at = $2 WHERE id = $1`, sess.ID, time.Now()); err != nil {
			return wrap(err, "touch session")
		}
		_, err = Emit(ctx, tx, sess.ProjectID, event.SessionCleared{SessionID: sess.ID})
		return err
	})
}
