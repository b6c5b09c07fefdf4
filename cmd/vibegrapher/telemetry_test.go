package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vibegrapher/vibegrapher/telemetry"
)

// The worker role's metrics listener serves /metrics and /debug/pprof/,
// behind API_TOKEN when it is set.
func TestWorkerMetricsListener(t *testing.T) {
	tel, err := telemetry.New(context.Background(), telemetry.Config{Role: "worker"})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	ln, err := net.Listen("tcp", ownLoopback+":0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // serveMetrics listens on it again

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	e := env{cfg: Config{MetricsAddr: addr, APIToken: "s3cret"}, log: slog.New(slog.DiscardHandler), tel: tel}
	go func() { done <- serveMetrics(ctx, e) }()

	get := func(path, token string) (int, string) {
		t.Helper()
		var res *http.Response
		for deadline := time.Now().Add(10 * time.Second); ; {
			req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			res, err = http.DefaultClient.Do(req)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond) // the listener is starting
		}
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/goroutine?debug=1"} {
		if code, _ := get(path, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401", path, code)
		}
	}
	if code, body := get("/metrics", "s3cret"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Errorf("GET /metrics with the token: %d %.200s", code, body)
	}
	if code, body := get("/debug/pprof/goroutine?debug=1", "s3cret"); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Errorf("GET /debug/pprof/goroutine with the token: %d %.200s", code, body)
	}
	if code, _ := get("/projects", "s3cret"); code != http.StatusNotFound {
		t.Errorf("GET /projects on the metrics listener: %d, want 404", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// `vibegrapher all` wires telemetry into every part: /metrics on PORT shows
// the process's role, the pool, and the HTTP request that asked.
func TestAllRoleServesMetrics(t *testing.T) {
	s := startAll(t, "s3cret")
	get := func(path string) (int, string) {
		t.Helper()
		return s.do("GET", path, "")
	}
	get("/projects")
	code, body := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %.300s", code, body)
	}
	for _, want := range []string{
		`vibegrapher_role="all"`,
		`db_client_connection_max{db_client_connection_pool_name="main"`,
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/projects"`,
		`socketio_connections{`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, _ := get("/debug/pprof/"); code != http.StatusOK {
		t.Errorf("GET /debug/pprof/: %d", code)
	}
}
