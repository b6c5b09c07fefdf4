package pyast

import (
	"container/list"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vibegrapher/vibegrapher/internal/fixtures"
)

// sameVerdict fails t unless CheckEdit(base, code) says what
// CheckSyntax(code) says, to the column and the message.
func sameVerdict(t *testing.T, name, base, code string) {
	t.Helper()
	want, got := CheckSyntax(code), CheckEdit(base, code)
	if fmt.Sprint(want) != fmt.Sprint(got) || fmt.Sprintf("%#v", want) != fmt.Sprintf("%#v", got) {
		t.Errorf("%s: CheckEdit = %#v, CheckSyntax = %#v for\n%s", name, got, want, code)
	}
}

// editBasesForTest are valid files of every construct the syntax cases
// cover, the sample workflow and a generated agents file.
func editBasesForTest(t *testing.T) map[string]string {
	bases := map[string]string{"sample workflow": sampleWorkflow, "agents file": fixtures.AgentsFile(400)}
	var all strings.Builder
	for _, tt := range syntaxCases {
		if tt.line == 0 {
			bases[tt.name] = tt.code
			if !strings.HasSuffix(tt.code, "\n") || strings.Contains(tt.code, "\ufeff") {
				continue // a file's last line, or its first
			}
			all.WriteString(tt.code)
		}
	}
	bases["every valid case"] = all.String()
	for name, code := range bases {
		if err := CheckSyntax(code); err != nil {
			t.Fatalf("base %s is not valid: %v", name, err)
		}
	}
	return bases
}

// CheckEdit must be CheckSyntax: for mutants of valid files, one mistake or
// two apart (so the edit spans unchanged code), and for edits that change
// how the rest of a file reads (an opened string or bracket).
func TestCheckEditAgreesWithCheckSyntax(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var invalid, valid int
	bases := editBasesForTest(t)
	for _, name := range slices.Sorted(maps.Keys(bases)) {
		base := bases[name]
		for i := range 100 {
			code := mutate(rng, base)
			if i%3 == 0 {
				code = mutate(rng, code)
			}
			if !utf8.ValidString(code) {
				continue
			}
			if CheckSyntax(code) == nil {
				valid++
			} else {
				invalid++
			}
			sameVerdict(t, fmt.Sprintf("%s, mutant %d", name, i), base, code)
		}
		lines := strings.SplitAfter(base, "\n")
		for _, insert := range []string{"s = '''\n", "x = (\n", "def f(:\n", "    return 1\n", "print 'x'\n", "x = pass\n", "f(a=1, 2)\n", "# note\n", "\n"} {
			for _, at := range []int{0, len(lines) / 2, len(lines)} {
				code := strings.Join(lines[:at], "") + insert + strings.Join(lines[at:], "")
				sameVerdict(t, fmt.Sprintf("%s, %q at line %d", name, insert, at+1), base, code)
			}
		}
	}
	// The mutants must hold both kinds, or the agreement says little.
	if invalid < 1500 || valid < 1500 {
		t.Errorf("%d invalid and %d valid mutants: too few of one kind", invalid, valid)
	}
	t.Logf("%d invalid and %d valid mutants", invalid, valid)
}

// With $PYAST_PYTHON_CORPUS (a directory of Python files, for instance
// /usr/lib/python3.11), the valid files there are bases too.
func TestCheckEditAgreesOnCorpus(t *testing.T) {
	root := os.Getenv("PYAST_PYTHON_CORPUS")
	if root == "" {
		t.Skip("set PYAST_PYTHON_CORPUS to a directory of Python files")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	files := 0
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".py") || files >= 1500 {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil || len(b) > 100_000 || !utf8.Valid(b) || CheckSyntax(string(b)) != nil {
			return nil
		}
		files++
		for i := range 10 {
			if code := mutate(rng, string(b)); utf8.ValidString(code) {
				sameVerdict(t, fmt.Sprintf("%s, mutant %d", path, i), string(b), code)
			}
		}
		return nil
	})
	t.Logf("%d files", files)
}

// An invalid base is no shortcut: CheckEdit checks the edit whole.
func TestCheckEditOfAnInvalidBase(t *testing.T) {
	base := "def f(:\n    pass\n"
	for _, code := range []string{"def f():\n    pass\n", "def f(:\n    pass\nx = 1\n", "def f(:\n    pass\nprint 'x'\n"} {
		sameVerdict(t, "invalid base", base, code)
	}
	if CheckEdit(base, "def f():\n    pass\n") != nil {
		t.Error("the fixed file was rejected")
	}
}

// Edits of one base from many goroutines share its kept parse.
func TestCheckEditConcurrently(t *testing.T) {
	base := fixtures.AgentsFile(300)
	lines := strings.SplitAfter(base, "\n")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				at := (g*20 + i) * 7 % len(lines)
				good := strings.Join(lines[:at], "") + "# note\n" + strings.Join(lines[at:], "")
				bad := strings.Join(lines[:at], "") + "x = (\n" + strings.Join(lines[at:], "")
				sameVerdict(t, fmt.Sprintf("a comment at line %d", at+1), base, good)
				sameVerdict(t, fmt.Sprintf("an open bracket at line %d", at+1), base, bad)
			}
		})
	}
	wg.Wait()
}

// The kept parses stay under the cache's limit of source, the least
// recently used dropped first, and a base over the limit is not kept.
func TestEditBasesAreBounded(t *testing.T) {
	c := &baseCache{limit: 1300, entries: map[string]*list.Element{}}
	var bases []string
	for i := range 4 {
		bases = append(bases, fmt.Sprintf("a%d = 0\n", i)+strings.Repeat("x = 1\n", 55)) // 336 bytes, 592 with the entry
		b := c.get(bases[i])
		if b.tree == nil {
			t.Fatalf("base %d was not parsed", i)
		}
		b.tree.Close()
	}
	if c.bytes > c.limit || len(c.entries) != 2 || c.order.Len() != 2 {
		t.Errorf("%d bytes in %d entries (%d in order) kept, want 2 entries under %d bytes", c.bytes, len(c.entries), c.order.Len(), c.limit)
	}
	for i, kept := range []bool{false, false, true, true} {
		if _, ok := c.entries[bases[i]]; ok != kept {
			t.Errorf("base %d kept: %v, want %v", i, ok, kept)
		}
	}
	big := strings.Repeat("x = 1\n", 200)
	if b := c.get(big); b.tree == nil {
		t.Fatal("a base over the limit was not parsed")
	} else {
		b.tree.Close()
	}
	if _, ok := c.entries[big]; ok || len(c.entries) != 2 {
		t.Errorf("a base over the limit is kept, or dropped the others (%d entries)", len(c.entries))
	}
}

// The first calls for a base come together (the first messages of many
// sessions on one project's code): they wait for one parse of it.
func TestEditBasesParseABaseOnce(t *testing.T) {
	c := &baseCache{limit: 1 << 20, entries: map[string]*list.Element{}}
	base := fixtures.AgentsFile(2000)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			b := c.get(base)
			if b.tree == nil || b.err != nil {
				t.Errorf("no tree (%v)", b.err)
				return
			}
			if got := b.tree.RootNode().EndByte(); int(got) != len(base) {
				t.Errorf("the tree ends at %d of %d bytes", got, len(base))
			}
			b.tree.Close()
		})
	}
	wg.Wait()
	if n := c.parses.Load(); n != 1 {
		t.Errorf("%d parses of one base", n)
	}
}

// Entries dropped while calls still use them: every call gets a tree of its
// own (the race detector and tree-sitter's frees check the rest).
func TestEditBasesDroppedWhileInUse(t *testing.T) {
	c := &baseCache{limit: 1200, entries: map[string]*list.Element{}}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				base := fmt.Sprintf("a = %d\n", (g+i)%5) + strings.Repeat("x = 1\n", 50) // 306 bytes, 562 with the entry: two are kept
				b := c.get(base)
				if b.tree == nil || int(b.tree.RootNode().EndByte()) != len(base) {
					t.Errorf("no tree of the base's %d bytes", len(base))
				} else {
					b.tree.Close()
				}
			}
		})
	}
	wg.Wait()
	if c.bytes > c.limit || len(c.entries) != c.order.Len() {
		t.Errorf("%d bytes kept in %d entries (%d in order)", c.bytes, len(c.entries), c.order.Len())
	}
}

// A kept base's agents are found once; each caller gets its own copy.
func TestKeptAgentsAreTheCallers(t *testing.T) {
	code := fixtures.AgentsFile(300)
	first, err := ParseAgents(code)
	if err != nil || len(first) == 0 || len(first[0].Tools) == 0 {
		t.Fatalf("ParseAgents: %d agents, %v", len(first), err)
	}
	want := first[0].Tools[0]
	first[0].Tools[0], first[0].ID = "changed", "changed"
	second, err := ParseAgents(code)
	if err != nil || second[0].Tools[0] != want || second[0].ID == "changed" {
		t.Errorf("a caller's change reached the next caller: %+v (%v)", second[0], err)
	}
}

// A base over the limit is not parsed for an edit of it, which would parse
// it whole each time: the edit is checked whole, as CheckSyntax does.
func TestCheckEditOfABaseOverTheLimit(t *testing.T) {
	c := &baseCache{limit: 100, entries: map[string]*list.Element{}}
	base := strings.Repeat("x = 1\n", 20) // 120 bytes
	for _, code := range []string{base + "y = 2\n", base + "y = (\n"} {
		if got, want := c.checkEdit(base, code), CheckSyntax(code); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("checkEdit = %v, CheckSyntax = %v", got, want)
		}
	}
	if n := c.parses.Load(); n != 0 || len(c.entries) != 0 {
		t.Errorf("%d parses, %d entries of a base over the limit", n, len(c.entries))
	}
}

// A first parse that panics does not leave the calls that wait for it
// waiting: they get an error, the entry is dropped, and the next call
// parses the code again.
func TestEditBasesAFirstParseThatPanics(t *testing.T) {
	c := &baseCache{limit: 1 << 20, entries: map[string]*list.Element{}}
	started, release := make(chan struct{}), make(chan struct{})
	c.parse = func(string) baseParse {
		close(started)
		<-release
		panic("a parse failed")
	}
	base := "x = 1\n"
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		c.get(base)
	}()
	<-started
	waited := make(chan baseParse, 1)
	go func() { waited <- c.get(base) }()
	for {
		c.mu.Lock()
		users := c.entries[base].Value.(*baseEntry).users
		c.mu.Unlock()
		if users == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if p := <-panicked; p == nil {
		t.Fatal("the panic of the parse did not go on in its call")
	}
	select {
	case b := <-waited:
		if b.err == nil || b.tree != nil {
			t.Errorf("the waiting call got %+v, want an error", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting call still waits")
	}
	c.parse = nil
	if b := c.get(base); b.err != nil || b.tree == nil {
		t.Errorf("the next call: %v", b.err)
	} else {
		b.tree.Close()
	}
	if len(c.entries) != 1 || c.order.Len() != 1 || c.bytes != entryCost(base) {
		t.Errorf("%d entries, %d in order, %d bytes after the panic and one parse", len(c.entries), c.order.Len(), c.bytes)
	}
}

// FuzzCheckEdit checks that CheckEdit(base, code) is CheckSyntax(code).
func FuzzCheckEdit(f *testing.F) {
	for _, tt := range syntaxCases {
		f.Add(sampleWorkflow, sampleWorkflow+tt.code)
		f.Add(tt.code, tt.code+"\nx = 1\n")
	}
	f.Fuzz(func(t *testing.T, base, code string) {
		sameVerdict(t, "fuzz", base, code)
	})
}

func BenchmarkCheckEdit5000(b *testing.B) {
	base := fixtures.AgentsFile(5000)
	lines := strings.SplitAfter(base, "\n")
	code := strings.Join(lines[:len(lines)/2], "") + "    # a note\n" + strings.Join(lines[len(lines)/2:], "")
	if err := CheckEdit(base, code); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(code)))
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckEdit(base, code); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckEditSample is the patch of vibegrapher-load's patch mode: a
// line appended to the sample workflow.
func BenchmarkCheckEditSample(b *testing.B) {
	code := sampleWorkflow + "# reviewed by the load test\n"
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckEdit(sampleWorkflow, code); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckSyntaxSample(b *testing.B) {
	code := sampleWorkflow + "# reviewed by the load test\n"
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckSyntax(code); err != nil {
			b.Fatal(err)
		}
	}
}
