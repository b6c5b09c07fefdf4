package sandbox

import (
	"slices"
	"testing"
)

func TestLimitsHit(t *testing.T) {
	for _, c := range []struct {
		res  Result
		want []string
	}{
		{Result{Status: StatusPassed}, nil},
		{Result{Status: StatusFailed, Stderr: "AssertionError"}, nil},
		{Result{Status: StatusTimeout, Error: "timed out after 5s"}, []string{"time"}},
		{Result{Status: StatusTimeout, Error: "CPU time limit exceeded (6s)"}, []string{"cpu"}},
		{Result{Status: StatusError, Error: "memory limit exceeded (512 MB)"}, []string{"memory"}},
		{Result{Status: StatusError, Error: "killed by SIGKILL, most likely by the kernel's out-of-memory killer"}, []string{"memory"}},
		{Result{Status: StatusPassed, StdoutTruncated: true}, []string{"output"}},
		{Result{Status: StatusFailed, Stderr: "BlockingIOError: [Errno 11] Resource temporarily unavailable"}, []string{"processes"}},
		{Result{Status: StatusFailed, Stderr: "RuntimeError: can't start new thread", StderrTruncated: true}, []string{"output", "processes"}},
	} {
		if got := limitsHit(c.res); !slices.Equal(got, c.want) {
			t.Errorf("limitsHit(%+v) = %v, want %v", c.res, got, c.want)
		}
	}
}
