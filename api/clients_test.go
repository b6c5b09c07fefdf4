package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"

	"github.com/vibegrapher/vibegrapher/api"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/internal/openaitest"
)

// route is one operation of the OpenAPI description, e.g. "POST /diffs/{id}/review".
type route = string

// specRoutes lists the operations the server describes.
func (s *testServer) specRoutes() []route {
	s.t.Helper()
	res := s.do("GET", "/swagger/openapi.json", nil)
	var spec struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	res.json(s.t, &spec)
	var out []route
	for path, ops := range spec.Paths {
		for method := range ops {
			out = append(out, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(out)
	return out
}

// call sends a request to a route with its path filled in, checks the
// status, that the answer's Content-Type matches it and that its body
// matches the route's documented schema, and records the route as covered.
func (s *stack) call(covered map[route]bool, r route, path string, body any, want int) response {
	s.t.Helper()
	method, template, _ := strings.Cut(r, " ")
	res := s.do(method, path, body)
	if res.Status != want {
		s.t.Fatalf("%s (%s) = %d, want %d: %s", r, path, res.Status, want, res.Body)
	}
	checkContentType(s.t, r, res)
	checkAnswer(s.t, method, template, res)
	covered[r] = true
	// An id may come in any form uuid.Parse reads: GET /projects/urn:uuid:…/sessions was a 500.
	if other := uuidPattern.ReplaceAllStringFunc(path, func(id string) string { return "urn:uuid:" + strings.ToUpper(id) }); method == "GET" && other != path {
		if again := s.do(method, other, nil); again.Status != res.Status {
			s.t.Fatalf("%s (%s) = %d, but %d with the plain ids: %s", r, other, again.Status, res.Status, again.Body)
		}
	}
	return res
}

var uuidPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

var openapiDoc = sync.OnceValues(func() (*openapi3.T, error) {
	raw, err := api.New(api.Options{}).OpenAPIDocument()
	if err != nil {
		return nil, err
	}
	return openapi3.NewLoader().LoadFromData(raw)
})

// checkAnswer validates a JSON answer against the OpenAPI schema of its
// route and status: what the description promises is what clients get.
func checkAnswer(t testing.TB, method, template string, res response) {
	t.Helper()
	if res.Status == http.StatusNoContent {
		return
	}
	doc, err := openapiDoc()
	if err != nil {
		t.Fatal(err)
	}
	op := doc.Paths.Find(template).GetOperation(method)
	r := op.Responses.Status(res.Status)
	if r == nil || r.Value.Content.Get(strings.Split(res.Header.Get("Content-Type"), ";")[0]) == nil {
		t.Errorf("%s %s answered %d %s, which the description does not list", method, template, res.Status, res.Header.Get("Content-Type"))
		return
	}
	var v any
	if err := json.Unmarshal(res.Body, &v); err != nil {
		t.Errorf("%s %s: %v", method, template, err)
		return
	}
	schema := r.Value.Content.Get(strings.Split(res.Header.Get("Content-Type"), ";")[0]).Schema.Value
	if err := schema.VisitJSON(v, openapi3.MultiErrors()); err != nil {
		t.Errorf("%s %s %d does not match its documented schema: %v\nbody: %s", method, template, res.Status, err, res.Body)
	}
}

func checkContentType(t testing.TB, what string, res response) {
	t.Helper()
	ct := res.Header.Get("Content-Type")
	switch {
	case res.Status == http.StatusNoContent:
		if len(res.Body) != 0 {
			t.Errorf("%s: 204 with a body %q", what, res.Body)
		}
	case res.Status >= 400:
		if ct != "application/problem+json" {
			t.Errorf("%s: %d answered Content-Type %q, want application/problem+json", what, res.Status, ct)
		}
	default:
		if ct != "application/json" {
			t.Errorf("%s: %d answered Content-Type %q, want application/json", what, res.Status, ct)
		}
	}
}

// TestEveryRouteAsTheFrontendCallsIt walks every route of the OpenAPI
// description as the React frontend does: request bodies carry fields the
// server does not know (the frontend sends some; FastAPI ignored them), and
// every answer, whatever its status, says it is JSON.
func TestEveryRouteAsTheFrontendCallsIt(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	covered := map[route]bool{}
	extra := func(body map[string]any) map[string]any {
		body["client_version"] = "1.2.3"
		body["nested"] = map[string]any{"x": []int{1}}
		return body
	}

	var p domain.Project
	s.call(covered, "POST /projects", "/projects", extra(map[string]any{"name": "Walk", "code": baseCode}), 201).json(t, &p)
	s.watch(p.ID)
	s.call(covered, "GET /projects", "/projects", nil, 200)
	s.call(covered, "GET /projects/{id}", "/projects/"+p.ID, nil, 200)
	s.call(covered, "GET /projects/{id}/nodes", "/projects/"+p.ID+"/nodes", nil, 200)
	s.call(covered, "GET /projects/{id}/commits", "/projects/"+p.ID+"/commits", nil, 200)

	// Row 1 of the issue: after "Clear session" the frontend sends
	// {"type":"vibecode"}; it was a 400 the frontend retried forever.
	var sess domain.VibecodeSession
	s.call(covered, "POST /projects/{id}/sessions", "/projects/"+p.ID+"/sessions", map[string]any{"type": "vibecode"}, 201).json(t, &sess)
	s.call(covered, "POST /projects/{id}/sessions", "/projects/"+p.ID+"/sessions", map[string]any{"type": "vibecode"}, 200)
	s.call(covered, "GET /projects/{id}/sessions", "/projects/"+p.ID+"/sessions", nil, 200)
	s.call(covered, "GET /sessions/{id}", "/sessions/"+sess.ID, nil, 200)
	// Empty lists are [] (the schemas say arrays, not null).
	for _, r := range []route{"GET /projects/{id}/diffs", "GET /projects/{id}/tests"} {
		s.call(covered, r, strings.ReplaceAll(strings.TrimPrefix(r, "GET "), "{id}", p.ID), nil, 200)
	}
	for _, r := range []route{"GET /sessions/{id}/messages", "GET /sessions/{id}/diffs", "GET /sessions/{id}/diffs/pending"} {
		s.call(covered, r, strings.ReplaceAll(strings.TrimPrefix(r, "GET "), "{id}", sess.ID), nil, 200)
	}

	// Row 2: diff_created carries diff_id, and GET /diffs/{diff_id} answers.
	d := s.approvedDiff(p, sess, greetPatch, "Say Hi")
	created := s.waitEvent(p.ID, "diff_created", nil)
	if created["diff_id"] != d.ID || created["id"] != d.ID {
		t.Fatalf("diff_created carries diff_id %v and id %v, want %s", created["diff_id"], created["id"], d.ID)
	}
	s.call(covered, "GET /diffs/{id}", fmt.Sprint("/diffs/", created["diff_id"]), nil, 200)

	s.AI.Enqueue(openaitest.Text("Nothing to change."))
	var acc domain.MessageAccepted
	s.call(covered, "POST /sessions/{id}/messages", "/sessions/"+sess.ID+"/messages", extra(map[string]any{"prompt": "anything to do?"}), 202).json(t, &acc)
	s.waitResponse(p.ID, acc.MessageID)
	s.call(covered, "GET /sessions/{id}/messages", "/sessions/"+sess.ID+"/messages", nil, 200)
	s.call(covered, "GET /messages/{id}/full", "/messages/"+acc.MessageID+"/full", nil, 200)
	s.call(covered, "GET /messages/{id}", "/messages/"+acc.MessageID, nil, 200)
	s.call(covered, "GET /jobs/{id}", fmt.Sprint("/jobs/", acc.JobID), nil, 200)

	s.call(covered, "GET /projects/{id}/diffs", "/projects/"+p.ID+"/diffs?status=evaluator_approved", nil, 200)
	s.call(covered, "GET /sessions/{id}/diffs", "/sessions/"+sess.ID+"/diffs", nil, 200)
	s.call(covered, "GET /sessions/{id}/diffs/pending", "/sessions/"+sess.ID+"/diffs/pending", nil, 200)
	s.call(covered, "GET /diffs/{id}/preview", "/diffs/"+d.ID+"/preview", nil, 200)

	// Row 3: refine-message answers refined_message beside the Diff.
	s.AI.Enqueue(openaitest.Text("Greet with Hi"))
	var refined struct {
		domain.Diff
		RefinedMessage *string `json:"refined_message"`
	}
	s.call(covered, "POST /diffs/{id}/refine-message", "/diffs/"+d.ID+"/refine-message", extra(map[string]any{"current_message": "Say Hi"}), 200).json(t, &refined)
	if refined.RefinedMessage == nil || *refined.RefinedMessage != "Greet with Hi" || refined.ID != d.ID || refined.CommitMessage != "Greet with Hi" {
		t.Fatalf("refine-message answered %+v", refined)
	}

	var tc domain.TestCase
	s.call(covered, "POST /projects/{id}/tests", "/projects/"+p.ID+"/tests", extra(map[string]any{"name": "greets", "code": `assert greet("x").endswith("x")`}), 201).json(t, &tc)
	s.call(covered, "POST /tests", "/tests", extra(map[string]any{"project_id": p.ID, "name": "adds", "code": "assert add(2, 3) == 5"}), 201)
	s.call(covered, "GET /projects/{id}/tests", "/projects/"+p.ID+"/tests", nil, 200)
	s.call(covered, "GET /tests/{id}", "/tests/"+tc.ID, nil, 200)
	var queued domain.TestRunAccepted
	s.call(covered, "POST /tests/{id}/run", "/tests/"+tc.ID+"/run", extra(map[string]any{}), 202).json(t, &queued)
	s.call(covered, "POST /tests/{id}/run", "/tests/"+tc.ID+"/run?wait=true", extra(map[string]any{"diff_id": d.ID}), 200)
	s.call(covered, "POST /diffs/{id}/test", "/diffs/"+d.ID+"/test", nil, 202)
	s.call(covered, "GET /test-runs/{id}", "/test-runs/"+queued.TestRunID, nil, 200)
	s.call(covered, "GET /tests/{id}/runs", "/tests/"+tc.ID+"/runs", nil, 200)

	s.call(covered, "POST /diffs/{id}/review", "/diffs/"+d.ID+"/review", extra(map[string]any{"approved": true}), 200)
	s.call(covered, "POST /diffs/{id}/commit", "/diffs/"+d.ID+"/commit", extra(map[string]any{"commit_message": "Greet with Hi"}), 200)

	s.call(covered, "GET /healthz", "/healthz", nil, 200)
	s.call(covered, "GET /readyz", "/readyz", nil, 200)
	s.call(covered, "DELETE /tests/{id}", "/tests/"+tc.ID, nil, 204)
	s.call(covered, "DELETE /sessions/{id}", "/sessions/"+sess.ID, nil, 204)
	s.call(covered, "DELETE /projects/{id}", "/projects/"+p.ID, nil, 204)

	for _, r := range s.specRoutes() {
		if !covered[r] {
			t.Errorf("%s is in the OpenAPI description but this walk does not call it", r)
		}
	}
}

// TestEveryRouteAnswersProblemJSON sends every route of the description an
// unknown id and a body of the wrong shape: whatever the error, it is
// problem JSON.
func TestEveryRouteAnswersProblemJSON(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{noWorker: true})
	routes := s.specRoutes()
	if len(routes) < 30 {
		t.Fatalf("the description lists %d routes", len(routes))
	}
	for _, r := range routes {
		method, path, _ := strings.Cut(r, " ")
		if !strings.Contains(path, "{id}") {
			continue
		}
		res := s.do(method, strings.ReplaceAll(path, "{id}", uuid.NewString()), `[]`)
		if res.Status != 404 && res.Status != 400 {
			t.Errorf("%s with an unknown id = %d %s", r, res.Status, res.Body)
		}
		checkContentType(t, r, res)
		checkAnswer(t, method, path, res)
		res.problem(t)
	}
}

func TestUnknownRoutesAndWrongMethodsAreProblemJSON(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for _, c := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/nope", 404, ""},
		{"POST", "/projects/x/y/z", 404, ""},
		{"DELETE", "/projects", 405, "GET, HEAD, POST"},
		{"PUT", "/projects/" + uuid.NewString(), 405, "DELETE, GET, HEAD"},
		{"PATCH", "/healthz", 405, "GET, HEAD"},
		{"GET", "/swagger/nope", 404, ""}, // the docs' file server answered plain text
	} {
		res := s.do(c.method, c.path, nil)
		if res.Status != c.status {
			t.Fatalf("%s %s = %d %s", c.method, c.path, res.Status, res.Body)
		}
		p := res.problem(t)
		if !strings.Contains(p.Detail, c.path) {
			t.Errorf("%s %s: detail %q does not name the path", c.method, c.path, p.Detail)
		}
		if allow := res.Header.Get("Allow"); allow != c.allow || (allow != "" && !strings.HasSuffix(p.Detail, "allowed: "+allow)) {
			t.Errorf("%s %s: Allow %q, detail %q; want Allow %q", c.method, c.path, allow, p.Detail, c.allow)
		}
	}
}

// A path with an empty segment, "." or ".." is an unknown route, answered
// as one. net/http's ServeMux redirected it (307, an HTML body) to its
// cleaned form, where a POST was sent again.
func TestPathsThatAreNotCleanAreUnknownRoutes(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	id := uuid.NewString()
	for _, c := range []struct{ method, path, clean string }{
		{"GET", "//projects", "/projects"},
		{"POST", "//projects", "/projects"},
		{"GET", "/projects/../projects", "/projects"},
		{"GET", "/projects/%2e%2e/projects", "/projects"},
		{"DELETE", "/projects/./" + id, "/projects/" + id},
		{"GET", "/swagger/../projects", "/projects"}, // under a public prefix
		{"GET", "/projects//", "/projects/"},
	} {
		req, err := http.NewRequest(c.method, s.URL+c.path, strings.NewReader(`{"name":"via a redirect"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := response{Status: res.StatusCode, Header: res.Header, Body: body}
		if got.Status != http.StatusNotFound || got.Header.Get("Location") != "" {
			t.Fatalf("%s %s = %d (Location %q) %s, want 404", c.method, c.path, got.Status, got.Header.Get("Location"), body)
		}
		if p := got.problem(t); !strings.Contains(p.Detail, "cleaned, it is "+c.clean+")") {
			t.Errorf("%s %s: detail %q does not give the cleaned path %s", c.method, c.path, p.Detail, c.clean)
		}
	}
	if n := s.count("projects"); n != 0 {
		t.Fatalf("%d projects created through an unclean path", n)
	}
}

// TestMalformedInputIsRefusedAndStoresNothing covers what encoding/json
// alone lets through: data after the value, invalid UTF-8 (replaced
// silently), and query parameters that do not parse.
func TestMalformedInputIsRefusedAndStoresNothing(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{noWorker: true})
	p, sess := s.project(baseCode)
	tc := s.newTest(p.ID, "adds", "assert add(2, 3) == 5", 5)
	tables := []string{"projects", "messages", "test_cases", "test_runs", "events", "river_job"}
	noDiff := uuid.NewString() // the body is read before the diff is looked up
	before := map[string]int{}
	for _, tbl := range tables {
		before[tbl] = s.count(tbl)
	}
	cases := []struct {
		name, method, path, body string
		field, detail            string
	}{
		{"trailing text", "POST", "/projects", `{"name":"x"} trailing`, "", "data after the JSON value"},
		{"two objects", "POST", "/projects", `{"name":"x"}{"name":"y"}`, "", "data after the JSON value"},
		{"trailing brace", "POST", "/sessions/" + sess.ID + "/messages", `{"prompt":"hi"}}`, "", "data after the JSON value"},
		{"invalid UTF-8 in a string", "POST", "/projects", "{\"name\":\"caf\xe9\"}", "", "not valid UTF-8"},
		{"invalid UTF-8 in a prompt", "POST", "/sessions/" + sess.ID + "/messages", "{\"prompt\":\"\xff\xfe\"}", "", "not valid UTF-8"},
		{"lone surrogate escape", "POST", "/projects", `{"name":"a\ud800b"}`, "", "lone UTF-16 surrogate"},
		{"low surrogate first", "POST", "/projects", `{"name":"\udc00\ud800"}`, "", "lone UTF-16 surrogate"},
		// PostgreSQL stores no NUL: each of these was a 500.
		{"NUL in a test's name", "POST", "/projects/" + p.ID + "/tests", `{"name":"a\u0000b","code":"pass"}`, "name", "NUL"},
		{"NUL in a review's feedback", "POST", "/diffs/" + noDiff + "/review", `{"approved":false,"feedback":"a\u0000"}`, "feedback", "NUL"},
		{"NUL in a commit message", "POST", "/diffs/" + noDiff + "/commit", `{"commit_message":"\u0000"}`, "commit_message", "NUL"},
		{"NUL in a prompt", "POST", "/sessions/" + sess.ID + "/messages", `{"prompt":"a\u0000b"}`, "prompt", "NUL"},
		{"invalid JSON", "POST", "/projects/" + p.ID + "/tests", `{"name":`, "", "not valid JSON"},
		{"wrong type", "POST", "/sessions/" + sess.ID + "/messages", `{"prompt":42}`, "prompt", "must be a string"},
		{"missing required field", "POST", "/sessions/" + sess.ID + "/messages", `{"message":"hi"}`, "prompt", "required"},
		{"missing project_id", "POST", "/tests", `{"name":"x","code":"pass"}`, "project_id", "required"},
		{"unparsable wait", "POST", "/tests/" + tc.ID + "/run?wait=maybe", `{}`, "wait", `"maybe"`},
		{"unknown status filter", "GET", "/projects/" + p.ID + "/diffs?status=bogus", ``, "status", "bogus"},
		// The first value used to win and the others were not read.
		{"wait given twice", "POST", "/tests/" + tc.ID + "/run?wait=false&wait=maybe", `{}`, "wait", "given 2 times"},
		{"status given twice", "GET", "/projects/" + p.ID + "/diffs?status=committed&status=bogus", ``, "status", "given 2 times"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.body != "" {
				body = c.body
			}
			res := s.do(c.method, c.path, body)
			if res.Status != 400 {
				t.Fatalf("status %d, want 400: %s", res.Status, res.Body)
			}
			pr := res.problem(t)
			if !strings.Contains(pr.Detail, c.detail) {
				t.Errorf("detail %q does not say %q", pr.Detail, c.detail)
			}
			if c.field != "" && (len(pr.Errors) != 1 || pr.Errors[0].Name != c.field) {
				t.Errorf("errors = %+v, want field %q", pr.Errors, c.field)
			}
		})
	}
	for _, tbl := range tables {
		if n := s.count(tbl); n != before[tbl] {
			t.Errorf("refused requests changed %s: %d rows, was %d", tbl, n, before[tbl])
		}
	}
}

// TestEscapedCharactersAreKept: a surrogate pair is one character, kept.
func TestEscapedCharactersAreKept(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	var p domain.Project
	res := s.do("POST", "/projects", `{"name":"smile \ud83d\ude00 \"quoted\\"}`)
	res.json(t, &p)
	if res.Status != 201 || p.Name != "smile \U0001F600 \"quoted\\" {
		t.Fatalf("create = %d %s", res.Status, res.Body)
	}
}

// TestUnknownFieldsAreLoggedAtDebug: ignored, but not silently.
func TestUnknownFieldsAreLoggedAtDebug(t *testing.T) {
	t.Parallel()
	var logged bytes.Buffer
	lw := &syncWriter{w: &logged}
	s := newTestServer(t, func(o *api.Options) {
		o.Log = slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	if res := s.do("POST", "/projects", `{"name":"x","type":"vibecode","Colour":1}`); res.Status != 201 {
		t.Fatalf("create = %d %s", res.Status, res.Body)
	}
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if !strings.Contains(logged.String(), "unknown fields ignored") || !strings.Contains(logged.String(), "[Colour type]") {
		t.Fatalf("log: %s", logged.String())
	}
}

// TestAnswersAreJSONWhateverTheAcceptHeader: a browser's Accept does not
// turn answers or errors into HTML or text.
func TestAnswersAreJSONWhateverTheAcceptHeader(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for _, accept := range []string{"text/html", "application/xml", "text/plain", "*/*"} {
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"POST", "/projects", map[string]any{"name": "A"}},
			{"GET", "/projects", nil},
			{"GET", "/projects/" + uuid.NewString(), nil},
			{"POST", "/projects", `{"name":`},
		} {
			res := s.do(c.method, c.path, c.body, "Accept", accept)
			checkContentType(t, accept+" "+c.method+" "+c.path, res)
		}
	}
}

// A key that names a field in another case is an unknown field, ignored, as
// FastAPI does (encoding/json alone would take NAME for name).
func TestFieldNamesAreMatchedExactly(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	var p domain.Project
	res := s.do("POST", "/projects", `{"name":"kept","NAME":"taken","Name":"also taken"}`)
	res.json(t, &p)
	if res.Status != 201 || p.Name != "kept" {
		t.Fatalf("create = %d %s", res.Status, res.Body)
	}
	// Not a field: no type error for it.
	if res := s.do("POST", "/projects/"+p.ID+"/tests", `{"name":"t","code":"assert 1","TIMEOUT_SECONDS":"soon"}`); res.Status != 201 {
		t.Fatalf("create test = %d %s", res.Status, res.Body)
	}
	// And a body of only such keys has none of the fields.
	if res := s.do("POST", "/projects", `{"NAME":"x"}`); res.Status != 400 {
		t.Fatalf("create without name = %d %s", res.Status, res.Body)
	}
}
