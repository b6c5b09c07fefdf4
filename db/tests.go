package db

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/event"
)

const testColumns = `id, project_id, name, code, timeout_seconds, created_at, updated_at`

func scanTest(r pgx.Row) (domain.TestCase, error) {
	var t domain.TestCase
	var id, project uuid.UUID
	err := r.Scan(&id, &project, &t.Name, &t.Code, &t.TimeoutSeconds, &t.CreatedAt, &t.UpdatedAt)
	t.ID, t.ProjectID, t.CreatedAt, t.UpdatedAt = id.String(), project.String(), t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	return t, err
}

// CreateTest stores a test case of a project.
func (s *Store) CreateTest(ctx context.Context, projectID string, in domain.NewTestCase, maxTimeout time.Duration) (domain.TestCase, error) {
	timeout, id, err := in.Validate(maxTimeout)
	if err != nil {
		return domain.TestCase{}, err
	}
	var out domain.TestCase
	err = InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		p, err := loadProjectRow(ctx, tx, projectID, false)
		if err != nil {
			return err
		}
		out, err = scanTest(tx.QueryRow(ctx, `INSERT INTO test_cases (id, project_id, name, code, timeout_seconds)
			VALUES ($1, $2, $3, $4, $5) RETURNING `+testColumns, id, p.id, in.Name, in.Code, timeout))
		if err != nil {
			return wrap(err, "store test case")
		}
		// After the insert, not before: a delete of the same id that
		// commits meanwhile has the insert wait for it, and its tombstone
		// is then seen here.
		var deleted bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM deleted_tests WHERE id = $1)`, id).Scan(&deleted); err != nil {
			return wrap(err, "read deleted tests")
		}
		if deleted {
			return deletedTestID(id)
		}
		_, err = Emit(ctx, tx, out.ProjectID, event.TestCreated{Test: out, TestID: out.ID})
		return err
	})
	if isUniqueViolation(err, "test_cases_pkey") {
		// The client's test_id exists: a repeat, when it asks for the
		// same test.
		first, gerr := getTest(ctx, s.Pool, id.String())
		if domain.ErrorCodeOf(gerr) == domain.ENOTFOUND {
			return domain.TestCase{}, deletedTestID(id)
		}
		if gerr != nil {
			return domain.TestCase{}, gerr
		}
		p, perr := ParseID("project", projectID)
		if perr != nil || first.ProjectID != p.String() || first.Name != in.Name || first.Code != in.Code || first.TimeoutSeconds != timeout {
			return domain.TestCase{}, &domain.Error{Code: domain.ECONFLICT, Field: "test_id",
				Message: "test " + id.String() + " already exists with a different project, name, code or timeout"}
		}
		return first, nil
	}
	return out, err
}

// deletedTestID refuses a client's test_id of a deleted test, whether its
// delete came before the create sent again (deleted_tests) or while it was
// being stored: its clients were told test_deleted.
func deletedTestID(id uuid.UUID) error {
	return &domain.Error{Code: domain.ECONFLICT, Field: "test_id",
		Message: "test " + id.String() + " was deleted; a new test needs a test_id of its own"}
}

// ListTests returns a project's test cases, oldest first.
func (s *Store) ListTests(ctx context.Context, projectID string) ([]domain.TestCase, error) {
	p, err := loadProjectRow(ctx, s.Pool, projectID, false)
	if err != nil {
		return nil, err
	}
	rows, err := s.Pool.Query(ctx, `SELECT `+testColumns+` FROM test_cases WHERE project_id = $1 ORDER BY created_at, id`, p.id)
	if err != nil {
		return nil, wrap(err, "list tests")
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.TestCase, error) { return scanTest(r) })
	return list, wrap(err, "list tests")
}

// GetTest returns one test case.
func (s *Store) GetTest(ctx context.Context, id string) (domain.TestCase, error) {
	return getTest(ctx, s.Pool, id)
}

func getTest(ctx context.Context, q Querier, id string) (domain.TestCase, error) {
	u, err := ParseID("test", id)
	if err != nil {
		return domain.TestCase{}, err
	}
	t, err := scanTest(q.QueryRow(ctx, `SELECT `+testColumns+` FROM test_cases WHERE id = $1`, u))
	if errors.Is(err, pgx.ErrNoRows) {
		return t, domain.NotFound("test", id)
	}
	return t, wrap(err, "read test")
}

// DeleteTest removes a test case and its runs. A diff whose latest test
// batch ran the test gets its summary again without it: a run cut short
// would otherwise leave the batch unfinished for ever.
func (s *Store) DeleteTest(ctx context.Context, id string) error {
	return InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		t, err := getTest(ctx, tx, id)
		if err != nil {
			return err
		}
		// The diffs are locked before the test and its runs, in the order
		// StartDiffRuns and FinishRun take them.
		rows, err := tx.Query(ctx, `SELECT d.id, r.batch_id FROM diffs d
			JOIN (SELECT DISTINCT diff_id, batch_id FROM test_runs WHERE test_id = $1 AND batch_id IS NOT NULL) r
				ON d.id = r.diff_id AND d.test_results->>'batch_id' = r.batch_id::text
			ORDER BY d.id FOR UPDATE OF d`, t.ID)
		if err != nil {
			return wrap(err, "lock diffs")
		}
		type batch struct {
			diff uuid.UUID
			id   uuid.UUID
		}
		batches, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (b batch, err error) { return b, r.Scan(&b.diff, &b.id) })
		if err != nil {
			return wrap(err, "lock diffs")
		}
		// The same DELETE sent twice at once (a client retrying): both read
		// the test, and the second's DELETE waits for the first's and then
		// finds nothing. It is then 404, as it would be a moment later,
		// rather than a second 204 and a second test_deleted.
		tag, err := tx.Exec(ctx, `DELETE FROM test_cases WHERE id = $1`, t.ID)
		if err != nil {
			return wrap(err, "delete test")
		}
		if tag.RowsAffected() == 0 {
			return domain.NotFound("test", id)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO deleted_tests (id) VALUES ($1) ON CONFLICT DO NOTHING`, t.ID); err != nil {
			return wrap(err, "keep the deleted test's id")
		}
		for _, b := range batches {
			if err := summariseBatch(ctx, tx, b.diff.String(), b.id); err != nil {
				return err
			}
		}
		_, err = Emit(ctx, tx, t.ProjectID, event.TestDeleted{TestID: t.ID})
		return err
	})
}

const runColumns = `id, test_id, project_id, diff_id, commit, status, stdout, stderr, exit_code, duration_ms, error, job_id, created_at, finished_at`

func scanRun(r pgx.Row, extra ...any) (domain.TestRun, error) {
	var t domain.TestRun
	var id, test, project uuid.UUID
	var diff *uuid.UUID
	dest := append([]any{&id, &test, &project, &diff, &t.Commit, &t.Status, &t.Stdout, &t.Stderr, &t.ExitCode,
		&t.DurationMS, &t.Error, &t.JobID, &t.CreatedAt, &t.FinishedAt}, extra...)
	err := r.Scan(dest...)
	t.ID, t.TestID, t.ProjectID, t.DiffID, t.CreatedAt = id.String(), test.String(), project.String(), uuidString(diff), t.CreatedAt.UTC()
	if t.FinishedAt != nil {
		f := t.FinishedAt.UTC()
		t.FinishedAt = &f
	}
	return t, err
}

// EnqueueRun inserts the RunTestJob of a test run in tx and returns its id.
type EnqueueRun func(tx pgx.Tx, runID string) (int64, error)

// StartRun creates a queued run of a test on the project's head, or on a
// diff's patched code, and enqueues its job, in one transaction. The run
// takes runID; when a run has it already (the client chose it and sent the
// same request again) that run is answered, as it is now, and nothing is
// created.
func (s *Store) StartRun(ctx context.Context, runID uuid.UUID, testID string, diffID *string, enqueue EnqueueRun) (domain.TestRunAccepted, error) {
	out, err := s.startRun(ctx, runID, testID, diffID, enqueue)
	if isUniqueViolation(err, "test_runs_pkey") {
		return s.repeatedRun(ctx, runID, testID, diffID)
	}
	return out, err
}

// repeatedRun answers a run's id sent again: the run, when it is of the same
// test and diff, and otherwise 409.
func (s *Store) repeatedRun(ctx context.Context, runID uuid.UUID, testID string, diffID *string) (domain.TestRunAccepted, error) {
	run, err := s.GetRun(ctx, runID.String())
	if domain.ErrorCodeOf(err) == domain.ENOTFOUND { // its test deleted since
		return domain.TestRunAccepted{}, &domain.Error{Code: domain.ECONFLICT, Field: "test_run_id",
			Message: "test run " + runID.String() + " was deleted meanwhile; a new run needs a test_run_id of its own"}
	}
	if err != nil {
		return domain.TestRunAccepted{}, err
	}
	same := sameID(run.TestID, &testID) && (diffID == nil) == (run.DiffID == nil) && (diffID == nil || sameID(*run.DiffID, diffID))
	if !same {
		return domain.TestRunAccepted{}, &domain.Error{Code: domain.ECONFLICT, Field: "test_run_id",
			Message: "test run " + runID.String() + " already exists for a different test or diff"}
	}
	var jobID int64
	if run.JobID != nil {
		jobID = *run.JobID
	}
	return domain.TestRunAccepted{TestRunID: run.ID, TestID: run.TestID, JobID: jobID, Status: run.Status}, nil
}

// sameID reports whether id (as stored) is the UUID the client wrote in any
// of its spellings.
func sameID(id string, client *string) bool {
	u, err := uuid.Parse(*client)
	return err == nil && u.String() == id
}

func (s *Store) startRun(ctx context.Context, runID uuid.UUID, testID string, diffID *string, enqueue EnqueueRun) (domain.TestRunAccepted, error) {
	var out domain.TestRunAccepted
	err := InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		t, err := getTest(ctx, tx, testID)
		if err != nil {
			return err
		}
		// The run's references are held before its insert checks them,
		// in the order of a project's delete and a commit (the diff, then
		// the project) and then the test: the insert's own checks take
		// the test and then the project, the other order, and were a
		// deadlock (a 500) with either.
		if diffID != nil {
			u, err := ParseID("diff", *diffID)
			if err != nil {
				return err
			}
			// The id as PostgreSQL reads it: ParseID takes every spelling.
			if err := holdRow(ctx, tx, "diffs", "diff", u.String(), domain.NotFound("diff", *diffID)); err != nil {
				return err
			}
		}
		if err := holdRow(ctx, tx, "projects", "project", t.ProjectID, deletedMeanwhile("project")); err != nil {
			return err
		}
		if err := holdRow(ctx, tx, "test_cases", "test", t.ID, deletedMeanwhile("test")); err != nil {
			return err
		}
		commit, diff, err := runTarget(ctx, tx, t.ProjectID, diffID)
		if err != nil {
			return err
		}
		out, err = queueRun(ctx, tx, runID, t, diff, nil, commit, enqueue)
		return err
	})
	return out, err
}

// holdRow locks the row of table with id FOR KEY SHARE, as a reference
// to it does, until the transaction ends; without the row it answers
// missing.
func holdRow(ctx context.Context, tx pgx.Tx, table, what, id string, missing error) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM `+table+` WHERE id = $1 FOR KEY SHARE`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return missing
	}
	return wrap(err, "lock "+what)
}

// deletedMeanwhile is the answer about a row read earlier in the
// transaction and deleted since, as wrap words a reference to it.
func deletedMeanwhile(what string) error {
	return &domain.Error{Code: domain.ENOTFOUND, Message: "store test run: the " + what + " was deleted meanwhile"}
}

// runTarget is the commit a run is about: the project's head, or for a diff
// the code its commit has or would have: the commit it made, or the head,
// to which the diff is applied when the run begins (BeginRun).
func runTarget(ctx context.Context, tx pgx.Tx, projectID string, diffID *string) (string, *domain.Diff, error) {
	if diffID == nil {
		p, err := loadProjectRow(ctx, tx, projectID, false)
		if err != nil {
			return "", nil, err
		}
		head, err := BranchHead(NewGitStorage(ctx, tx, p.repo), p.br)
		return head.String(), nil, err
	}
	d, err := getDiff(ctx, tx, *diffID, false)
	if err != nil {
		return "", nil, err
	}
	if d.ProjectID != projectID {
		return "", nil, domain.Invalid("diff_id", "diff %s belongs to another project", d.ID)
	}
	commit, err := diffTarget(ctx, tx, d)
	return commit, &d, err
}

// diffTarget is the commit a run on diff d starts from. A committed diff's
// is the commit it made. Any other's is the head of its branch, as a commit
// of it would be (its base, or a head that moved since, which its commit
// rebases onto): tests vouch for what would be committed, and a diff that a
// commit would refuse (it no longer applies there, or the head already has
// its change) is refused with the same reason.
func diffTarget(ctx context.Context, tx pgx.Tx, d domain.Diff) (string, error) {
	if d.CommittedSHA != nil {
		return *d.CommittedSHA, nil
	}
	p, err := loadProjectRow(ctx, tx, d.ProjectID, false)
	if err != nil {
		return "", err
	}
	head, err := BranchHead(NewGitStorage(ctx, tx, p.repo), d.TargetBranch)
	if err != nil || head.String() == d.BaseCommit {
		return d.BaseCommit, err
	}
	if _, err := rebaseOnHead(ctx, tx, p.repo, d, head); err != nil {
		return "", err
	}
	return head.String(), nil
}

func queueRun(ctx context.Context, tx pgx.Tx, id uuid.UUID, t domain.TestCase, diff *domain.Diff, batch *uuid.UUID, commit string, enqueue EnqueueRun) (domain.TestRunAccepted, error) {
	var diffID *string
	if diff != nil {
		diffID = &diff.ID
	}
	if _, err := tx.Exec(ctx, `INSERT INTO test_runs (id, test_id, project_id, diff_id, batch_id, commit, status)
		VALUES ($1, $2, $3, $4, $5, $6, 'queued')`, id, t.ID, t.ProjectID, diffID, batch, commit); err != nil {
		return domain.TestRunAccepted{}, wrap(err, "store test run")
	}
	jobID, err := enqueue(tx, id.String())
	if err != nil {
		return domain.TestRunAccepted{}, err
	}
	if _, err := tx.Exec(ctx, `UPDATE test_runs SET job_id = $2 WHERE id = $1`, id, jobID); err != nil {
		return domain.TestRunAccepted{}, wrap(err, "store job id")
	}
	return domain.TestRunAccepted{TestRunID: id.String(), TestID: t.ID, JobID: jobID, Status: domain.RunQueued}, nil
}

// DiffTestsAccepted is the answer to running every test on a diff.
type DiffTestsAccepted struct {
	DiffID  string                   `json:"diff_id"`
	BatchID string                   `json:"batch_id"`
	Runs    []domain.TestRunAccepted `json:"runs"`
}

// StartDiffRuns queues a run of every test of the diff's project on the
// diff's patched code, as batch; as they finish, the diff's test_results
// summarise them. A batch that exists already (the client chose its id and
// sent the same request again) is answered as it is now, and nothing is
// queued.
func (s *Store) StartDiffRuns(ctx context.Context, diffID string, batch uuid.UUID, enqueue EnqueueRun) (DiffTestsAccepted, error) {
	var out DiffTestsAccepted
	err := InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		d, err := getDiff(ctx, tx, diffID, true)
		if err != nil {
			return err
		}
		// The diff's lock, taken above, holds a repeat sent at once until
		// the first has committed its runs.
		found, err := existingBatch(ctx, tx, d.ID, batch)
		if err != nil {
			return err
		}
		if found != nil {
			out = *found
			return nil
		}
		// The project, and then its tests, before the runs' inserts
		// check them (which take each test before the project): the
		// order of a project's delete, which holds the diff, then the
		// project, then deletes the tests. A test deleted meanwhile is
		// not run.
		if err := holdRow(ctx, tx, "projects", "project", d.ProjectID, deletedMeanwhile("project")); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+testColumns+` FROM test_cases WHERE project_id = $1 ORDER BY created_at, id FOR KEY SHARE`, d.ProjectID)
		if err != nil {
			return wrap(err, "list tests")
		}
		tests, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.TestCase, error) { return scanTest(r) })
		if err != nil {
			return wrap(err, "list tests")
		}
		if len(tests) == 0 {
			return domain.Errorf(domain.ECONFLICT, "project %s has no test cases to run", d.ProjectID)
		}
		out = DiffTestsAccepted{DiffID: d.ID, BatchID: batch.String(), Runs: []domain.TestRunAccepted{}}
		commit, err := diffTarget(ctx, tx, d)
		if err != nil {
			return err
		}
		for _, t := range tests {
			acc, err := queueRun(ctx, tx, uuid.New(), t, &d, &batch, commit, enqueue)
			if err != nil {
				return err
			}
			out.Runs = append(out.Runs, acc)
		}
		summary, _ := json.Marshal(map[string]any{"batch_id": batch, "total": len(tests), "finished": 0, "runs": out.Runs})
		_, err = tx.Exec(ctx, `UPDATE diffs SET test_results = $2, tests_run_at = NULL, updated_at = now() WHERE id = $1`, d.ID, summary)
		return wrap(err, "store test summary")
	})
	return out, err
}

// existingBatch reads the runs of batch, a repeat's, as they are now and in
// the order they were queued (their tests'): nil when there is no such
// batch, and 409 when it is another diff's.
func existingBatch(ctx context.Context, tx pgx.Tx, diffID string, batch uuid.UUID) (*DiffTestsAccepted, error) {
	rows, err := tx.Query(ctx, `SELECT r.id, r.test_id, coalesce(r.job_id, 0), r.status, r.diff_id
		FROM test_runs r JOIN test_cases t ON t.id = r.test_id
		WHERE r.batch_id = $1 ORDER BY t.created_at, t.id`, batch)
	if err != nil {
		return nil, wrap(err, "read batch")
	}
	out := DiffTestsAccepted{DiffID: diffID, BatchID: batch.String(), Runs: []domain.TestRunAccepted{}}
	var of []uuid.UUID
	for rows.Next() {
		var run, test, diff uuid.UUID
		var acc domain.TestRunAccepted
		if err := rows.Scan(&run, &test, &acc.JobID, &acc.Status, &diff); err != nil {
			rows.Close()
			return nil, wrap(err, "read batch")
		}
		acc.TestRunID, acc.TestID = run.String(), test.String()
		out.Runs = append(out.Runs, acc)
		of = append(of, diff)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "read batch")
	}
	if len(out.Runs) == 0 {
		return nil, nil
	}
	if of[0].String() != diffID {
		return nil, &domain.Error{Code: domain.ECONFLICT, Field: "batch_id",
			Message: "batch " + batch.String() + " is a batch of another diff"}
	}
	return &out, nil
}

// GetRun returns one test run.
func (s *Store) GetRun(ctx context.Context, id string) (domain.TestRun, error) {
	return getRun(ctx, s.Pool, id)
}

// getRun is GetRun on q: FinishRun reads in its own transaction rather than
// taking a second connection from the pool while it holds one.
func getRun(ctx context.Context, q Querier, id string) (domain.TestRun, error) {
	u, err := ParseID("test run", id)
	if err != nil {
		return domain.TestRun{}, err
	}
	r, err := scanRun(q.QueryRow(ctx, `SELECT `+runColumns+` FROM test_runs WHERE id = $1`, u))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, domain.NotFound("test run", id)
	}
	return r, wrap(err, "read test run")
}

// listRuns reads a Page of a test's runs (test_id $1): those after the row
// (created_at $2, id $3) in newest-first order, at most $4 of them (NULL:
// all). The index test_runs_test_newest holds them in that order.
const listRuns = `SELECT ` + runColumns + ` FROM test_runs
	WHERE test_id = $1 AND created_at <= $2 AND (created_at < $2 OR id > $3)
	ORDER BY created_at DESC, id LIMIT $4`

// ListRuns returns a page of a test's runs, newest first.
func (s *Store) ListRuns(ctx context.Context, testID string, page Page) ([]domain.TestRun, error) {
	t, err := getTest(ctx, s.Pool, testID)
	if err != nil {
		return nil, err
	}
	start, err := page.start(ctx, s.Pool, "test run", `SELECT created_at FROM test_runs WHERE id = $1 AND test_id = $2`, t.ID)
	if err != nil {
		return nil, err
	}
	rows, err := s.Pool.Query(ctx, listRuns, t.ID, start.at, start.id, page.limit())
	if err != nil {
		return nil, wrap(err, "list runs")
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.TestRun, error) { return scanRun(r) })
	return list, wrap(err, "list runs")
}

// RunWork is what a worker needs to execute a run.
type RunWork struct {
	Run     domain.TestRun
	Test    domain.TestCase
	Code    string // the project code the test runs against
	batchID *uuid.UUID
}

// BeginRun marks a queued run running and returns its test and code. ok is
// false when the run is gone or already has its result.
func (s *Store) BeginRun(ctx context.Context, id string) (w RunWork, ok bool, err error) {
	err = InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		w.Run, err = scanRun(tx.QueryRow(ctx, `SELECT `+runColumns+`, batch_id FROM test_runs WHERE id = $1 FOR UPDATE`, id), &w.batchID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return wrap(err, "read test run")
		}
		if w.Run.Finished() {
			return nil
		}
		if w.Test, err = getTest(ctx, tx, w.Run.TestID); err != nil {
			return err
		}
		p, err := loadProjectRow(ctx, tx, w.Run.ProjectID, false)
		if err != nil {
			return err
		}
		code, err := ReadFile(NewGitStorage(ctx, tx, p.repo), plumbing.NewHash(w.Run.Commit), domain.ScriptPath)
		if err != nil {
			return err
		}
		w.Code = code
		if w.Run.DiffID != nil {
			d, err := getDiff(ctx, tx, *w.Run.DiffID, false)
			if err != nil {
				return err
			}
			// A run of a committed diff starts from the commit it made
			// (diffTarget), which has its change already.
			if d.CommittedSHA == nil || *d.CommittedSHA != w.Run.Commit {
				if w.Code, err = applyDiff(code, d); err != nil {
					return err
				}
			}
		}
		w.Run.Status = domain.RunRunning
		if _, err := tx.Exec(ctx, `UPDATE test_runs SET status = 'running' WHERE id = $1`, id); err != nil {
			return wrap(err, "start test run")
		}
		ok = true
		return nil
	})
	return w, ok, err
}

// RunResult is what the sandbox reported.
type RunResult struct {
	Status   string
	Stdout   string
	Stderr   string
	ExitCode *int
	Duration time.Duration
	Error    *string
	// IfJobEnded stores the result only if the run's job is cancelled,
	// discarded or gone: the orphan sweep's, which a retry from River UI
	// between its look and its write must not undo.
	IfJobEnded bool
}

// FinishRun stores a run's result, emits test_completed and, for a run on a
// diff, updates the diff's test summary, in one transaction. A run that has
// its result already is left alone. complete, when set, runs last in the
// transaction: the worker completes its job there with its job_status, which
// is left out when the run's project was deleted while it ran.
func (s *Store) FinishRun(ctx context.Context, w RunWork, r RunResult, complete *Completion) (domain.TestRun, error) {
	var out domain.TestRun
	err := InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		if w.batchID != nil && w.Run.DiffID != nil {
			// The diff before the run, as DeleteTest locks them.
			if _, err := tx.Exec(ctx, `SELECT 1 FROM diffs WHERE id = $1 FOR UPDATE`, *w.Run.DiffID); err != nil {
				return wrap(err, "lock diff")
			}
		}
		ms := r.Duration.Milliseconds()
		var err error
		out, err = scanRun(tx.QueryRow(ctx, `UPDATE test_runs SET status = $2, stdout = $3, stderr = $4, exit_code = $5,
			duration_ms = $6, error = $7, finished_at = now()
			WHERE id = $1 AND status IN ('queued', 'running')
			  AND NOT ($8 AND EXISTS (SELECT 1 FROM river_job j WHERE j.id = test_runs.job_id AND NOT `+jobOver+`))
			RETURNING `+runColumns,
			w.Run.ID, r.Status, r.Stdout, r.Stderr, r.ExitCode, ms, r.Error, r.IfJobEnded))
		if errors.Is(err, pgx.ErrNoRows) {
			out, err = getRun(ctx, tx, w.Run.ID)
			if err != nil && domain.ErrorCodeOf(err) != domain.ENOTFOUND {
				return err
			}
			// Finished already, or deleted with its test or project while
			// it ran (as BeginRun, a gone run is done): nothing to store.
			// No row under the project is locked here, so its job_status
			// goes out only while the project exists: not after its
			// project_deleted.
			return runComplete(ctx, tx, complete, w.Run.ProjectID)
		}
		if err != nil {
			return wrap(err, "store test result")
		}
		output := r.Stdout
		if r.Stderr != "" {
			output += r.Stderr
		}
		e := event.TestCompleted{
			TestID: out.TestID, TestRunID: out.ID, DiffID: out.DiffID, Status: out.Status,
			Output: output, Stdout: r.Stdout, Stderr: r.Stderr, ExitCode: r.ExitCode,
			DurationMS: ms, Error: r.Error, Commit: out.Commit,
		}
		if _, err := Emit(ctx, tx, out.ProjectID, e); err != nil {
			return err
		}
		if w.batchID != nil && out.DiffID != nil {
			if err := summariseBatch(ctx, tx, *out.DiffID, *w.batchID); err != nil {
				return err
			}
		}
		// The run's row is locked: the project cannot be deleted before
		// this commits.
		return runComplete(ctx, tx, complete, "")
	})
	return out, err
}

// runComplete completes the run's job and emits its job_status. With
// unlockedProject (the run's project, when the transaction holds no row
// under it), the job_status goes out only if that project still exists
// (holdProject).
func runComplete(ctx context.Context, tx pgx.Tx, complete *Completion, unlockedProject string) error {
	if complete == nil {
		return nil
	}
	if complete.Job != nil {
		if err := complete.Job(tx); err != nil {
			return err
		}
	}
	if complete.Event == nil {
		return nil
	}
	if unlockedProject != "" {
		if exists, err := holdProject(ctx, tx, unlockedProject); err != nil || !exists {
			return err
		}
	}
	return complete.Event(tx)
}

// summariseBatch writes the diff's test_results from its latest batch of
// runs, and tests_run_at once they have all finished.
func summariseBatch(ctx context.Context, tx pgx.Tx, diffID string, batch uuid.UUID) error {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM diffs WHERE id = $1 FOR UPDATE`, diffID); err != nil {
		return wrap(err, "lock diff")
	}
	rows, err := tx.Query(ctx, `SELECT `+runColumns+` FROM test_runs WHERE batch_id = $1 ORDER BY created_at, id`, batch)
	if err != nil {
		return wrap(err, "read batch")
	}
	runs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.TestRun, error) { return scanRun(r) })
	if err != nil {
		return wrap(err, "read batch")
	}
	counts := map[string]int{}
	list := make([]map[string]any, 0, len(runs))
	finished := 0
	for _, r := range runs {
		counts[r.Status]++
		if r.Finished() {
			finished++
		}
		list = append(list, map[string]any{"test_id": r.TestID, "test_run_id": r.ID, "status": r.Status, "duration_ms": r.DurationMS})
	}
	summary, _ := json.Marshal(map[string]any{
		"batch_id": batch, "total": len(runs), "finished": finished, "passed": counts[domain.RunPassed],
		"failed": counts[domain.RunFailed], "timeout": counts[domain.RunTimeout], "error": counts[domain.RunError],
		"all_passed": len(runs) > 0 && counts[domain.RunPassed] == len(runs), "runs": list,
	})
	// Only the diff's latest batch writes its summary.
	_, err = tx.Exec(ctx, `UPDATE diffs SET test_results = $2,
		tests_run_at = CASE WHEN $3 THEN now() ELSE NULL END, updated_at = now()
		WHERE id = $1 AND test_results->>'batch_id' = $4`, diffID, summary, finished == len(runs), batch.String())
	return wrap(err, "store test summary")
}
