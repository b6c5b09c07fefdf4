package main

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// How many jobs one worker process runs at once.
//
// VibeCoder and Evaluator jobs are I/O-bound: a job spends seconds to minutes
// waiting on the model and milliseconds of CPU around it, and it holds no
// database connection while it waits (every store call is its own short
// transaction). So a process runs hundreds of them: the defaults (500 each)
// serve 500 people typing at once, at a measured few tens of KB of memory per
// message in flight (docs/benchmarks.md), well within a 1–2 GB machine. The
// database pool (pool_max_conns, default db.DefaultMaxConns) is sized for the
// statements that run in parallel, not for the jobs: they take a connection
// only for the duration of a statement or transaction, and PostgreSQL does not
// run more statements at once than it has cores anyway.
//
// Test runs are the opposite: each is a Python process that uses a core and
// up to SANDBOX_MEMORY_MB of address space. TEST_WORKERS=0 (the default)
// derives their number from both: one per core, and no more than half the
// machine's memory (its cgroup limit when set) can hold at the sandbox limit.

// maxQueueWorkers is River's own bound on a queue's MaxWorkers.
const maxQueueWorkers = 10_000

// testWorkers is TEST_WORKERS, or the number derived from the cores and the
// memory when it is 0.
func (c Config) testWorkers() int {
	if c.TestWorkers > 0 {
		return c.TestWorkers
	}
	return derivedTestWorkers(runtime.NumCPU(), memoryBytes(), c.SandboxMemoryMB)
}

func derivedTestWorkers(cores int, memory int64, sandboxMB int) int {
	n := cores
	if memory > 0 && sandboxMB > 0 {
		n = min(n, int(memory/2/(int64(sandboxMB)<<20)))
	}
	return max(n, 1)
}

// memoryBytes is the memory this process may use: its cgroup's limit when
// one is set, else the machine's; 0 when neither can be read.
func memoryBytes() int64 {
	if raw, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
