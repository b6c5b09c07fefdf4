package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vibegrapher/vibegrapher/api"
)

// A client that starts a request body and never finishes it neither holds
// a shutdown past SHUTDOWN_GRACE nor makes it fail (it exited 1 after the
// grace), and is answered 408 once the body's time is up.
func TestAStalledRequestBodyHoldsNeitherItsConnectionNorAShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", ownLoopback+":0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := Config{Host: ownLoopback, Port: port, ShutdownGrace: 300 * time.Millisecond}
	srv := api.New(api.Options{Log: slog.New(slog.DiscardHandler), BodyTimeout: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- listen(ctx, env{cfg: cfg, log: slog.New(slog.DiscardHandler)}, srv.Handler()) }()

	dial := func() net.Conn {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err == nil {
				return c
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
		}
	}
	stalled := func() net.Conn {
		c := dial()
		if _, err := io.WriteString(c, "POST /projects HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
			t.Fatal(err)
		}
		return c
	}

	// The body's time runs out: 408, and the connection is let go.
	c := stalled()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	if res.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("a stalled body = %d", res.StatusCode)
	}
	c.Close()

	// A shutdown with a body still stalled ends at its grace, without error.
	c = stalled()
	defer c.Close()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("listen after the shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the shutdown waited for the stalled client")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(c); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("the stalled connection after the shutdown: %q %v", b, err)
	}
}

// ownLoopback is the address these tests serve on. They pick a free port,
// close it, and the code under test listens on it again: on 127.0.0.1 a test
// server of another package running meanwhile could take the port in
// between (GET /metrics once answered another package's 404), and none of
// them listens on this address of the loopback.
const ownLoopback = "127.0.0.3"
