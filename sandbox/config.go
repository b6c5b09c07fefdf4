package sandbox

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of SPEC.md §6/§7.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultMemoryMB    = 512
	DefaultOutputLimit = 64 << 10
	DefaultScratchRoot = "media"
)

// Limits every run gets besides time and memory.
const (
	maxProcesses = 64       // RLIMIT_NPROC: processes and threads of the run
	maxFileBytes = 16 << 20 // RLIMIT_FSIZE: largest file it may write
	maxOpenFiles = 256      // RLIMIT_NOFILE
	workBytes    = 32 << 20 // size of each of the writable /work and /tmp
)

// userNSLimits are the per-user limits a run's user namespace sets for
// itself (mounts.go), where the kernel counts a run against the server's
// user too: 4 of the host's 128 inotify instances (fs.inotify.
// max_user_instances) per run, and no fanotify.
var userNSLimits = []struct {
	name string
	max  int
}{
	{"max_inotify_instances", 4},
	{"max_inotify_watches", 1024},
	{"max_fanotify_groups", 0},
	{"max_fanotify_marks", 0},
}

// Config says how test cases run. The zero value of each field means its
// default; the environment names are those of SPEC.md §7.
type Config struct {
	// Python is SANDBOX_PYTHON: an interpreter name or path, resolved to an
	// absolute path once by New. A pyenv shim is replaced by /usr/bin/python3
	// when present (else by the interpreter the shim selects).
	Python string
	// ScratchRoot is MEDIA_PATH: the parent of the per-run directories
	// (created 0700; each run's directory is removed when it ends).
	ScratchRoot string
	// Timeout is SANDBOX_TIMEOUT, the longest a run may take on the wall
	// clock; a shorter per-run timeout may be passed to Run. The CPU-time
	// limit is this plus one second.
	Timeout time.Duration
	// MemoryMB is SANDBOX_MEMORY_MB, the address-space limit of each process
	// of a run (and, where a memory cgroup is available, of the whole run).
	MemoryMB int
	// OutputLimit caps each of stdout and stderr, in bytes.
	OutputLimit int
	// AllowUnisolated is SANDBOX_ALLOW_UNISOLATED: where the kernel cannot
	// make the namespaces, run with rlimits (and Landlock where the kernel has
	// it) only instead of refusing. For development; logged at ERROR.
	AllowUnisolated bool
	// Logger receives the feature probe's findings; slog.Default() if nil.
	Logger *slog.Logger
	// Meter and Tracer receive the runs' metrics and spans (telemetry.go);
	// nil records nothing.
	Meter  metric.MeterProvider
	Tracer trace.TracerProvider
}

func (c Config) withDefaults() Config {
	if c.Python == "" {
		c.Python = "python3"
	}
	if c.ScratchRoot == "" {
		c.ScratchRoot = DefaultScratchRoot
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MemoryMB <= 0 {
		c.MemoryMB = DefaultMemoryMB
	}
	if c.OutputLimit <= 0 {
		c.OutputLimit = DefaultOutputLimit
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
