package pyast

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// pythonVerdicts prints, for a JSON list of sources, the JSON list of the
// errors CPython's compiler reports, as py_compile would: [line, message],
// or [0, ""] for valid code.
const pythonVerdicts = `import json, sys, warnings
warnings.simplefilter("ignore")
out = []
for src in json.load(open(sys.argv[1], encoding="utf-8")):
    try:
        compile(src, "corpus.py", "exec")
        out.append([0, ""])
    except SyntaxError as e:
        out.append([e.lineno or 1, e.msg])
    except ValueError as e:
        out.append([1, str(e)])
json.dump(out, sys.stdout)
`

// TestCheckSyntaxCorpus compares CheckSyntax with CPython's compiler (the
// reference of py_compile, stricter than ast.parse) on the .py files
// under $PYAST_PYTHON_CORPUS (for instance /usr/lib/python3.11) and on
// mutants of them: a line deleted, a character deleted, a line indented, a
// token inserted. Rejecting valid code fails the test; missed errors and
// other lines are only counted, as the known differences are.
func TestCheckSyntaxCorpus(t *testing.T) {
	root := os.Getenv("PYAST_PYTHON_CORPUS")
	if root == "" {
		t.Skip("set PYAST_PYTHON_CORPUS to a directory of Python files")
	}
	python := findPython(t)
	maxFiles := 3000
	if n, err := strconv.Atoi(os.Getenv("PYAST_CORPUS_FILES")); err == nil {
		maxFiles = n
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var sources, names []string
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".py") || len(names) >= maxFiles {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil || len(b) > 50_000 || !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
			return nil
		}
		src := string(b)
		sources, names = append(sources, src), append(names, path)
		for m := 0; m < 2; m++ {
			if mutant := mutate(rng, src); utf8.ValidString(mutant) {
				sources, names = append(sources, mutant), append(names, path+" (mutant)")
			}
		}
		return nil
	})

	input := filepath.Join(t.TempDir(), "sources.json")
	data, err := json.Marshal(sources)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(input, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(python, "-c", pythonVerdicts, input).Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var verdicts [][2]any
	if err := json.Unmarshal(out, &verdicts); err != nil || len(verdicts) != len(sources) {
		t.Fatalf("python3 output: %v (%d verdicts for %d sources)", err, len(verdicts), len(sources))
	}

	var invalid, missed, sameLine int
	for i, src := range sources {
		pyLine, pyMsg := int(verdicts[i][0].(float64)), verdicts[i][1].(string)
		var goLine int
		if err := CheckSyntax(src); err != nil {
			goLine = err.(*SyntaxError).Line
		}
		switch {
		case pyLine == 0 && goLine != 0:
			t.Errorf("%s: valid for CPython, CheckSyntax: %v", names[i], CheckSyntax(src))
		case pyLine != 0:
			invalid++
			if goLine == 0 {
				missed++
				t.Logf("%s: CPython: line %d: %s; CheckSyntax: valid", names[i], pyLine, pyMsg)
			} else if goLine == pyLine {
				sameLine++
			}
		}
	}
	t.Logf("%d sources, %d invalid for CPython: CheckSyntax missed %d, named the same line for %d",
		len(sources), invalid, missed, sameLine)
}

// mutationTokens are what mutate inserts: the tokens of the mistakes people
// and models make, and those that change how the rest of a file reads.
var mutationTokens = []string{"(", ")", ":", ",", "=", "if", "else", `"`, "'", "[", "]", "{", "}", ".", "\t", "    ",
	"\n", "def", "return", "lambda", "*", "**", "->", "@", `"""`, "#", "\\", "not", "in", "pass", "await",
	"class", "for", "x", "1", "0", ";", "+=", ":=", "import", "as"}

// mutate returns src with one mistake of the kinds people and models make: a
// line deleted, a character deleted, a line indented, or a token inserted.
func mutate(rng *rand.Rand, src string) string {
	l := strings.SplitAfter(src, "\n")
	i := rng.IntN(len(l))
	switch rng.IntN(4) {
	case 0:
		l = append(l[:i], l[i+1:]...)
	case 1:
		if n := len(l[i]); n > 0 {
			j := rng.IntN(n)
			l[i] = l[i][:j] + l[i][j+1:]
		}
	case 2:
		l[i] = strings.Repeat(" ", 1+rng.IntN(8)) + l[i]
	default:
		j := rng.IntN(len(l[i]) + 1)
		l[i] = l[i][:j] + mutationTokens[rng.IntN(len(mutationTokens))] + l[i][j:]
	}
	return strings.Join(l, "")
}
