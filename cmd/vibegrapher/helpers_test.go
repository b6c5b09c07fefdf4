package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

func mustPool(t *testing.T, u string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func replaceDB(server, name string) string {
	u, err := url.Parse(server)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + name
	return u.String()
}

// service is the all role served in the test, on a database of its own
// (DATABASE_URL), with its HTTP client.
type service struct {
	t     *testing.T
	base  string
	token string
}

// startAll serves the all role on a free port of ownLoopback until the test
// ends, once /healthz answers. Its pool names no application, as another
// process's would differ from this one's.
func startAll(t *testing.T, token string) *service {
	t.Helper()
	ln, err := net.Listen("tcp", ownLoopback+":0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // serve listens on it again
	t.Setenv("DATABASE_URL", dbtest.NewURL(t))
	t.Setenv("HOST", ownLoopback)
	t.Setenv("PORT", strconv.Itoa(port))
	t.Setenv("MEDIA_PATH", t.TempDir())
	t.Setenv("API_TOKEN", token)
	t.Setenv("LOG_LEVEL", "error")
	ctx, cancel := context.WithCancel(context.Background())
	cfg, err := loadConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	pool := mustPool(t, cfg.DatabaseURL)
	schema, err := db.NewSchema(pool, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, env{cfg: cfg, log: log, pool: pool, schema: schema, store: &db.Store{Pool: pool}}, rolesOf("all", false))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	s := &service{t: t, base: fmt.Sprintf("http://%s:%d", ownLoopback, port), token: token}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, _ := s.do("GET", "/healthz", ""); code == http.StatusOK {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not come up")
		}
	}
}

// do sends a request with a JSON body (none when empty) and returns the
// answer's status and body.
func (s *service) do(method, path, body string) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// jsonField is the string field name of the JSON object body.
func jsonField(t *testing.T, body, name string) string {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal([]byte(body), &obj); err != nil {
		t.Fatalf("%v: %.300s", err, body)
	}
	v, ok := obj[name].(string)
	if !ok {
		t.Fatalf("no string %q in %.300s", name, body)
	}
	return v
}
