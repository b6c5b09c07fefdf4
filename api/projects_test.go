package api_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
)

func TestCreateProjectWithSampleCode(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	res := s.do("POST", "/projects", map[string]any{"name": "My Project"})
	if res.Status != http.StatusCreated {
		t.Fatalf("status %d: %s", res.Status, res.Body)
	}
	var p domain.Project
	res.json(t, &p)
	if p.Slug != "my-project" || p.Name != "My Project" || p.CurrentBranch != "main" || len(p.CurrentCommit) != 40 {
		t.Fatalf("project = %+v", p)
	}
	if p.CurrentCode != domain.SampleWorkflow {
		t.Fatalf("current_code is not the sample workflow:\n%s", p.CurrentCode)
	}
	for _, want := range []string{"triage_agent = Agent(", "handoffs=[spanish_agent, english_agent]", "Runner.run("} {
		if !strings.Contains(p.CurrentCode, want) {
			t.Errorf("sample workflow lacks %q", want)
		}
	}

	got := s.do("GET", "/projects/"+p.ID, nil)
	var again domain.Project
	got.json(t, &again)
	if got.Status != 200 || again.CurrentCommit != p.CurrentCommit || again.CurrentCode != p.CurrentCode {
		t.Fatalf("GET = %d %+v", got.Status, again)
	}

	var commits []domain.Commit
	c := s.do("GET", "/projects/"+p.ID+"/commits", nil)
	c.json(t, &commits)
	if c.Status != 200 || len(commits) != 1 || commits[0].SHA != p.CurrentCommit || commits[0].Message != "Initial commit" || len(commits[0].Parents) != 0 {
		t.Fatalf("commits = %d %+v", c.Status, commits)
	}
}

func TestCreateProjectWithCodeAndUniqueSlugs(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	code := "def add(a, b):\n    return a + b\n"
	var slugs []string
	for range 3 {
		res := s.do("POST", "/projects", map[string]any{"name": "  Café Bots!  ", "code": code})
		var p domain.Project
		res.json(t, &p)
		if res.Status != 201 || p.CurrentCode != code || p.Name != "Café Bots!" {
			t.Fatalf("create = %d %s", res.Status, res.Body)
		}
		slugs = append(slugs, p.Slug)
	}
	if strings.Join(slugs, ",") != "cafe-bots,cafe-bots-2,cafe-bots-3" {
		t.Fatalf("slugs = %v", slugs)
	}
	// A name that ends in a number as large as an int64 is no suffix to
	// count on (one past it was a 500 for every later "Café Bots").
	for _, name := range []string{"Café Bots 9223372036854775807", "Café Bots"} {
		var p domain.Project
		if res := s.do("POST", "/projects", map[string]any{"name": name}); res.Status != 201 {
			t.Fatalf("create %q = %d %s", name, res.Status, res.Body)
		} else {
			res.json(t, &p)
		}
		slugs = append(slugs, p.Slug)
	}
	if got := strings.Join(slugs[3:], ","); got != "cafe-bots-9223372036854775807,cafe-bots-4" {
		t.Fatalf("slugs = %v", got)
	}
	// An empty code is a project with an empty file, not the sample.
	res := s.do("POST", "/projects", map[string]any{"name": "Empty", "code": ""})
	var p domain.Project
	res.json(t, &p)
	if res.Status != 201 || p.CurrentCode != "" {
		t.Fatalf("empty code: %d %+v", res.Status, p)
	}
}

func TestConcurrentCreatesGetDistinctSlugs(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	const n = 12
	var wg sync.WaitGroup
	slugs := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := s.do("POST", "/projects", map[string]any{"name": "Race"})
			var p domain.Project
			res.json(t, &p)
			if res.Status != 201 {
				t.Errorf("create: %d %s", res.Status, res.Body)
			}
			slugs <- p.Slug
		}()
	}
	wg.Wait()
	close(slugs)
	seen := map[string]bool{}
	for sl := range slugs {
		if seen[sl] {
			t.Errorf("slug %q given twice", sl)
		}
		seen[sl] = true
	}
	for i := 1; i <= n; i++ {
		want := "race"
		if i > 1 {
			want = fmt.Sprintf("race-%d", i)
		}
		if !seen[want] {
			t.Errorf("slug %q missing; got %v", want, seen)
		}
	}
}

func TestCreateProjectRejectsBadInput(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	cases := []struct {
		name        string
		body        any
		contentType string
		status      int
		field       string
		detail      string
	}{
		{"invalid JSON", `{"name": "x"`, "", 400, "", "not valid JSON"},
		{"not JSON at all", `name=x`, "", 400, "", "not valid JSON"},
		{"missing name", `{}`, "", 400, "name", "required"},
		{"empty body", ``, "", 400, "name", "required"},
		{"empty name", map[string]any{"name": ""}, "", 400, "name", "required"},
		{"blank name", map[string]any{"name": "   "}, "", 400, "name", "required"},
		{"name too long", map[string]any{"name": strings.Repeat("n", 201)}, "", 400, "name", "at most 200"},
		{"name with control characters", map[string]any{"name": "a\x00b"}, "", 400, "name", "control"},
		{"name of wrong type", `{"name": 42}`, "", 400, "name", "must be a string"},
		{"code of wrong type", `{"name": "x", "code": ["a"]}`, "", 400, "code", "must be a string"},
		{"array body", `[{"name": "x"}]`, "", 400, "", "JSON object"},
		{"code over 1 MiB", map[string]any{"name": "big", "code": strings.Repeat("x", domain.MaxCodeBytes+1)}, "", 413, "code", "1 MiB"},
		{"body over the limit", `{"name":"big","code":"` + strings.Repeat("x", 5<<20) + `"}`, "", 413, "", "limit"},
		{"form content type", `name=x`, "application/x-www-form-urlencoded", 415, "", "must be JSON"},
	}
	before := s.count("projects")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var headers []string
			if c.contentType != "" {
				headers = []string{"Content-Type", c.contentType}
			}
			res := s.do("POST", "/projects", c.body, headers...)
			if res.Status != c.status {
				t.Fatalf("status %d, want %d: %s", res.Status, c.status, res.Body)
			}
			p := res.problem(t)
			if !strings.Contains(p.Detail, c.detail) {
				t.Errorf("detail %q does not say %q", p.Detail, c.detail)
			}
			if c.field != "" && (len(p.Errors) != 1 || p.Errors[0].Name != c.field) {
				t.Errorf("errors = %+v, want field %q", p.Errors, c.field)
			}
		})
	}
	if after := s.count("projects"); after != before {
		t.Fatalf("failed requests created %d projects", after-before)
	}
	if n := s.count("git_repositories"); n != before {
		t.Fatalf("failed requests left %d repositories", n-before)
	}
}

func TestUnknownAndMalformedIDsAre404(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for _, id := range []string{"7b7f6a5e-3f3c-4a63-9a57-3c8c1d1e0b11", "not-a-uuid", "1", "%20", "7b7f6a5e-3f3c-4a63-9a57-3c8c1d1e0b1"} {
		for _, req := range []struct{ method, path string }{
			{"GET", "/projects/" + id}, {"DELETE", "/projects/" + id}, {"GET", "/projects/" + id + "/commits"},
		} {
			res := s.do(req.method, req.path, nil)
			if res.Status != http.StatusNotFound {
				t.Errorf("%s %s = %d, want 404: %s", req.method, req.path, res.Status, res.Body)
				continue
			}
			if p := res.problem(t); !strings.Contains(p.Detail, "not found") {
				t.Errorf("%s %s detail %q", req.method, req.path, p.Detail)
			}
		}
	}
}

func TestListAndDeleteProjects(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	var ids []string
	for _, name := range []string{"One", "Two"} {
		var p domain.Project
		s.do("POST", "/projects", map[string]any{"name": name}).json(t, &p)
		ids = append(ids, p.ID)
	}
	var list []domain.Project
	res := s.do("GET", "/projects", nil)
	res.json(t, &list)
	if res.Status != 200 || len(list) != 2 || list[0].Name != "Two" || list[1].Name != "One" || list[0].CurrentCode == "" {
		t.Fatalf("list = %d %+v", res.Status, list)
	}

	if res := s.do("DELETE", "/projects/"+ids[0], nil); res.Status != http.StatusNoContent || len(res.Body) != 0 {
		t.Fatalf("delete = %d %s", res.Status, res.Body)
	}
	if res := s.do("GET", "/projects/"+ids[0], nil); res.Status != 404 {
		t.Fatalf("GET after delete = %d", res.Status)
	}
	if res := s.do("DELETE", "/projects/"+ids[0], nil); res.Status != 404 {
		t.Fatalf("second delete = %d", res.Status)
	}
	// Only the other project's repository is left.
	if n := s.count("git_repositories"); n != 1 {
		t.Fatalf("%d repositories left, want 1", n)
	}
	if objects := dbtest.Count(t, s.Pool, `SELECT count(*) FROM git_objects WHERE repository_id::text = $1`, ids[0]); objects != 0 {
		t.Fatalf("%d git objects of the deleted project remain", objects)
	}
	s.do("GET", "/projects", nil).json(t, &list)
	if len(list) != 1 || list[0].ID != ids[1] {
		t.Fatalf("list after delete = %+v", list)
	}
}

func TestProjectEventsGoThroughTheOutbox(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	var p domain.Project
	s.do("POST", "/projects", map[string]any{"name": "Evented"}).json(t, &p)
	s.do("DELETE", "/projects/"+p.ID, nil)
	if names := eventNames(s.outboxEvents(p.ID)); strings.Join(names, ",") != "project_created,project_deleted" {
		t.Fatalf("events = %v", names)
	}
}

// GET /projects answers every project without ?limit=, and pages through
// them with ?limit= and ?before=, in the same order: newest first, ties by
// id.
func TestProjectsPageByLimitAndBefore(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	var ids []string
	for i := range 5 {
		var p domain.Project
		s.do("POST", "/projects", map[string]any{"name": fmt.Sprintf("P%d", i)}).json(t, &p)
		ids = append(ids, p.ID)
	}
	// Three created at the same instant, so that the order within a tie
	// shows across a page's end.
	if _, err := s.Pool.Exec(context.Background(), `UPDATE projects SET created_at = (SELECT created_at FROM projects WHERE id = $1)
		WHERE id = ANY($2)`, ids[1], ids[1:4]); err != nil {
		t.Fatal(err)
	}
	rows, err := s.Pool.Query(context.Background(), `SELECT id::text FROM projects ORDER BY created_at DESC, id`)
	if err != nil {
		t.Fatal(err)
	}
	want, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	idOf := func(p domain.Project) string { return p.ID }

	var all []domain.Project
	s.do("GET", "/projects", nil).json(t, &all)
	if got := mapSlice(all, idOf); !slices.Equal(got, want) {
		t.Fatalf("GET /projects = %v, want %v", got, want)
	}
	for limit, requests := range map[int]int{1: 6, 2: 3, 4: 2, 5: 2, 200: 1} {
		paged, n := readPages(s, "/projects", limit, idOf)
		if got := mapSlice(paged, idOf); !slices.Equal(got, want) || n != requests {
			t.Errorf("pages of %d = %v in %d requests, want %v in %d", limit, got, n, want, requests)
		}
		if paged[0].CurrentCode == "" {
			t.Errorf("pages of %d: a project without its code", limit)
		}
	}
	var last []domain.Project
	s.do("GET", "/projects?before="+want[4], nil).json(t, &last)
	if last == nil || len(last) != 0 {
		t.Errorf("after the last project: %+v, want []", last)
	}

	// A project deleted after a page showed it last still marks where the
	// next page starts (within a tie of created_at, too), until the places
	// of deleted projects are pruned with the outbox's events.
	if res := s.do("DELETE", "/projects/"+want[2], nil); res.Status != http.StatusNoContent {
		t.Fatalf("delete = %d", res.Status)
	}
	var after []domain.Project
	s.do("GET", "/projects?limit=2&before="+want[2], nil).json(t, &after)
	if got := mapSlice(after, idOf); !slices.Equal(got, want[3:5]) {
		t.Errorf("the page after a deleted project = %v, want %v", got, want[3:5])
	}
	if _, err := db.DeleteEventsBefore(context.Background(), s.Pool, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.wantBadParam("/projects?before="+want[2], "before", "not in this list")
	s.wantBadParam("/projects?before="+uuid.NewString(), "before", "not in this list")
	s.wantBadParam("/projects?before=p1", "before", `"p1"`)
	s.wantBadParam("/projects?before="+ids[1]+"&before="+ids[2], "before", "given 2 times")
	for _, v := range []string{"0", "-1", "201", "1.5", "ten", "1e2"} {
		s.wantBadParam("/projects?limit="+v, "limit", "from 1 to 200")
	}
	s.wantBadParam("/projects?limit=1&limit=2", "limit", "given 2 times")
}

// GET /projects/{id}/commits answers the 200 newest commits, or fewer with
// ?limit=, and ?before=<sha> goes on from that commit's parent, so a longer
// history can be read whole.
func TestCommitLogPages(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	var p, other domain.Project
	s.do("POST", "/projects", map[string]any{"name": "Long history", "code": "x = 0\n"}).json(t, &p)
	s.do("POST", "/projects", map[string]any{"name": "Other"}).json(t, &other)
	// 205 commits more, written straight to the project's repository.
	repo := db.NewGitStorage(context.Background(), s.Pool, uuid.MustParse(p.ID))
	head := plumbing.NewHash(p.CurrentCommit)
	sig := db.Committer
	sig.When = time.Now().UTC().Truncate(time.Second)
	for i := 1; i <= 205; i++ {
		var err error
		head, err = db.CommitFiles(repo, p.CurrentBranch, head, map[string]string{domain.ScriptPath: fmt.Sprintf("x = %d\n", i)}, fmt.Sprintf("change %d", i), sig)
		if err != nil {
			t.Fatal(err)
		}
	}
	shaOf := func(c domain.Commit) string { return c.SHA }

	var log []domain.Commit
	s.do("GET", "/projects/"+p.ID+"/commits", nil).json(t, &log)
	if len(log) != 200 || log[0].SHA != head.String() || log[199].Message != "change 6" {
		t.Fatalf("default log: %d commits, from %s to %q", len(log), log[0].SHA, log[len(log)-1].Message)
	}
	for limit, requests := range map[int]int{50: 5, 103: 3, 200: 2} {
		whole, n := readPages(s, "/projects/"+p.ID+"/commits", limit, shaOf)
		if len(whole) != 206 || n != requests || !slices.Equal(mapSlice(whole[:200], shaOf), mapSlice(log, shaOf)) {
			t.Errorf("pages of %d: %d commits in %d requests, want 206 in %d, the first 200 as the default log", limit, len(whole), n, requests)
			continue
		}
		for i, c := range whole[:205] {
			if len(c.Parents) != 1 || c.Parents[0] != whole[i+1].SHA {
				t.Fatalf("pages of %d: commit %d (%s) has parents %v, the next is %s", limit, i, c.SHA, c.Parents, whole[i+1].SHA)
			}
		}
		if root := whole[205]; root.SHA != p.CurrentCommit || len(root.Parents) != 0 {
			t.Errorf("pages of %d end at %+v, want the first commit", limit, root)
		}
	}
	res := s.do("GET", "/projects/"+p.ID+"/commits?before="+p.CurrentCommit, nil)
	if res.Status != 200 || strings.TrimSpace(string(res.Body)) != "[]" {
		t.Errorf("before the first commit: %d %s, want []", res.Status, res.Body)
	}

	path := "/projects/" + p.ID + "/commits"
	s.wantBadParam(path+"?before="+other.CurrentCommit, "before", "not a commit of this project")
	s.wantBadParam(path+"?before="+strings.Repeat("0", 40), "before", "not a commit of this project")
	s.wantBadParam(path+"?before="+head.String()[:7], "before", "40-character")
	s.wantBadParam(path+"?before=HEAD", "before", "40-character")
	for _, v := range []string{"0", "201", "x"} {
		s.wantBadParam(path+"?limit="+v, "limit", "from 1 to 200")
	}
	if res := s.do("GET", "/projects/"+uuid.NewString()+"/commits?limit=1", nil); res.Status != 404 {
		t.Errorf("log of an unknown project = %d", res.Status)
	}
}
