package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
)

// sendAtOnce sends the same request n times at once and returns the answers.
func sendAtOnce(s *testServer, n int, method, path string, body any) []response {
	out := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { out[i] = s.do(method, path, body) })
	}
	wg.Wait()
	return out
}

// wantConflict checks a 409 that names field.
func wantConflict(t *testing.T, res response, field, detail string) {
	t.Helper()
	if res.Status != http.StatusConflict {
		t.Fatalf("status %d %s, want 409", res.Status, res.Body)
	}
	if p := res.problem(t); len(p.Errors) != 1 || p.Errors[0].Name != field || !strings.Contains(p.Detail, detail) {
		t.Fatalf("problem %+v, want field %s and %q in the detail", p, field, detail)
	}
}

// A client that creates a project with an id of its own, and sends the
// request again because its answer was lost (even while the first is being
// stored), gets the one project each time.
func TestAProjectCreateSentAgainCreatesOne(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	id := uuid.NewString()
	code := "def add(a, b):\n    return a + b\n"
	body := map[string]any{"name": "Retried", "code": code, "project_id": id}
	var first domain.Project
	for i, res := range sendAtOnce(s, 6, "POST", "/projects", body) {
		var p domain.Project
		res.json(t, &p)
		if res.Status != http.StatusCreated || p.ID != id || p.Slug != "retried" || p.CurrentCode != code {
			t.Fatalf("create %d: %d %s", i, res.Status, res.Body)
		}
		if i > 0 && (p.CurrentCommit != first.CurrentCommit || !p.CreatedAt.Equal(first.CreatedAt)) {
			t.Fatalf("create %d answered %+v, the first %+v", i, p, first)
		}
		first = p
	}
	var list []domain.Project
	s.do("GET", "/projects", nil).json(t, &list)
	if len(list) != 1 || list[0].ID != id {
		t.Fatalf("projects %+v, want the one", list)
	}
	if names := eventNames(s.outboxEvents(id)); strings.Join(names, ",") != "project_created" {
		t.Fatalf("events %v, want one project_created", names)
	}
	if n := s.count("git_repositories"); n != 1 {
		t.Fatalf("%d repositories", n)
	}
	// The id is spelled otherwise: the same UUID.
	if res := s.do("POST", "/projects", map[string]any{"name": "Retried", "code": code, "project_id": "{" + strings.ToUpper(id) + "}"}); res.Status != http.StatusCreated {
		t.Fatalf("the id in capitals: %d %s", res.Status, res.Body)
	}

	// Another request that reuses the id is refused.
	wantConflict(t, s.do("POST", "/projects", map[string]any{"name": "Other", "code": code, "project_id": id}), "project_id", "different name or code")
	wantConflict(t, s.do("POST", "/projects", map[string]any{"name": "Retried", "project_id": id}), "project_id", "different name or code")
	res := s.do("POST", "/projects", map[string]any{"name": "Retried", "project_id": "not-a-uuid"})
	if p := res.problem(t); res.Status != http.StatusBadRequest || len(p.Errors) != 1 || p.Errors[0].Name != "project_id" {
		t.Fatalf("a malformed id: %d %s", res.Status, res.Body)
	}

	// A deleted project's id is not taken again: its clients were told
	// it was deleted.
	if res := s.do("DELETE", "/projects/"+id, nil); res.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", res.Status, res.Body)
	}
	wantConflict(t, s.do("POST", "/projects", body), "project_id", "was deleted")
	if n := s.count("projects"); n != 0 {
		t.Fatalf("%d projects after the delete and a create of its id", n)
	}
}

// A test created, or a run started, with an id of the client's, and sent
// again, is stored once; the repeat is answered what the first created.
func TestATestAndARunSentAgainAreCreatedOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{noWorker: true})
	p, _ := s.project(baseCode)
	testID := uuid.NewString()
	body := map[string]any{"name": "adds", "code": "assert add(2, 3) == 5", "timeout_seconds": 5, "test_id": testID}
	for i, res := range sendAtOnce(s.testServer, 4, "POST", "/projects/"+p.ID+"/tests", body) {
		var tc domain.TestCase
		res.json(t, &tc)
		if res.Status != http.StatusCreated || tc.ID != testID || tc.ProjectID != p.ID || tc.Name != "adds" {
			t.Fatalf("create test %d: %d %s", i, res.Status, res.Body)
		}
	}
	// POST /tests is the same create.
	other := map[string]any{"project_id": p.ID, "name": "adds", "code": "assert add(2, 3) == 5", "timeout_seconds": 5, "test_id": testID}
	if res := s.do("POST", "/tests", other); res.Status != http.StatusCreated {
		t.Fatalf("POST /tests with the id: %d %s", res.Status, res.Body)
	}
	var tests []domain.TestCase
	s.do("GET", "/projects/"+p.ID+"/tests", nil).json(t, &tests)
	if len(tests) != 1 {
		t.Fatalf("tests %+v, want one", tests)
	}
	if n := strings.Count(strings.Join(eventNames(s.outboxEvents(p.ID)), ","), "test_created"); n != 1 {
		t.Fatalf("%d test_created events", n)
	}
	var otherProject domain.Project
	s.do("POST", "/projects", map[string]any{"name": "Other", "code": baseCode}).json(t, &otherProject)
	wantConflict(t, s.do("POST", "/tests", map[string]any{"project_id": otherProject.ID, "name": "adds", "code": "assert add(2, 3) == 5", "timeout_seconds": 5, "test_id": testID}),
		"test_id", "different project, name, code or timeout")
	if res := s.do("POST", "/projects/"+p.ID+"/tests", map[string]any{"name": "adds", "code": "pass", "test_id": "7"}); res.Status != http.StatusBadRequest || res.problem(t).Errors[0].Name != "test_id" {
		t.Fatalf("a malformed test id: %d %s", res.Status, res.Body)
	}
	for field, value := range map[string]any{"code": "assert add(1, 1) == 2", "timeout_seconds": 6, "name": "sums"} {
		changed := map[string]any{}
		for k, v := range body {
			changed[k] = v
		}
		changed[field] = value
		wantConflict(t, s.do("POST", "/projects/"+p.ID+"/tests", changed), "test_id", "different project, name, code or timeout")
	}

	runID := uuid.NewString()
	var first domain.TestRunAccepted
	for i, res := range sendAtOnce(s.testServer, 4, "POST", "/tests/"+testID+"/run", map[string]any{"test_run_id": runID}) {
		var acc domain.TestRunAccepted
		res.json(t, &acc)
		if res.Status != http.StatusAccepted || acc.TestRunID != runID || acc.TestID != testID || acc.JobID == 0 || acc.Status != domain.RunQueued {
			t.Fatalf("run %d: %d %s", i, res.Status, res.Body)
		}
		if i > 0 && acc.JobID != first.JobID {
			t.Fatalf("run %d has job %d, the first %d", i, acc.JobID, first.JobID)
		}
		first = acc
	}
	var runs []domain.TestRun
	s.do("GET", "/tests/"+testID+"/runs", nil).json(t, &runs)
	if len(runs) != 1 || runs[0].ID != runID {
		t.Fatalf("runs %+v, want the one", runs)
	}
	if n := dbtest.Count(t, s.Pool, `SELECT count(*) FROM river_job WHERE kind = 'run_test'`); n != 1 {
		t.Fatalf("%d run_test jobs, want 1", n)
	}
	// The same id for a run of another test is refused.
	var second domain.TestCase
	s.do("POST", "/projects/"+p.ID+"/tests", map[string]any{"name": "second", "code": "pass"}).json(t, &second)
	wantConflict(t, s.do("POST", "/tests/"+second.ID+"/run", map[string]any{"test_run_id": runID}), "test_run_id", "different test or diff")
	res := s.do("POST", "/tests/"+testID+"/run", map[string]any{"test_run_id": fmt.Sprint(42)})
	if p := res.problem(t); res.Status != http.StatusBadRequest || len(p.Errors) != 1 || p.Errors[0].Name != "test_run_id" {
		t.Fatalf("a malformed run id: %d %s", res.Status, res.Body)
	}

	// Once the test is deleted, the create sent again does not bring it
	// back: its clients were told test_deleted.
	if res := s.do("DELETE", "/tests/"+testID, nil); res.Status != http.StatusNoContent {
		t.Fatalf("delete the test: %d %s", res.Status, res.Body)
	}
	wantConflict(t, s.do("POST", "/projects/"+p.ID+"/tests", body), "test_id", "was deleted")
	wantConflict(t, s.do("POST", "/tests", other), "test_id", "was deleted")
	if res := s.do("GET", "/tests/"+testID, nil); res.Status != http.StatusNotFound {
		t.Fatalf("the deleted test after the creates sent again: %d %s", res.Status, res.Body)
	}
	if n := strings.Count(strings.Join(eventNames(s.outboxEvents(p.ID)), ","), "test_created"); n != 2 {
		t.Fatalf("%d test_created events, want the first test's and the second's", n)
	}
	// Past the events' retention, with its test_deleted, the id is
	// forgotten.
	if _, err := db.DeleteEventsBefore(context.Background(), s.Pool, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if res := s.do("POST", "/projects/"+p.ID+"/tests", body); res.Status != http.StatusCreated {
		t.Fatalf("the id after the retention: %d %s", res.Status, res.Body)
	}
}

// Every test run on a diff as a batch of the client's id, sent again, is
// queued once; the repeat is answered the batch's runs.
func TestADiffsTestsSentAgainAreQueuedOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	d := s.approvedDiff(p, sess, greetPatch, "Say Hi")
	s.newTest(p.ID, "says hi", `assert greet("Bo") == "Hi, Bo"`, 10)
	s.newTest(p.ID, "adds", "assert add(1, 1) == 2", 10)
	batch := uuid.NewString()
	var first db.DiffTestsAccepted
	for i, res := range sendAtOnce(s.testServer, 4, "POST", "/diffs/"+d.ID+"/test", map[string]any{"batch_id": batch}) {
		var acc db.DiffTestsAccepted
		res.json(t, &acc)
		if res.Status != http.StatusAccepted || acc.BatchID != batch || acc.DiffID != d.ID || len(acc.Runs) != 2 {
			t.Fatalf("diff tests %d: %d %s", i, res.Status, res.Body)
		}
		if i > 0 {
			for k := range acc.Runs {
				if acc.Runs[k].TestRunID != first.Runs[k].TestRunID || acc.Runs[k].JobID != first.Runs[k].JobID {
					t.Fatalf("answer %d: runs %+v, the first %+v", i, acc.Runs, first.Runs)
				}
			}
		}
		first = acc
	}
	if n := dbtest.Count(t, s.Pool, `SELECT count(*) FROM test_runs WHERE diff_id = $1`, d.ID); n != 2 {
		t.Fatalf("%d runs on the diff, want 2", n)
	}
	if n := dbtest.Count(t, s.Pool, `SELECT count(*) FROM river_job WHERE kind = 'run_test'`); n != 2 {
		t.Fatalf("%d run_test jobs, want 2", n)
	}
	// A run of one test on the diff, sent again: once; the same id without
	// the diff is another request.
	tc := s.newTest(p.ID, "third", "pass", 10)
	runID := uuid.NewString()
	onDiff := map[string]any{"test_run_id": runID, "diff_id": d.ID}
	for i, res := range sendAtOnce(s.testServer, 3, "POST", "/tests/"+tc.ID+"/run", onDiff) {
		var acc domain.TestRunAccepted
		res.json(t, &acc)
		if res.Status != http.StatusAccepted || acc.TestRunID != runID {
			t.Fatalf("run on the diff %d: %d %s", i, res.Status, res.Body)
		}
	}
	if n := dbtest.Count(t, s.Pool, `SELECT count(*) FROM test_runs WHERE test_id = $1`, tc.ID); n != 1 {
		t.Fatalf("%d runs of the test, want 1", n)
	}
	wantConflict(t, s.do("POST", "/tests/"+tc.ID+"/run", map[string]any{"test_run_id": runID}), "test_run_id", "different test or diff")

	other := s.approvedDiff(p, sess, greetPatch, "Say Hi again")
	wantConflict(t, s.do("POST", "/diffs/"+other.ID+"/test", map[string]any{"batch_id": batch}), "batch_id", "another diff")
	res := s.do("POST", "/diffs/"+d.ID+"/test", map[string]any{"batch_id": "x"})
	if p := res.problem(t); res.Status != http.StatusBadRequest || len(p.Errors) != 1 || p.Errors[0].Name != "batch_id" {
		t.Fatalf("a malformed batch id: %d %s", res.Status, res.Body)
	}
}
