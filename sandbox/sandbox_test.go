//go:build linux

package sandbox_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vibegrapher/vibegrapher/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.Main() // the test binary is also the sandbox launcher
	if code := os.Getenv(serverModeEnv); code != "" {
		serveOneRun(code)
		return
	}
	code := m.Run()
	if sharedScratch != "" {
		os.RemoveAll(filepath.Dir(sharedScratch))
	}
	os.Exit(code)
}

// serverModeEnv makes the test binary act as a server that runs one test
// case and is killed by the test meanwhile (TestHostileServerDies).
const serverModeEnv = "VG_SANDBOX_TEST_SERVE"

func serveOneRun(code string) {
	r, err := sandbox.New(sandbox.Config{ScratchRoot: os.Getenv(serverModeEnv + "_SCRATCH")})
	if err != nil {
		panic(err)
	}
	r.Run(context.Background(), "", code, 30*time.Second)
}

var (
	sharedOnce    sync.Once
	sharedRunner  *sandbox.Runner
	sharedErr     error
	sharedLog     strings.Builder
	sharedScratch string
)

// runner is one Runner for the package's tests (the probe costs ~100 ms).
func runner(t testing.TB) *sandbox.Runner {
	t.Helper()
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vg-sandbox-test-")
		if err != nil {
			sharedErr = err
			return
		}
		sharedScratch = dir + "/media"
		sharedRunner, sharedErr = sandbox.New(sandbox.Config{
			ScratchRoot: sharedScratch,
			Timeout:     10 * time.Second,
			Logger:      slog.New(slog.NewTextHandler(&lockedWriter{w: &sharedLog}, nil)),
		})
	})
	if sharedErr != nil {
		t.Fatalf("sandbox.New: %v", sharedErr)
	}
	if !sharedRunner.Features().Isolated {
		t.Fatalf("sandbox not isolated on this host: %s", sharedRunner.Features())
	}
	return sharedRunner
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func run(t testing.TB, project, test string, timeout time.Duration) sandbox.Result {
	t.Helper()
	res := runner(t).Run(context.Background(), project, test, timeout)
	t.Logf("status=%s exit=%d error=%q duration=%s\nstdout:\n%s\nstderr:\n%s", res.Status, res.ExitCode, res.Error, res.Duration, clip(res.Stdout), clip(res.Stderr))
	return res
}

func clip(s string) string {
	if len(s) > 20000 {
		return s[:1000] + "\n...\n" + s[len(s)-1000:]
	}
	return s
}

func TestFeatures(t *testing.T) {
	r := runner(t)
	t.Logf("features: %s", r.Features())
	t.Logf("log:\n%s", sharedLog.String())
}

func TestPassed(t *testing.T) {
	res := run(t, "def add(a, b):\n    return a + b\n", "assert add(2, 3) == 5\nprint('ok')\n", 0)
	if res.Status != sandbox.StatusPassed || res.ExitCode != 0 || res.Stdout != "ok\n" {
		t.Fatalf("got %s exit %d stdout %q", res.Status, res.ExitCode, res.Stdout)
	}
}
