package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/vibegrapher/vibegrapher/api"
	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
)

// riverUIServer is the API with River UI mounted, as the api role serves it.
func riverUIServer(t *testing.T, token, password string) (*testServer, *jobargs.Client) {
	t.Helper()
	pool := dbtest.New(t)
	log := slog.New(slog.DiscardHandler)
	client, err := jobargs.NewInsertOnlyClient(pool, log)
	if err != nil {
		t.Fatal(err)
	}
	ui, err := api.NewRiverUI(t.Context(), client, log)
	if err != nil {
		t.Fatal(err)
	}
	a := api.New(api.Options{Store: &db.Store{Pool: pool}, Jobs: client, Log: log, CORSOrigins: []string{"*"}, APIToken: token, RiverUIPassword: password})
	a.Mount("/riverui/", ui)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &testServer{t: t, URL: srv.URL, Pool: pool}, client
}

// TestRiverUIIsNeverOpenUnderAPIToken: River UI shows job arguments (users'
// prompts) and deletes jobs, so with API_TOKEN set its page and its API need
// the token or RIVER_UI_PASSWORD; without credentials nothing is read or
// deleted.
func TestRiverUIIsNeverOpenUnderAPIToken(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, token, password string
		allowed, refused      [][]string // header pairs
	}{
		{
			name: "API_TOKEN only", token: "tok",
			allowed: [][]string{{"Authorization", "Bearer tok"}, {"Authorization", basic("anyone", "tok")}, {"X-API-Token", "tok"}},
			refused: [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", basic("admin", "")}, {"Authorization", basic("admin", "wrong")}},
		},
		{
			name: "API_TOKEN and RIVER_UI_PASSWORD", token: "tok", password: "pw",
			allowed: [][]string{{"Authorization", "Bearer tok"}, {"Authorization", basic("admin", "pw")}, {"Authorization", basic("x", "tok")}},
			refused: [][]string{nil, {"Authorization", basic("someone", "pw")}, {"Authorization", "Bearer pw"}},
		},
		{
			name: "RIVER_UI_PASSWORD only", password: "pw",
			allowed: [][]string{{"Authorization", basic("admin", "pw")}},
			refused: [][]string{nil, {"Authorization", basic("admin", "nope")}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, client := riverUIServer(t, c.token, c.password)
			job, err := client.Insert(context.Background(), jobargs.PruneEventsArgs{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			id := strconv.FormatInt(job.Job.ID, 10)
			exists := func() bool {
				return s.count("river_job WHERE id = "+id) == 1
			}
			del := `{"ids":["` + id + `"]}`
			for _, h := range c.refused {
				for _, req := range [][2]string{{"GET", "/riverui/"}, {"GET", "/riverui/api/jobs?state=available"}, {"GET", "/riverui/api/jobs/" + id}, {"POST", "/riverui/api/jobs/delete"}} {
					var body any
					if req[0] == "POST" {
						body = del
					}
					res := s.do(req[0], req[1], body, append([]string{"Accept", "text/html"}, h...)...)
					if res.Status != http.StatusUnauthorized {
						t.Fatalf("%s %s with %v = %d, want 401", req[0], req[1], h, res.Status)
					}
					if strings.Contains(string(res.Body), "prune") || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic") {
						t.Fatalf("refusal leaks or asks for nothing: %v %s", res.Header, res.Body)
					}
					res.problem(t)
				}
				if !exists() {
					t.Fatalf("a refused delete deleted the job")
				}
			}
			for _, h := range c.allowed {
				if res := s.do("GET", "/riverui/", nil, append([]string{"Accept", "text/html"}, h...)...); res.Status != 200 || !strings.Contains(string(res.Body), "<html") {
					t.Fatalf("page with %v = %d", h, res.Status)
				}
				if res := s.do("GET", "/riverui/api/jobs?state=available", nil, h...); res.Status != 200 || !strings.Contains(string(res.Body), id) {
					t.Fatalf("job list with %v = %d %s", h, res.Status, res.Body)
				}
			}
			res := s.do("POST", "/riverui/api/jobs/delete", del, c.allowed[0]...)
			if res.Status != 200 || exists() {
				t.Fatalf("delete with %v = %d %s; job still there: %v", c.allowed[0], res.Status, res.Body, exists())
			}
			if c.token != "" {
				// The rest of the API keeps its own rule: the token only.
				if res := s.do("GET", "/projects", nil); res.Status != http.StatusUnauthorized {
					t.Fatalf("GET /projects without the token = %d", res.Status)
				}
			}
		})
	}
}

func basic(user, pass string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

// River UI refuses a method as the rest of the API does: problem JSON with
// Allow, for an OPTIONS that is not a CORS preflight too. It answered
// "method not allowed" in plain text.
func TestRiverUIRefusesMethodsAsProblemJSON(t *testing.T) {
	t.Parallel()
	s, _ := riverUIServer(t, "tok", "")
	auth := []string{"Authorization", "Bearer tok"}
	for _, c := range []struct{ method, path string }{
		{"OPTIONS", "/riverui/"},
		{"OPTIONS", "/riverui/api/jobs"},
		{"DELETE", "/riverui/api/jobs"},
		{"PUT", "/riverui/"},
	} {
		res := s.do(c.method, c.path, nil, auth...)
		if res.Status != http.StatusMethodNotAllowed {
			t.Fatalf("%s %s = %d %s", c.method, c.path, res.Status, res.Body)
		}
		p := res.problem(t)
		allow := res.Header.Get("Allow")
		if allow == "" || !strings.Contains(p.Detail, c.method+" is not allowed on "+c.path) || !strings.HasSuffix(p.Detail, "allowed: "+allow) {
			t.Errorf("%s %s: Allow %q, detail %q", c.method, c.path, allow, p.Detail)
		}
	}
	// What River UI serves is untouched.
	if res := s.do("GET", "/riverui/api/jobs?state=available", nil, auth...); res.Status != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("job list = %d %v %s", res.Status, res.Header, res.Body)
	}
}

// /swagger and /riverui without their slash lead a browser to the pages by a
// redirect without a body: net/http's carried an HTML note, and repeated a
// POST on River UI. /swagger is as public as the page it leads to.
func TestSubtreeRootsWithoutTheirSlash(t *testing.T) {
	t.Parallel()
	s, _ := riverUIServer(t, "tok", "")
	auth := basic("admin", "tok") // what a browser's login prompt sends
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(c *http.Client, method, path, authorization string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, s.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "text/html")
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, string(body)
	}
	for _, c := range []struct{ method, path, auth, to string }{
		{"GET", "/swagger", "", "/swagger/"},
		{"HEAD", "/swagger", "", "/swagger/"},
		{"GET", "/swagger?url=x", "", "/swagger/?url=x"},
		{"GET", "/riverui", auth, "/riverui/"},
		{"HEAD", "/riverui", auth, "/riverui/"},
	} {
		res, body := send(noRedirect, c.method, c.path, c.auth)
		if res.StatusCode != http.StatusTemporaryRedirect || res.Header.Get("Location") != c.to || body != "" || res.Header.Get("Content-Type") != "" {
			t.Errorf("%s %s = %d Location %q Content-Type %q %q; want 307 to %s without a body", c.method, c.path, res.StatusCode, res.Header.Get("Location"), res.Header.Get("Content-Type"), body, c.to)
		}
		if c.method != "GET" {
			continue
		}
		if res, body := send(http.DefaultClient, c.method, c.path, c.auth); res.StatusCode != 200 || !strings.Contains(body, "<html") || res.Request.URL.Path != strings.TrimSuffix(c.to, "?url=x") {
			t.Errorf("a browser sent to %s got %d at %s", c.path, res.StatusCode, res.Request.URL)
		}
	}
	// Another method is refused there, not sent on to the page's handler.
	for _, c := range []struct{ method, path string }{{"POST", "/riverui"}, {"DELETE", "/riverui"}, {"POST", "/swagger"}} {
		res := s.do(c.method, c.path, nil, "Authorization", auth)
		if res.Status != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" || res.Header.Get("Location") != "" {
			t.Fatalf("%s %s = %d %v %s", c.method, c.path, res.Status, res.Header, res.Body)
		}
		if p := res.problem(t); !strings.Contains(p.Detail, c.method+" is not allowed on "+c.path) {
			t.Errorf("%s %s: detail %q", c.method, c.path, p.Detail)
		}
	}
	// River UI's redirect, like River UI, needs credentials.
	if res, _ := send(noRedirect, "GET", "/riverui", ""); res.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("GET /riverui without credentials = %d %v", res.StatusCode, res.Header)
	}
}
