package pyast

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	sitter "github.com/tree-sitter/go-tree-sitter"
	python "github.com/tree-sitter/tree-sitter-python/bindings/go"
)

// grammar holds what is looked up once per process: the language, the node
// kind and field ids compared while walking trees (comparing ids avoids a cgo
// call and an allocation per Kind()), and the compiled checks query.
type grammar struct {
	lang *sitter.Language

	// Node kinds.
	identifier, attribute, subscript, call, argumentList, keywordArgument,
	expressionStatement, assignment, list, tuple, str, concatenatedString,
	parenthesizedExpression, comment, chevron, typedParameter,
	keywordSeparator, listSplatPattern, lineContinuation uint16
	// statementContainer[kind] is true for the nodes that can hold
	// statements: the module, blocks and compound statements.
	statementContainer []bool
	// statement[kind] is true for statements.
	statement []bool

	// Fields.
	fieldLeft, fieldRight, fieldFunction, fieldArguments, fieldName,
	fieldValue, fieldAttribute, fieldObject uint16

	checks *sitter.Query
}

var loadGrammar = sync.OnceValue(func() *grammar {
	lang := sitter.NewLanguage(python.Language())
	kind := func(name string) uint16 {
		id := lang.IdForNodeKind(name, true)
		if id == 0 {
			panic(fmt.Sprintf("pyast: tree-sitter-python has no node kind %q", name))
		}
		return id
	}
	field := func(name string) uint16 {
		id := lang.FieldIdForName(name)
		if id == 0 {
			panic(fmt.Sprintf("pyast: tree-sitter-python has no field %q", name))
		}
		return id
	}
	g := &grammar{
		lang:                    lang,
		identifier:              kind("identifier"),
		attribute:               kind("attribute"),
		subscript:               kind("subscript"),
		call:                    kind("call"),
		argumentList:            kind("argument_list"),
		keywordArgument:         kind("keyword_argument"),
		expressionStatement:     kind("expression_statement"),
		assignment:              kind("assignment"),
		list:                    kind("list"),
		tuple:                   kind("tuple"),
		str:                     kind("string"),
		concatenatedString:      kind("concatenated_string"),
		parenthesizedExpression: kind("parenthesized_expression"),
		comment:                 kind("comment"),
		chevron:                 kind("chevron"),
		typedParameter:          kind("typed_parameter"),
		keywordSeparator:        kind("keyword_separator"),
		listSplatPattern:        kind("list_splat_pattern"),
		lineContinuation:        kind("line_continuation"),
		statement:               make([]bool, lang.NodeKindCount()),
		statementContainer:      make([]bool, lang.NodeKindCount()),
		fieldLeft:               field("left"),
		fieldRight:              field("right"),
		fieldFunction:           field("function"),
		fieldArguments:          field("arguments"),
		fieldName:               field("name"),
		fieldValue:              field("value"),
		fieldAttribute:          field("attribute"),
		fieldObject:             field("object"),
	}
	for _, name := range []string{
		"module", "block", "if_statement", "elif_clause", "else_clause",
		"for_statement", "while_statement", "try_statement", "except_clause",
		"except_group_clause", "finally_clause", "with_statement",
		"function_definition", "class_definition", "decorated_definition",
		"match_statement", "case_clause",
	} {
		g.statementContainer[kind(name)] = true
	}
	for _, name := range []string{
		"future_import_statement", "import_statement", "import_from_statement",
		"print_statement", "assert_statement", "expression_statement",
		"return_statement", "delete_statement", "raise_statement",
		"pass_statement", "break_statement", "continue_statement",
		"global_statement", "nonlocal_statement", "exec_statement",
		"type_alias_statement", "if_statement", "for_statement",
		"while_statement", "try_statement", "with_statement",
		"function_definition", "class_definition", "decorated_definition",
		"match_statement",
	} {
		g.statement[kind(name)] = true
	}
	q, qerr := sitter.NewQuery(lang, checksQuery)
	if qerr != nil {
		panic(fmt.Sprintf("pyast: checks query: %v", qerr))
	}
	if int(q.PatternCount()) != len(checkMessages) {
		panic(fmt.Sprintf("pyast: checks query has %d patterns for %d messages", q.PatternCount(), len(checkMessages)))
	}
	g.checks = q
	return g
})

// worker is a parser and a query cursor, reused by one call at a time.
type worker struct {
	parser *sitter.Parser
	cursor *sitter.QueryCursor
}

// idleWorkers keeps a few workers between calls. It is a bounded channel
// rather than a sync.Pool: tree-sitter objects have no finalizers, so a
// worker the pool dropped would leak its C memory. Workers that do not fit
// are closed.
var idleWorkers = make(chan *worker, 8)

func getWorker() *worker {
	select {
	case w := <-idleWorkers:
		return w
	default:
	}
	p := sitter.NewParser()
	if err := p.SetLanguage(loadGrammar().lang); err != nil {
		p.Close()
		panic(fmt.Sprintf("pyast: tree-sitter-python: %v", err))
	}
	return &worker{parser: p, cursor: sitter.NewQueryCursor()}
}

func (w *worker) release() {
	select {
	case idleWorkers <- w:
	default:
		w.cursor.Close()
		w.parser.Close()
	}
}

// parsed is a checked file. Its tree borrows nothing from Go memory but must
// be closed.
type parsed struct {
	// src is the code as read: BOM removed, lone CRs turned into LFs. The
	// tree was parsed from a copy with the same offsets but fewer lines (see
	// tokens.flat): use line, never a tree-sitter row.
	src        []byte
	flat       []byte // what tree-sitter parsed
	tree       *sitter.Tree
	lineStarts []int // offsets where lines start; built by line
}

// line returns the 1-based line of byte offset off.
func (p *parsed) line(off int) int {
	if p.lineStarts == nil {
		p.lineStarts = append(make([]int, 0, bytes.Count(p.src, []byte{'\n'})+1), 0)
		for i, c := range p.src {
			if c == '\n' {
				p.lineStarts = append(p.lineStarts, i+1)
			}
		}
	}
	i, found := slices.BinarySearch(p.lineStarts, off)
	if found {
		return i + 1
	}
	return i
}

func (p *parsed) close() {
	if p.tree != nil {
		p.tree.Close()
	}
}

// parse checks code as CheckSyntax documents and, unless the bytes cannot be
// parsed at all, returns its tree, which the caller must close.
func parse(code string) (*parsed, *SyntaxError) {
	src, serr := readSource(code)
	if serr != nil {
		return nil, serr
	}
	tok := tokenize(src)

	w := getWorker()
	defer w.release()
	tree := w.parser.Parse(tok.flat[:tok.stop], nil)
	if tree == nil { // only on a timeout or cancellation, which are not set
		return nil, &SyntaxError{Line: 1, Msg: "tree-sitter could not parse the file"}
	}
	p := &parsed{src: src, flat: tok.flat[:tok.stop], tree: tree}
	return p, pickError(p, tok, checkTree(w, p, tok.keywords, nil))
}

// readSource returns code as CPython reads it (pythonSource), or the error
// for bytes it cannot read at all.
func readSource(code string) ([]byte, *SyntaxError) {
	src := pythonSource(code)
	if i := bytes.IndexByte(src, 0); i >= 0 {
		return nil, errorAt(src, i, "source code cannot contain null bytes")
	}
	if !utf8.Valid(src) {
		i := firstInvalidUTF8(src)
		return nil, errorAt(src, i, fmt.Sprintf("invalid UTF-8: cannot decode byte 0x%02x", src[i]))
	}
	return src, nil
}

// pickError chooses between the tokenizer's error and the tree's, which are
// found independently, the one CPython would report, or failing that the
// likelier cause.
func pickError(p *parsed, tok tokens, tree *treeError) *SyntaxError {
	if tree == nil {
		return tok.err
	}
	treeErr := errorAt(p.src, tree.offset, tree.msg)
	switch {
	case tok.err == nil:
		return treeErr
	case tok.overriding:
		if !tree.generic && treeErr.Line < tok.err.Line {
			return treeErr
		}
		return tok.err
	case treeErr.Line >= tok.errFrom:
		return tok.err // the tree's error is later or in the same statement
	case tree.regionEnd > 0 && tok.err.Line <= p.line(tree.regionEnd-1):
		// tree-sitter could not parse the region where the tokenizer's
		// error is, likely because of it.
		return tok.err
	}
	return treeErr
}

// pythonSource returns a copy of code read as CPython reads it: a UTF-8 BOM
// is dropped and a lone CR ends a line. CR becomes LF in place, so line
// numbers are those of code (the BOM does not change lines).
func pythonSource(code string) []byte {
	code, _ = strings.CutPrefix(code, "\ufeff")
	src := []byte(code)
	for i := bytes.IndexByte(src, '\r'); i >= 0 && i < len(src); {
		if i+1 >= len(src) || src[i+1] != '\n' {
			src[i] = '\n'
		}
		j := bytes.IndexByte(src[i+1:], '\r')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return src
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// errorAt builds a SyntaxError for byte offset off of src.
func errorAt(src []byte, off int, msg string) *SyntaxError {
	off = min(off, len(src))
	lineStart := bytes.LastIndexByte(src[:off], '\n') + 1
	return &SyntaxError{
		Line:   bytes.Count(src[:lineStart], []byte{'\n'}) + 1,
		Column: utf8.RuneCount(src[lineStart:off]) + 1,
		Msg:    msg,
	}
}
