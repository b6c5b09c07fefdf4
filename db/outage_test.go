package db_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// syncBuffer is a log sink safe for the watch's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestOutageIsOneWarningNotOnePerRetry(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Nothing listens on port 1: the database is down from the start.
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var out syncBuffer
	base := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	w := db.WatchOutages(ctx, pool, base, time.Hour)
	log := slog.New(w.Handler(base.Handler()))
	for range 50 {
		log.Error("producer: Error fetching jobs", "err", "failed to connect to `user=postgres`: connect: connection refused")
	}
	log.Warn("emit job_status", "error", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"))
	got := out.String()
	if n := strings.Count(got, "\n"); n != 1 || !strings.Contains(got, "level=WARN msg=\"database unreachable") {
		t.Fatalf("an outage logged %d lines, want the watch's one warning:\n%s", n, got)
	}
	if !w.Down() {
		t.Fatal("the watch does not say the database is down")
	}
	// A panic during the outage is a bug of its own: it is not quieted.
	log.Error("jobexecutor.JobExecutor: panic recovery; possible bug with Worker", "panic_val", "nil map")
	if got := out.String(); !strings.Contains(got, "level=ERROR msg=\"jobexecutor.JobExecutor: panic recovery") {
		t.Fatalf("a panic during an outage was quieted:\n%s", got)
	}
}

func TestWarningsPassWhileTheDatabaseIsUp(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := dbtest.New(t)
	var out syncBuffer
	base := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	w := db.WatchOutages(ctx, pool, base, time.Hour)
	log := slog.New(w.Handler(base.Handler()))
	// One killed connection is not an outage: its warning is kept.
	log.Warn("realtime: LISTEN connection lost; reconnecting", "error", "conn closed")
	log.Error("request failed", "error", "boom")
	got := out.String()
	if !strings.Contains(got, "level=WARN msg=\"realtime: LISTEN connection lost") || !strings.Contains(got, "level=ERROR msg=\"request failed\"") ||
		strings.Contains(got, "unreachable") {
		t.Fatalf("log = %s", got)
	}
}
