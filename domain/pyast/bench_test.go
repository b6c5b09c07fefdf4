package pyast

import (
	"fmt"
	"os"
	"strings"
	"testing"

	sitter "github.com/tree-sitter/go-tree-sitter"

	"github.com/vibegrapher/vibegrapher/internal/fixtures"
)

// TestWriteBenchFile writes the file the 5,000-line benchmarks parse, to
// compare with CPython:
//
//	PYAST_BENCH_FILE=/tmp/agents5000.py go test -run TestWriteBenchFile ./domain/pyast/
//	python3 -m timeit -s 'import ast; s=open("/tmp/agents5000.py").read()' 'ast.parse(s)'
func TestWriteBenchFile(t *testing.T) {
	path := os.Getenv("PYAST_BENCH_FILE")
	if path == "" {
		t.Skip("set PYAST_BENCH_FILE to write the benchmark file")
	}
	if err := os.WriteFile(path, []byte(fixtures.AgentsFile(5000)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkParseAgents5000(b *testing.B) {
	code := fixtures.AgentsFile(5000)
	agents, err := ParseAgents(code)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(splitLines(code))), "lines")
	b.ReportMetric(float64(len(agents)), "agents")
	b.SetBytes(int64(len(code)))
	b.ReportAllocs()
	codes := newCodes(code)
	for b.Loop() {
		if _, err := ParseAgents(codes()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseAgents5000Kept is ParseAgents of a code whose parse is kept
// (editBases): a node session's messages ask for the agents of the same
// head, and a commit's nodes are of the code its diff was checked against.
func BenchmarkParseAgents5000Kept(b *testing.B) {
	code := fixtures.AgentsFile(5000)
	b.SetBytes(int64(len(code)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseAgents(code); err != nil {
			b.Fatal(err)
		}
	}
}

// newCodes returns a function that gives code with a different first line
// at each call, so that ParseAgents parses it rather than find it kept.
func newCodes(code string) func() string {
	i := 0
	return func() string {
		i++
		return fmt.Sprintf("# %d\n%s", i, code)
	}
}

func BenchmarkCheckSyntax5000(b *testing.B) {
	code := fixtures.AgentsFile(5000)
	b.SetBytes(int64(len(code)))
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckSyntax(code); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseAgentsSample is the cost per request of a typical project.
func BenchmarkParseAgentsSample(b *testing.B) {
	b.ReportAllocs()
	codes := newCodes(sampleWorkflow)
	for b.Loop() {
		if _, err := ParseAgents(codes()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckSyntaxInvalid covers the error paths (for leak checks).
func BenchmarkCheckSyntaxInvalid(b *testing.B) {
	code := sampleWorkflow + "\nbroken = Agent(name=\"x\" instructions=\"y\")\n  oops\n"
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckSyntax(code); err == nil {
			b.Fatal("no error")
		}
	}
}

// BenchmarkParseAgents5000Allocator runs BenchmarkParseAgents5000's parse
// with go-tree-sitter's Go allocation callbacks and with libc's allocator
// (what the package uses, c_allocator.go), side by side: run it with -count
// so the two alternate.
func BenchmarkParseAgents5000Allocator(b *testing.B) {
	code := fixtures.AgentsFile(5000)
	defer useCAllocator()
	for _, alloc := range []struct {
		name string
		use  func()
	}{
		{"go-callbacks", func() { sitter.SetAllocator(nil, nil, nil, nil) }},
		{"libc", useCAllocator},
	} {
		b.Run(alloc.name, func(b *testing.B) {
			alloc.use()
			b.SetBytes(int64(len(code)))
			b.ReportAllocs()
			codes := newCodes(code)
			for b.Loop() {
				if _, err := ParseAgents(codes()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckSyntaxUnclosedBrackets is 40,000 unclosed brackets: past
// 200 the tokenizer stops, and so does tree-sitter's parse (it took about
// 4 s when tree-sitter recovered from every one of them).
func BenchmarkCheckSyntaxUnclosedBrackets(b *testing.B) {
	code := "x = " + strings.Repeat("[", 40_000) + "\n"
	for b.Loop() {
		if err := CheckSyntax(code); err == nil {
			b.Fatal("accepted")
		}
	}
}

// BenchmarkKeptParseMemory keeps parses of distinct 5,000-line files, as
// editBases does, and reports the memory each takes per byte of its source:
// its tree (C memory, which -benchmem does not see) and the two copies of
// the source it keeps. That is what maxBaseBytes' bound on the kept parses
// comes to.
func BenchmarkKeptParseMemory(b *testing.B) {
	code := fixtures.AgentsFile(5000)
	codes := newCodes(code)
	before := cHeapInUse()
	var kept []baseParse
	var goBytes int64
	for b.Loop() {
		k := parseBase(codes())
		kept = append(kept, k)
		goBytes += int64(cap(k.src) + cap(k.flat))
	}
	trees := cHeapInUse() - before
	b.ReportMetric(float64(trees+goBytes)/float64(len(kept)*len(code)), "B/source-B")
	for _, k := range kept {
		k.tree.Close()
	}
}
