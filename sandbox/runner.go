//go:build linux

package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Runner runs test cases. It is safe for concurrent use; every run gets its
// own namespaces, directory and limits.
type Runner struct {
	cfg         Config
	python      string
	binds       []string // interpreter directories shown read-only
	scratchRoot string
	owner       string   // names its run directories (claimScratch)
	ownerLock   *os.File // held for the process's life
	features    Features
	isolated    bool   // run in namespaces (else the unisolated tier)
	unavailable string // when set, Run fails with it
	hostUID     int    // the host uid and gid the run's user maps to, unless runIDs
	hostGID     int
	runIDs      *runIDs // when set, each run at once gets its own host ids instead

	withoutNamespaces bool // tests: probe as if the host had no user namespaces
	inst              *instruments
}

// tier selects how a run is confined.
type tier int

const (
	tierIsolated   tier = iota // user, pid, net, mount, ipc and uts namespaces + rlimits
	tierUnisolated             // rlimits (+ Landlock, + an unprivileged uid when root)
)

const cloneFlags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET |
	syscall.CLONE_NEWNS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS

// New resolves the interpreter, prepares the scratch root and probes once
// which isolation this host offers, by running probe programs and checking
// from the outside what they could and could not do. It fails only when no
// run could work at all (no interpreter, no scratch root); a host that cannot
// isolate gives a Runner whose runs fail with "sandbox unavailable" (or, with
// AllowUnisolated, run with rlimits only).
func New(cfg Config) (*Runner, error) {
	return newRunner(cfg, false)
}

// newRunner is New; withoutNamespaces makes the probe act as on a host
// without user namespaces (for tests of the other tiers).
func newRunner(cfg Config, withoutNamespaces bool) (*Runner, error) {
	cfg = cfg.withDefaults()
	log := cfg.Logger
	python, note, err := resolvePython(cfg.Python)
	if err != nil {
		return nil, err
	}
	if note != "" {
		log.Info("sandbox: " + note)
	}
	scratch, err := filepath.Abs(cfg.ScratchRoot)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox scratch root: %w", err)
	}
	if err := os.Chmod(scratch, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox scratch root: %w", err)
	}
	if n := removeDeadRuns(scratch); n > 0 {
		log.Info("sandbox: removed the run directories of processes that died during their runs", "dirs", n)
	}
	owner, ownerLock, err := claimScratch(scratch)
	if err != nil {
		return nil, err
	}
	info, err := queryPython(python)
	if err != nil {
		return nil, err
	}
	binds, refused := interpreterDirs(python, info, scratch)
	if len(refused) > 0 {
		log.Warn("sandbox: interpreter directories not shown to test code (they would expose the scratch root or the whole file system)", "dirs", refused)
	}
	r := &Runner{cfg: cfg, python: python, binds: binds, scratchRoot: scratch, owner: owner, ownerLock: ownerLock,
		withoutNamespaces: withoutNamespaces, inst: newInstruments(cfg.Meter, cfg.Tracer)}
	r.hostUID, r.hostGID = os.Getuid(), os.Getgid()
	if r.hostUID == 0 {
		// Never run test code as host root: RLIMIT_NPROC does not apply to
		// it, and it would own whatever it could reach.
		r.hostUID, r.hostGID = sharedRunID, sharedRunID
		if mappable("/proc/self/uid_map", runUIDFirst, runUIDCount) && mappable("/proc/self/gid_map", runUIDFirst, runUIDCount) {
			r.runIDs = newRunIDs(runUIDFirst, runUIDCount)
		}
	}
	r.features = r.probe(info)
	r.features.Python = python + " " + info.Version
	r.features.RunIDs = runIDsText(r.runIDs, r.hostUID)
	switch {
	case r.features.Isolated:
		r.isolated = true
		log.Info("sandbox: " + r.features.String())
	case cfg.AllowUnisolated:
		log.Error("SANDBOX NOT ISOLATED: test code runs with rlimits only (SANDBOX_ALLOW_UNISOLATED=true); never use this in production",
			"missing", r.features.Missing, "features", r.features.String())
	default:
		r.unavailable = fmt.Sprintf("sandbox unavailable: %s; set SANDBOX_ALLOW_UNISOLATED=true for development only", r.features.missingText())
		log.Error("sandbox: "+r.unavailable, "features", r.features.String())
	}
	return r, nil
}

// Features says which isolation this host offers, as probed by New.
func (r *Runner) Features() Features { return r.features }

// Python is the absolute path of the interpreter runs use.
func (r *Runner) Python() string { return r.python }

// Run executes testCode against projectCode (see the package documentation)
// and waits for it. timeout <= 0 or above Config.Timeout means Config.Timeout.
// ctx cancels the run (status error "canceled").
func (r *Runner) Run(ctx context.Context, projectCode, testCode string, timeout time.Duration) (res Result) {
	ctx, observed := r.inst.observe(ctx)
	defer func() { observed(res) }()
	if timeout <= 0 || timeout > r.cfg.Timeout {
		timeout = r.cfg.Timeout
	}
	if r.unavailable != "" {
		return Result{Status: StatusError, ExitCode: -1, Error: r.unavailable}
	}
	if err := ctx.Err(); err != nil {
		return Result{Status: StatusError, ExitCode: -1, Error: "canceled: " + err.Error()}
	}
	t := tierUnisolated
	if r.isolated {
		t = tierIsolated
	}
	return r.run(ctx, projectCode, testCode, timeout, t)
}

func (r *Runner) run(ctx context.Context, projectCode, testCode string, timeout time.Duration, t tier) Result {
	start := time.Now()
	res := Result{ExitCode: -1}
	fail := func(err error) Result {
		res.Status, res.Error, res.Duration = StatusError, "sandbox failure: "+err.Error(), time.Since(start)
		return res
	}
	ids := hostIDs{r.hostUID, r.hostGID}
	if r.runIDs != nil {
		id, err := r.runIDs.acquire(ctx)
		if err != nil {
			res.Status, res.Error, res.Duration = StatusError, "canceled: "+err.Error(), time.Since(start)
			return res
		}
		// Released after the run's directory is gone and its processes
		// with it (the kernel reaps a pid namespace before its pid 1).
		defer r.runIDs.release(id)
		ids = hostIDs{id, id}
	}
	dir, err := os.MkdirTemp(r.scratchRoot, "run-"+r.owner+"-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	for name, code := range map[string]string{"script.py": projectCode, "test_case.py": testCode} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(code), 0o600); err != nil {
			return fail(err)
		}
	}
	if t == tierUnisolated && os.Getuid() == 0 {
		// The run will be an unprivileged uid; let it into its directory, only.
		for _, p := range []string{dir, filepath.Join(dir, "script.py"), filepath.Join(dir, "test_case.py")} {
			if err := os.Chown(p, ids.uid, ids.gid); err != nil {
				return fail(err)
			}
		}
	}

	spec := r.spec(dir, timeout, t, ids)
	stdout, stderr := newCappedBuffer(r.cfg.OutputLimit), newCappedBuffer(r.cfg.OutputLimit)
	facts := r.launch(ctx, spec, t, ids, timeout, stdout, stderr)

	res.Duration = time.Since(start)
	res.Stdout, res.StdoutTruncated = stdout.text()
	res.Stderr, res.StderrTruncated = stderr.text()
	facts.stderr, facts.stderrCut = res.Stderr, res.StderrTruncated
	facts.timeout, facts.cpuLimit, facts.memoryMB = timeout, r.cpuLimit(timeout), r.cfg.MemoryMB
	res.Status, res.ExitCode, res.Error = classify(facts)
	return res
}

// launch starts the launcher, waits for it and collects how it ended.
func (r *Runner) launch(ctx context.Context, spec launchSpec, t tier, ids hostIDs, timeout time.Duration, stdout, stderr io.Writer) exitFacts {
	var facts exitFacts
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	arg, err := json.Marshal(spec)
	if err != nil {
		facts.startErr = err
		return facts
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		facts.startErr = err
		return facts
	}
	defer statusR.Close()
	outR, outW, err := r.outputPipe(ids)
	if err != nil {
		statusW.Close()
		facts.startErr = err
		return facts
	}
	defer outR.Close()
	errR, errW, err := r.outputPipe(ids)
	if err != nil {
		statusW.Close()
		outW.Close()
		facts.startErr = err
		return facts
	}
	defer errR.Close()

	cmd := exec.CommandContext(runCtx, "/proc/self/exe")
	cmd.Args = []string{launcherArg0, string(arg)}
	cmd.Env = []string{launcherEnv + "=1"}
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.ExtraFiles = []*os.File{statusW}
	cmd.SysProcAttr = r.sysProcAttr(t, ids)
	// Killing pid 1 of the run's pid namespace kills every process in it;
	// the process group covers the unisolated tier.
	cmd.Cancel = func() error {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return cmd.Process.Kill()
	}
	cmd.WaitDelay = outputDrainDelay

	// The parent-death signal fires when the thread that forked the launcher
	// ends; keep that thread to this goroutine until the run is over.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err = cmd.Start()
	statusW.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		facts.startErr = err
		return facts
	}
	launchErr := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(statusR, 4096))
		launchErr <- string(b)
	}()
	copied := make(chan struct{}, 2)
	for _, c := range []struct {
		dst io.Writer
		src *os.File
	}{{stdout, outR}, {stderr, errR}} {
		go func() {
			_, _ = io.Copy(c.dst, c.src)
			copied <- struct{}{}
		}()
	}
	waitErr := cmd.Wait()
	facts.launchErr = <-launchErr
	// Output pipes held open by a stray process (unisolated tier only) must
	// not hold up the result.
	drainBy := time.Now().Add(outputDrainDelay)
	_ = outR.SetReadDeadline(drainBy)
	_ = errR.SetReadDeadline(drainBy)
	<-copied
	<-copied
	if t == tierUnisolated {
		// Without a pid namespace, this is the best effort at strays.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if st := cmd.ProcessState; st != nil {
		facts.haveStatus = true
		facts.waitStatus = st.Sys().(syscall.WaitStatus)
		facts.cpu = st.UserTime() + st.SystemTime()
	} else if waitErr != nil {
		facts.startErr = waitErr
	}
	if runCtx.Err() != nil {
		facts.killedByUs = true
		if ctx.Err() != nil {
			facts.callerErr = ctx.Err()
		}
	}
	return facts
}

// outputDrainDelay is how long output may still arrive after the run's first
// process ended.
const outputDrainDelay = 500 * time.Millisecond

// outputPipe is a pipe for the run's stdout or stderr, the write end for the
// run. The run's user owns it: a program opens it again by name too
// (/dev/stdout is /proc/self/fd/1, which reopens the pipe itself, mode 0600),
// and a server running as root is unmapped in the run's user namespace, so a
// pipe left to it could not be opened. Nothing else of the host is given.
func (r *Runner) outputPipe(ids hostIDs) (read, write *os.File, err error) {
	read, write, err = os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	if ids.uid != os.Getuid() || ids.gid != os.Getgid() {
		// A root without CAP_CHOWN keeps the pipe: the run still writes to
		// its descriptors, only not to /dev/stdout by name.
		_ = write.Chown(ids.uid, ids.gid)
	}
	return read, write, nil
}

// hostIDs are the host uid and gid a run's user is.
type hostIDs struct{ uid, gid int }

// sysProcAttr makes the launcher's namespaces. The run's user is uid/gid 1000
// inside and ids outside, an unprivileged host id: the server's own when it
// is not root, the run's own from a range when it is (runids.go).
func (r *Runner) sysProcAttr(t tier, ids hostIDs) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if t == tierIsolated {
		a.Cloneflags = cloneFlags
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: innerUID, HostID: ids.uid, Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: innerGID, HostID: ids.gid, Size: 1}}
		// Only a privileged parent may allow setgroups, which the launcher
		// needs to shed root's supplementary groups.
		a.GidMappingsEnableSetgroups = os.Getuid() == 0
		// The launcher is not root in its namespace, so the capabilities the
		// namespace gives it would be lost at its execve; carry the few it
		// needs as ambient ones. It drops all of them before Python.
		a.AmbientCaps = []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_SETUID, unix.CAP_SETGID, unix.CAP_SETPCAP, unix.CAP_SYS_RESOURCE}
	}
	return a
}

// cpuLimit is the soft RLIMIT_CPU of a run: the wall timeout rounded up, plus
// a second (the hard limit, which kills, is one more).
func (r *Runner) cpuLimit(timeout time.Duration) time.Duration {
	return (timeout + time.Second - 1).Truncate(time.Second) + time.Second
}

// spec is what the launcher is told for one run in dir.
func (r *Runner) spec(dir string, timeout time.Duration, t tier, ids hostIDs) launchSpec {
	cpu := uint64(r.cpuLimit(timeout) / time.Second)
	s := launchSpec{
		Mode:   modeRun,
		Python: r.python,
		RunDir: dir,
		UID:    -1,
		GID:    -1,
		Limits: []rlimit{
			{unix.RLIMIT_CPU, cpu, cpu + 1},
			{unix.RLIMIT_NPROC, maxProcesses, maxProcesses},
			{unix.RLIMIT_FSIZE, maxFileBytes, maxFileBytes},
			{unix.RLIMIT_NOFILE, maxOpenFiles, maxOpenFiles},
			{unix.RLIMIT_CORE, 0, 0},
			{unix.RLIMIT_MEMLOCK, 0, 0},
			{unix.RLIMIT_MSGQUEUE, 0, 0},
		},
		MemoryBytes: uint64(r.cfg.MemoryMB) << 20,
	}
	work := ""
	switch t {
	case tierIsolated:
		work = workDir
		s.PrivateRoot = true
		s.Proc = true
		s.Binds = r.binds
		s.Hostname = "sandbox"
		s.WorkBytes = workBytes
		s.UID, s.GID = innerUID, innerGID
		s.DropGroups = os.Getuid() == 0
		s.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + workDir, "LANG=C.UTF-8"}
	case tierUnisolated:
		if os.Getuid() == 0 {
			s.UID, s.GID, s.DropGroups = ids.uid, ids.gid, true
		}
		if abi := landlockABI(); abi > 0 {
			read := append([]string{"/etc", "/proc", "/dev"}, systemDirs...)
			s.Landlock = &landlockSpec{ABI: abi, Read: append(read, r.binds...), Write: []string{dir, "/dev/null"}}
		}
		s.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "LANG=C.UTF-8"}
	}
	s.Argv = []string{r.python, "-I", "-B", "-u", "-c", runnerProgram, work}
	return s
}

// The run directories of a process killed during a run stay (their deferred
// removal never ran), with the project's code in them. Each runner claims
// an owner id, holding an exclusive flock on run-<id>.lock under the scratch
// root for as long as its process lives, and names its run directories
// run-<id>-…; a runner that starts removes the directories of every owner
// whose lock it can take: the kernel drops a lock when its process dies,
// whatever killed it, and keeps a live one's, in this container or another
// sharing the scratch root (pids and host names repeat across restarts of a
// container).

// claimScratch takes an owner id for a runner: its lock file, locked. The
// file stays open (and locked) in the Runner for the process's life.
func claimScratch(scratch string) (string, *os.File, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	id := hex.EncodeToString(b)
	f, err := os.OpenFile(filepath.Join(scratch, "run-"+id+".lock"), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return "", nil, fmt.Errorf("sandbox scratch root: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return "", nil, fmt.Errorf("sandbox scratch root: lock %s: %w", f.Name(), err)
	}
	return id, f, nil
}

// removeDeadRuns removes the run directories under scratch of owners that
// are gone (their lock is free), and their lock files; it returns how many
// directories it removed.
func removeDeadRuns(scratch string) int {
	entries, err := os.ReadDir(scratch)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		id, ok := strings.CutSuffix(strings.TrimPrefix(e.Name(), "run-"), ".lock")
		if !ok || !strings.HasPrefix(e.Name(), "run-") || e.IsDir() {
			continue
		}
		lockPath := filepath.Join(scratch, e.Name())
		f, err := os.OpenFile(lockPath, os.O_RDWR|syscall.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			f.Close() // its owner lives
			continue
		}
		for _, d := range entries {
			if d.IsDir() && strings.HasPrefix(d.Name(), "run-"+id+"-") && os.RemoveAll(filepath.Join(scratch, d.Name())) == nil {
				n++
			}
		}
		os.Remove(lockPath)
		f.Close()
	}
	return n
}
