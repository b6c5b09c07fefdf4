package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
)

// reset-db drops whatever is there, migrates and seeds the sample project;
// running it twice leaves exactly one seeded project.
func TestResetDBSeedsTheSampleProject(t *testing.T) {
	url := dbtest.NewURL(t)
	t.Setenv("DATABASE_URL", url)
	t.Setenv("LOG_LEVEL", "error")
	ctx := context.Background()

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO git_repositories (id) VALUES (gen_random_uuid())`); err != nil {
		t.Fatal(err)
	}

	for range 2 {
		if err := run([]string{"reset-db"}); err != nil {
			t.Fatalf("reset-db: %v", err)
		}
	}
	// reset-db ended this session, as any other of the database.
	if conn, err = pgx.Connect(ctx, url); err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var name, slug string
	var n, repos int
	if err := conn.QueryRow(ctx, `SELECT count(*), min(name), min(slug), (SELECT count(*) FROM git_repositories) FROM projects`).Scan(&n, &name, &slug, &repos); err != nil {
		t.Fatal(err)
	}
	if n != 1 || name != db.SampleProjectName || slug != "language-triage" || repos != 1 {
		t.Fatalf("after reset-db: %d projects (%q, %q), %d repositories", n, name, slug, repos)
	}
	var id string
	if err := conn.QueryRow(ctx, `SELECT id FROM projects`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	p, err := (&db.Store{Pool: mustPool(t, url)}).GetProject(ctx, id)
	if err != nil || p.CurrentCode != domain.SampleWorkflow {
		t.Fatalf("seeded project code: %v\n%s", err, p.CurrentCode)
	}
	tests, err := (&db.Store{Pool: mustPool(t, url)}).ListTests(ctx, id)
	if err != nil || len(tests) != 1 || tests[0].Name != db.SampleTestName || !strings.Contains(tests[0].Code, "triage_agent.handoffs") {
		t.Fatalf("seeded tests: %v %+v", err, tests)
	}

	if err := run([]string{"reset-db", "--no-seed"}); err != nil {
		t.Fatal(err)
	}
	if conn, err = pgx.Connect(ctx, url); err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if n := dbtest.Count(t, conn, `SELECT count(*) FROM projects`); n != 0 {
		t.Fatalf("reset-db --no-seed left %d projects", n)
	}
}

// A service running while reset-db drops and recreates the tables goes on
// answering: its connections held plans of River's job-state type, created
// anew, and each answered one 500 ("cached plan must not change result
// type") before reset-db ended them.
func TestAServiceRunningThroughResetDBAnswers(t *testing.T) {
	s := startAll(t, "")
	submit := func() {
		t.Helper()
		code, body := s.do("POST", "/projects", `{"name":"Through a reset"}`)
		if code != http.StatusCreated {
			t.Fatalf("POST /projects: %d %.300s", code, body)
		}
		project := jsonField(t, body, "id")
		code, body = s.do("POST", "/projects/"+project+"/sessions", `{}`)
		if code != http.StatusCreated {
			t.Fatalf("POST /projects/{id}/sessions: %d %.300s", code, body)
		}
		session := jsonField(t, body, "id")
		// Every pooled connection, each with its plans of the job's insert.
		for i := range 12 {
			code, body = s.do("POST", "/sessions/"+session+"/messages", fmt.Sprintf(`{"prompt":"message %d"}`, i))
			if code != http.StatusAccepted {
				t.Fatalf("POST /sessions/{id}/messages %d: %d %.300s", i, code, body)
			}
		}
	}
	submit()
	if err := run([]string{"reset-db", "--no-seed"}); err != nil {
		t.Fatal(err)
	}
	// The pool replaces an ended connection when it has been idle for over
	// a second (pgxpool pings it); a request in flight during the reset may
	// fail, as with any restart of the database.
	time.Sleep(1100 * time.Millisecond)
	submit()
}

// The database named in DATABASE_URL is created when missing, then migrated.
func TestMigrateCreatesTheDatabase(t *testing.T) {
	ctx := context.Background()
	server := dbtest.ServerURL(t)
	name := "vgtest_created_by_migrate"
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
	dbtest.DropAtCleanup(t, server, name)

	t.Setenv("DATABASE_URL", replaceDB(server, name))
	t.Setenv("LOG_LEVEL", "error")
	if err := run([]string{"migrate"}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	pool := mustPool(t, replaceDB(server, name))
	schema, err := db.NewSchema(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Check(ctx); err != nil {
		t.Fatalf("after migrate: %v", err)
	}
}

// A command's -h prints its flags and is no failure.
func TestACommandsHelpIsNoFailure(t *testing.T) {
	for _, cmd := range []string{"api", "all", "reset-db"} {
		if err := run([]string{cmd, "-h"}); err != nil {
			t.Errorf("%s -h: %v", cmd, err)
		}
	}
}

func TestUnknownCommandFails(t *testing.T) {
	if err := run([]string{"fly-to-the-moon"}); err == nil {
		t.Fatal("unknown command accepted")
	}
	if err := run(nil); err == nil {
		t.Fatal("no command accepted")
	}
	if err := run([]string{"version"}); err != nil {
		t.Fatal(err)
	}
	// What a command would ignore is refused: `api foo --realtime` started
	// without Socket.IO, and a worker took --realtime silently.
	t.Setenv("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none") // refused before any connection
	for _, args := range [][]string{{"api", "foo", "--realtime"}, {"worker", "--realtime"}, {"migrate", "--no-seed"}} {
		if err := run(args); err == nil || strings.Contains(err.Error(), "connect") {
			t.Errorf("%v: %v", args, err)
		}
	}
}

func TestConfigRefusesWhatItWouldIgnore(t *testing.T) {
	for name, value := range map[string]string{"LOG_FORMAT": "xml", "EVENT_RETENTION": "-1h"} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, value)
			if _, err := loadConfig(context.Background()); err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("%s=%s: %v", name, value, err)
			}
		})
	}
}

// LOG_FORMAT is read whatever its case, as LOG_LEVEL is.
func TestLogFormatIgnoresCase(t *testing.T) {
	t.Setenv("LOG_FORMAT", "JSON")
	t.Setenv("LOG_LEVEL", "WARN")
	cfg, err := loadConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.LogFormat != "json" {
		t.Fatalf("LOG_FORMAT=JSON read as %q", cfg.LogFormat)
	}
}

// healthcheck asks the address the configuration binds: HOST when it names
// one, the loopback when it binds every address.
func TestHealthcheckAsksTheConfiguredAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	})}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	t.Setenv("HOST", "127.0.0.2")
	t.Setenv("PORT", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	if err := healthcheck(); err != nil {
		t.Fatalf("healthcheck of a service on HOST: %v", err)
	}
	t.Setenv("HOST", "0.0.0.0") // then the loopback, where nothing listens on that port
	if err := healthcheck(); err == nil {
		t.Fatal("healthcheck answered for a service that does not listen on 127.0.0.1")
	}
}
