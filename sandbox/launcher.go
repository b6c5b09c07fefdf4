//go:build linux

package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The launcher is this same binary, re-executed by Run with launcherEnv=1 and
// argv[0]=launcherArg0, inside the new namespaces (where it is pid 1). It sets
// up the sandbox from the inside and then replaces itself with Python, so
// Python becomes pid 1 and its exit takes every other process of the run with
// it. No external binary (bubblewrap, prlimit, unshare) is needed.
const (
	launcherEnv  = "VIBEGRAPHER_SANDBOX_LAUNCHER"
	launcherArg0 = "vibegrapher-sandbox-launcher"

	// statusFD carries the launcher's failure to the server. It is
	// close-on-exec, so a successful exec of Python closes it with nothing
	// written.
	statusFD = 3
	// launcherExitCode is the launcher's exit status when setting up failed.
	launcherExitCode = 125
)

const (
	modeRun  = "run"
	modeNoop = "noop" // feature probe: the namespaces could be made; exit 0
)

// launchSpec is what the server tells the launcher (JSON in argv[1]).
type launchSpec struct {
	Mode   string   `json:"mode"`
	Python string   `json:"python"`
	Argv   []string `json:"argv"`
	Env    []string `json:"env"`
	RunDir string   `json:"run_dir"`

	// PrivateRoot builds a fresh root file system (mount namespace).
	PrivateRoot bool     `json:"private_root"`
	Proc        bool     `json:"proc"`  // mount a procfs of the new pid namespace
	Binds       []string `json:"binds"` // extra read-only directories (interpreter)
	Hostname    string   `json:"hostname,omitempty"`
	WorkBytes   int64    `json:"work_bytes"` // size of the writable /work and /tmp

	UID        int  `json:"uid"` // -1 keeps the current ids
	GID        int  `json:"gid"`
	DropGroups bool `json:"drop_groups"` // setgroups([]) is allowed and wanted

	Limits      []rlimit `json:"limits"`
	MemoryBytes uint64   `json:"memory_bytes"` // RLIMIT_AS, set just before exec

	Landlock *landlockSpec `json:"landlock,omitempty"`
}

type rlimit struct {
	Resource int    `json:"resource"`
	Cur      uint64 `json:"cur"`
	Max      uint64 `json:"max"`
}

// Main must be the first thing main() (and TestMain) calls. In the server it
// returns at once; in a process started by Run as the sandbox launcher it sets
// up the sandbox and execs Python, and never returns.
func Main() {
	if os.Getenv(launcherEnv) != "1" || len(os.Args) != 2 || os.Args[0] != launcherArg0 {
		return
	}
	// Credentials, no_new_privs, capabilities and Landlock are per thread:
	// everything up to execve happens on this one.
	runtime.LockOSThread()
	err := launch(os.Args[1])
	_, _ = unix.Write(statusFD, []byte(err.Error()))
	os.Exit(launcherExitCode)
}

// launch returns only on failure.
func launch(arg string) error {
	if _, err := unix.FcntlInt(statusFD, unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return fmt.Errorf("status pipe: %w", err)
	}
	var spec launchSpec
	if err := json.Unmarshal([]byte(arg), &spec); err != nil {
		return fmt.Errorf("reading the launch spec: %w", err)
	}
	if spec.Mode == modeNoop {
		os.Exit(0)
	}
	// Under memory pressure the kernel kills the run's processes before the
	// server or the database: a run may fork up to RLIMIT_NPROC processes of
	// RLIMIT_AS each. Raising the score needs no privilege; the kernel lets
	// a process lower it again down to what it inherited, so the test code
	// gets a read-only /proc (mounts.go; without a private root it runs in
	// the unisolated tier, where it can).
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("1000"), 0); err != nil {
		return fmt.Errorf("oom_score_adj: %w", err)
	}

	if spec.PrivateRoot {
		if err := enterPrivateRoot(&spec); err != nil {
			return fmt.Errorf("building the sandbox root: %w", err)
		}
	} else {
		if err := unix.Chdir(spec.RunDir); err != nil {
			return fmt.Errorf("entering the run directory: %w", err)
		}
	}

	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	for _, l := range spec.Limits {
		if err := unix.Setrlimit(l.Resource, &unix.Rlimit{Cur: l.Cur, Max: l.Max}); err != nil {
			return fmt.Errorf("rlimit %d: %w", l.Resource, err)
		}
	}
	if spec.Landlock != nil {
		if err := spec.Landlock.restrictSelf(); err != nil {
			return fmt.Errorf("landlock: %w", err)
		}
	}
	if !spec.PrivateRoot && spec.UID >= 0 {
		if err := setIDs(&spec); err != nil {
			return err
		}
	}
	if err := dropCapabilities(); err != nil {
		return err
	}
	if err := restrictSyscalls(); err != nil {
		return err
	}
	// A change of credentials clears the parent-death signal; arm it again.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("parent-death signal: %w", err)
	}
	return execPython(&spec)
}

// execPython sets RLIMIT_AS and execs Python, allocating nothing in between:
// the Go runtime of this launcher cannot grow its heap under that limit
// (Python starts fine under it).
func execPython(spec *launchSpec) error {
	program, args := spec.Python, spec.Argv
	if raceBuild && spec.MemoryBytes > 0 {
		program = racePrlimit
		args = append([]string{racePrlimit, fmt.Sprintf("--as=%d:%d", spec.MemoryBytes, spec.MemoryBytes), "--", spec.Python}, spec.Argv[1:]...)
		spec.MemoryBytes = 0
	}
	path, err := unix.BytePtrFromString(program)
	if err != nil {
		return err
	}
	argv, err := cStrings(args)
	if err != nil {
		return err
	}
	env, err := cStrings(spec.Env)
	if err != nil {
		return err
	}
	prefix := []byte("exec " + spec.Python + ": ")
	debug.SetGCPercent(-1)
	if spec.MemoryBytes > 0 {
		lim := unix.Rlimit{Cur: spec.MemoryBytes, Max: spec.MemoryBytes}
		if _, _, e := unix.RawSyscall6(unix.SYS_PRLIMIT64, 0, unix.RLIMIT_AS, uintptr(unsafe.Pointer(&lim)), 0, 0, 0); e != 0 {
			return fmt.Errorf("rlimit AS: %w", e)
		}
	}
	_, _, e := unix.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(path)), uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&env[0])))
	// Still here, and allocating could crash: report without allocating.
	msg := e.Error()
	_, _, _ = unix.RawSyscall(unix.SYS_WRITE, statusFD, uintptr(unsafe.Pointer(&prefix[0])), uintptr(len(prefix)))
	_, _, _ = unix.RawSyscall(unix.SYS_WRITE, statusFD, uintptr(unsafe.Pointer(unsafe.StringData(msg))), uintptr(len(msg)))
	_, _, _ = unix.RawSyscall(unix.SYS_EXIT_GROUP, launcherExitCode, 0, 0)
	return nil
}

// racePrlimit sets RLIMIT_AS for race-built launchers (see raceBuild).
const racePrlimit = "/usr/bin/prlimit"

// cStrings is a NULL-terminated array of C strings for execve.
func cStrings(ss []string) ([]*byte, error) {
	out := make([]*byte, len(ss)+1)
	for i, s := range ss {
		p, err := unix.BytePtrFromString(s)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// setIDs switches this thread to the unprivileged ids. Raw per-thread system
// calls: the other threads of this Go process die at execve anyway.
func setIDs(spec *launchSpec) error {
	if spec.DropGroups {
		if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
			return fmt.Errorf("setgroups: %w", e)
		}
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(spec.GID), uintptr(spec.GID), uintptr(spec.GID)); e != 0 {
		return fmt.Errorf("setresgid %d: %w", spec.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(spec.UID), uintptr(spec.UID), uintptr(spec.UID)); e != 0 {
		return fmt.Errorf("setresuid %d: %w", spec.UID, e)
	}
	return nil
}

// keepCapabilities makes the capabilities of the user namespace survive
// setIDs, so the root file system can be built as the unprivileged user (the
// files it creates must belong to a uid mapped into the namespace).
func keepCapabilities() error {
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keepcaps: %w", err)
	}
	return nil
}

func raiseEffectiveCapabilities() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	for i := range data {
		data[i].Effective = data[i].Permitted
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// dropCapabilities empties the bounding, ambient, permitted, effective and
// inheritable sets. Python runs as a non-root uid, so execve would clear most
// of them anyway; this does not rely on it.
func dropCapabilities() error {
	for c := 0; c < 64; c++ {
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			break // past the last capability this kernel knows
		}
		if errors.Is(err, unix.EPERM) {
			break // not privileged (unisolated run as a normal user)
		}
		if err != nil {
			return fmt.Errorf("dropping capability %d: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("dropping capabilities: %w", err)
	}
	return nil
}
