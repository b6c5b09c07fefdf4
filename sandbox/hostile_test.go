//go:build linux

package sandbox_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vibegrapher/vibegrapher/sandbox"
)

// Hostile test code. Every assertion is made from the outside: by the server
// process, on the host, after (or while) the run happens. These tests do not
// run in parallel with one another, so a process left behind by one is not
// mistaken for another's.

func token(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// processesWith lists host processes whose command line or name (comm)
// contains marker. Markers are per test, so runs of other tests or of other
// packages (which use the sandbox too) on this machine do not count.
func processesWith(marker string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil || e.Name() == strconv.Itoa(os.Getpid()) {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		if bytes.Contains(cmdline, []byte(marker)) || bytes.Contains(comm, []byte(marker)) {
			found = append(found, e.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return found
}

// marker is a process name that fits in comm (15 bytes).
func marker(t *testing.T) string { return "vg" + token(t)[:10] }

// nameProcess makes test code name its process (and the children it forks)
// after marker (with prctl: /proc is read-only to test code).
func nameProcess(marker string) string {
	return "import ctypes\nctypes.CDLL(None).prctl(15, " + strconv.Quote(marker) + ".encode(), 0, 0, 0)\n"
}

func assertNoLeftovers(t *testing.T, markers ...string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		var left []string
		for _, m := range markers {
			left = append(left, processesWith(m)...)
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left behind: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestHostileDeleteEverything(t *testing.T) {
	// A runner of its own, with a minute to run: rmtree("/") walks the whole
	// read-only tree, which on a loaded machine took longer than the shared
	// runner's 10 s, and the run timed out before it could print "survived".
	scratch := filepath.Join(t.TempDir(), "media")
	r, err := sandbox.New(sandbox.Config{ScratchRoot: scratch, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Features().Isolated {
		t.Fatalf("sandbox not isolated on this host: %s", r.Features())
	}
	// Canaries the code knows the paths of: beside the run directories, in
	// the scratch root's parent and in the host's /tmp.
	canaries := []string{
		filepath.Join(scratch, "canary-"+token(t)),
		filepath.Join(filepath.Dir(scratch), "canary-"+token(t)),
		filepath.Join(os.TempDir(), "vg-canary-"+token(t)),
	}
	for _, c := range canaries {
		if err := os.WriteFile(c, []byte("alive"), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(c)
	}
	// Inside, /tmp is the run's own tmpfs, so the /tmp canary's path may be
	// written there; only the host's files count.
	code := "import os, shutil\nfor p in " + pyList(canaries) + `:
    for f in (os.remove, lambda p: open(p, "w").write("overwritten")):
        try:
            f(p)
            print("changed inside", p)
        except OSError as e:
            print("denied", p, e.strerror)
shutil.rmtree("/", ignore_errors=True)
for p in ["/usr/bin/python3", "/usr/lib/os-release", "/etc/passwd", "/work/script.py", "/bin"]:
    try:
        os.remove(p)
        print("removed inside", p)
    except OSError as e:
        print("denied", p, e.strerror)
print("survived" if os.path.exists("/usr/bin/python3") else "python deleted")
`
	res := r.Run(context.Background(), "", code, 0)
	t.Logf("%s\n%s\n%s", res.Status, res.Stdout, res.Stderr)
	for _, c := range canaries {
		if b, err := os.ReadFile(c); err != nil || string(b) != "alive" {
			t.Errorf("canary %s: %q %v", c, b, err)
		}
	}
	if !strings.Contains(res.Stdout, "survived") {
		t.Errorf("inside, the read-only system files were deleted")
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatalf("host python gone: %v", err)
	}
	// The machine still works.
	if res := run(t, "", "print('fine')", 0); res.Status != sandbox.StatusPassed {
		t.Fatalf("next run: %s", res.Status)
	}
}

func TestHostileWritesOutside(t *testing.T) {
	name := "vg-written-" + token(t)
	targets := []string{
		filepath.Join("/tmp", name),
		filepath.Join(os.TempDir(), name+"-2"),
		filepath.Join(sharedScratch, name),
		filepath.Join(filepath.Dir(sharedScratch), name),
		filepath.Join("/root", name),
		filepath.Join("/usr/lib", name),
		filepath.Join("/etc", name),
		filepath.Join("/", name),
		filepath.Join("/dev/shm", name),
	}
	code := "import os\nfor p in " + pyList(targets) + ":\n" +
		"    try:\n        os.makedirs(os.path.dirname(p), exist_ok=True)\n        open(p, 'w').write('x')\n        print('wrote', p)\n" +
		"    except OSError as e:\n        print('denied', p, e.strerror)\n"
	res := run(t, "", code, 0)
	if res.Status != sandbox.StatusPassed {
		t.Fatalf("status %s", res.Status)
	}
	// Inside, /tmp and /dev/shm are the run's own tmpfs; nothing may reach the host.
	for _, p := range targets {
		if _, err := os.Stat(p); err == nil {
			os.Remove(p)
			t.Errorf("%s was written on the host", p)
		}
	}
	for _, p := range []string{"/usr/lib", "/etc", "/root", "/" + name} {
		if strings.Contains(res.Stdout, "wrote "+filepath.Join(p, name)) && p != "/"+name {
			t.Errorf("inside, %s was writable", p)
		}
	}
	if strings.Contains(res.Stdout, "wrote /"+name) {
		t.Errorf("inside, / was writable")
	}
}

func pyList(items []string) string {
	var q []string
	for _, s := range items {
		q = append(q, strconv.Quote(s))
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func TestHostileReadsSecrets(t *testing.T) {
	secret := "vg-secret-" + token(t)
	t.Setenv("VG_SECRET_CANARY", secret)
	secretFile := filepath.Join(filepath.Dir(sharedScratch), "server-secret.env")
	if err := os.WriteFile(secretFile, []byte("OPENAI_API_KEY="+secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(secretFile)
	exe, _ := os.Executable()
	wd, _ := os.Getwd()
	code := `
import glob, os
print("ENV", sorted(os.environ))
hits = []
paths = ["/proc/1/environ", "/proc/self/environ", "/proc/1/cmdline", ` + strconv.Quote(secretFile) + `, ` +
		strconv.Quote(exe) + `, ` + strconv.Quote(wd+"/sandbox_test.go") + `, "/root/.bash_history", "/etc/shadow"]
paths += glob.glob("/proc/*/environ") + glob.glob("/proc/*/cmdline") + glob.glob("/proc/*/root/*") + glob.glob("/proc/*/cwd/*")
for p in paths:
    try:
        with open(p, "rb") as f:
            data = f.read()
        print("read", p, len(data))
        hits.append(data.decode("latin-1"))
    except OSError as e:
        print("denied", p, e.strerror)
print("DUMP", "|".join(hits))
`
	res := run(t, "", code, 0)
	if res.Status != sandbox.StatusPassed {
		t.Fatalf("status %s", res.Status)
	}
	if strings.Contains(res.Stdout, secret) || strings.Contains(res.Stderr, secret) {
		t.Fatalf("the secret leaked into the sandbox")
	}
	if !strings.Contains(res.Stdout, "ENV ['HOME', 'LANG', 'PATH']\n") {
		t.Errorf("environment is not exactly HOME, LANG, PATH")
	}
	for _, p := range []string{secretFile, exe, "/etc/shadow", "/root/.bash_history"} {
		if strings.Contains(res.Stdout, "read "+p+" ") {
			t.Errorf("read %s", p)
		}
	}
}

func TestHostileNetwork(t *testing.T) {
	// A listener of the "server" on the host's loopback: it must see nothing.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	code := fmt.Sprintf(`
import socket
def tcp(host, port):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.settimeout(3)
    try:
        s.connect((host, port))
        return "CONNECTED"
    except OSError as e:
        return "blocked: " + str(e)
    finally:
        s.close()
def udp(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(b"x", (host, port))
        return "SENT"
    except OSError as e:
        return "blocked: " + str(e)
    finally:
        s.close()
print("postgres", tcp("127.0.0.1", 5432))
print("listener", tcp("127.0.0.1", %d))
print("outside", tcp("1.1.1.1", 53))
print("outside6", tcp("2606:4700:4700::1111", 53))
print("dns", udp("1.1.1.1", 53))
try:
    socket.getaddrinfo("example.com", 443)
    print("resolve RESOLVED")
except OSError as e:
    print("resolve blocked:", e)
print("interfaces", [n for _, n in socket.if_nameindex()])
`, port)
	res := run(t, "", code, 0)
	if res.Status != sandbox.StatusPassed {
		t.Fatalf("status %s", res.Status)
	}
	for _, bad := range []string{"CONNECTED", "SENT", "RESOLVED"} {
		if strings.Contains(res.Stdout, bad) {
			t.Errorf("network reachable: %s", res.Stdout)
		}
	}
	if !strings.Contains(res.Stdout, "interfaces ['lo']") {
		t.Errorf("interfaces other than lo")
	}
	select {
	case <-accepted:
		t.Fatal("the host listener accepted a connection from the sandbox")
	case <-time.After(100 * time.Millisecond):
	}
}

func TestHostileForkBomb(t *testing.T) {
	t.Run("counted", func(t *testing.T) {
		m := marker(t)
		res := run(t, "", nameProcess(m)+`
import errno, os, time
n = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
except OSError as e:
    print("fork refused after", n, errno.errorcode[e.errno])
    raise SystemExit(1)
`, 0)
		if res.Status != sandbox.StatusFailed || !strings.Contains(res.Stdout, "fork refused after") || !strings.Contains(res.Stdout, "EAGAIN") {
			t.Fatalf("status %s stdout %q", res.Status, res.Stdout)
		}
		n, _ := strconv.Atoi(strings.Fields(res.Stdout)[3])
		if n >= 64 {
			t.Errorf("forked %d processes, limit 64", n)
		}
		assertNoLeftovers(t, m)
	})
	t.Run("classic", func(t *testing.T) {
		const limit = 3 * time.Second
		m := marker(t)
		// Watch the bomb from the host, which also shows that the leftover
		// check below would see its processes.
		peak, done := 0, make(chan struct{})
		go func() {
			defer close(done)
			for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				peak = max(peak, len(processesWith(m)))
			}
		}()
		start := time.Now()
		res := run(t, "", nameProcess(m)+"import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", limit)
		<-done
		t.Logf("at most %d processes of the bomb seen on the host", peak)
		if peak == 0 || peak > 64 {
			t.Errorf("saw %d processes of the bomb, want 1..64", peak)
		}
		if elapsed := time.Since(start); elapsed > limit+2*time.Second {
			t.Errorf("returned after %s", elapsed)
		}
		if res.Status == sandbox.StatusPassed {
			t.Fatalf("status %s", res.Status)
		}
		assertNoLeftovers(t, m)
	})
	// The machine is still fine.
	if res := run(t, "", "import subprocess\nprint(subprocess.run(['echo', 'fine'], capture_output=True, text=True).stdout)", 0); res.Status != sandbox.StatusPassed {
		t.Fatalf("next run: %s %s", res.Status, res.Stderr)
	}
}

func TestHostileBackgroundChild(t *testing.T) {
	marker := marker(t)
	code := fmt.Sprintf(`
import os, subprocess, time
# A plain child, a child in a new session, and a double-forked daemon.
subprocess.Popen(["%[1]s-plain", "60"], executable="/usr/bin/sleep")
p = subprocess.Popen(["%[1]s-session", "60"], executable="/usr/bin/sleep", start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/usr/bin/sleep", ["%[1]s-daemon", "60"])
    os._exit(0)
time.sleep(0.3)
print("children started")
`, marker)
	res := run(t, "", code, 0)
	if res.Status != sandbox.StatusPassed {
		t.Fatalf("status %s %s", res.Status, res.Stderr)
	}
	assertNoLeftovers(t, marker)
}

func TestHostileSignals(t *testing.T) {
	// A host process the code is told the pid of.
	victim := exec.Command("sleep", "30")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	defer victim.Process.Kill()
	code := fmt.Sprintf(`
import os, signal
def try_kill(pid, sig):
    try:
        os.kill(pid, sig)
        return "sent"
    except OSError as e:
        return e.strerror
print("ppid", os.getppid())
print("parent", try_kill(os.getppid(), signal.SIGKILL))
print("init", try_kill(1, signal.SIGKILL))
print("victim", try_kill(%d, signal.SIGKILL))
print("server", try_kill(%d, signal.SIGKILL))
if os.fork() == 0:
    try_kill(-1, signal.SIGKILL)
    try_kill(os.getppid(), signal.SIGKILL)
    os._exit(0)
os.wait()
print("all", try_kill(-1, signal.SIGKILL))
print("still here")
`, victim.Process.Pid, os.Getpid())
	res := run(t, "", code, 0)
	if !strings.Contains(res.Stdout, "still here") {
		t.Errorf("status %s: the run killed itself", res.Status)
	}
	// This process is alive (we are here), and so is the victim.
	if err := victim.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("victim died: %v", err)
	}
	if strings.Contains(res.Stdout, "victim sent") || strings.Contains(res.Stdout, "server sent") {
		t.Errorf("signals reached host processes: %s", res.Stdout)
	}
}

func TestHostileParallelRunsApart(t *testing.T) {
	r := runner(t)
	secret := "vg-run-a-" + token(t)
	a := fmt.Sprintf(`
import time
open("secret.txt", "w").write(%[1]q)
open("/tmp/secret.txt", "w").write(%[1]q)
open("/dev/shm/secret.txt", "w").write(%[1]q)
time.sleep(3)
print(open("secret.txt").read())
`, secret)
	b := fmt.Sprintf(`
import glob, os
found = []
for pattern in [%q, %q, "/proc/*/root/work/*", "/proc/*/cwd/*", "/proc/*/root/tmp/*", "/tmp/*", "/work/*", "/dev/shm/*", "/*/secret.txt", "/*/*/secret.txt"]:
    for p in glob.glob(pattern, recursive=True):
        try:
            found.append(p + "=" + open(p, errors="replace").read(200))
        except OSError as e:
            found.append(p + " denied " + e.strerror)
print(found)
print(sorted(os.listdir("/proc")))
`, sharedScratch+"/*/*", sharedScratch+"/**")
	var resA, resB sandbox.Result
	var endA, startB, endB time.Time
	doneA := make(chan struct{})
	startA := time.Now()
	go func() { defer close(doneA); resA = r.Run(context.Background(), "", a, 0); endA = time.Now() }()
	// B starts once A has written its last file and sleeps.
	if !waitUntil(doneA, 10*time.Second, func() bool { return sandboxedFileHolds("/dev/shm/secret.txt", secret) }) {
		<-doneA
		t.Fatalf("run A did not write its files: %s %q %q", resA.Status, resA.Stdout, resA.Stderr)
	}
	startB = time.Now()
	resB = r.Run(context.Background(), "", b, 0)
	endB = time.Now()
	<-doneA
	t.Logf("B ran from %s to %s after A started; A ended after %s", startB.Sub(startA), endB.Sub(startA), endA.Sub(startA))
	t.Logf("A: %s %q %q", resA.Status, resA.Stdout, resA.Stderr)
	t.Logf("B: %s %q %q", resB.Status, resB.Stdout, resB.Stderr)
	if resA.Status != sandbox.StatusPassed || resA.Stdout != secret+"\n" {
		t.Fatalf("run A: %s", resA.Status)
	}
	if resB.Status != sandbox.StatusPassed {
		t.Fatalf("run B: %s", resB.Status)
	}
	if strings.Contains(resB.Stdout, secret) {
		t.Fatal("run B read run A's files")
	}
	if !endB.Before(endA) {
		t.Errorf("run B (%s to %s) did not end while A ran (until %s)", startB.Format(time.StampMilli), endB.Format(time.StampMilli), endA.Format(time.StampMilli))
	}
}

// waitUntil polls cond until it holds (true), done is closed or the deadline
// passes (false).
func waitUntil(done <-chan struct{}, deadline time.Duration, cond func() bool) bool {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(deadline)
	for !cond() {
		select {
		case <-done:
			return cond()
		case <-timeout:
			return false
		case <-tick.C:
		}
	}
	return true
}

// sandboxedFileHolds reports whether some process sees file (a path in its own
// mount namespace) with exactly content: the host reads a run's private
// tmpfs through /proc/PID/root.
func sandboxedFileHolds(file, content string) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "root", file)); err == nil && string(b) == content {
			return true
		}
	}
	return false
}

func TestPrivileges(t *testing.T) {
	res := run(t, "", `
import os, resource
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines())
for k in ("Uid", "Gid", "Groups", "CapEff", "CapPrm", "CapBnd", "CapAmb", "NoNewPrivs"):
    print(k, status[k].split())
for name in ("AS", "CPU", "NPROC", "FSIZE", "NOFILE", "CORE"):
    print(name, resource.getrlimit(getattr(resource, "RLIMIT_" + name)))
try:
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    print("RAISED")
except (ValueError, OSError) as e:
    print("raise denied")
try:
    open("big", "wb").write(b"x" * (17 * 1024**2))
    print("BIG WRITTEN")
except OSError as e:
    print("big denied", e.strerror)
try:
    os.setuid(0)
    print("SETUID")
except OSError:
    print("setuid denied")
try:
    os.chroot("/tmp")
    print("CHROOT")
except OSError:
    print("chroot denied")
print(os.uname().nodename)
import subprocess
open("/dev/null", "w").write("x")
assert len(open("/dev/urandom", "rb").read(16)) == 16
subprocess.run(["true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
print("devices work")
`, 0)
	want := []string{
		"Uid ['1000', '1000', '1000', '1000']", "Groups []", "CapEff ['0000000000000000']", "CapPrm ['0000000000000000']",
		"CapBnd ['0000000000000000']", "CapAmb ['0000000000000000']", "NoNewPrivs ['1']",
		"AS (536870912, 536870912)", "CPU (11, 12)", "NPROC (64, 64)", "FSIZE (16777216, 16777216)", "NOFILE (256, 256)", "CORE (0, 0)",
		"raise denied", "big denied File too large", "setuid denied", "chroot denied", "sandbox\n", "devices work",
	}
	for _, w := range want {
		if !strings.Contains(res.Stdout, w) {
			t.Errorf("stdout lacks %q", w)
		}
	}
}

// Memory that no RLIMIT_AS counts (an unmapped memfd, a SysV segment) is
// refused, and the run cannot lower its processes' oom_score_adj below the
// server's: held in 64 processes, it could take the host's memory, and the
// kernel would then kill the server or the database first.
func TestHostileMemoryOutsideTheLimit(t *testing.T) {
	res := run(t, "", `
import ctypes, errno, os
try:
    fd = os.memfd_create("hog")
    os.write(fd, b"x" * (1 << 20))
    print("MEMFD")
except OSError as e:
    print("memfd refused", errno.errorcode[e.errno])
libc = ctypes.CDLL(None, use_errno=True)
if libc.shmget(0, 64 << 20, 0o1600) == -1:  # IPC_PRIVATE, IPC_CREAT | 0600
    print("shmget refused", errno.errorcode[ctypes.get_errno()])
else:
    print("SHMGET")
try:
    open("/proc/self/oom_score_adj", "w").write("0")
    print("OOM LOWERED")
except OSError as e:
    print("oom_score_adj kept", errno.errorcode[e.errno])
try:
    print("oom_score_adj", open("/proc/self/oom_score_adj").read().strip())
except OSError:
    print("oom_score_adj 1000 (no /proc)")  # a host whose /proc has masked paths (Docker) gives the run none
`, 0)
	want := []string{"memfd refused ENOSYS", "shmget refused EPERM", "oom_score_adj kept", "oom_score_adj 1000"}
	for _, w := range want {
		if !strings.Contains(res.Stdout, w) {
			t.Errorf("stdout %q lacks %q (stderr %q)", res.Stdout, w, res.Stderr)
		}
	}
}

func TestHostileNestedNamespaces(t *testing.T) {
	res := run(t, "", `
import ctypes, os, platform
libc = ctypes.CDLL(None, use_errno=True)
for name, flag in [("user", 0x10000000), ("mount", 0x20000), ("net", 0x40000000), ("pid", 0x20000000)]:
    if libc.unshare(flag) == 0:
        print(name, "CREATED")
    else:
        print(name, "denied", os.strerror(ctypes.get_errno()))
# clone(2) itself, as fork does it but in a new user namespace (SIGCHLD = 17),
# and clone3(2), whose flags live in memory.
nr = {"x86_64": (56, 435), "aarch64": (220, 435)}[platform.machine()]
pid = libc.syscall(nr[0], 0x10000000 | 17, 0, 0, 0, 0)
if pid == 0:
    os._exit(0)
if pid > 0:
    os.waitpid(pid, 0)
    print("clone CREATED")
else:
    print("clone denied", os.strerror(ctypes.get_errno()))
args = (ctypes.c_uint64 * 11)(0x10000000, 0, 0, 0, 17)
pid = libc.syscall(nr[1], args, ctypes.sizeof(args))
if pid == 0:
    os._exit(0)
if pid > 0:
    os.waitpid(pid, 0)
    print("clone3 CREATED")
else:
    print("clone3 denied", os.strerror(ctypes.get_errno()))
# Where the sandbox has its own /proc, the namespace's limit is 0 too.
if os.path.exists("/proc/sys/user/max_user_namespaces"):
    print(open("/proc/sys/user/max_user_namespaces").read().strip())
    try:
        open("/proc/sys/user/max_user_namespaces", "w").write("10")
        print("LIMIT RAISED")
    except OSError as e:
        print("limit fixed", e.strerror)
# Ordinary processes and threads still start (glibc falls back from clone3).
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
import threading
th = threading.Thread(target=lambda: print("thread ok"))
th.start()
th.join()
print("forked ok")
`, 0)
	if res.Status != sandbox.StatusPassed || strings.Contains(res.Stdout, "CREATED") || strings.Contains(res.Stdout, "RAISED") {
		t.Fatalf("status %s: %s %s", res.Status, res.Stdout, res.Stderr)
	}
	for _, w := range []string{"user denied", "clone denied Operation not permitted", "clone3 denied Function not implemented", "thread ok", "forked ok"} {
		if !strings.Contains(res.Stdout, w) {
			t.Errorf("stdout lacks %q: %s", w, res.Stdout)
		}
	}
}

// The server dies (SIGKILL, no chance to clean up): the run dies with it.
func TestHostileServerDies(t *testing.T) {
	marker := marker(t)
	server := exec.Command(os.Args[0])
	server.Env = append(os.Environ(), serverModeEnv+"="+fmt.Sprintf("import os\nos.execv('/usr/bin/sleep', [%q, '60'])\n", marker),
		serverModeEnv+"_SCRATCH="+filepath.Join(t.TempDir(), "media"))
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(processesWith(marker)) == 0 {
		if time.Now().After(deadline) {
			server.Process.Kill()
			t.Fatal("the run never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("running: %v", processesWith(marker))
	if err := server.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = server.Wait()
	assertNoLeftovers(t, marker)
}

// A process killed during a run leaves its run directory, with the
// project's code, on the host; the next one started on the same scratch
// root removes the directories of every owner whose lock is free (a dead
// process's), and leaves those of an owner whose lock is held (a live
// process's, in this container or another; pids repeat across restarts).
func TestTheRunDirectoriesOfDeadProcessesAreRemoved(t *testing.T) {
	scratch := t.TempDir()
	dirs := map[string]string{}
	for _, owner := range []string{"dead", "live"} {
		if err := os.WriteFile(filepath.Join(scratch, "run-"+owner+".lock"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		d := filepath.Join(scratch, "run-"+owner+"-123")
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "script.py"), []byte("x = 1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		dirs[owner] = d
	}
	// The live owner holds its lock, as a running process does, through a
	// descriptor of its own.
	held, err := os.Open(filepath.Join(scratch, "run-live.lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if _, err := sandbox.New(sandbox.Config{ScratchRoot: scratch, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dirs["dead"]); !os.IsNotExist(err) {
		t.Errorf("the dead owner's run directory is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(scratch, "run-dead.lock")); !os.IsNotExist(err) {
		t.Errorf("the dead owner's lock file is still there: %v", err)
	}
	if _, err := os.Stat(dirs["live"]); err != nil {
		t.Errorf("the live owner's run directory was removed: %v", err)
	}
}
