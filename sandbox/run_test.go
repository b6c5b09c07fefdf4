//go:build linux

package sandbox_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vibegrapher/vibegrapher/sandbox"
)

// Outcomes of ordinary test code: what a user sees in the UI.
func TestRunOutcomes(t *testing.T) {
	const project = `
__all__ = ["add", "Greeter"]

def add(a, b):
    return a + b

class Greeter:
    def hello(self):
        return "hello"

hidden = "not exported"

if __name__ == "__main__":
    print("MAIN BLOCK RAN")
    raise SystemExit(7)
`
	tests := []struct {
		name       string
		project    string
		test       string
		status     sandbox.Status
		exit       int
		stdout     string   // exact, when set
		stderrHas  []string // substrings of stderr
		stderrLack []string
	}{
		{name: "passed", project: project, test: "assert add(2, 3) == 5\nprint(Greeter().hello())\n",
			status: sandbox.StatusPassed, stdout: "hello\n"},
		{name: "main block not run", project: project, test: "print(__name__)\n",
			status: sandbox.StatusPassed, stdout: "__main__\n"},
		{name: "__all__ respected", project: project, test: "print('hidden' in globals(), 'add' in globals())\n",
			status: sandbox.StatusPassed, stdout: "False True\n"},
		{name: "public names without __all__", project: "a = 1\n_b = 2\n", test: "print('a' in globals(), '_b' in globals())\n",
			status: sandbox.StatusPassed, stdout: "False False\n"[:0] + "True False\n"},
		{name: "assertion fails", project: project, test: "x = add(1, 1)\nassert x == 3, f'got {x}'\n",
			status: sandbox.StatusFailed, exit: 1,
			stderrHas:  []string{"Traceback", `File "test_case.py", line 2`, "AssertionError: got 2"},
			stderrLack: []string{"<string>", "_vg_run"}},
		{name: "exception in project code", project: "def f():\n    raise ValueError('boom')\nf()\n", test: "pass\n",
			status: sandbox.StatusFailed, exit: 1,
			stderrHas: []string{"script.py", "line 3", "ValueError: boom"}},
		{name: "exception from project function", project: "def div(a, b):\n    return a / b\n", test: "div(1, 0)\n",
			status: sandbox.StatusFailed, exit: 1,
			stderrHas: []string{`File "test_case.py", line 1`, "script.py", "ZeroDivisionError"}},
		{name: "syntax error in test code", project: project, test: "def broken(:\n    pass\n",
			status: sandbox.StatusFailed, exit: 1,
			stderrHas: []string{`File "test_case.py", line 1`, "SyntaxError"}},
		{name: "syntax error in project code", project: "def broken(:\n", test: "pass\n",
			status: sandbox.StatusFailed, exit: 1,
			stderrHas: []string{"script.py", "SyntaxError"}},
		{name: "sys.exit(0) passes", project: project, test: "import sys\nsys.exit(0)\n",
			status: sandbox.StatusPassed},
		{name: "non-zero exit fails", project: project, test: "import sys\nsys.exit(3)\n",
			status: sandbox.StatusFailed, exit: 3},
		{name: "stdout and stderr apart", project: project, test: "import sys\nprint('out')\nprint('err', file=sys.stderr)\n",
			status: sandbox.StatusPassed, stdout: "out\n", stderrHas: []string{"err\n"}},
		{name: "unicode", project: "GREETING = 'héllo wörld ✓'\n", test: "print(GREETING)\n",
			status: sandbox.StatusPassed, stdout: "héllo wörld ✓\n"},
		{name: "threads live under the memory limit", project: project,
			test:   "from concurrent.futures import ThreadPoolExecutor\nwith ThreadPoolExecutor(24) as ex:\n    print(sum(ex.map(lambda i: len([bytearray(10**5) for _ in range(50)]), range(100))))\n",
			status: sandbox.StatusPassed, stdout: "5000\n"},
		// What openai-agents' Runner.run_sync does underneath (httpx over
		// anyio over asyncio), without the network: asyncio on poll(2),
		// epoll being refused.
		{name: "asyncio streams, subprocesses and threads", project: project, test: asyncioTest,
			status: sandbox.StatusPassed, stdout: "50 HI 7 sub thread PollSelector\n"},
		{name: "may write its directory and /tmp", project: project,
			test:   "import tempfile\nopen('out.txt', 'w').write('x')\nwith tempfile.NamedTemporaryFile() as f:\n    f.write(b'y')\nprint(open('out.txt').read())\n",
			status: sandbox.StatusPassed, stdout: "x\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, tc.project, tc.test, 0)
			if res.Status != tc.status || res.ExitCode != tc.exit {
				t.Fatalf("status %s exit %d, want %s exit %d (error %q)", res.Status, res.ExitCode, tc.status, tc.exit, res.Error)
			}
			if tc.stdout != "" && res.Stdout != tc.stdout {
				t.Errorf("stdout %q, want %q", res.Stdout, tc.stdout)
			}
			for _, s := range tc.stderrHas {
				if !strings.Contains(res.Stderr, s) {
					t.Errorf("stderr lacks %q", s)
				}
			}
			for _, s := range tc.stderrLack {
				if strings.Contains(res.Stderr, s) {
					t.Errorf("stderr has %q", s)
				}
			}
			if strings.Contains(res.Stdout, "MAIN BLOCK RAN") {
				t.Error("the project's __main__ block ran")
			}
		})
	}
}

const asyncioTest = `import asyncio
async def handle(r, w):
    w.write((await r.readline()).upper())
    await w.drain()
    w.close()
async def main():
    server = await asyncio.start_unix_server(handle, "/tmp/s")
    async def ask(i):
        r, w = await asyncio.open_unix_connection("/tmp/s")
        w.write(b"hi %d\n" % i)
        await w.drain()
        line = await r.readline()
        w.close()
        return line
    replies = await asyncio.gather(*(ask(i) for i in range(50)))
    p = await asyncio.create_subprocess_exec("echo", "sub", stdout=asyncio.subprocess.PIPE)
    out, _ = await p.communicate()
    t = await asyncio.to_thread(lambda: "thread")
    await asyncio.wait_for(asyncio.sleep(0.01), 1)
    server.close()
    await server.wait_closed()
    print(len(replies), replies[7].decode().strip(), out.decode().strip(), t, type(asyncio.get_running_loop()._selector).__name__)
asyncio.run(main())
`

// streamsByName is test code writing to its output through /dev/stdout,
// /dev/stderr and /dev/fd/N opened by name, as logging configurations,
// print(file=open("/dev/stdout", "w")) and shell-outs do.
const streamsByName = `import logging, subprocess, sys
print("via sys.stdout")
with open("/dev/stdout", "w") as f:
    print("via /dev/stdout", file=f)
with open("/dev/stderr", "w") as f:
    f.write("via /dev/stderr\n")
with open("/dev/fd/1", "w") as f:
    f.write("via /dev/fd/1\n")
log = logging.getLogger("t")
log.addHandler(logging.FileHandler("/dev/stderr"))
log.error("via a logging FileHandler")
subprocess.run(["/bin/sh", "-c", "echo via a shell-out > /dev/stdout"], check=True)
print(open("/dev/stdin").read() == "")
`

// wantStreamsByName checks what a user sees of streamsByName's run.
func wantStreamsByName(t *testing.T, res sandbox.Result) {
	t.Helper()
	const stdout = "via sys.stdout\nvia /dev/stdout\nvia /dev/fd/1\nvia a shell-out\nTrue\n"
	if res.Status != sandbox.StatusPassed || res.Stdout != stdout {
		t.Errorf("status %s stdout %q, want passed with %q (stderr %q)", res.Status, res.Stdout, stdout, res.Stderr)
	}
	for _, s := range []string{"via /dev/stderr\n", "via a logging FileHandler\n"} {
		if !strings.Contains(res.Stderr, s) {
			t.Errorf("stderr %q lacks %q", res.Stderr, s)
		}
	}
}

func TestStreamsOpenedByName(t *testing.T) {
	if !runner(t).Features().Proc {
		// /dev/stdout is /proc/self/fd/1: nothing to open by name where the
		// host refuses the run a procfs (Docker's masked /proc).
		t.Skip("the run has no /proc on this host: " + runner(t).Features().String())
	}
	wantStreamsByName(t, run(t, "", streamsByName, 0))
}

func TestTimeout(t *testing.T) {
	for name, code := range map[string]string{
		"busy loop": "while True:\n    pass\n",
		"sleep":     "import time\nprint('before', flush=True)\ntime.sleep(3600)\n",
	} {
		t.Run(name, func(t *testing.T) {
			const limit = 2 * time.Second
			start := time.Now()
			res := run(t, "", code, limit)
			elapsed := time.Since(start)
			if res.Status != sandbox.StatusTimeout || !strings.Contains(res.Error, "timed out") {
				t.Fatalf("status %s error %q, want timeout", res.Status, res.Error)
			}
			if elapsed > limit+2*time.Second {
				t.Errorf("returned after %s, limit %s", elapsed, limit)
			}
			t.Logf("returned %s after a %s limit", elapsed-limit, limit)
			if name == "sleep" && res.Stdout != "before\n" {
				t.Errorf("output before the timeout lost: %q", res.Stdout)
			}
		})
	}
}

func TestTimeoutCappedByConfig(t *testing.T) {
	// Config.Timeout is 10 s in these tests; a longer request is cut to it.
	res := run(t, "", "import time\ntime.sleep(1)\n", time.Hour)
	if res.Status != sandbox.StatusPassed {
		t.Fatalf("status %s", res.Status)
	}
}

func TestMemoryLimit(t *testing.T) {
	for name, code := range map[string]string{
		"one huge allocation":  "x = bytearray(2 * 1024**3)\n",
		"growing list":         "x = []\nwhile True:\n    x.append(bytearray(10 * 1024**2))\n",
		"caught and re-raised": "try:\n    x = ' ' * (3 * 1024**3)\nexcept MemoryError:\n    raise\n",
	} {
		t.Run(name, func(t *testing.T) {
			res := run(t, "", code, 0)
			if res.Status != sandbox.StatusError || res.Error != "memory limit exceeded (512 MB)" {
				t.Fatalf("status %s error %q, want error naming memory", res.Status, res.Error)
			}
			if !strings.Contains(res.Stderr, "MemoryError") {
				t.Errorf("stderr lacks the MemoryError traceback")
			}
		})
	}
	// Under the limit is fine.
	if res := run(t, "", "x = bytearray(200 * 1024**2)\nprint(len(x))\n", 0); res.Status != sandbox.StatusPassed {
		t.Fatalf("200 MB: status %s", res.Status)
	}
}

func TestOutputLimit(t *testing.T) {
	const limit = 64 << 10
	marker := "\n[output truncated: more than 65536 bytes]\n"
	t.Run("finite flood keeps its status", func(t *testing.T) {
		res := run(t, "", "import sys\nfor i in range(20000):\n    print('line', i)\n    print('err', i, file=sys.stderr)\n", 0)
		if res.Status != sandbox.StatusPassed {
			t.Fatalf("status %s", res.Status)
		}
		if !res.StdoutTruncated || !res.StderrTruncated {
			t.Fatalf("truncated flags %v %v", res.StdoutTruncated, res.StderrTruncated)
		}
		for _, s := range []string{res.Stdout, res.Stderr} {
			if len(s) != limit+len(marker) || !strings.HasSuffix(s, marker) {
				t.Errorf("len %d, suffix %q", len(s), s[len(s)-60:])
			}
		}
		if !strings.HasPrefix(res.Stdout, "line 0\nline 1\n") {
			t.Errorf("the start of the output is not kept")
		}
	})
	t.Run("endless flood", func(t *testing.T) {
		res := run(t, "", "while True:\n    print('x' * 1000)\n", 2*time.Second)
		if res.Status != sandbox.StatusTimeout || !res.StdoutTruncated || len(res.Stdout) != limit+len(marker) {
			t.Fatalf("status %s truncated %v len %d", res.Status, res.StdoutTruncated, len(res.Stdout))
		}
	})
	t.Run("failure keeps its status", func(t *testing.T) {
		res := run(t, "", "print('y' * 100000)\nassert False\n", 0)
		if res.Status != sandbox.StatusFailed || !res.StdoutTruncated || !strings.Contains(res.Stderr, "AssertionError") {
			t.Fatalf("status %s truncated %v", res.Status, res.StdoutTruncated)
		}
	})
}

func TestCanceledByCaller(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	res := runner(t).Run(ctx, "", "import time\ntime.sleep(60)\n", 0)
	if res.Status != sandbox.StatusError || !strings.HasPrefix(res.Error, "canceled") {
		t.Fatalf("status %s error %q after %s", res.Status, res.Error, res.Duration)
	}
}

func TestConcurrentRuns(t *testing.T) {
	r := runner(t)
	const workers, each = 6, 4
	errs := make(chan string, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				want := fmt.Sprintf("%d-%d", w, i)
				res := r.Run(context.Background(), "ID = "+strconv.Quote(want)+"\n", "import time\ntime.sleep(0.05)\nprint(ID)\n", 0)
				if res.Status != sandbox.StatusPassed || res.Stdout != want+"\n" {
					errs <- fmt.Sprintf("%s: %s %q %q %q", want, res.Status, res.Stdout, res.Stderr, res.Error)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestAlreadyCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res := runner(t).Run(ctx, "", "pass", 0); res.Status != sandbox.StatusError || !strings.HasPrefix(res.Error, "canceled") {
		t.Fatalf("got %s %q", res.Status, res.Error)
	}
}
