//go:build linux

package sandbox_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vibegrapher/vibegrapher/sandbox"
)

// quotaLib takes and checks what the kernel counts per user rather than per
// process: the pipe buffer quota (fs.pipe-user-pages-soft) and inotify
// instances (fs.inotify.max_user_instances).
const quotaLib = `
import ctypes, errno, fcntl, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
F_SETPIPE_SZ, F_GETPIPE_SZ = 1031, 1032
def hog_pipes():
    held = []
    while True:
        r, w = os.pipe()
        held += [r, w]
        try:
            fcntl.fcntl(w, F_SETPIPE_SZ, 1 << 20)
        except OSError as e:
            print("pipes: growing refused after", len(held) // 2 - 1, "MiB", errno.errorcode[e.errno]); break
    return held
def hog_inotify():
    held = []
    while True:
        fd = libc.inotify_init1(0)
        if fd < 0:
            print("inotify: refused after", len(held), errno.errorcode[ctypes.get_errno()]); break
        held.append(fd)
    return held
def check():
    r, w = os.pipe()
    print("pipe size", fcntl.fcntl(w, F_GETPIPE_SZ))
    fd = libc.inotify_init1(0)
    print("inotify", "ok" if fd >= 0 else errno.errorcode[ctypes.get_errno()])
`

// TestHostileQuotasApart: a run that takes the per-user quotas it can reach
// leaves a run beside it (and the server) their pipes and inotify.
func TestHostileQuotasApart(t *testing.T) {
	r := runner(t)
	ready := "ready-" + token(t)
	hog := quotaLib + fmt.Sprintf(`
for hog in (hog_pipes, hog_inotify):
    if os.fork() == 0:
        held = hog()
        sys.stdout.flush()
        time.sleep(10)
        os._exit(0)
time.sleep(1)
open("/tmp/ready", "w").write(%q)
time.sleep(5)
`, ready)
	done := make(chan sandbox.Result, 1)
	go func() { done <- r.Run(context.Background(), "", hog, 0) }()
	if !waitUntil(nil, 10*time.Second, func() bool { return sandboxedFileHolds("/tmp/ready", ready) }) {
		res := <-done
		t.Fatalf("the hog did not get ready: %s %q %q", res.Status, res.Stdout, res.Stderr)
	}
	other := run(t, "", quotaLib+"check()\n", 0)
	// The server's own user: its inotify instances are counted with every
	// run's.
	fd, serverErr := unix.InotifyInit1(unix.IN_CLOEXEC)
	if serverErr == nil {
		unix.Close(fd)
	}
	hogRes := <-done
	t.Logf("hog: %s %q %q", hogRes.Status, hogRes.Stdout, hogRes.Stderr)
	if !strings.Contains(hogRes.Stdout, "pipes: growing refused") || !strings.Contains(hogRes.Stdout, "inotify: refused") {
		t.Fatalf("the hog did not reach the quotas: %q", hogRes.Stdout)
	}
	if other.Status != sandbox.StatusPassed {
		t.Fatalf("the other run: %s", other.Status)
	}
	if !strings.Contains(other.Stdout, "inotify ok") {
		t.Errorf("the other run had no inotify instance left: %q", other.Stdout)
	}
	if serverErr != nil {
		t.Errorf("the server had no inotify instance left: %v", serverErr)
	}
	if os.Getuid() != 0 {
		// Every run is the server's own uid: they share its pipe quota.
		t.Logf("not root: runs share the pipe quota (%s)", r.Features().RunIDs)
		return
	}
	if !strings.Contains(other.Stdout, "pipe size 65536") {
		t.Errorf("the other run's pipes shrank: %q (run uids %s)", other.Stdout, r.Features().RunIDs)
	}
}
