package patch

import (
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestUnified(t *testing.T) {
	tests := []struct{ name, old, new, want string }{
		{
			name: "equal texts",
			old:  sample, new: sample,
			want: "",
		},
		{
			name: "one change",
			old:  sample, new: greeted,
			want: "--- a/app.py\n+++ b/app.py\n@@ -2,7 +2,7 @@\n \n \n def greet(name):\n" +
				"-    return \"hello \" + name\n+    return f\"hello {name}\"\n \n \n def add(a, b):\n",
		},
		{
			name: "two distant changes",
			old:  "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n",
			new:  "one\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\ntwelve\n",
			want: "--- a/app.py\n+++ b/app.py\n@@ -1,4 +1,4 @@\n-1\n+one\n 2\n 3\n 4\n" +
				"@@ -9,4 +9,4 @@\n 9\n 10\n 11\n-12\n+twelve\n",
		},
		{
			name: "final newline added",
			old:  "a\nb", new: "a\nb\n",
			want: "--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n",
		},
		{
			name: "line appended to a file without final newline",
			old:  "a\nb", new: "a\nb\nc",
			want: "--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,3 @@\n a\n-b\n\\ No newline at end of file\n+b\n+c\n\\ No newline at end of file\n",
		},
		{
			name: "from empty",
			old:  "", new: "x = 1\n",
			want: "--- a/app.py\n+++ b/app.py\n@@ -0,0 +1 @@\n+x = 1\n",
		},
		{
			name: "to empty",
			old:  "x = 1\ny = 2\n", new: "",
			want: "--- a/app.py\n+++ b/app.py\n@@ -1,2 +0,0 @@\n-x = 1\n-y = 2\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Unified(tt.old, tt.new, "app.py"); got != tt.want {
				t.Errorf("Unified =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// TestUnifiedWidensRepeatedContext checks that a hunk in repetitive code gets
// the context it needs to match one place only.
func TestUnifiedWidensRepeatedContext(t *testing.T) {
	old := strings.Repeat("    pass\n", 12)
	new := strings.Replace(old, "    pass\n", "    pass\n    return\n", 6)
	new = strings.Replace(new, "    pass\n    return\n", "    pass\n", 5)
	d := Unified(old, new, "app.py")
	if got, err := Apply(old, d); err != nil || got != new {
		t.Fatalf("Apply(Unified) = %q, %v; want %q\ndiff:\n%s", got, err, new, d)
	}
	if n := strings.Count(d, "\n     pass"); n <= 2*contextLines {
		t.Errorf("hunk has %d context lines, want more than %d:\n%s", n, 2*contextLines, d)
	}
}

// TestUnifiedRoundTrip is the property the server relies on: applying the
// diff between two versions to the first gives the second, for random edits
// of repetitive code, with LF or CRLF and with or without a final newline.
func TestUnifiedRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 5000 {
		eol := []string{"\n", "\r\n"}[rng.IntN(2)]
		lines := randomLines(rng, rng.IntN(40))
		old := joinLines(lines, eol, rng.IntN(5) > 0)
		new := joinLines(randomEdits(rng, lines), eol, rng.IntN(5) > 0)
		if rng.IntN(4) == 0 && old != "" && new != "" { // a byte order mark both keep
			old, new = bom+old, bom+new
		}
		d := Unified(old, new, "app.py")
		if old == new {
			continue
		}
		checkCounts(t, d)
		got, err := Apply(old, d)
		if err != nil || got != new {
			t.Fatalf("case %d: Apply(old, Unified(old, new)) = %q, %v\nold: %q\nnew: %q\ndiff:\n%s", i, got, err, old, new, d)
		}
	}
}

var vocabulary = []string{
	"", "", "", "def f(x):", "    return x", "    pass", "x = 1", "print(x)",
	"# comment", "    if x:", "        x += 1", "class A:", "  trailing  ",
}

func randomLines(rng *rand.Rand, n int) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = vocabulary[rng.IntN(len(vocabulary))]
	}
	return lines
}

// randomEdits inserts, deletes and replaces a few lines.
func randomEdits(rng *rand.Rand, lines []string) []string {
	out := slices.Clone(lines)
	for range 1 + rng.IntN(5) {
		at := rng.IntN(len(out) + 1)
		switch rng.IntN(3) {
		case 0:
			out = slices.Insert(out, at, randomLines(rng, 1+rng.IntN(3))...)
		case 1:
			if at < len(out) {
				out = slices.Delete(out, at, min(at+1+rng.IntN(3), len(out)))
			}
		case 2:
			if at < len(out) {
				out[at] = vocabulary[rng.IntN(len(vocabulary))] + "!"
			}
		}
	}
	return out
}

func joinLines(lines []string, eol string, finalNL bool) string {
	s := strings.Join(lines, eol)
	if finalNL && len(lines) > 0 {
		s += eol
	}
	return s
}

var countedHeader = regexp.MustCompile(`^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@$`)

// checkCounts fails t unless every hunk header of d counts its lines right.
func checkCounts(t *testing.T, d string) {
	t.Helper()
	var want, got [2]int
	check := func() {
		if want != got {
			t.Fatalf("hunk counts %v, lines %v in\n%s", want, got, d)
		}
	}
	inHunk := false
	for _, l := range strings.Split(strings.TrimSuffix(d, "\n"), "\n")[2:] {
		if m := countedHeader.FindStringSubmatch(l); m != nil {
			if inHunk {
				check()
			}
			inHunk, got = true, [2]int{}
			want = [2]int{headerCount(m[2]), headerCount(m[4])}
			continue
		}
		switch l[0] {
		case ' ':
			got[0]++
			got[1]++
		case '-':
			got[0]++
		case '+':
			got[1]++
		case '\\':
		default:
			t.Fatalf("unexpected line %q in\n%s", l, d)
		}
	}
	check()
}

func headerCount(s string) int {
	if s == "" {
		return 1
	}
	n, _ := strconv.Atoi(s)
	return n
}

// TestEditScriptIsShortest compares the edit script's length with the
// longest common subsequence found by dynamic programming.
func TestEditScriptIsShortest(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for range 5000 {
		a, b := randomInts(rng, rng.IntN(15), 4), randomInts(rng, rng.IntN(15), 4)
		ops := editScript(a, b)
		var gotA, gotB []int
		edits := 0
		for _, o := range ops {
			switch o.kind {
			case opEqual:
				if a[o.ai] != b[o.bi] {
					t.Fatalf("%v -> %v: op %+v keeps different lines", a, b, o)
				}
				gotA, gotB = append(gotA, a[o.ai]), append(gotB, b[o.bi])
			case opDelete:
				gotA, edits = append(gotA, a[o.ai]), edits+1
			case opInsert:
				gotB, edits = append(gotB, b[o.bi]), edits+1
			}
		}
		if !slices.Equal(gotA, a) || !slices.Equal(gotB, b) {
			t.Fatalf("%v -> %v: script %+v does not cover both", a, b, ops)
		}
		if want := len(a) + len(b) - 2*lcsLen(a, b); edits != want {
			t.Fatalf("%v -> %v: %d edits, shortest is %d", a, b, edits, want)
		}
	}
}

func randomInts(rng *rand.Rand, n, alphabet int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = rng.IntN(alphabet)
	}
	return s
}

func lcsLen(a, b []int) int {
	dp := make([][]int, len(a)+1)
	for i := range dp {
		dp[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				dp[i][j] = dp[i+1][j+1] + 1
			} else {
				dp[i][j] = max(dp[i+1][j], dp[i][j+1])
			}
		}
	}
	return dp[0][0]
}
