package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/api"
	"github.com/vibegrapher/vibegrapher/db"
)

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	if res := s.do("GET", "/healthz", nil); res.Status != 200 {
		t.Fatalf("healthz = %d", res.Status)
	}
	if res := s.do("GET", "/readyz", nil); res.Status != 200 || !strings.Contains(string(res.Body), `"ready"`) {
		t.Fatalf("readyz = %d %s", res.Status, res.Body)
	}
	// A migration rolled back: not ready, and the probe says why.
	if _, err := s.Pool.Exec(t.Context(), `DELETE FROM goose_db_version WHERE version_id = (SELECT max(version_id) FROM goose_db_version)`); err != nil {
		t.Fatal(err)
	}
	res := s.do("GET", "/readyz", nil)
	if res.Status != http.StatusServiceUnavailable || !strings.Contains(res.problem(t).Detail, "migrat") {
		t.Fatalf("readyz with a pending migration = %d %s", res.Status, res.Body)
	}
	// An API process on a database whose schema is behind it (nobody ran
	// migrate): 503 saying so, not a 500.
	s.noEventCheck = true
	if _, err := s.Pool.Exec(t.Context(), `DROP TABLE projects CASCADE`); err != nil {
		t.Fatal(err)
	}
	if res := s.do("GET", "/projects", nil); res.Status != http.StatusServiceUnavailable || !strings.Contains(res.problem(t).Detail, "vibegrapher migrate") {
		t.Fatalf("GET /projects on an unmigrated database = %d %s", res.Status, res.Body)
	}
	// The database gone: not ready either.
	s.Pool.Close()
	if res := s.do("GET", "/readyz", nil); res.Status != http.StatusServiceUnavailable {
		t.Fatalf("readyz without a database = %d %s", res.Status, res.Body)
	}
}

// TestReadyzSaysNothingAboutTheConnection: the probe is public, so with the
// database down it says "database unavailable" and the log, not the answer,
// has the host, port, user and database.
func TestReadyzSaysNothingAboutTheConnection(t *testing.T) {
	t.Parallel()
	// A port nothing listens on: taken, then closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	pool, err := pgxpool.New(context.Background(), "postgres://vguser@"+addr+"/vgsecretdb?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	schema, err := db.NewSchema(pool, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	lw := &syncWriter{w: &logged}
	log := slog.New(slog.NewTextHandler(lw, nil))
	srv := httptest.NewServer(api.New(api.Options{Store: &db.Store{Pool: pool}, Schema: schema, Log: log}).Handler())
	defer srv.Close()
	s := &testServer{t: t, URL: srv.URL}
	for _, path := range []string{"/readyz", "/projects"} {
		res := s.do("GET", path, nil)
		if res.Status != http.StatusServiceUnavailable {
			t.Fatalf("%s = %d %s", path, res.Status, res.Body)
		}
		p := res.problem(t)
		for _, secret := range []string{port, "127.0.0.1", "vguser", "vgsecretdb", "connect"} {
			if strings.Contains(string(res.Body), secret) {
				t.Errorf("%s answers %q, which names %q", path, res.Body, secret)
			}
		}
		if path == "/readyz" && p.Detail != "database unavailable" {
			t.Errorf("readyz detail %q", p.Detail)
		}
	}
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if !strings.Contains(logged.String(), port) {
		t.Errorf("the log lacks the detail: %s", logged.String())
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func TestOpenAPIDescribesTheRoutes(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	res := s.do("GET", "/swagger/openapi.json", nil)
	if res.Status != 200 {
		t.Fatalf("spec = %d", res.Status)
	}
	var spec struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(res.Body, &spec); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(spec.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", spec.OpenAPI)
	}
	for path, method := range map[string]string{"/projects": "post", "/projects/{id}": "delete", "/projects/{id}/commits": "get", "/readyz": "get"} {
		if _, ok := spec.Paths[path][method]; !ok {
			t.Errorf("spec lacks %s %s", method, path)
		}
	}
	if ui := s.do("GET", "/swagger/index.html", nil); ui.Status != 200 || !strings.Contains(string(ui.Body), "openapi.json") {
		t.Errorf("swagger UI = %d", ui.Status)
	}
}

func TestCORSAndToken(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(o *api.Options) {
		o.CORSOrigins = []string{"http://localhost:5173"}
		o.APIToken = "s3cret"
	})
	pre := s.do("OPTIONS", "/projects", nil, "Origin", "http://localhost:5173", "Access-Control-Request-Method", "POST")
	if pre.Status != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" {
		t.Fatalf("preflight = %d %v", pre.Status, pre.Header)
	}
	if res := s.do("OPTIONS", "/projects", nil, "Origin", "http://evil.example", "Access-Control-Request-Method", "POST"); res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign origin allowed: %v", res.Header)
	}
	if res := s.do("GET", "/projects", nil); res.Status != http.StatusUnauthorized {
		t.Fatalf("no token = %d", res.Status)
	}
	if res := s.do("GET", "/projects", nil, "Authorization", "Bearer wrong"); res.Status != http.StatusUnauthorized {
		t.Fatalf("wrong token = %d", res.Status)
	}
	res := s.do("GET", "/projects", nil, "Authorization", "Bearer s3cret", "Origin", "http://localhost:5173")
	if res.Status != 200 || res.Header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" {
		t.Fatalf("with token = %d %v", res.Status, res.Header)
	}
	if res := s.do("GET", "/healthz", nil); res.Status != 200 {
		t.Fatalf("healthz needs no token, got %d", res.Status)
	}
	// An OPTIONS request that is not a preflight needs the token too: it
	// used to pass, and pprof's handlers answer OPTIONS like GET.
	if res := s.do("OPTIONS", "/projects", nil); res.Status != http.StatusUnauthorized {
		t.Fatalf("OPTIONS without a token = %d", res.Status)
	}
	pprofLike := api.RequireToken("s3cret", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("goroutine stacks")) }))
	for _, method := range []string{"GET", "OPTIONS", "POST"} {
		rec := httptest.NewRecorder()
		pprofLike.ServeHTTP(rec, httptest.NewRequest(method, "/debug/pprof/goroutine?debug=2", nil))
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("%s /debug/pprof/ without a token = %d", method, rec.Code)
		}
	}
}

// With CORS_ORIGINS=* any site's page may call the API with its token, but
// not with the browser's credentials: River UI's basic-auth login, which a
// browser keeps, let any site read users' prompts and delete jobs.
func TestCORSWithAnyOriginAllowsNoCredentials(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(o *api.Options) {
		o.CORSOrigins = []string{"*"}
		o.APIToken = "s3cret"
		o.RiverUIPassword = "rpw"
	})
	res := s.do("GET", "/projects", nil, "Authorization", "Bearer s3cret", "Origin", "https://evil.example")
	if res.Status != 200 || res.Header.Get("Access-Control-Allow-Origin") != "https://evil.example" || res.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("GET /projects from any origin = %d %v", res.Status, res.Header)
	}
	pre := s.do("OPTIONS", "/riverui/api/jobs/delete", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	if pre.Header.Get("Access-Control-Allow-Origin") != "" || pre.Header.Get("Access-Control-Allow-Credentials") != "" || pre.Status == http.StatusNoContent {
		t.Fatalf("River UI preflight from another site = %d %v", pre.Status, pre.Header)
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:rpw"))
	ui := s.do("GET", "/riverui/api/jobs", nil, "Authorization", basic, "Origin", "https://evil.example")
	if ui.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("River UI answered another site with CORS headers: %v", ui.Header)
	}
}
