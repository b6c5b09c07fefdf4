package patch

import (
	"strings"
	"testing"
)

// FuzzApply feeds Apply arbitrary code and patches, which must never panic,
// and checks the round trip through Unified: a diff between two versions,
// also fenced, without file headers or with CRLF line breaks, turns the first
// into the second.
func FuzzApply(f *testing.F) {
	f.Add(sample, greeted)
	f.Add(sample, greetHunk)
	f.Add("a\nb", "a\nb\nc")
	f.Add("a\r\nb\r\n", "a\r\nc\r\n")
	f.Add("", "x = 1\n")
	f.Add("x\nx\nx\nx\nx\nx\nx\nx\n", "x\nx\nx\nx\ny\nx\nx\nx\n")
	f.Add("-- a\n", "++ b\n")
	f.Add("a\n", "```diff\n@@ @@\n-a\n+b\n```\n")
	f.Add("a = 1\nb = 2", "@@ @@\n a = 1\n\\ No newline at end of file\n-b = 2\n")
	f.Fuzz(func(t *testing.T, a, b string) {
		// b as a patch, alone and as a hunk: any error is fine, a panic is not.
		_, _ = Apply(a, b)
		_, _ = Apply(a, "@@ -1 +1 @@\n"+b)

		want := restyle(b, a)
		d := Unified(a, want, "app.py")
		if a == want {
			if d != "" {
				t.Fatalf("Unified of equal texts = %q", d)
			}
			return
		}
		variants := map[string]string{
			"plain":      d,
			"fenced":     "```diff\n" + d + "```\n",
			"headerless": d[strings.Index(d, "@@"):],
			"crlf":       strings.ReplaceAll(d, "\n", "\r\n"),
		}
		for name, diff := range variants {
			got, err := Apply(a, diff)
			if err != nil || got != want {
				t.Fatalf("%s: Apply = %q, %v\nold: %q\nnew: %q\ndiff:\n%s", name, got, err, a, want, diff)
			}
		}
	})
}

// restyle gives s the line ending that Apply gives lines added to orig, the
// one of most of orig's line breaks, unless orig has none.
func restyle(s, orig string) string {
	breaks := strings.Count(orig, "\n")
	if breaks == 0 {
		return s
	}
	crlf := 2*strings.Count(orig, "\r\n") > breaks
	lines := strings.Split(s, "\n")
	for i := range len(lines) - 1 {
		lines[i] = strings.TrimRight(lines[i], "\r")
		if crlf {
			lines[i] += "\r"
		}
	}
	return strings.Join(lines, "\n")
}
