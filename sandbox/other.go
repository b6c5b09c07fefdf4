//go:build !linux

package sandbox

import (
	"context"
	"time"
)

// Elsewhere than Linux there are no namespaces to isolate with: runs fail
// with "sandbox unavailable" (AllowUnisolated changes nothing), so the
// server still builds and starts on a developer's machine.

const workDir = "/work"

const unavailable = "sandbox unavailable: test cases run only on Linux"

// Runner runs test cases; here it only refuses.
type Runner struct {
	python string
}

// Main does nothing outside Linux.
func Main() {}

// New logs that runs are unavailable.
func New(cfg Config) (*Runner, error) {
	cfg = cfg.withDefaults()
	python, _, err := resolvePython(cfg.Python)
	if err != nil {
		return nil, err
	}
	cfg.Logger.Error("sandbox: " + unavailable)
	return &Runner{python: python}, nil
}

// Features reports nothing available.
func (r *Runner) Features() Features { return Features{Missing: []string{"Linux"}, Python: r.python} }

// Python is the absolute path of the interpreter.
func (r *Runner) Python() string { return r.python }

// Run refuses.
func (r *Runner) Run(ctx context.Context, projectCode, testCode string, timeout time.Duration) Result {
	return Result{Status: StatusError, ExitCode: -1, Error: unavailable}
}
