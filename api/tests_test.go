package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain"
)

// runWait runs a test with ?wait=true and returns the finished run: the
// answer is the TestRun (SPEC.md), with test_run_id, and the same run under
// test_run as earlier releases answered it.
func (s *stack) runWait(testID string, body any) domain.TestRun {
	s.t.Helper()
	res := s.do("POST", "/tests/"+testID+"/run?wait=true", body)
	var a struct {
		domain.TestRun
		TestRunID string          `json:"test_run_id"`
		Run       *domain.TestRun `json:"test_run"`
	}
	res.json(s.t, &a)
	if res.Status != 200 || !a.Finished() || a.ID == "" || a.TestRunID != a.ID || a.Run == nil || a.Run.Stdout != a.Stdout || a.Run.Status != a.Status {
		s.t.Fatalf("run: %d %s", res.Status, res.Body)
	}
	return a.TestRun
}

func (s *stack) newTest(projectID, name, code string, timeout int) domain.TestCase {
	s.t.Helper()
	var tc domain.TestCase
	res := s.do("POST", "/projects/"+projectID+"/tests", map[string]any{"name": name, "code": code, "timeout_seconds": timeout})
	res.json(s.t, &tc)
	if res.Status != 201 {
		s.t.Fatalf("create test: %d %s", res.Status, res.Body)
	}
	return tc
}

func TestTestCasesCRUDAndValidation(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{noWorker: true})
	p, _ := s.project(baseCode)
	tc := s.newTest(p.ID, "adds", "assert add(2, 3) == 5", 5)
	if tc.TimeoutSeconds != 5 || tc.ProjectID != p.ID {
		t.Fatalf("test = %+v", tc)
	}
	var viaTests domain.TestCase
	res := s.do("POST", "/tests", map[string]any{"project_id": p.ID, "name": "greets", "code": "assert greet('x') == 'Hello, x'"})
	res.json(t, &viaTests)
	if res.Status != 201 || viaTests.TimeoutSeconds != 30 {
		t.Fatalf("POST /tests = %d %s", res.Status, res.Body)
	}
	var list []domain.TestCase
	s.do("GET", "/projects/"+p.ID+"/tests", nil).json(t, &list)
	if len(list) != 2 || list[0].ID != tc.ID {
		t.Fatalf("list = %+v", list)
	}
	for _, c := range []struct {
		path   string
		body   any
		code   int
		field  string
		reason string // in the problem's detail, when set
	}{
		{"/projects/" + p.ID + "/tests", map[string]any{"name": "", "code": "pass"}, 400, "name", ""},
		{"/projects/" + p.ID + "/tests", map[string]any{"name": "x", "code": "  "}, 400, "code", ""},
		{"/projects/" + p.ID + "/tests", map[string]any{"name": "a\x01b", "code": "pass"}, 400, "name", "control characters"},
		{"/projects/" + p.ID + "/tests", map[string]any{"name": "x", "code": "pass", "timeout_seconds": 0}, 400, "timeout_seconds", ""},
		{"/projects/" + p.ID + "/tests", map[string]any{"name": "x", "code": "pass", "timeout_seconds": 31}, 400, "timeout_seconds", ""},
		{"/projects/" + p.ID + "/tests", `{"name": "x", "code": "pass", "timeout_seconds": "5"}`, 400, "timeout_seconds", "must be an integer, got a JSON string"},
		{"/projects/" + p.ID + "/tests", `{"name": "x", "code": "pass", "timeout_seconds": 1.5}`, 400, "timeout_seconds", "must be an integer, got a JSON number 1.5"},
		{"/tests", map[string]any{"name": "x", "code": "pass"}, 400, "project_id", ""},
		{"/tests", map[string]any{"project_id": "nope", "name": "x", "code": "pass"}, 400, "project_id", ""},
	} {
		res := s.do("POST", c.path, c.body)
		if res.Status != c.code {
			t.Errorf("%v: %d %s", c.body, res.Status, res.Body)
			continue
		}
		if pr := res.problem(t); len(pr.Errors) == 0 || pr.Errors[0].Name != c.field || !strings.Contains(pr.Detail, c.reason) {
			t.Errorf("%v: %+v", c.body, pr)
		}
	}
	if res := s.do("POST", "/projects/00000000-0000-0000-0000-000000000000/tests", map[string]any{"name": "x", "code": "pass"}); res.Status != 404 {
		t.Errorf("unknown project: %d", res.Status)
	}
	if res := s.do("DELETE", "/tests/"+tc.ID, nil); res.Status != 204 {
		t.Fatalf("delete = %d", res.Status)
	}
	for _, path := range []string{"/tests/" + tc.ID, "/tests/" + tc.ID + "/runs", "/test-runs/" + tc.ID, "/tests/bad-id"} {
		if res := s.do("GET", path, nil); res.Status != 404 {
			t.Errorf("GET %s = %d", path, res.Status)
		}
	}
}

func TestRunTestOutcomes(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	project := baseCode + `

def explode():
    raise ValueError("boom in project code")


if __name__ == "__main__":
    print("MAIN BLOCK RAN")
`
	p, _ := s.project(project)
	cases := []struct {
		name, code     string
		timeout        int
		status         string
		inOutput, inEr string
	}{
		{"passes", "assert add(2, 3) == 5\nprint('ok', greet('Ann'))", 10, "passed", "ok Hello, Ann", ""},
		{"assertion fails", "assert add(2, 2) == 5, 'math is hard'", 10, "failed", "AssertionError: math is hard", ""},
		{"exception in project code", "explode()", 10, "failed", "ValueError: boom in project code", ""},
		{"syntax error in test", "assert add(2, 3) ==", 10, "failed", "SyntaxError", ""},
		{"main block does not run", "pass", 10, "passed", "", ""},
		{"timeout", "while True:\n    pass", 1, "timeout", "", "timed out"},
		{"memory hog", "x = bytearray(2 * 1024 ** 3)", 10, "error", "", "memory"},
		{"print flood", "for i in range(2 * 10**5):\n    print('flood line', i)", 30, "passed", "[output truncated", ""},
		{"bytes that are not text", "import sys\nsys.stdout.buffer.write(b'a\\x00b\\xffc')", 10, "passed", "a\uFFFDb\uFFFDc", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tc := s.newTest(p.ID, c.name, c.code, c.timeout)
			start := time.Now()
			run := s.runWait(tc.ID, nil)
			output := run.Stdout + run.Stderr
			if run.Status != c.status {
				t.Fatalf("status %s, want %s; output %q; error %v", run.Status, c.status, output, run.Error)
			}
			if c.inOutput != "" && !strings.Contains(output, c.inOutput) {
				t.Errorf("output %q lacks %q", output, c.inOutput)
			}
			if strings.Contains(output, "MAIN BLOCK RAN") {
				t.Error("the project's __main__ block ran")
			}
			if c.inEr != "" && (run.Error == nil || !strings.Contains(*run.Error, c.inEr)) {
				t.Errorf("error %v lacks %q", run.Error, c.inEr)
			}
			if c.status == "timeout" && time.Since(start) > time.Duration(c.timeout)*time.Second+5*time.Second {
				t.Errorf("a %ds timeout took %s", c.timeout, time.Since(start))
			}
			if c.name == "print flood" && len(run.Stdout) > 70_000 {
				t.Errorf("stdout kept %d bytes", len(run.Stdout))
			}
			if run.DurationMS == nil || run.FinishedAt == nil || run.Commit != p.CurrentCommit || run.DiffID != nil {
				t.Errorf("run = %+v", run)
			}
			completed := s.waitEvent(p.ID, "test_completed", func(e map[string]any) bool { return e["test_run_id"] == run.ID })
			if completed["status"] != c.status || completed["test_id"] != tc.ID || completed["duration_ms"] == nil {
				t.Fatalf("test_completed = %v", completed)
			}
		})
	}
}

func TestRunOnADiffUsesThePatchedCode(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	d := s.approvedDiff(p, sess, greetPatch, "Say Hi")
	tc := s.newTest(p.ID, "says hi", `assert greet("Bo") == "Hi, Bo", greet("Bo")`, 10)
	onHead := s.runWait(tc.ID, nil)
	onDiff := s.runWait(tc.ID, map[string]any{"diff_id": d.ID})
	if onHead.Status != "failed" || onDiff.Status != "passed" || onDiff.DiffID == nil || *onDiff.DiffID != d.ID {
		t.Fatalf("head %s (%s), diff %s", onHead.Status, onHead.Stderr, onDiff.Status)
	}

	// Every test on the diff, summarised on the diff.
	s.newTest(p.ID, "adds", "assert add(1, 1) == 2", 10)
	var acc db.DiffTestsAccepted
	res := s.do("POST", "/diffs/"+d.ID+"/test", nil)
	res.json(t, &acc)
	if res.Status != 202 || len(acc.Runs) != 2 {
		t.Fatalf("diff tests = %d %s", res.Status, res.Body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got domain.Diff
		s.do("GET", "/diffs/"+d.ID, nil).json(t, &got)
		if got.TestsRunAt != nil {
			var summary map[string]any
			_ = json.Unmarshal(got.TestResults, &summary)
			if summary["passed"] != 2.0 || summary["all_passed"] != true || summary["batch_id"] != acc.BatchID {
				t.Fatalf("summary = %v", summary)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("diff tests never finished: %s", got.TestResults)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var runs []domain.TestRun
	s.do("GET", "/tests/"+tc.ID+"/runs", nil).json(t, &runs)
	if len(runs) != 3 {
		t.Fatalf("%d runs of the test", len(runs))
	}
	if res := s.do("POST", "/tests/"+tc.ID+"/run", map[string]any{"diff_id": "00000000-0000-0000-0000-000000000000"}); res.Status != 404 {
		t.Fatalf("unknown diff = %d", res.Status)
	}
}

// Deleting a test while a diff's batch runs it leaves the batch to the tests
// that remain: the diff's summary was stuck at "1 of 2 finished" for ever.
func TestDeletingATestFinishesItsDiffsBatch(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	d := s.approvedDiff(p, sess, greetPatch, "Say Hi")
	quick := s.newTest(p.ID, "quick", "assert add(1, 1) == 2", 10)
	slow := s.newTest(p.ID, "slow", "import time\ntime.sleep(25)", 30)
	var acc db.DiffTestsAccepted
	s.do("POST", "/diffs/"+d.ID+"/test", nil).json(t, &acc)
	summary := func() (map[string]any, bool) {
		var got domain.Diff
		s.do("GET", "/diffs/"+d.ID, nil).json(t, &got)
		var m map[string]any
		_ = json.Unmarshal(got.TestResults, &m)
		return m, got.TestsRunAt != nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for m, _ := summary(); m["finished"] != 1.0; m, _ = summary() {
		if time.Now().After(deadline) {
			t.Fatalf("the quick test never finished: %v", m)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if res := s.do("DELETE", "/tests/"+slow.ID, nil); res.Status != 204 {
		t.Fatalf("delete = %d %s", res.Status, res.Body)
	}
	m, done := summary()
	runs, _ := m["runs"].([]any)
	if !done || m["total"] != 1.0 || m["finished"] != 1.0 || m["all_passed"] != true || len(runs) != 1 ||
		runs[0].(map[string]any)["test_id"] != quick.ID {
		t.Fatalf("after the delete: done %v, summary %v", done, m)
	}
}

// A run whose job is cancelled before it runs ends in error: it stayed
// queued for ever, and POST ?wait=true waited for nothing.
func TestARunWhoseJobIsCancelledEnds(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{noWorker: true})
	p, _ := s.project(baseCode)
	tc := s.newTest(p.ID, "quick", "assert add(2, 3) == 5", 5)
	var acc domain.TestRunAccepted
	s.do("POST", "/tests/"+tc.ID+"/run", nil).json(t, &acc)
	if _, err := s.Worker.JobCancel(context.Background(), acc.JobID); err != nil {
		t.Fatal(err)
	}
	s.startWorker(t)
	done := s.waitEvent(p.ID, "test_completed", func(e map[string]any) bool { return e["test_run_id"] == acc.TestRunID })
	if done["status"] != "error" || !strings.Contains(fmt.Sprint(done["error"]), "cancelled") {
		t.Fatalf("test_completed = %v", done)
	}
}

// A worker that stops (a deploy) during a run hands it over: it runs again
// elsewhere instead of ending as an error ("context canceled") nobody asked
// for.
func TestATestRunIsHandedOverWhenItsWorkerStops(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, _ := s.project(baseCode)
	tc := s.newTest(p.ID, "slow", "import time\ntime.sleep(2)\nassert add(2, 3) == 5", 20)
	var acc domain.TestRunAccepted
	s.do("POST", "/tests/"+tc.ID+"/run", nil).json(t, &acc)
	s.waitEvent(p.ID, "job_status", func(e map[string]any) bool { return e["test_run_id"] == acc.TestRunID && e["state"] == "running" })
	time.Sleep(300 * time.Millisecond) // inside the sandbox
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Worker.StopAndCancel(ctx); err != nil {
		t.Fatal(err)
	}
	s.startWorker(t)
	done := s.waitEvent(p.ID, "test_completed", func(e map[string]any) bool { return e["test_run_id"] == acc.TestRunID })
	if done["status"] != "passed" {
		t.Fatalf("test_completed = %v", done)
	}
}

// The journey the product is judged by: project → vibecode → approved diff →
// test on the diff → commit → test on the new head, every step visible as an
// event.
func TestEndToEndJourney(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	tc := s.newTest(p.ID, "says hi", `assert greet("Bo") == "Hi, Bo"`, 10)

	d := s.approvedDiff(p, sess, greetPatch, "Say Hi")
	onDiff := s.runWait(tc.ID, map[string]any{"diff_id": d.ID})
	if onDiff.Status != "passed" {
		t.Fatalf("on diff: %s %s", onDiff.Status, onDiff.Stderr)
	}
	var c db.CommitResult
	if res := s.do("POST", "/diffs/"+d.ID+"/commit", nil); res.Status != 200 {
		t.Fatalf("commit = %d %s", res.Status, res.Body)
	} else {
		res.json(t, &c)
	}
	onHead := s.runWait(tc.ID, nil)
	if onHead.Status != "passed" || onHead.Commit != c.Commit.SHA {
		t.Fatalf("on head: %s at %s", onHead.Status, onHead.Commit)
	}
	// Every step reached the subscribed Socket.IO client.
	s.waitEvent(p.ID, "project_created", nil)
	s.waitEvent(p.ID, "test_created", func(e map[string]any) bool { return e["test"].(map[string]any)["id"] == tc.ID })
	s.waitEvent(p.ID, "conversation_message", func(e map[string]any) bool { return e["agent"] == "vibecoder" && e["patch_preview"] != nil })
	s.waitEvent(p.ID, "diff_created", func(e map[string]any) bool { return e["id"] == d.ID })
	s.waitEvent(p.ID, "vibecode_response", func(e map[string]any) bool { return e["diff_id"] == d.ID && e["status"] == "diff_created" })
	s.waitEvent(p.ID, "test_completed", func(e map[string]any) bool {
		return e["test_run_id"] == onDiff.ID && e["diff_id"] == d.ID && e["status"] == "passed"
	})
	s.waitEvent(p.ID, "code_changed", func(e map[string]any) bool {
		return e["commit"] == c.Commit.SHA && e["new_code"] == greetPatched && e["diff_id"] == d.ID
	})
	s.waitEvent(p.ID, "test_completed", func(e map[string]any) bool {
		return e["test_run_id"] == onHead.ID && e["diff_id"] == nil && e["status"] == "passed" && e["commit"] == c.Commit.SHA
	})
}

// GET /tests/{id}/runs answers every run without ?limit=, and pages through
// them with ?limit= and ?before=, in the same order: newest first, ties by
// id.
func TestRunsPageByLimitAndBefore(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	ctx := context.Background()
	var p domain.Project
	s.do("POST", "/projects", map[string]any{"name": "Runs"}).json(t, &p)
	var tc, other domain.TestCase
	s.do("POST", "/projects/"+p.ID+"/tests", map[string]any{"name": "a", "code": "pass"}).json(t, &tc)
	s.do("POST", "/projects/"+p.ID+"/tests", map[string]any{"name": "b", "code": "pass"}).json(t, &other)
	// Seven runs a second apart but the last five at the same instant, so that the
	// order within a tie shows across a page's end; and one of the other test.
	if _, err := s.Pool.Exec(ctx, `INSERT INTO test_runs (id, test_id, project_id, commit, status, created_at)
		SELECT gen_random_uuid(), $1, $2, $3, 'passed', now() - least(n, 3) * interval '1 second'
		FROM generate_series(1, 7) n`, tc.ID, p.ID, p.CurrentCommit); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool.Exec(ctx, `INSERT INTO test_runs (id, test_id, project_id, commit, status)
		VALUES (gen_random_uuid(), $1, $2, $3, 'passed')`, other.ID, p.ID, p.CurrentCommit); err != nil {
		t.Fatal(err)
	}
	rows, err := s.Pool.Query(ctx, `SELECT id::text FROM test_runs WHERE test_id = $1 ORDER BY created_at DESC, id`, tc.ID)
	if err != nil {
		t.Fatal(err)
	}
	want, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	idOf := func(r domain.TestRun) string { return r.ID }
	path := "/tests/" + tc.ID + "/runs"

	var all []domain.TestRun
	s.do("GET", path, nil).json(t, &all)
	if got := mapSlice(all, idOf); !slices.Equal(got, want) {
		t.Fatalf("GET %s = %v, want %v", path, got, want)
	}
	for limit, requests := range map[int]int{1: 8, 2: 4, 3: 3, 7: 2, 200: 1} {
		paged, n := readPages(s, path, limit, idOf)
		if got := mapSlice(paged, idOf); !slices.Equal(got, want) || n != requests {
			t.Errorf("pages of %d = %v in %d requests, want %v in %d", limit, got, n, want, requests)
		}
	}

	var otherRuns []domain.TestRun
	s.do("GET", "/tests/"+other.ID+"/runs", nil).json(t, &otherRuns)
	if len(otherRuns) != 1 {
		t.Fatalf("runs of the other test: %+v", otherRuns)
	}
	s.wantBadParam(path+"?before="+otherRuns[0].ID, "before", "not in this list")
	s.wantBadParam(path+"?before="+tc.ID, "before", "not in this list")
	s.wantBadParam(path+"?before=latest", "before", `"latest"`)
	for _, v := range []string{"0", "201", "all"} {
		s.wantBadParam(path+"?limit="+v, "limit", "from 1 to 200")
	}
}

// A diff_id that is no UUID is a 400 naming the field, as a project_id is.
func TestARunsDiffIDMustBeAUUID(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, _ := s.project(baseCode)
	tc := s.newTest(p.ID, "t", "assert True", 10)
	for _, id := range []string{"abc", "", "   "} {
		res := s.do("POST", "/tests/"+tc.ID+"/run", map[string]any{"diff_id": id})
		if res.Status != 400 || !strings.Contains(string(res.Body), "diff_id") {
			t.Errorf("diff_id %q: %d %s", id, res.Status, res.Body)
		}
	}
}
