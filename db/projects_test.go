package db_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/event"
)

// A name's next slug is one past the highest base-N taken, whatever other
// names share its first letters.
func TestSlugsOfNamesThatShareABeginning(t *testing.T) {
	ctx := context.Background()
	store := &db.Store{Pool: dbtest.New(t)}
	for _, c := range []struct{ name, want string }{
		{"Cafe", "cafe"},
		{"Cafe Bots", "cafe-bots"},
		{"Cafe Bots", "cafe-bots-2"},
		{"Cafe 10", "cafe-10"},
		{"Cafe2", "cafe2"},
		{"Cafe", "cafe-11"}, // cafe-bots is not a suffix of cafe
		{"Cafe Bots", "cafe-bots-3"},
		{"Caf", "caf"}, // cafe… is not caf-N
	} {
		p, err := store.CreateProject(ctx, domain.NewProject{Name: c.name})
		if err != nil {
			t.Fatal(err)
		}
		if p.Slug != c.want {
			t.Errorf("%q got slug %q, want %q", c.name, p.Slug, c.want)
		}
	}
}

// Creating a project reads the slugs taken under its name from an index, not
// by scanning every project: planned as the service's connections run it (a
// generic plan of the prepared statement, db.genericPlans), with sequential scans priced out, so
// that a plan without a usable index shows as a scan with no index condition.
func TestTakenSlugsAreReadFromAnIndex(t *testing.T) {
	tx := planTx(t,
		"SET LOCAL enable_seqscan = off",
		"SET LOCAL plan_cache_mode = force_generic_plan",
		"PREPARE taken_slugs(text, text, text, text) AS "+db.TakenSlugs,
	)
	// Each scan of the plan looks its rows up by a condition on an index:
	// a scan without one reads the whole table or index.
	text := explain(t, tx, `EXPLAIN EXECUTE taken_slugs('cafe-bots', 'cafe-bots-', 'cafe-bots.', '^cafe-bots-[0-9]+$')`)
	scans := strings.Count(text, "Seq Scan on") + strings.Count(text, "Index Scan on") + strings.Count(text, "Index Only Scan on")
	if conds := strings.Count(text, "Index Cond:"); scans == 0 || conds != scans || !strings.Contains(text, "projects_slug_prefix") {
		t.Errorf("the slugs under a name are read by scanning projects:\n%s", text)
	}
}

// An insert under a row that a concurrent delete removes, after the insert's
// request read it, is a 404 naming what was deleted, not a 500: the insert's
// foreign key check waits for the delete and then fails.
func TestAnInsertUnderADeletedRowIsNotFound(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	// racing runs insert after the delete (held open in tx) has locked the
	// row, and commits the delete once the insert waits on it.
	racing := func(deleteSQL, id string, insert func() error) error {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, deleteSQL, id); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- insert() }()
		for dbtest.Count(t, pool, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) == 0 {
			select {
			case err := <-done:
				t.Fatalf("the insert did not wait for the delete: %v", err)
			default:
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		return <-done
	}
	p, tc := projectWithTest(t, store)
	for _, c := range []struct {
		name, deleteSQL, id, parent string
		insert                      func() error
	}{
		{"test run", `DELETE FROM test_cases WHERE id = $1`, tc.ID, "test", func() error {
			_, err := store.StartRun(ctx, uuid.New(), tc.ID, nil, func(pgx.Tx, string) (int64, error) { return 1, nil })
			return err
		}},
		{"session", `DELETE FROM projects WHERE id = $1`, p.ID, "project", func() error {
			_, _, err := store.CreateSession(ctx, p.ID, domain.NewSession{}, nil)
			return err
		}},
	} {
		err := racing(c.deleteSQL, c.id, c.insert)
		if domain.ErrorCodeOf(err) != domain.ENOTFOUND || !strings.Contains(err.Error(), "the "+c.parent+" was deleted meanwhile") {
			t.Errorf("%s under a deleted %s: %v", c.name, c.parent, err)
		}
	}
}

// A run whose test was deleted while it ran is done: its result has nowhere
// to go, and its job completes instead of failing an attempt.
func TestARunDeletedWhileItRanFinishes(t *testing.T) {
	ctx := context.Background()
	store := &db.Store{Pool: dbtest.New(t)}
	_, tc, work := runningTest(t, store)
	if err := store.DeleteTest(ctx, tc.ID); err != nil {
		t.Fatal(err)
	}
	completed := false
	_, err := store.FinishRun(ctx, work, db.RunResult{Status: "passed"}, &db.Completion{Job: func(pgx.Tx) error { completed = true; return nil }})
	if err != nil || !completed {
		t.Fatalf("finishing a deleted run: %v, job completed %v", err, completed)
	}
}

// runningTest creates a project with one test case and a run of it that
// has begun (as a worker's, BeginRun).
func runningTest(t *testing.T, store *db.Store) (domain.Project, domain.TestCase, db.RunWork) {
	t.Helper()
	ctx := context.Background()
	p, tc := projectWithTest(t, store)
	acc, err := store.StartRun(ctx, uuid.New(), tc.ID, nil, func(pgx.Tx, string) (int64, error) { return 1, nil })
	if err != nil {
		t.Fatal(err)
	}
	work, ok, err := store.BeginRun(ctx, acc.TestRunID)
	if err != nil || !ok {
		t.Fatalf("begin: %v %v", ok, err)
	}
	return p, tc, work
}

// projectWithTest creates a project with one test case.
func projectWithTest(t *testing.T, store *db.Store) (domain.Project, domain.TestCase) {
	t.Helper()
	ctx := context.Background()
	p, err := store.CreateProject(ctx, domain.NewProject{Name: "tested"})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := store.CreateTest(ctx, p.ID, domain.NewTestCase{Name: "t", Code: "pass"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return p, tc
}

// A job that reports on a project after its deletion writes nothing: a
// client sees nothing of a project after its project_deleted. (Its status,
// its streamed text and the job_status of a test run that ran while the
// project was deleted were written after it.)
func TestNoEventOfAProjectFollowsItsDeletion(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	p, _, work := runningTest(t, store)
	if err := store.DeleteProject(ctx, p.ID); err != nil {
		t.Fatal(err)
	}

	status := event.JobStatus{JobID: 1, Kind: "vibecode", State: "completed"}
	if err := store.EmitJobStatus(ctx, p.ID, status); err != nil {
		t.Errorf("job_status of a deleted project: %v", err)
	}
	turn := &db.Turn{Session: domain.VibecodeSession{ID: uuid.NewString(), ProjectID: p.ID}, Message: domain.ConversationMessage{ID: uuid.NewString()}}
	if err := store.EmitDelta(ctx, turn, domain.AgentVibeCoder, 1, "late text"); !errors.Is(err, db.ErrTurnGone) {
		t.Errorf("vibecode_delta of a deleted project's message: %v, want ErrTurnGone", err)
	}
	completed := false
	_, err := store.FinishRun(ctx, work, db.RunResult{Status: "passed"}, &db.Completion{
		Job: func(pgx.Tx) error { completed = true; return nil },
		Event: func(tx pgx.Tx) error {
			_, err := db.Emit(ctx, tx, p.ID, status)
			return err
		},
	})
	if err != nil || !completed {
		t.Errorf("finishing a run of a deleted project: %v, job completed %v", err, completed)
	}
	if names := projectEvents(t, pool, p.ID); names[len(names)-1] != "project_deleted" {
		t.Fatalf("events of the deleted project: %v, want project_deleted last", names)
	}

	// A job reporting while the delete is under way waits for it, then
	// writes nothing. (The delete is held open here, as DeleteProject's
	// own transaction is between its project_deleted and its COMMIT.)
	q, _ := projectWithTest(t, store)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `DELETE FROM projects WHERE id = $1`, q.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Emit(ctx, tx, q.ID, event.ProjectDeleted{ProjectID: q.ID}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- store.EmitJobStatus(ctx, q.ID, status) }()
	waited := false
	for !waited {
		select {
		case err := <-done:
			done <- err
			waited = true // it did not wait: the events below say what it wrote
		default:
			waited = dbtest.Count(t, pool, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) > 0
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("job_status during the delete: %v", err)
	}
	if names := projectEvents(t, pool, q.ID); names[len(names)-1] != "project_deleted" {
		t.Fatalf("events of the project deleted meanwhile: %v, want project_deleted last", names)
	}
}

// projectEvents are the names of a project's events, in seq order.
func projectEvents(t *testing.T, q db.Querier, project string) []string {
	t.Helper()
	events, err := db.ProjectEventsAfter(context.Background(), q, project, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(events))
	for i, e := range events {
		names[i] = e.Name
	}
	return names
}

// A GET of a project or of its log that straddles the project's deletion
// (its row read before, its git data after) answers not found, not a
// missing object (a 500) or an empty project.
func TestAReadThatStraddlesADeletionFindsNoProject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := &db.Store{Pool: dbtest.New(t)}
	p, err := store.CreateProject(ctx, domain.NewProject{Name: "going"})
	if err != nil {
		t.Fatal(err)
	}
	db.ForgetScripts(p.ID) // as in another process: the code is read from git
	projectErr, logErr := db.ReadAfterDelete(store, ctx, p.ID)
	for what, err := range map[string]error{"project": projectErr, "log": logErr} {
		if domain.ErrorCodeOf(err) != domain.ENOTFOUND {
			t.Errorf("%s read across the deletion: %v, want not found", what, err)
		}
	}
}

// A job's event that waits for its project's row (held by a DeleteProject or
// a CommitDiff) is no event writer in flight to the outbox's readers while it
// waits: it has no seq yet, and every project's delivery and X-Event-Seq
// would wait behind it.
func TestAnEventWaitingForItsProjectHoldsNoReader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	p, err := store.CreateProject(ctx, domain.NewProject{Name: "held"})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `SELECT 1 FROM projects WHERE id = $1 FOR UPDATE`, p.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- store.EmitJobStatus(ctx, p.ID, event.JobStatus{JobID: 1, Kind: "vibecode", State: "running"})
	}()
	// Wait until the emit waits for the row lock.
	for waiting := false; !waiting; {
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			t.Fatalf("the emit did not wait for the held project: %v", err)
		default:
		}
	}
	if running, err := db.EmitsRunning(ctx, pool); err != nil || running {
		t.Errorf("while it waits for the project's row, an event writer reads as running: %v %v", running, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A test run started while its project is deleted is not found, and the
// delete succeeds. The run's insert checked its test and then its project,
// which the delete holds before it deletes the tests: a deadlock that
// failed one of the two with a 500.
func TestRunningATestWhileItsProjectIsDeletedIsNoDeadlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	for i := range 3 {
		p, tc := projectWithTest(t, store)
		// The delete holds the project and then waits on the agents'
		// memory, which a third transaction holds.
		release := holdLocks(t, pool, `LOCK TABLE agent_memory IN ACCESS EXCLUSIVE MODE`)
		deleted := make(chan error, 1)
		go func() { deleted <- store.DeleteProject(ctx, p.ID) }()
		waitForLockWaiters(t, pool, 1) // the delete holds the project
		started := make(chan error, 1)
		go func() {
			_, err := store.StartRun(ctx, uuid.New(), tc.ID, nil, func(pgx.Tx, string) (int64, error) { return 1, nil })
			started <- err
		}()
		waitForLockWaiters(t, pool, 2) // the run waits for the project
		release()
		if err := <-deleted; err != nil {
			t.Errorf("%d: DELETE /projects/{id} during POST /tests/{id}/run: %v", i, err)
		}
		if err := <-started; domain.ErrorCodeOf(err) != domain.ENOTFOUND {
			t.Errorf("%d: POST /tests/{id}/run during its project's delete: %v, want not found", i, err)
		}
	}
}

// A create that reuses the id of a project whose delete has not committed
// yet waits for it and is refused: the project's clients are told it was
// deleted, and it is not created again under its id.
func TestACreateOfAnIDBeingDeletedIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	id := uuid.NewString()
	if _, err := store.CreateProject(ctx, domain.NewProject{Name: "Going", ProjectID: &id}); err != nil {
		t.Fatal(err)
	}
	release := holdLocks(t, pool, `LOCK TABLE events IN ACCESS EXCLUSIVE MODE`) // the delete stops at its event
	deleted := make(chan error, 1)
	go func() { deleted <- store.DeleteProject(ctx, id) }()
	waitForLockWaiters(t, pool, 1)
	created := make(chan error, 1)
	go func() {
		_, err := store.CreateProject(ctx, domain.NewProject{Name: "Going", ProjectID: &id})
		created <- err
	}()
	waitForLockWaiters(t, pool, 2) // on the deleted repository's row
	release()
	if err := <-deleted; err != nil {
		t.Fatalf("delete: %v", err)
	}
	err := <-created
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.ECONFLICT || de.Field != "project_id" || !strings.Contains(de.Message, "was deleted") {
		t.Fatalf("create during the delete: %v, want a 409 on project_id saying it was deleted", err)
	}
	if n := dbtest.Count(t, pool, `SELECT count(*) FROM projects`); n != 0 {
		t.Fatalf("%d projects after the delete", n)
	}
}
