//go:build linux

package sandbox_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
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

// epollHog takes epoll watches until the kernel refuses one: 100 epoll
// instances watch one eventfd through 120 descriptor numbers each (a watch is
// a file and a number), and four holder processes keep each eventfd alive
// once the hog has closed it, so 256 descriptors per process bound nothing.
// Through ctypes: the system calls themselves, whatever Python makes of them.
const epollHog = `
import ctypes, errno, os, socket, time
libc = ctypes.CDLL(None, use_errno=True)
class Ev(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("events", ctypes.c_uint32), ("data", ctypes.c_uint64)]
ev = ctypes.byref(Ev(1, 0))
holders = []
for _ in range(4):
    a, b = socket.socketpair()
    if os.fork() == 0:
        a.close()
        held = []
        while True:
            msg, fds, _, _ = socket.recv_fds(b, 1, 1)
            if not msg:
                break
            held += fds
        os._exit(0)
    b.close()
    holders.append(a)
taken, why, eps = 0, "", []
for _ in range(100):
    fd = libc.epoll_create1(0)
    if fd < 0:
        why = "epoll_create1 " + errno.errorcode[ctypes.get_errno()]
        break
    eps.append(fd)
sent = 0
while not why:
    target = os.eventfd(0)
    numbers = [target] + [os.dup(target) for _ in range(119)]
    for ep in eps:
        for n in numbers:
            if libc.epoll_ctl(ep, 1, n, ev) != 0:
                why = "epoll_ctl " + errno.errorcode[ctypes.get_errno()]
                break
            taken += 1
        if why:
            break
    socket.send_fds(holders[sent // 200], [b"x"], [target])
    sent += 1
    for n in numbers:
        os.close(n)
print("took", taken, "epoll watches;", why, flush=True)
`

// TestHostileEpollWatches: the kernel counts epoll watches per host uid
// (fs.epoll.max_user_watches, 4 % of RAM at 184 bytes a watch: 5.49M here,
// at most 58K on a 256 MB VM), and no rlimit bounds what one run can take. A
// server that is not root shares its uid with every run, and its own epoll
// (Go's network poller) then fails for every new socket. The test server is
// root, so the run has a uid of its own; a thread of the test takes that uid
// to stand for such a server.
func TestHostileEpollWatches(t *testing.T) {
	r, err := sandbox.New(sandbox.Config{ScratchRoot: filepath.Join(t.TempDir(), "media"), Timeout: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m, ready := marker(t), "ready-"+token(t)
	hog := nameProcess(m) + epollHog + fmt.Sprintf("open('/tmp/ready', 'w').write(%q)\ntime.sleep(3)\n", ready)
	done := make(chan sandbox.Result, 1)
	go func() { done <- r.Run(context.Background(), "", hog, 0) }()
	if !waitUntil(nil, 60*time.Second, func() bool { return sandboxedFileHolds("/tmp/ready", ready) }) {
		res := <-done
		t.Fatalf("the hog did not get ready: %s %q %q", res.Status, res.Stdout, res.Stderr)
	}
	uid := uidOf(t, m)
	serverErr := addEpollWatchAs(uid)
	res := <-done
	t.Logf("hog (host uid %d): %s %q %q", uid, res.Status, res.Stdout, res.Stderr)
	if serverErr != nil {
		t.Errorf("a server of the run's uid could not watch a new socket: %v", serverErr)
	}
	if !strings.Contains(res.Stdout, "took 0 epoll watches; epoll_create1 ENOSYS") {
		t.Errorf("the run could create epoll instances: %q", res.Stdout)
	}
}

// uidOf is the host uid of a process named marker.
func uidOf(t *testing.T, marker string) int {
	t.Helper()
	for _, p := range processesWith(marker) {
		pid, _, _ := strings.Cut(p, ":")
		status, err := os.ReadFile("/proc/" + pid + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
				uid, err := strconv.Atoi(f[1])
				if err == nil && uid != 0 {
					return uid
				}
			}
		}
	}
	t.Fatalf("no process named %s", marker)
	return 0
}

// addEpollWatchAs does what Go's network poller does for a new connection
// (an epoll instance watching a socket), on a thread whose user is uid: the
// kernel charges the watch to the instance's creator. The thread is thrown
// away afterwards (its goroutine ends locked to it).
func addEpollWatchAs(uid int) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), 0); e != 0 {
			errc <- fmt.Errorf("setresuid: %w", e)
			return
		}
		ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			errc <- fmt.Errorf("epoll_create1: %w", err)
			return
		}
		defer unix.Close(ep)
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("socketpair: %w", err)
			return
		}
		defer unix.Close(fds[0])
		defer unix.Close(fds[1])
		err = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fds[0], &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fds[0])})
		if err != nil {
			err = fmt.Errorf("epoll_ctl: %w", err)
		}
		errc <- err
	}()
	return <-errc
}
