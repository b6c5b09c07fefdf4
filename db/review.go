package db

import (
	"context"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/event"
	"github.com/vibegrapher/vibegrapher/domain/pyast"
	"github.com/vibegrapher/vibegrapher/domain/vibecode"
)

// ReviewResult is a person's verdict applied: the diff, and the message that
// carries rejection feedback back to the VibeCoder, when there is one.
type ReviewResult struct {
	Diff    domain.Diff             `json:"diff"`
	Message *domain.MessageAccepted `json:"message"`
}

// ReviewDiff records a person's verdict on an approved diff. A rejection with
// feedback sends the feedback to the VibeCoder as the next message of the
// diff's session, in the same transaction. An approval of a diff a person
// approved already changes nothing and emits nothing.
func (s *Store) ReviewDiff(ctx context.Context, id string, approved bool, feedback string, enqueue Enqueue) (ReviewResult, error) {
	var out ReviewResult
	feedback = strings.TrimSpace(feedback)
	if len([]rune(feedback)) > domain.MaxPromptLen {
		return out, domain.Invalid("feedback", "must be at most %d characters", domain.MaxPromptLen)
	}
	err := InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		d, err := getDiff(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if d.Status != domain.DiffEvaluatorApproved && d.Status != domain.DiffHumanApproved {
			return domain.Errorf(domain.ECONFLICT, "diff %s is %s; only an approved diff waiting for commit can be reviewed", d.ID, d.Status)
		}
		if approved && d.Status == domain.DiffHumanApproved {
			// Approved again (a repeat, or a second tab): nothing changes, so
			// nothing is rewritten and no diff_updated says otherwise.
			out.Diff = d
			return nil
		}
		status := domain.DiffHumanApproved
		var fb *string
		if !approved {
			status = domain.DiffHumanRejected
			if feedback != "" {
				fb = &feedback
			}
		}
		d, err = scanDiff(tx.QueryRow(ctx, `UPDATE diffs SET status = $2, human_feedback = $3, updated_at = now()
			WHERE id = $1 RETURNING `+diffColumns, d.ID, status, fb))
		if err != nil {
			return wrap(err, "review diff")
		}
		out.Diff = d
		if fb != nil && d.SessionID != nil {
			acc, err := submitMessage(ctx, tx, *d.SessionID, uuid.New(), vibecode.RejectionPrompt(feedback), enqueue)
			if err != nil {
				return err
			}
			out.Message = &acc
		}
		_, err = Emit(ctx, tx, d.ProjectID, event.DiffUpdated{Diff: d, DiffID: d.ID})
		return err
	})
	return out, err
}

// CommitResult is a committed diff and the commit it made.
type CommitResult struct {
	Diff    domain.Diff    `json:"diff"`
	Commit  domain.Commit  `json:"commit"`
	Project domain.Project `json:"project"`
}

// CommitDiff commits a diff's patched code onto its branch head. When the head
// moved since the diff's base commit, the diff is applied to the new head; if
// it no longer applies the answer is a conflict and nothing changes. The
// commit, the diff's status, the Evaluator's memory reset and code_changed
// are one transaction, with the reference compare-and-swap.
//
// A deadlock with a project's delete (onceMoreAfterDeadlock) is tried again
// once the project is free: the delete, which holds it, has ended, and the
// diff is gone with it (404).
func (s *Store) CommitDiff(ctx context.Context, id string, message string) (CommitResult, error) {
	var out CommitResult
	err := s.commitDiff(ctx, id, message, &out)
	if isCode(err, "40P01") { // deadlock_detected
		u, perr := ParseID("diff", id)
		if perr != nil {
			return out, perr
		}
		// Tried again at once, the commit met the delete again.
		if _, err := s.Pool.Exec(ctx, `SELECT 1 FROM projects WHERE id = (SELECT project_id FROM diffs WHERE id = $1) FOR KEY SHARE`, u); err != nil {
			return out, wrap(err, "wait for the project")
		}
		out = CommitResult{}
		err = s.commitDiff(ctx, id, message, &out)
	}
	return out, err
}

func (s *Store) commitDiff(ctx context.Context, id string, message string, out *CommitResult) error {
	return InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		d, err := getDiff(ctx, tx, id, true)
		if err != nil {
			return err
		}
		switch d.Status {
		case domain.DiffCommitted:
			return domain.Errorf(domain.ECONFLICT, "diff %s is already committed as %s", d.ID, deref(d.CommittedSHA))
		case domain.DiffHumanRejected:
			return domain.Errorf(domain.ECONFLICT, "diff %s was rejected; it cannot be committed", d.ID)
		}
		// The session's messages under way, whose Evaluator turns outlive
		// the memory reset below, locked so that none ends meanwhile: an end
		// (EndTurn, which locks its message first) that ran between the
		// reset's statements, or before they commit, would leave its turns
		// for good. Before the project row, in EndTurn's order.
		// The session's key share first: a clear holds the session and then
		// deletes its messages in its own order, which meeting this one in
		// the messages was a deadlock; it waits on the session instead.
		underWay := []string{}
		if d.SessionID != nil {
			if err := later(ctx, tx, holdSessionSQL, *d.SessionID); err != nil {
				return wrap(err, "hold session")
			}
			rows, err := tx.Query(ctx, `SELECT id::text FROM messages WHERE session_id = $1 AND role = 'user'
				AND status IN ('queued', 'running') ORDER BY id FOR SHARE`, *d.SessionID)
			if err != nil {
				return wrap(err, "lock the messages under way")
			}
			if underWay, err = pgx.AppendRows(underWay, rows, pgx.RowTo[string]); err != nil {
				return wrap(err, "lock the messages under way")
			}
		}
		// Commits of one project are serialised by the project row; the
		// compare-and-swap on the branch still guards against any other writer.
		// FOR NO KEY UPDATE, which commits and a project's delete wait for,
		// but not a row that refers to the project (its key share): a
		// step's end holds the project's key share before its session and
		// message (to insert its diff), and this commit holds the session's
		// messages before the project.
		p, err := lockProjectRow(ctx, tx, d.ProjectID, ` FOR NO KEY UPDATE`)
		if err != nil {
			return err
		}
		repo := NewGitStorage(ctx, tx, p.repo)
		head, err := BranchHead(repo, d.TargetBranch)
		if err != nil {
			return err
		}
		patched, err := rebaseOnHead(ctx, tx, p.repo, d, head)
		if err != nil {
			return err
		}
		msg := vibecode.CommitMessage(message, d.CommitMessage)
		sha, err := CommitFiles(repo, d.TargetBranch, head, map[string]string{domain.ScriptPath: patched}, msg, signature())
		if err != nil {
			return err
		}
		scripts.put(scriptKey{p.repo, sha}, patched) // the next step's base, read without a query
		d, err = scanDiff(tx.QueryRow(ctx, `UPDATE diffs SET status = 'committed', committed_sha = $2, commit_message = $3, updated_at = now()
			WHERE id = $1 RETURNING `+diffColumns, d.ID, sha.String(), msg))
		if err != nil {
			return wrap(err, "mark diff committed")
		}
		if _, err := tx.Exec(ctx, `UPDATE projects SET updated_at = now() WHERE id = $1`, p.id); err != nil {
			return wrap(err, "touch project")
		}
		if d.SessionID != nil {
			// The turns of a message still under way (a turn's key starts
			// with its message's id) stay until it ends, marked to go then
			// (EndTurn): its next round's Evaluator would review without
			// knowing what it asked for in the last.
			const memory = `agent = ANY($2) AND session_key = (SELECT openai_session_key FROM sessions WHERE id = $1)`
			if err := laterAs(ctx, tx, "reset evaluator memory", `DELETE FROM agent_memory WHERE `+memory+`
				AND split_part(turn_key, '/', 1) <> ALL($3)`, *d.SessionID, vibecode.ForgetsOnCommit, underWay); err != nil {
				return wrap(err, "reset evaluator memory")
			}
			if err := laterAs(ctx, tx, "mark evaluator memory to forget", `UPDATE agent_memory SET forget_when_ended = true
				WHERE `+memory+` AND split_part(turn_key, '/', 1) = ANY($3)`, *d.SessionID, vibecode.ForgetsOnCommit, underWay); err != nil {
				return wrap(err, "mark evaluator memory to forget")
			}
		}
		out.Diff = d
		log, err := Log(repo, sha, 1)
		if err != nil {
			return err
		}
		out.Commit = log[0]
		if out.Project, err = projectAt(ctx, tx, p); err != nil {
			return err
		}
		return emitCodeChanged(ctx, tx, out.Project, head, &d)
	})
}

// emitCodeChanged emits code_changed for a new commit of a project, with the
// agents of the new code.
func emitCodeChanged(ctx context.Context, tx pgx.Tx, p domain.Project, parent plumbing.Hash, d *domain.Diff) error {
	nodes, err := pyast.ParseAgents(p.CurrentCode)
	if err != nil {
		nodes = []pyast.AgentNode{}
	}
	e := event.CodeChanged{
		ProjectID: p.ID, NewCode: p.CurrentCode, Commit: p.CurrentCommit, Parent: parent.String(),
		Branch: p.CurrentBranch, Nodes: nodes, Timestamp: time.Now().UTC(),
	}
	if d != nil {
		e.DiffID, e.CommitMessage = &d.ID, &d.CommitMessage
	}
	_, err = Emit(ctx, tx, p.ID, e)
	return err
}

// rebaseOnHead is the code diff d gives on head, the head of its branch
// (vibecode.Rebase), reading the base's code too when the head moved since.
// A commit writes it; a test run on the diff checks that it would.
func rebaseOnHead(ctx context.Context, tx pgx.Tx, repo uuid.UUID, d domain.Diff, head plumbing.Hash) (string, error) {
	headCode, err := scriptAt(ctx, tx, repo, head)
	if err != nil {
		return "", err
	}
	baseCode := headCode
	if head.String() != d.BaseCommit {
		if baseCode, err = scriptAt(ctx, tx, repo, plumbing.NewHash(d.BaseCommit)); err != nil {
			return "", err
		}
	}
	return vibecode.Rebase(headCode, baseCode, d.DiffContent, d.TargetBranch, head.String(), d.BaseCommit)
}
