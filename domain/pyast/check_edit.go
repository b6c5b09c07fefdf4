package pyast

import (
	"bytes"
	"container/list"
	"slices"
	"sync"
	"sync/atomic"

	sitter "github.com/tree-sitter/go-tree-sitter"
)

// CheckEdit returns what CheckSyntax(code) returns, for code that is an edit
// of base: a patch applied to a project's code, which is how the vibecode
// loop and a commit check code. Instead of parsing code whole, it reparses
// the region the edit changed into base's tree (tree-sitter's incremental
// parsing) and runs the tree checks only on the top-level statements the
// edit reached; the tokenizer still reads all of code. For a one-line patch
// of a 5,000-line file that is about a tenth of CheckSyntax's time
// (BenchmarkCheckEdit5000).
//
// base's parse is kept for later edits of the same code (editBases): the
// first CheckEdit of a base parses it whole. When base itself is not valid
// Python, CheckEdit is CheckSyntax: the shortcut rests on base's statements
// having passed every check; and so it is for a base too large to keep,
// which would be parsed whole each time.
func CheckEdit(base, code string) error { return editBases.checkEdit(base, code) }

func (c *baseCache) checkEdit(base, code string) error {
	if base == code || entryCost(base) > c.limit {
		return CheckSyntax(code)
	}
	b := c.get(base)
	if b.err != nil { // not valid Python
		return CheckSyntax(code)
	}
	p, err := parseEdit(b, code)
	if p != nil {
		p.close()
	}
	if err != nil {
		return err
	}
	return nil
}

// parseEdit is parse for code, an edit of base b. It closes b's tree.
func parseEdit(b baseParse, code string) (*parsed, *SyntaxError) {
	defer b.tree.Close()
	src, serr := readSource(code)
	if serr != nil {
		return nil, serr
	}
	tok := tokenize(src)
	if tok.stop < len(tok.flat) {
		// The tokenizer stopped early (too many nested brackets): parse
		// only what it read, as parse does.
		return parse(code)
	}
	start, oldEnd, newEnd := editedRange(b.src, b.flat, src, tok.flat)
	b.tree.Edit(&sitter.InputEdit{
		StartByte: uint(start), OldEndByte: uint(oldEnd), NewEndByte: uint(newEnd),
		StartPosition: pointAt(tok.flat, start), OldEndPosition: pointAt(b.flat, oldEnd), NewEndPosition: pointAt(tok.flat, newEnd),
	})

	w := getWorker()
	defer w.release()
	tree := w.parser.Parse(tok.flat, b.tree)
	var reached []*sitter.Node // nil: the whole tree
	if tree != nil && tree.RootNode().HasError() {
		// tree-sitter's error recovery may shape the ERROR nodes of a
		// reparse otherwise than a parse's, and so the error reported:
		// parse it whole, as parse does.
		tree.Close()
		tree = w.parser.Parse(tok.flat, nil)
	} else if tree != nil {
		reached = reachedStatements(tree, append(b.tree.ChangedRanges(tree), sitter.Range{StartByte: uint(start), EndByte: uint(newEnd)}))
	}
	if tree == nil {
		return nil, &SyntaxError{Line: 1, Msg: "tree-sitter could not parse the file"}
	}
	p := &parsed{src: src, tree: tree}
	return p, pickError(p, tok, checkTree(w, p, tok.keywords, reached))
}

// editedRange returns where two versions of a file differ: the bytes
// [start, oldEnd) of the old became [start, newEnd) of the new. Both the
// sources and the flat copies tree-sitter parses (tokens.flat, whose offsets
// are the source's) are compared: the tree checks read the source, and a
// change of one need not show in the other (a string's content is blanked
// in the flat copy; an opened string blanks what follows it).
func editedRange(oldSrc, oldFlat, newSrc, newFlat []byte) (start, oldEnd, newEnd int) {
	n := min(len(oldSrc), len(newSrc))
	for start < n && oldSrc[start] == newSrc[start] && oldFlat[start] == newFlat[start] {
		start++
	}
	oldEnd, newEnd = len(oldSrc), len(newSrc)
	for oldEnd > start && newEnd > start && oldSrc[oldEnd-1] == newSrc[newEnd-1] && oldFlat[oldEnd-1] == newFlat[newEnd-1] {
		oldEnd--
		newEnd--
	}
	return start, oldEnd, newEnd
}

// pointAt is tree-sitter's row and column of byte offset off of flat.
func pointAt(flat []byte, off int) sitter.Point {
	lineStart := bytes.LastIndexByte(flat[:off], '\n') + 1
	return sitter.Point{Row: uint(bytes.Count(flat[:lineStart], []byte{'\n'})), Column: uint(off - lineStart)}
}

// reachedStatements returns the top-level nodes of tree that touch one of
// ranges, in order. Every match of checksQuery and every keyword taken for a
// name lies within one top-level statement (no pattern's nodes are the
// module's children together), so the statements outside the ranges, parsed
// the same as in a base that passed the checks, cannot hold one.
func reachedStatements(tree *sitter.Tree, ranges []sitter.Range) []*sitter.Node {
	root := tree.RootNode()
	out := []*sitter.Node{}
	for i := range root.ChildCount() {
		c := root.Child(i)
		for _, r := range ranges {
			if c.EndByte() >= r.StartByte && c.StartByte() <= r.EndByte {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// baseParse is a base of CheckEdit that passed CheckSyntax: its source as
// read, the flat copy tree-sitter parsed and the tree, a copy the caller
// owns. When base is not valid Python, only err is set.
type baseParse struct {
	src, flat []byte
	tree      *sitter.Tree
	err       *SyntaxError
}

// editBases keeps the parses of the bases CheckEdit and ParseAgents saw
// last, up to maxBaseBytes of source (and a little per entry, entryCost), so that the edits of a project's code,
// each message's patch and then its commit, parse only what they change, and
// its agents are found without parsing it again. A process sees the same few
// codes over and over: the heads of the projects its users are working on.
var editBases = &baseCache{limit: maxBaseBytes, entries: map[string]*list.Element{}}

// maxBaseBytes bounds the sources whose parses are kept. A kept parse takes
// 37 times its source (BenchmarkKeptParseMemory: 5.5 MB for the 147 KB of a
// 5,000-line file): at most about 20 MB.
const maxBaseBytes = 512 << 10

type baseCache struct {
	limit   int // bytes of source
	mu      sync.Mutex
	entries map[string]*list.Element // of *baseEntry, by base
	order   list.List                // most recently used first
	bytes   int
	parses  atomic.Int32 // bases parsed, for tests
	// parse is parseBase, unless a test says otherwise.
	parse func(base string) baseParse
}

// baseEntry is a kept parse, or one being parsed: the calls that want it
// meanwhile wait for it rather than parse the same code too (the first
// messages of many sessions on one project's code come together).
type baseEntry struct {
	base  string
	ready chan struct{} // closed once parse is set
	parse baseParse
	// users are the calls that found the entry and have not copied its
	// tree yet; the tree of a dropped entry is closed after the last.
	users   int
	dropped bool

	// agents are base's agents (ParseAgents), found once.
	agentsOnce sync.Once
	agents     []AgentNode
}

// get returns base's parse with a copy of its tree, which the caller must
// close, parsing base when it is not kept.
func (c *baseCache) get(base string) baseParse {
	b, _ := c.entry(base)
	return b
}

// agents returns base's agents, found once per kept base, or the error of
// its parse.
func (c *baseCache) agents(base string) ([]AgentNode, error) {
	b, e := c.entry(base)
	if b.err != nil {
		return nil, b.err
	}
	defer b.tree.Close()
	find := func() []AgentNode { return findAgents(&parsed{src: b.src, flat: b.flat, tree: b.tree}) }
	if e == nil { // not kept
		return find(), nil
	}
	e.agentsOnce.Do(func() { e.agents = find() })
	out := make([]AgentNode, len(e.agents))
	for i, a := range e.agents { // the caller's to change
		a.Children, a.Tools = slices.Clone(a.Children), slices.Clone(a.Tools)
		out[i] = a
	}
	return out, nil
}

// entry is get, and the entry that keeps the parse (nil when base is over
// the limit).
func (c *baseCache) entry(base string) (baseParse, *baseEntry) {
	if entryCost(base) > c.limit {
		c.parses.Add(1)
		return parseBase(base), nil
	}
	c.mu.Lock()
	el, found := c.entries[base]
	if !found {
		el = c.order.PushFront(&baseEntry{base: base, ready: make(chan struct{})})
		c.entries[base] = el
		c.bytes += entryCost(base)
		c.parses.Add(1)
		c.dropOld()
	}
	c.order.MoveToFront(el)
	e := el.Value.(*baseEntry)
	e.users++
	c.mu.Unlock()

	if !found {
		c.parseEntry(e)
	}
	<-e.ready
	c.mu.Lock()
	defer c.mu.Unlock()
	out := e.parse
	if out.tree != nil {
		// A copy (cheap: tree-sitter shares the nodes) stays valid when
		// the entry is dropped.
		out.tree = out.tree.Clone()
	}
	e.users--
	c.closeDropped(e)
	return out, e
}

// parseEntry parses e's base. Should the parse panic, the calls waiting
// for it must not wait forever: the entry is dropped, they get the error,
// and the panic goes on in this call.
func (c *baseCache) parseEntry(e *baseEntry) {
	parsed := false
	defer func() {
		if !parsed {
			c.mu.Lock()
			e.parse = baseParse{err: &SyntaxError{Line: 1, Msg: "the parse of this code failed"}}
			c.drop(e)
			c.mu.Unlock()
		}
		close(e.ready)
	}()
	if c.parse != nil {
		e.parse = c.parse(e.base)
	} else {
		e.parse = parseBase(e.base)
	}
	parsed = true
}

// entryCost is what an entry counts against the limit: its source, and a
// little for the entry itself, so that many small codes are bounded too.
func entryCost(base string) int { return len(base) + 256 }

// dropOld drops the least recently used entries while the sources kept pass
// the limit. c.mu is held.
func (c *baseCache) dropOld() {
	for c.bytes > c.limit {
		c.drop(c.order.Back().Value.(*baseEntry))
	}
}

// drop removes e from the cache, if it is there. c.mu is held.
func (c *baseCache) drop(e *baseEntry) {
	el, ok := c.entries[e.base]
	if !ok || el.Value != e {
		return
	}
	c.order.Remove(el)
	delete(c.entries, e.base)
	c.bytes -= entryCost(e.base)
	e.dropped = true
	c.closeDropped(e)
}

// closeDropped closes the tree of a dropped entry no call still wants.
// c.mu is held.
func (c *baseCache) closeDropped(e *baseEntry) {
	if e.dropped && e.users == 0 && e.parse.tree != nil {
		e.parse.tree.Close()
		e.parse.tree = nil
	}
}

// parseBase parses base whole and keeps what an edit of it needs, when it
// is valid, or its error.
func parseBase(base string) baseParse {
	p, err := parse(base)
	if err != nil {
		if p != nil {
			p.close()
		}
		return baseParse{err: err}
	}
	return baseParse{src: p.src, flat: p.flat, tree: p.tree}
}
