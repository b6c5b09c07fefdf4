package sandbox

import "time"

// Status is the outcome of a run (SPEC.md §6).
type Status string

const (
	StatusPassed  Status = "passed"  // exit status 0
	StatusFailed  Status = "failed"  // an exception or a non-zero exit; traceback in Stderr
	StatusTimeout Status = "timeout" // wall-clock or CPU-time limit; everything was killed
	StatusError   Status = "error"   // memory limit, or the sandbox itself failed; see Error
)

// Result is what a run produced. Output over the limit is cut, ends with a
// "[output truncated: more than N bytes]" line and sets the *Truncated flag;
// truncation alone does not change Status. Stdout and Stderr are UTF-8
// without NUL: each NUL, and each byte that is not UTF-8, is U+FFFD.
type Result struct {
	Status          Status        `json:"status"`
	Stdout          string        `json:"stdout"`
	Stderr          string        `json:"stderr"`
	ExitCode        int           `json:"exit_code"` // -1 when killed by a signal or not started
	Duration        time.Duration `json:"duration"`
	Error           string        `json:"error,omitempty"` // the cause, for timeout, error and a failure by signal
	StdoutTruncated bool          `json:"stdout_truncated,omitempty"`
	StderrTruncated bool          `json:"stderr_truncated,omitempty"`
}
