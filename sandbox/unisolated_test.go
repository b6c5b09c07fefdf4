//go:build linux

package sandbox_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vibegrapher/vibegrapher/sandbox"
)

// A host without user namespaces (a Docker container under the default
// seccomp profile): runs are refused unless AllowUnisolated.

func TestUnavailableWithoutNamespaces(t *testing.T) {
	var log strings.Builder
	r, err := sandbox.NewWithoutNamespaces(sandbox.Config{
		ScratchRoot: filepath.Join(t.TempDir(), "media"),
		Logger:      slog.New(slog.NewTextHandler(&lockedWriter{w: &log}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("features: %s\nlog: %s", r.Features(), log.String())
	if r.Features().Isolated || r.Features().UserNS {
		t.Fatalf("features %s", r.Features())
	}
	res := r.Run(context.Background(), "", "print('hi')", 0)
	want := "sandbox unavailable: user namespace; set SANDBOX_ALLOW_UNISOLATED=true for development only"
	if res.Status != sandbox.StatusError || res.Error != want {
		t.Fatalf("got %s %q", res.Status, res.Error)
	}
	if !strings.Contains(log.String(), "level=ERROR") || !strings.Contains(log.String(), want) {
		t.Errorf("the server does not say so at start")
	}
}

func TestUnisolatedTier(t *testing.T) {
	var log strings.Builder
	dir := t.TempDir()
	r, err := sandbox.NewWithoutNamespaces(sandbox.Config{
		ScratchRoot:     filepath.Join(dir, "media"),
		AllowUnisolated: true,
		Timeout:         5 * time.Second,
		Logger:          slog.New(slog.NewTextHandler(&lockedWriter{w: &log}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("features: %s\nlog: %s", r.Features(), log.String())
	if !strings.Contains(log.String(), "SANDBOX NOT ISOLATED") {
		t.Errorf("not logged loudly")
	}
	ctx := context.Background()
	t.Run("outcomes", func(t *testing.T) {
		if res := r.Run(ctx, "def f():\n    return 1\n", "assert f() == 1\nprint('ok')", 0); res.Status != sandbox.StatusPassed || res.Stdout != "ok\n" {
			t.Errorf("pass: %s %q %q", res.Status, res.Stdout, res.Stderr)
		}
		if res := r.Run(ctx, "", "assert False", 0); res.Status != sandbox.StatusFailed || !strings.Contains(res.Stderr, "AssertionError") {
			t.Errorf("fail: %s %q", res.Status, res.Stderr)
		}
		if res := r.Run(ctx, "", "x = bytearray(2 * 1024**3)", 0); res.Status != sandbox.StatusError || !strings.Contains(res.Error, "memory") {
			t.Errorf("memory: %s %q", res.Status, res.Error)
		}
		if res := r.Run(ctx, "", "while True: pass", time.Second); res.Status != sandbox.StatusTimeout {
			t.Errorf("timeout: %s", res.Status)
		}
		wantStreamsByName(t, r.Run(ctx, "", streamsByName, 0))
	})
	t.Run("limits still hold", func(t *testing.T) {
		secret := filepath.Join(dir, "server-secret")
		if err := os.WriteFile(secret, []byte("s3cret"), 0o644); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		code := fmt.Sprintf(`
import os, socket
print("uid", os.getuid(), sorted(os.environ))
def attempt(name, f):
    try:
        f()
        print(name, "ALLOWED")
    except OSError as e:
        print(name, "denied", e.strerror)
attempt("read", lambda: open(%q).read())
attempt("write", lambda: open(%q, "w").write("x"))
attempt("tcp", lambda: socket.create_connection(("127.0.0.1", %d), timeout=2))
attempt("kill", lambda: os.kill(%d, 0))
open("mine.txt", "w").write("fine")
print("own directory writable")
`, secret, filepath.Join(dir, "written"), ln.Addr().(*net.TCPAddr).Port, os.Getpid())
		res := r.Run(ctx, "", code, 0)
		t.Logf("%s %s %s", res.Status, res.Stdout, res.Stderr)
		if res.Status != sandbox.StatusPassed || !strings.Contains(res.Stdout, "own directory writable") {
			t.Fatalf("status %s", res.Status)
		}
		if !strings.Contains(res.Stdout, "['HOME', 'LANG', 'PATH']") {
			t.Errorf("environment not clean")
		}
		if _, err := os.Stat(filepath.Join(dir, "written")); err == nil {
			t.Errorf("wrote outside its directory")
		}
		if strings.Contains(res.Stdout, "ALLOWED") && os.Getuid() == 0 {
			t.Errorf("an access was allowed: %s", res.Stdout)
		}
	})
}
