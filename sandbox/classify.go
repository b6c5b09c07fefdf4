//go:build linux

package sandbox

import (
	"fmt"
	"strings"
	"syscall"
	"time"
)

// exitFacts is what the server knows after the launcher's process ended.
type exitFacts struct {
	launchErr  string // written by the launcher before Python started
	startErr   error
	waitStatus syscall.WaitStatus
	haveStatus bool
	cpu        time.Duration
	killedByUs bool  // the wall-clock limit or the caller's context
	callerErr  error // the caller's context ended the run
	stderr     string
	timeout    time.Duration
	cpuLimit   time.Duration
	memoryMB   int
	stderrCut  bool
}

// classify turns how the run ended into a Status and its cause.
func classify(f exitFacts) (Status, int, string) {
	ws := f.waitStatus
	switch {
	case f.startErr != nil:
		return StatusError, -1, "sandbox unavailable: " + f.startErr.Error()
	case f.launchErr != "":
		return StatusError, -1, "sandbox unavailable: " + f.launchErr
	case !f.haveStatus:
		return StatusError, -1, "sandbox failure: no exit status"
	}
	code := -1
	if ws.Exited() {
		code = ws.ExitStatus()
	}
	memory := fmt.Sprintf("memory limit exceeded (%d MB)", f.memoryMB)
	switch {
	case f.killedByUs && f.callerErr != nil && !ws.Exited():
		return StatusError, code, "canceled: " + f.callerErr.Error()
	case f.killedByUs && !ws.Exited():
		return StatusTimeout, code, fmt.Sprintf("timed out after %s", f.timeout)
	case ws.Exited() && code == memoryExitCode && (mentionsMemory(f.stderr) || f.stderrCut):
		return StatusError, code, memory
	case ws.Signaled() && memorySignal(ws.Signal()) && mentionsMemory(f.stderr):
		return StatusError, code, memory
	case ws.Signaled() && (ws.Signal() == syscall.SIGXCPU || ws.Signal() == syscall.SIGKILL) && f.cpu >= f.cpuLimit-500*time.Millisecond:
		return StatusTimeout, code, fmt.Sprintf("CPU time limit exceeded (%s)", f.cpuLimit)
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL:
		// Not the limits above, and pid 1 of the run cannot be killed from
		// inside it: the kernel's out-of-memory killer.
		return StatusError, code, "killed by SIGKILL, most likely by the kernel's out-of-memory killer"
	case ws.Signaled():
		return StatusFailed, code, fmt.Sprintf("killed by signal %d (%s)", int(ws.Signal()), ws.Signal())
	case code == 0:
		return StatusPassed, 0, ""
	default:
		return StatusFailed, code, ""
	}
}

func memorySignal(s syscall.Signal) bool {
	return s == syscall.SIGSEGV || s == syscall.SIGABRT || s == syscall.SIGBUS || s == syscall.SIGKILL
}

func mentionsMemory(stderr string) bool {
	for _, s := range []string{"MemoryError", "Cannot allocate memory", "out of memory"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}
