package llm

import (
	"fmt"
	"strings"
	"testing"
)

func TestNumbered(t *testing.T) {
	if got, want := numbered("a = 1\n\nb = 2\n"), "1| a = 1\n2| \n3| b = 2\n"; got != want {
		t.Errorf("numbered = %q, want %q", got, want)
	}
	if got, want := numbered("\ufeffx"), "1| x\n"; got != want {
		t.Errorf("numbered with a BOM = %q, want %q", got, want)
	}
	if got := numbered(""); got != "(the file is empty)" {
		t.Errorf("numbered of nothing = %q", got)
	}
	// Wider numbers are padded on the left to the last line's width.
	for _, n := range []int{9, 10, 99, 100, 1234} {
		var code, want strings.Builder
		for i := 1; i <= n; i++ {
			fmt.Fprintf(&code, "line %d\n", i)
			fmt.Fprintf(&want, "%*d| line %d\n", len(fmt.Sprint(n)), i, i)
		}
		if got := numbered(code.String()); got != want.String() {
			t.Errorf("numbered of %d lines is not padded as fmt's %%*d: %q…", n, got[:min(len(got), 80)])
		}
	}
}
