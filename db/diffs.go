package db

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/event"
	"github.com/vibegrapher/vibegrapher/domain/patch"
)

const diffColumns = `id, project_id, session_id, message_id, base_commit, target_branch, diff_content, status,
	vibecoder_prompt, evaluator_reasoning, commit_message, human_feedback, committed_sha, test_results, tests_run_at,
	created_at, updated_at`

func scanDiff(r pgx.Row) (domain.Diff, error) {
	var d domain.Diff
	var id, project uuid.UUID
	var session, message *uuid.UUID
	var results []byte
	err := r.Scan(&id, &project, &session, &message, &d.BaseCommit, &d.TargetBranch, &d.DiffContent, &d.Status,
		&d.VibecoderPrompt, &d.EvaluatorReasoning, &d.CommitMessage, &d.HumanFeedback, &d.CommittedSHA, &results, &d.TestsRunAt,
		&d.CreatedAt, &d.UpdatedAt)
	d.ID, d.ProjectID = id.String(), project.String()
	d.SessionID, d.MessageID = uuidString(session), uuidString(message)
	if len(results) > 0 {
		d.TestResults = results
	}
	d.CreatedAt, d.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	if d.TestsRunAt != nil {
		utc := d.TestsRunAt.UTC()
		d.TestsRunAt = &utc
	}
	return d, err
}

// insertDiffLater stores d once per step key with the transaction's next
// batch (rowLater): stored calls back with the stored row when the batch is
// read, and read returns the insert's error.
func insertDiffLater(ctx context.Context, tx pgx.Tx, d *domain.Diff, step string, stored func(domain.Diff)) (read func() error) {
	return rowLater(ctx, tx, insertDiffSQL, diffArgs(d, step), func(r pgx.Row) error {
		out, err := scanDiff(r)
		if err != nil {
			return wrap(err, "store diff")
		}
		stored(out)
		return nil
	})
}

const insertDiffSQL = `
		INSERT INTO diffs (id, project_id, session_id, message_id, base_commit, target_branch, diff_content, status,
			vibecoder_prompt, evaluator_reasoning, commit_message, step_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (step_key) DO UPDATE SET step_key = EXCLUDED.step_key
		RETURNING ` + diffColumns

func diffArgs(d *domain.Diff, step string) []any {
	return []any{uuid.New(), d.ProjectID, d.SessionID, d.MessageID, d.BaseCommit, d.TargetBranch, d.DiffContent, d.Status,
		d.VibecoderPrompt, d.EvaluatorReasoning, d.CommitMessage, step}
}

// GetDiff returns one diff.
func (s *Store) GetDiff(ctx context.Context, id string) (domain.Diff, error) {
	return getDiff(ctx, s.Pool, id, false)
}

func getDiff(ctx context.Context, q Querier, id string, forUpdate bool) (domain.Diff, error) {
	u, err := ParseID("diff", id)
	if err != nil {
		return domain.Diff{}, err
	}
	sql := `SELECT ` + diffColumns + ` FROM diffs WHERE id = $1`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	d, err := scanDiff(q.QueryRow(ctx, sql, u))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, domain.NotFound("diff", id)
	}
	return d, wrap(err, "read diff")
}

// DiffFilter selects diffs.
type DiffFilter struct {
	ProjectID   string
	SessionID   string
	Status      string
	PendingOnly bool // evaluator_approved or human_approved: waiting for a commit
}

// ListDiffs returns diffs, newest first.
func (s *Store) ListDiffs(ctx context.Context, f DiffFilter) ([]domain.Diff, error) {
	var project, session *uuid.UUID
	switch {
	case f.ProjectID != "":
		p, err := loadProjectRow(ctx, s.Pool, f.ProjectID, false)
		if err != nil {
			return nil, err
		}
		project = &p.id
	case f.SessionID != "":
		sess, err := getSession(ctx, s.Pool, f.SessionID, false)
		if err != nil {
			return nil, err
		}
		u := uuid.MustParse(sess.ID)
		session = &u
	}
	switch f.Status {
	case "", domain.DiffEvaluatorApproved, domain.DiffHumanApproved, domain.DiffHumanRejected, domain.DiffCommitted:
	default:
		return nil, domain.Invalid("status", "must be one of evaluator_approved, human_approved, human_rejected, committed; got %q", f.Status)
	}
	sql, args := listDiffsSQL(project, session, f.Status, f.PendingOnly)
	rows, err := s.Pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, wrap(err, "list diffs")
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Diff, error) { return scanDiff(r) })
	return list, wrap(err, "list diffs")
}

// listDiffsSQL is ListDiffs' statement and its arguments. Only the filters
// given are in it: its plan is made once for all parameters (genericPlans),
// and a plan that had to allow for a missing project could not use the
// project's index.
func listDiffsSQL(project, session *uuid.UUID, status string, pendingOnly bool) (string, []any) {
	where, args := []string{"true"}, []any{}
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if project != nil {
		add("project_id = $%d", *project)
	}
	if session != nil {
		add("session_id = $%d", *session)
	}
	if status != "" {
		add("status = $%d", status)
	}
	if pendingOnly {
		where = append(where, "status IN ('evaluator_approved', 'human_approved')")
	}
	return `SELECT ` + diffColumns + ` FROM diffs WHERE ` + strings.Join(where, " AND ") + ` ORDER BY created_at DESC, id`, args
}

// DiffPreview is a diff with the code before and after it.
type DiffPreview struct {
	OriginalCode string `json:"original_code"`
	PatchedCode  string `json:"patched_code"`
	DiffContent  string `json:"diff_content"`
}

// PreviewDiff returns the code at the diff's base commit and with the diff
// applied to it.
func (s *Store) PreviewDiff(ctx context.Context, id string) (DiffPreview, error) {
	d, err := getDiff(ctx, s.Pool, id, false)
	if err != nil {
		return DiffPreview{}, err
	}
	p, err := loadProjectRow(ctx, s.Pool, d.ProjectID, false)
	if err != nil {
		return DiffPreview{}, err
	}
	code, err := ReadFile(NewGitStorage(ctx, s.Pool, p.repo), plumbing.NewHash(d.BaseCommit), domain.ScriptPath)
	if err != nil {
		// A project deleted after its row was read: its objects are gone.
		return DiffPreview{}, unlessDeleted(ctx, s.Pool, p, err)
	}
	patched, err := applyDiff(code, d)
	if err != nil {
		return DiffPreview{}, err
	}
	return DiffPreview{OriginalCode: code, PatchedCode: patched, DiffContent: d.DiffContent}, nil
}

// SetCommitMessage stores a new commit message on a diff not yet committed;
// the message it has already changes nothing and emits nothing.
func (s *Store) SetCommitMessage(ctx context.Context, id, message string) (domain.Diff, error) {
	var d domain.Diff
	err := InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		cur, err := getDiff(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if cur.Status == domain.DiffCommitted {
			return domain.Errorf(domain.ECONFLICT, "diff %s is already committed; its message cannot change", cur.ID)
		}
		if cur.CommitMessage == message {
			// The model gave the message back unchanged: nothing to store,
			// and no diff_updated for a change that is not one.
			d = cur
			return nil
		}
		d, err = scanDiff(tx.QueryRow(ctx, `UPDATE diffs SET commit_message = $2, updated_at = now() WHERE id = $1 RETURNING `+diffColumns, cur.ID, message))
		if err != nil {
			return wrap(err, "store commit message")
		}
		_, err = Emit(ctx, tx, d.ProjectID, event.DiffUpdated{Diff: d, DiffID: d.ID})
		return err
	})
	return d, err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// applyDiff applies a diff to the code of its base commit.
func applyDiff(base string, d domain.Diff) (string, error) {
	patched, err := patch.Apply(base, d.DiffContent)
	if err != nil {
		return "", domain.Errorf(domain.ECONFLICT, "diff %s does not apply to the code it is run on: %v", d.ID, err)
	}
	return patched, nil
}
