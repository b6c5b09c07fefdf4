package faults

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/vibegrapher once per test process.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vgfaults-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "vibegrapher")
		cmd := exec.Command("go", "build", "-o", binPath, "../cmd/vibegrapher")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// logLine is one line a role wrote to stderr, with when the suite read it.
type logLine struct {
	at    time.Time
	level string
	msg   string
	raw   string
}

// role is one running process of the binary.
type role struct {
	t    testing.TB
	name string // "api", "worker-1", …
	cmd  *exec.Cmd
	done chan struct{}

	mu    sync.Mutex
	lines []logLine
}

// startRole starts `vibegrapher <args>` with env added to the suite's base
// environment.
func startRole(t testing.TB, name string, env []string, args ...string) *role {
	t.Helper()
	r := &role{t: t, name: name, done: make(chan struct{})}
	r.cmd = exec.Command(binary(t), args...)
	r.cmd.Env = append(append(os.Environ(), "LOG_FORMAT=json", "LOG_LEVEL=info"), env...)
	r.cmd.Dir = t.TempDir()
	stderr, err := r.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stdout = nil
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var rec struct {
				Level string `json:"level"`
				Msg   string `json:"msg"`
			}
			_ = json.Unmarshal(sc.Bytes(), &rec)
			r.mu.Lock()
			r.lines = append(r.lines, logLine{at: time.Now(), level: rec.Level, msg: rec.Msg, raw: sc.Text()})
			r.mu.Unlock()
		}
		_ = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		if r.alive() {
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

func (r *role) pid() int { return r.cmd.Process.Pid }

func (r *role) alive() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// kill9 kills the process at once, as the OOM killer or a lost host would.
func (r *role) kill9() {
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

// term sends SIGTERM, as docker stop and fly do, without waiting.
func (r *role) term() { _ = r.cmd.Process.Signal(syscall.SIGTERM) }

// wait waits for the process to exit, up to d.
func (r *role) wait(d time.Duration) bool {
	select {
	case <-r.done:
		return true
	case <-time.After(d):
		return false
	}
}

// waitLog waits for a line containing s, up to d.
func (r *role) waitLog(s string, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		r.mu.Lock()
		for _, l := range r.lines {
			if strings.Contains(l.raw, s) {
				r.mu.Unlock()
				return true
			}
		}
		r.mu.Unlock()
		if !r.alive() {
			return false
		}
	}
	return false
}

// linesBetween returns the lines read in [from, to].
func (r *role) linesBetween(from, to time.Time) []logLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []logLine
	for _, l := range r.lines {
		if !l.at.Before(from) && !l.at.After(to) {
			out = append(out, l)
		}
	}
	return out
}

// tail is the last n lines, for failure messages.
func (r *role) tail(n int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, l := range r.lines[max(0, len(r.lines)-n):] {
		b.WriteString(r.name + ": " + l.raw + "\n")
	}
	return b.String()
}

// TestMain removes the binary the suite built.
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}
