package patch

import (
	"errors"
	"strings"
	"testing"
)

// sample is the current code most cases patch: greet is at lines 4-5, add at
// 8-9, class Counter at 12-18 with inc at 16-18.
const sample = `import os


def greet(name):
    return "hello " + name


def add(a, b):
    return a + b


class Counter:
    def __init__(self):
        self.n = 0

    def inc(self):
        self.n += 1
        return self.n
`

// greetHunk is a correct hunk changing greet's return line.
const greetHunk = `@@ -4,2 +4,2 @@
 def greet(name):
-    return "hello " + name
+    return f"hello {name}"
`

// edited returns s with each old string replaced once by the new one after it.
func edited(s string, oldNew ...string) string {
	for i := 0; i < len(oldNew); i += 2 {
		if !strings.Contains(s, oldNew[i]) {
			panic("edited: " + oldNew[i] + " not in text")
		}
		s = strings.Replace(s, oldNew[i], oldNew[i+1], 1)
	}
	return s
}

var greeted = edited(sample, `return "hello " + name`, `return f"hello {name}"`)

func TestApply(t *testing.T) {
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	tests := []struct {
		name, original, diff, want string
	}{
		{
			name:     "git diff with headers",
			original: sample,
			diff:     "diff --git a/app.py b/app.py\nindex 3b18e51..a8c2f3e 100644\n--- a/app.py\n+++ b/app.py\n" + greetHunk,
			want:     greeted,
		},
		{
			name:     "no file headers",
			original: sample,
			diff:     greetHunk,
			want:     greeted,
		},
		{
			name:     "bare paths",
			original: sample,
			diff:     "--- app.py\n+++ app.py\n" + greetHunk,
			want:     greeted,
		},
		{
			name:     "paths with timestamps and other names",
			original: sample,
			diff:     "--- src/main.py\t2024-05-01 10:00:00\n+++ src/main.py\t2024-05-02 10:00:00\n" + greetHunk,
			want:     greeted,
		},
		{
			name:     "wrong line numbers",
			original: sample,
			diff:     strings.Replace(greetHunk, "@@ -4,2 +4,2 @@", "@@ -40,2 +41,2 @@", 1),
			want:     greeted,
		},
		{
			name:     "wrong counts",
			original: sample,
			diff:     strings.Replace(greetHunk, "@@ -4,2 +4,2 @@", "@@ -4,7 +4,1 @@", 1),
			want:     greeted,
		},
		{
			name:     "header without numbers",
			original: sample,
			diff:     strings.Replace(greetHunk, "@@ -4,2 +4,2 @@", "@@ @@", 1),
			want:     greeted,
		},
		{
			name:     "header without counts",
			original: sample,
			diff:     strings.Replace(greetHunk, "@@ -4,2 +4,2 @@", "@@ -4 +4 @@ def greet", 1),
			want:     greeted,
		},
		{
			name:     "multiple hunks",
			original: sample,
			diff: greetHunk + `@@ -16,3 +16,4 @@
     def inc(self):
-        self.n += 1
+        self.n += 2
+        print(self.n)
         return self.n
`,
			want: edited(greeted, "self.n += 1", "self.n += 2\n        print(self.n)"),
		},
		{
			name:     "adjacent hunks",
			original: "a\nb\nc\nd\n",
			diff:     "@@ @@\n a\n-b\n+B\n@@ @@\n c\n-d\n+D\n",
			want:     "a\nB\nc\nD\n",
		},
		{
			name:     "markdown fence with prose",
			original: sample,
			diff:     "Here is the fix:\n\n```diff\n--- a/app.py\n+++ b/app.py\n" + greetHunk + "```\n\nThis uses an f-string.",
			want:     greeted,
		},
		{
			name:     "fenced diff preferred over other fenced blocks",
			original: sample,
			diff:     "```python\nprint(greet('x'))\n```\n```diff\n" + greetHunk + "```\n",
			want:     greeted,
		},
		{
			name:     "unclosed fence",
			original: sample,
			diff:     "```\n" + greetHunk,
			want:     greeted,
		},
		{
			name:     "trailing whitespace in the code is kept",
			original: edited(sample, "def greet(name):", "def greet(name):  \t"),
			diff:     greetHunk,
			want:     edited(greeted, "def greet(name):", "def greet(name):  \t"),
		},
		{
			name:     "trailing whitespace in the patch",
			original: sample,
			diff:     strings.Replace(greetHunk, " def greet(name):", " def greet(name):   ", 1),
			want:     greeted,
		},
		{
			name:     "CRLF code keeps CRLF",
			original: crlf(sample),
			diff:     greetHunk,
			want:     crlf(greeted),
		},
		{
			name:     "CRLF patch on LF code",
			original: sample,
			diff:     crlf("--- a/app.py\n+++ b/app.py\n" + greetHunk),
			want:     greeted,
		},
		{
			name:     "empty context line without its space",
			original: sample,
			diff:     "@@ -9,4 +9,5 @@\n     return a + b\n\n\n+# A counter.\n class Counter:\n",
			want:     edited(sample, "class Counter:", "# A counter.\nclass Counter:"),
		},
		{
			name:     "empty lines after the last hunk are spacing",
			original: sample,
			diff:     greetHunk + "\n\n",
			want:     greeted,
		},
		{
			name:     "prose after the last hunk is ignored",
			original: sample,
			diff:     greetHunk + "This changes greet to use an f-string.\nNothing else changes.\n",
			want:     greeted,
		},
		{
			name:     "removed and added lines that look like file headers",
			original: "x = 1\n-- y\nz = 3\n",
			diff:     "--- a/f.py\n+++ b/f.py\n@@ -1,3 +1,3 @@\n x = 1\n--- y\n+++ y\n z = 3\n",
			want:     "x = 1\n++ y\nz = 3\n",
		},
		{
			name:     "two sections for the same file",
			original: sample,
			diff:     "--- a/app.py\n+++ b/app.py\n" + greetHunk + "--- a/app.py\n+++ b/app.py\n@@ -17 +17 @@\n-        self.n += 1\n+        self.n += 3\n",
			want:     edited(greeted, "self.n += 1", "self.n += 3"),
		},
		{
			name:     "new file on empty code",
			original: "",
			diff:     "--- /dev/null\n+++ b/app.py\n@@ -0,0 +1,2 @@\n+x = 1\n+print(x)\n",
			want:     "x = 1\nprint(x)\n",
		},
		{
			name:     "new file on blank code",
			original: "\n  \n",
			diff:     "--- /dev/null\n+++ b/app.py\n@@ -0,0 +1,2 @@\n+x = 1\n+print(x)\n",
			want:     "x = 1\nprint(x)\n",
		},
		{
			name:     "new file without a final newline",
			original: "",
			diff:     "@@ -0,0 +1 @@\n+x = 1\n\\ No newline at end of file\n",
			want:     "x = 1",
		},
		{
			name:     "no final newline kept when changing the last line",
			original: "a = 1\nb = 2",
			diff:     "@@ -1,2 +1,2 @@\n a = 1\n-b = 2\n\\ No newline at end of file\n+b = 3\n\\ No newline at end of file\n",
			want:     "a = 1\nb = 3",
		},
		{
			name:     "no final newline kept when the patch does not mention it",
			original: "a = 1\nb = 2",
			diff:     "@@ @@\n a = 1\n-b = 2\n+b = 3\n",
			want:     "a = 1\nb = 3",
		},
		{
			name:     "no final newline kept when appending",
			original: "a = 1\nb = 2",
			diff:     "@@ @@\n b = 2\n+c = 3\n",
			want:     "a = 1\nb = 2\nc = 3",
		},
		{
			name:     "final newline added",
			original: "a = 1\nb = 2",
			diff:     "@@ -2 +2 @@\n-b = 2\n\\ No newline at end of file\n+b = 2\n",
			want:     "a = 1\nb = 2\n",
		},
		{
			name:     "final newline removed",
			original: "a = 1\nb = 2\n",
			diff:     "@@ -2 +2 @@\n-b = 2\n+b = 2\n\\ No newline at end of file\n",
			want:     "a = 1\nb = 2",
		},
		{
			name:     "CRLF code without a final newline",
			original: "a = 1\r\nb = 2",
			diff:     "@@ @@\n b = 2\n+c = 3\n",
			want:     "a = 1\r\nb = 2\r\nc = 3",
		},
		{
			name:     "deleting everything",
			original: "x = 1\n",
			diff:     "@@ -1 +0,0 @@\n-x = 1\n",
			want:     "",
		},
		{
			// The model never sees nor writes it: the mark is not text of line 1.
			name:     "a byte order mark is kept, not matched",
			original: "\ufeffx = 1\ny = 2\n",
			diff:     "@@ -1,2 +1,2 @@\n-x = 1\n+x = 3\n y = 2\n",
			want:     "\ufeffx = 3\ny = 2\n",
		},
		{
			// Only line 1's mark is set aside: one further down is text.
			name:     "a byte order mark on a later line is text",
			original: "\ufeffx = 1\n\ufeffy = 2\n",
			diff:     "@@ -2 +2 @@\n-\ufeffy = 2\n+y = 3\n",
			want:     "\ufeffx = 1\ny = 3\n",
		},
		{
			// As Unified wrote it before it left the mark out.
			name:     "a diff with the byte order mark on line 1",
			original: "\ufeffx = 1\ny = 2\n",
			diff:     "@@ -1,2 +1,2 @@\n \ufeffx = 1\n-y = 2\n+y = 3\n",
			want:     "\ufeffx = 1\ny = 3\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Apply(tt.original, tt.diff)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if got != tt.want {
				t.Errorf("Apply =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestApplyErrors(t *testing.T) {
	tests := []struct {
		name, original, diff string
		hunk, line           int      // expected Error fields
		has                  []string // expected in the message
	}{
		{
			name:     "ambiguous context",
			original: "x = 1\nprint(x)\nx = 1\nprint(x)\n",
			diff:     "@@ -3,2 +3,2 @@\n x = 1\n-print(x)\n+print(x + 1)\n",
			hunk:     1, line: 1,
			has: []string{"hunk 1 (@@ -3,2 +3,2 @@)", "match 2 places", "lines 1 and 3", "more unchanged lines"},
		},
		{
			name:     "context matching many places",
			original: strings.Repeat("    pass\n", 10),
			diff:     "@@ @@\n     pass\n+    return\n",
			hunk:     1, line: 1,
			has: []string{"match 10 places in the current code (lines 1, 2, 3, 4, 5, 6, 7, 8, ...)"},
		},
		{
			name:     "context not found",
			original: sample,
			diff:     "@@ -8,2 +8,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b + 0\n",
			hunk:     1, line: 8,
			has: []string{
				"hunk 1 (@@ -8,2 +8,2 @@): context/removed lines not found in the current code; expected at line 8:\n    def add(a, b):\n        return a - b\n",
				`closest match at line 8 differs in line 9: expected "    return a - b", found "    return a + b"`,
			},
		},
		{
			name:     "second hunk not found, found nowhere",
			original: sample,
			diff:     greetHunk + "@@ @@\n-import sys\n+import re\n",
			hunk:     2,
			has:      []string{"hunk 2 (@@ @@)", "expected:\n    import sys\n", "no similar lines"},
		},
		{
			name:     "context runs past the end",
			original: sample,
			diff:     "@@ @@\n         return self.n\n+\n+\n+c = Counter()\n \n",
			hunk:     1, line: 18,
			has: []string{"closest match at line 18 runs past the end of the file (line 18)"},
		},
		{
			name:     "hunks out of order",
			original: sample,
			diff:     "@@ -17 +17 @@\n-        self.n += 1\n+        self.n += 2\n" + greetHunk,
			hunk:     2, line: 4,
			has: []string{"hunk 2 (@@ -4,2 +4,2 @@)", "match at line 4, before hunk 1 (line 17)", "order of the file"},
		},
		{
			name:     "overlapping hunks",
			original: sample,
			diff:     "@@ @@\n def add(a, b):\n-    return a + b\n+    return b + a\n@@ @@\n     return a + b\n \n-\n",
			hunk:     2, line: 9,
			has: []string{"lines 9-11, which overlap hunk 1 (lines 8-9)", "merge the two hunks"},
		},
		{
			name:     "two files",
			original: sample,
			diff:     "--- a/app.py\n+++ b/app.py\n" + greetHunk + "--- a/utils.py\n+++ b/utils.py\n@@ -1 +1 @@\n-x\n+y\n",
			has:      []string{"the patch changes more than one file: app.py, utils.py; this project has one file"},
		},
		{
			name:     "two files in git form",
			original: sample,
			diff:     "diff --git a/app.py b/app.py\n" + greetHunk + "diff --git a/lib/x.py b/lib/x.py\n@@ -1 +1 @@\n-x\n+y\n",
			has:      []string{"more than one file: app.py, lib/x.py"},
		},
		{
			name:     "new file over existing code",
			original: sample,
			diff:     "--- /dev/null\n+++ b/app.py\n@@ -0,0 +1 @@\n+x = 1\n",
			has:      []string{"creates the file (--- /dev/null), but the file already has code"},
		},
		{
			name:     "deleting the file",
			original: sample,
			diff:     "--- a/app.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-import os\n",
			has:      []string{"deletes the file"},
		},
		{
			name:     "no hunks",
			original: sample,
			diff:     "--- a/app.py\n+++ b/app.py\n-import os\n+import sys\n",
			has:      []string{"no hunks found: the patch must be a unified diff with @@ hunks"},
		},
		{
			name:     "empty patch",
			original: sample,
			diff:     "",
			has:      []string{"no hunks found"},
		},
		{
			name:     "hunk without changes",
			original: sample,
			diff:     greetHunk + "@@ -1 +1 @@\n import os\n",
			hunk:     2,
			has:      []string{"hunk 2 (@@ -1 +1 @@): it changes nothing"},
		},
		{
			name:     "insertion without context",
			original: sample,
			diff:     "@@ -0,0 +1 @@\n+import sys\n",
			hunk:     1,
			has:      []string{"hunk 1 (@@ -0,0 +1 @@): it has no context lines; include at least one unchanged line around the insertion"},
		},
		{
			name:     "unprefixed line followed by diff lines",
			original: sample,
			diff:     "@@ @@\nimport os\n \n \n def greet(name):\n-    return \"hello \" + name\n+    return name\n",
			hunk:     1,
			has:      []string{`the line "import os" does not start with ' ' (unchanged)`, "start every unchanged line with a space"},
		},
		{
			name:     "misplaced no-newline marker",
			original: "a = 1\nb = 2",
			diff:     "@@ @@\n a = 1\n\\ No newline at end of file\n-b = 2\n+b = 3\n",
			hunk:     1,
			has:      []string{`"\ No newline at end of file" must come right after the file's last line, but the line "b = 2" follows it`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Apply(tt.original, tt.diff)
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Apply = %q, %v; want an *Error", got, err)
			}
			if pe.Hunk != tt.hunk || pe.Line != tt.line {
				t.Errorf("Error{Hunk: %d, Line: %d}, want {Hunk: %d, Line: %d}", pe.Hunk, pe.Line, tt.hunk, tt.line)
			}
			for _, s := range tt.has {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error\n%s\ndoes not contain\n%s", err, s)
				}
			}
		})
	}
}

// TestErrorMessage pins the whole text of the most common error, since it is
// what the model reads.
func TestErrorMessage(t *testing.T) {
	diff := `@@ -10,3 +10,3 @@
     def inc(self):
-        self.n += 1
+        self.n += 2
         return self.count
`
	want := `hunk 1 (@@ -10,3 +10,3 @@): context/removed lines not found in the current code; expected at line 10:
        def inc(self):
            self.n += 1
            return self.count
closest match at line 16 differs in line 18: expected "        return self.count", found "        return self.n"`
	if _, err := Apply(sample, diff); err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}
