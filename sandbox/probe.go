//go:build linux

package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// probeReport is what the probe program prints.
type probeReport struct {
	PID          int                  `json:"pid"`
	UID          int                  `json:"uid"`
	Env          []string             `json:"env"`
	Proc         bool                 `json:"proc"`
	ProcPIDs     []string             `json:"proc_pids"`
	Interfaces   []string             `json:"ifaces"`
	TCP          bool                 `json:"tcp"`
	ReadCanary   bool                 `json:"read_canary"`
	WriteOutside bool                 `json:"write_outside"`
	WriteRoot    bool                 `json:"write_root"`
	WriteCwd     bool                 `json:"write_cwd"`
	CapEff       int64                `json:"capeff"`
	Limits       map[string][2]uint64 `json:"limits"`
}

const probeProgram = `import json, os, resource, socket
def can(f):
    try:
        f()
        return True
    except BaseException:
        return False
def connect(port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
    finally:
        s.close()
def write(path):
    with open(path, "w") as f:
        f.write("x")
def capeff():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    # No procfs (a container whose masked /proc forbids a new one): ask the
    # kernel with capget(2), version 3 (two 32-bit words per set).
    try:
        import ctypes
        hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)
        data = (ctypes.c_uint32 * 6)()
        if ctypes.CDLL(None, use_errno=True).capget(hdr, data) == 0:
            return data[0] | data[3] << 32
    except (ImportError, OSError, AttributeError):
        pass
    return -1
def ifaces():
    try:
        return [n for _, n in socket.if_nameindex()]
    except OSError:
        return []
def pids():
    try:
        return [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []
print(json.dumps({
    "pid": os.getpid(), "uid": os.getuid(), "env": sorted(os.environ),
    "proc": os.path.isdir("/proc/self/fd"), "proc_pids": pids(), "ifaces": ifaces(),
    "tcp": can(lambda: connect(PORT)),
    "read_canary": can(lambda: open(CANARY).read()),
    "write_outside": can(lambda: write(OUTSIDE)),
    "write_root": can(lambda: write("/vg-probe")),
    "write_cwd": can(lambda: write("vg-probe")),
    "capeff": capeff(),
    "limits": {n: list(resource.getrlimit(getattr(resource, "RLIMIT_" + n)))
               for n in ("AS", "CPU", "NPROC", "FSIZE", "NOFILE", "CORE")},
}))
`

// probe finds out what this host can do.
func (r *Runner) probe(info pythonInfo) Features {
	f := Features{Landlock: landlockABI(), Cgroup: detectMemoryCgroup()}
	f.UserNS = !r.withoutNamespaces && r.launchNoop(syscall.CLONE_NEWUSER) == nil
	if !f.UserNS {
		f.Missing = append(f.Missing, "user namespace")
		r.probeUnisolated(&f)
		return f
	}
	for _, ns := range []struct {
		flag uintptr
		ok   *bool
	}{{syscall.CLONE_NEWPID, &f.PIDNS}, {syscall.CLONE_NEWNET, &f.NetNS}, {syscall.CLONE_NEWNS, &f.MountNS}, {syscall.CLONE_NEWIPC, &f.IPCNS}, {syscall.CLONE_NEWUTS, &f.UTSNS}} {
		*ns.ok = r.launchNoop(syscall.CLONE_NEWUSER|ns.flag) == nil
	}
	// Then a real run, all namespaces at once; what it could do decides.
	rep, err := r.probeRun(tierIsolated)
	if err != nil {
		f.Missing = append(f.Missing, "a working isolated run ("+err.Error()+")")
	} else {
		f.PIDNS = f.PIDNS && rep.PID == 1
		f.NetNS = f.NetNS && !rep.TCP && slices.Equal(rep.Interfaces, []string{"lo"})
		f.MountNS = f.MountNS && !rep.ReadCanary && !rep.WriteOutside && !rep.WriteRoot && rep.WriteCwd
		f.UserNS = rep.UID == innerUID
		f.Proc = rep.Proc && slices.Equal(rep.ProcPIDs, []string{"1"})
		f.NoCaps = rep.CapEff == 0
		f.Rlimits = r.limitsInForce(rep.Limits)
		if env := strings.Join(rep.Env, ","); env != "HOME,LANG,PATH" {
			f.Missing = append(f.Missing, "a clean environment (saw "+env+")")
		}
	}
	for _, req := range []struct {
		ok   bool
		name string
	}{{f.UserNS, "user namespace"}, {f.PIDNS, "pid namespace"}, {f.NetNS, "network namespace"},
		{f.MountNS, "mount namespace"}, {f.IPCNS, "ipc namespace"}, {f.UTSNS, "uts namespace"},
		{f.Rlimits, "rlimits"}, {f.NoCaps, "dropping capabilities"}} {
		if !req.ok && err == nil {
			f.Missing = append(f.Missing, req.name)
		}
	}
	f.Isolated = len(f.Missing) == 0
	if !f.Isolated {
		r.probeUnisolated(&f)
	}
	return f
}

// probeUnisolated records what the fallback tier enforces, when it may be used.
func (r *Runner) probeUnisolated(f *Features) {
	if !r.cfg.AllowUnisolated {
		return
	}
	if os.Getuid() == 0 {
		// Runs will be uid 65534 and Python opens its files by absolute
		// path: let it through (not list) the scratch root.
		if err := os.Chmod(r.scratchRoot, 0o711); err != nil {
			f.Unisolated = []string{"scratch root: " + err.Error()}
			return
		}
	}
	rep, err := r.probeRun(tierUnisolated)
	if err != nil {
		f.Unisolated = []string{"probe failed: " + err.Error()}
		return
	}
	add := func(ok bool, what string) {
		if ok {
			f.Unisolated = append(f.Unisolated, what)
		}
	}
	add(r.limitsInForce(rep.Limits), "rlimits")
	add(rep.UID != 0, "uid "+strconv.Itoa(rep.UID))
	add(rep.CapEff == 0, "no capabilities")
	add(!rep.ReadCanary, "server files unreadable")
	add(!rep.WriteOutside, "no writes outside the run directory")
	add(!rep.TCP, "no TCP to 127.0.0.1")
	f.Rlimits = r.limitsInForce(rep.Limits)
	f.NoCaps = rep.CapEff == 0
}

func (r *Runner) limitsInForce(l map[string][2]uint64) bool {
	return l["AS"][0] == uint64(r.cfg.MemoryMB)<<20 && l["NPROC"][0] == maxProcesses &&
		l["FSIZE"][0] == maxFileBytes && l["NOFILE"][0] == maxOpenFiles && l["CORE"][1] == 0 && l["CPU"][0] > 0
}

// probeRun runs the probe program in tier t, with a TCP listener on the
// host's loopback and a canary file beside the run directories that must stay
// out of reach.
func (r *Runner) probeRun(t tier) (probeReport, error) {
	var rep probeReport
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return rep, err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	token := make([]byte, 8)
	_, _ = rand.Read(token)
	canary := filepath.Join(r.scratchRoot, "probe-canary-"+hex.EncodeToString(token))
	if err := os.WriteFile(canary, []byte("canary"), 0o644); err != nil {
		return rep, err
	}
	defer os.Remove(canary)
	outside := canary + "-written"
	defer os.Remove(outside)

	port := ln.Addr().(*net.TCPAddr).Port
	program := strings.NewReplacer("PORT", strconv.Itoa(port), "CANARY", strconv.Quote(canary), "OUTSIDE", strconv.Quote(outside)).Replace(probeProgram)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := r.run(ctx, "", program, 20*time.Second, t)
	if res.Status != StatusPassed {
		why := strings.TrimPrefix(res.Error, "sandbox unavailable: ")
		return rep, fmt.Errorf("probe run %s: %s", res.Status, strings.TrimSpace(why+" "+res.Stderr))
	}
	if err := json.Unmarshal([]byte(res.Stdout), &rep); err != nil {
		return rep, fmt.Errorf("probe output %q: %w", res.Stdout, err)
	}
	// Judge by the outside too: the canary is intact and nothing appeared.
	if b, err := os.ReadFile(canary); err != nil || string(b) != "canary" {
		rep.WriteOutside = true
	}
	if _, err := os.Stat(outside); err == nil {
		rep.WriteOutside = true
	}
	return rep, nil
}

// launchNoop checks that the launcher starts in the namespaces of flags.
func (r *Runner) launchNoop(flags uintptr) error {
	spec, _ := json.Marshal(launchSpec{Mode: modeNoop})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer statusR.Close()
	cmd := exec.CommandContext(ctx, "/proc/self/exe")
	cmd.Args = []string{launcherArg0, string(spec)}
	cmd.Env = []string{launcherEnv + "=1"}
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{statusW}
	attr := r.sysProcAttr(tierIsolated, hostIDs{r.hostUID, r.hostGID})
	attr.Cloneflags = flags
	cmd.SysProcAttr = attr
	out, err := cmd.CombinedOutput()
	statusW.Close()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// detectMemoryCgroup names a memory controller this process could write to
// (for the startup log only).
func detectMemoryCgroup() string {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		b, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		if slices.Contains(strings.Fields(string(b)), "memory") && unix.Access("/sys/fs/cgroup", unix.W_OK) == nil {
			return "v2 memory controller writable (not used)"
		}
		return ""
	}
	if unix.Statfs("/sys/fs/cgroup/memory", &st) == nil && st.Type == unix.CGROUP_SUPER_MAGIC && unix.Access("/sys/fs/cgroup/memory", unix.W_OK) == nil {
		return "v1 memory controller writable (not used)"
	}
	return ""
}
