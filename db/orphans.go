package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/event"
)

// jobOver is true of a job j (a LEFT JOIN of river_job) that can no longer
// end the message or run it works on: deleted or cancelled in River UI, or
// discarded (its last attempt handed over at a shutdown, or fenced). Its
// worker never ran their end, and nothing else would.
const jobOver = `(j.id IS NULL OR j.state IN ('cancelled', 'discarded'))`

// jobStateOver is jobOver for a state read as coalesce(j.state, 'missing').
func jobStateOver(state string) bool {
	return state == "cancelled" || state == "discarded" || state == "missing"
}

// orphanedSQL selects, of rows of table not finished yet, those whose job
// is over (jobOver).
const orphanedSQL = `SELECT r.id, coalesce(j.state::text, 'missing') FROM %s r
	LEFT JOIN river_job j ON j.id = r.job_id
	WHERE %s AND r.job_id IS NOT NULL AND ` + jobOver

// EndOrphaned ends the user messages and test runs whose job ended without
// them: a message fails (vibecode_response failed, and its session's next
// message goes on), a run ends in error (test_completed). It returns how
// many of each it ended. The workers' liveness sweep calls it every few
// seconds; EarlierMessagePending does the same for a message that holds up
// its session.
func (s *Store) EndOrphaned(ctx context.Context) (messages, runs int, err error) {
	msgs, err := s.orphans(ctx, "messages", "r.role = 'user' AND r.status IN ('queued', 'running')")
	if err != nil {
		return 0, 0, err
	}
	for _, o := range msgs {
		ended, err := s.failOrphanedMessage(ctx, o.id, o.state)
		if err != nil {
			return messages, 0, err
		}
		if ended {
			messages++
		}
	}
	list, err := s.orphans(ctx, "test_runs", "r.status IN ('queued', 'running')")
	if err != nil {
		return messages, 0, err
	}
	for _, o := range list {
		ended, err := s.failOrphanedRun(ctx, o.id, o.state)
		if err != nil {
			return messages, runs, err
		}
		if ended {
			runs++
		}
	}
	return messages, runs, nil
}

// orphan is a message or run and the state of its job.
type orphan struct{ id, state string }

func (s *Store) orphans(ctx context.Context, table, where string) ([]orphan, error) {
	rows, err := s.Pool.Query(ctx, fmt.Sprintf(orphanedSQL, table, where))
	if err != nil {
		return nil, wrap(err, "find orphaned "+table)
	}
	list, err := collectOrphans(rows)
	return list, wrap(err, "find orphaned "+table)
}

// collectOrphans reads rows of (id, the state of its job).
func collectOrphans(rows pgx.Rows) ([]orphan, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (orphan, error) {
		var o orphan
		var id uuid.UUID
		err := r.Scan(&id, &o.state)
		o.id = id.String()
		return o, err
	})
}

// failOrphanedMessage fails a message whose job is state (cancelled,
// discarded or missing); false when it is gone or ended meanwhile.
func (s *Store) failOrphanedMessage(ctx context.Context, id, state string) (bool, error) {
	t, err := loadTurn(ctx, s.Pool, id)
	if errors.Is(err, ErrTurnGone) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if t.Message.Status != nil && domain.IsFinal(*t.Message.Status) {
		return false, nil
	}
	reason := "its job was " + state + " before the message was answered"
	if err := s.EndTurn(ctx, &t, TurnEnd{Status: domain.StatusFailed, Outcome: event.VibecodeResponse{Error: &reason}, IfJobEnded: true}); err != nil {
		return false, err
	}
	var status string
	err = s.Pool.QueryRow(ctx, `SELECT status FROM messages WHERE id = $1`, id).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return status == domain.StatusFailed, wrap(err, "read message")
}

// failOrphanedRun ends a run whose job is state in error; false when it is
// gone or finished meanwhile.
func (s *Store) failOrphanedRun(ctx context.Context, id, state string) (bool, error) {
	var w RunWork
	var err error
	w.Run, err = scanRun(s.Pool.QueryRow(ctx, `SELECT `+runColumns+`, batch_id FROM test_runs WHERE id = $1`, id), &w.batchID)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, wrap(err, "read test run")
	}
	if w.Run.Finished() {
		return false, nil
	}
	reason := "its job was " + state + " before the test finished"
	out, err := s.FinishRun(ctx, w, RunResult{Status: domain.RunError, Error: &reason, IfJobEnded: true}, nil)
	return err == nil && out.Error != nil && *out.Error == reason, err
}
