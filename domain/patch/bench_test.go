package patch

import (
	"fmt"
	"strings"
	"testing"
)

// pythonFile returns n lines of generated Python code: small functions.
func pythonFile(n int) []string {
	lines := make([]string, 0, n+6)
	for i := 0; len(lines) < n; i++ {
		lines = append(lines,
			fmt.Sprintf("def func_%d(x):", i),
			fmt.Sprintf("    y = x * %d", i),
			fmt.Sprintf("    if y > %d:", i*7),
			"        return y - 1",
			"    return y",
			"",
		)
	}
	return lines[:n]
}

// benchPatch returns a file of n lines and a diff changing hunks lines spread
// evenly over it.
func benchPatch(b *testing.B, n, hunks int) (old, diff, want string) {
	lines := pythonFile(n)
	old = strings.Join(lines, "\n") + "\n"
	step := n / hunks
	for h := range hunks {
		at := h*step + step/2
		lines[at] += "  # changed"
	}
	want = strings.Join(lines, "\n") + "\n"
	diff = Unified(old, want, "app.py")
	if got, err := Apply(old, diff); err != nil || got != want {
		b.Fatalf("Apply = %v, result ok: %v", err, got == want)
	}
	if c := strings.Count(diff, "\n@@ "); c != hunks {
		b.Fatalf("diff has %d hunks, want %d", c, hunks)
	}
	return old, diff, want
}

func BenchmarkApply(b *testing.B) {
	for _, size := range []struct{ lines, hunks int }{{5000, 10}, {200, 1}} {
		b.Run(fmt.Sprintf("%dlines_%dhunks", size.lines, size.hunks), func(b *testing.B) {
			old, diff, _ := benchPatch(b, size.lines, size.hunks)
			b.ReportAllocs()
			b.SetBytes(int64(len(old)))
			for b.Loop() {
				if _, err := Apply(old, diff); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUnified(b *testing.B) {
	old, _, want := benchPatch(b, 5000, 10)
	b.ReportAllocs()
	for b.Loop() {
		Unified(old, want, "app.py")
	}
}
