package sandbox

import (
	"fmt"
	"slices"
	"strings"
)

// Features is what New found this host can do, each item checked by running
// something and looking at the result from the outside.
type Features struct {
	UserNS  bool // a user namespace, the run's uid mapped to an unprivileged host uid
	PIDNS   bool // Python is pid 1 of its own pid namespace
	NetNS   bool // only a loopback interface; the host's 127.0.0.1 is unreachable
	MountNS bool // a private read-only root: host files unseen, nothing writable outside /work and /tmp
	IPCNS   bool
	UTSNS   bool
	Proc    bool // a procfs showing only the run's processes
	Rlimits bool // RLIMIT_AS/CPU/NPROC/FSIZE/NOFILE/CORE seen in force inside
	NoCaps  bool // the test code holds no capabilities

	Landlock int    // Landlock ABI of the kernel (0: none); used by the unisolated tier
	Cgroup   string // memory cgroup found (not used: see the package documentation)

	Isolated bool     // every required feature is present
	Missing  []string // required features that are not
	// Unisolated lists what the unisolated tier still enforced in its probe
	// (only probed when the namespaces are missing and AllowUnisolated is set).
	Unisolated []string
	Python     string // the interpreter and its version
	// RunIDs says which host uids runs get: one per run at once from a
	// range (a root server), or one all runs share (runids.go).
	RunIDs string
}

// String is the one-line summary logged at start.
func (f Features) String() string {
	var b strings.Builder
	if f.Isolated {
		b.WriteString("isolated")
	} else {
		b.WriteString("NOT isolated (missing: " + f.missingText() + ")")
	}
	var ns []string
	for _, n := range []struct {
		ok   bool
		name string
	}{{f.UserNS, "user"}, {f.PIDNS, "pid"}, {f.NetNS, "net"}, {f.MountNS, "mount"}, {f.IPCNS, "ipc"}, {f.UTSNS, "uts"}} {
		if n.ok {
			ns = append(ns, n.name)
		}
	}
	fmt.Fprintf(&b, "; namespaces: %s", orNone(ns))
	fmt.Fprintf(&b, "; fresh /proc: %s; rlimits: %s; no capabilities: %s", yes(f.Proc), yes(f.Rlimits), yes(f.NoCaps))
	if f.Landlock > 0 {
		fmt.Fprintf(&b, "; landlock: ABI %d", f.Landlock)
	} else {
		b.WriteString("; landlock: none")
	}
	fmt.Fprintf(&b, "; cgroup: %s", orNone([]string{f.Cgroup}))
	if len(f.Unisolated) > 0 {
		fmt.Fprintf(&b, "; unisolated tier: %s", strings.Join(f.Unisolated, ", "))
	}
	if f.RunIDs != "" {
		fmt.Fprintf(&b, "; run uids: %s", f.RunIDs)
	}
	if f.Python != "" {
		fmt.Fprintf(&b, "; python: %s", f.Python)
	}
	return b.String()
}

func (f Features) missingText() string { return orNone(f.Missing) }

func orNone(s []string) string {
	s = slices.DeleteFunc(slices.Clone(s), func(x string) bool { return x == "" })
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
