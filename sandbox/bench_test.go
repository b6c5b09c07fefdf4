//go:build linux

package sandbox_test

import (
	"context"
	"os/exec"
	"testing"

	"github.com/vibegrapher/vibegrapher/sandbox"
)

// BenchmarkRunPass is a whole sandbox run of `pass`: files written, launcher
// re-executed in new namespaces, root built, Python started and ended.
func BenchmarkRunPass(b *testing.B) {
	r := runner(b)
	ctx := context.Background()
	for b.Loop() {
		if res := r.Run(ctx, "", "pass", 0); res.Status != sandbox.StatusPassed {
			b.Fatalf("%s %s %s", res.Status, res.Error, res.Stderr)
		}
	}
}

// BenchmarkBarePython is the same interpreter with no sandbox at all, for
// the overhead.
func BenchmarkBarePython(b *testing.B) {
	python := runner(b).Python()
	for b.Loop() {
		if err := exec.Command(python, "-c", "pass").Run(); err != nil {
			b.Fatal(err)
		}
	}
}
