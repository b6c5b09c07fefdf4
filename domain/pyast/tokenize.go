package pyast

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The tokenizer below repeats the checks CPython's tokenizer makes and
// tree-sitter does not: tree-sitter-python ignores indentation errors, and
// reports unbalanced brackets and strings far from where they start. It reads
// the source once, the way Python 3.11 does. It does not build tokens.
// Besides errors it records where the reserved keywords are, which checkTree
// needs, and writes the flat copy of the source that tree-sitter parses.
//
// Errors are of two kinds, as in CPython. Most are ordinary: the first one
// is kept and reading goes on. Those CPython reports even after an earlier
// error stop the tokenizer and win, unless the earlier error has a message
// of its own: when parsing fails with a plain "invalid syntax", CPython
// tokenizes the rest of the file and reports unterminated strings, invalid
// characters, a closing bracket that does not match, invalid number
// literals and too deep nesting instead. The functions below return only
// those overriding errors; they report ordinary ones with t.report.
//
// The flat copy joins the physical lines of each logical line: line breaks
// inside brackets and after a backslash, comments inside brackets, and the
// backslashes become spaces. CPython ignores all of them, but
// tree-sitter-python's scanner does not: it takes a continuation line
// indented less than its block, as in
//
//	def f():
//	    return (a.
//	  b)
//
// for a dedent and reports an error in valid code. Replacing bytes one for
// one keeps every offset, so positions in the tree are positions in the
// source; only the rows differ, and lines are computed from offsets.

const (
	tabSize       = 8   // CPython's TABSIZE
	maxIndent     = 100 // CPython's MAXINDENT
	maxParenLevel = 200 // CPython's MAXLEVEL
)

// hardKeywords are Python 3.11's keyword.kwlist: never an identifier.
var hardKeywords = map[string]bool{
	"False": true, "None": true, "True": true, "and": true, "as": true,
	"assert": true, "async": true, "await": true, "break": true, "class": true,
	"continue": true, "def": true, "del": true, "elif": true, "else": true,
	"except": true, "finally": true, "for": true, "from": true, "global": true,
	"if": true, "import": true, "in": true, "is": true, "lambda": true,
	"nonlocal": true, "not": true, "or": true, "pass": true, "raise": true,
	"return": true, "try": true, "while": true, "with": true, "yield": true,
}

// operatorChars make up operators; '.' and ':' are read on their own.
const operatorChars = "+-*/%@&|^~<>=!"

// needsOperand are the keywords that cannot end a statement.
var needsOperand = map[string]bool{
	"and": true, "or": true, "not": true, "in": true, "is": true, "if": true,
	"else": true, "import": true, "from": true, "as": true, "await": true,
	"del": true, "assert": true, "global": true, "nonlocal": true,
	"lambda": true, "async": true,
}

// blockHeaders names, as CPython's messages do, the statements whose line
// ends with ':' and must be followed by an indented block.
var blockHeaders = map[string]string{
	"if": `"if" statement`, "elif": `"elif" statement`, "else": `"else" statement`,
	"for": `"for" statement`, "while": `"while" statement`, "try": `"try" statement`,
	"except": `"except" statement`, "finally": `"finally" statement`,
	"with": `"with" statement`, "match": `"match" statement`, "case": `"case" statement`,
	"def": "function definition", "class": "class definition",
}

type indentLevel struct{ col, alt int }

type openBracket struct {
	ch        byte
	line, col int
}

// keywordToken is a reserved keyword outside strings and comments.
type keywordToken struct{ offset, length int }

type tokenizer struct {
	src       []byte
	flat      []byte // what tree-sitter parses; see above
	pos       int
	line      int // 1-based line of pos
	lineStart int // offset of the first byte of that line

	indents  []indentLevel
	brackets []openBracket

	// The logical line being read.
	tokens        int
	colonOutside  bool      // a ':' outside brackets
	firstWords    [2]string // its first two tokens, when they are names
	headerLine    int
	endsWithColon bool
	lastWord      string // the last token, if it is a name
	lastComma     bool   // the last token is a ',' outside brackets
	// dangling is the last token if it is an operator or a keyword that
	// needs an operand after it, which the end of the line would lack.
	dangling                  string
	danglingLine, danglingCol int

	decorator      bool // the logical line starts with @
	afterDecorator bool // the previous logical line was a decorator

	// Set by a logical line that must be followed by an indented block.
	blockPending bool
	blockWhat    string
	blockLine    int

	keywords []keywordToken

	// The first ordinary error, and the first line of its statement.
	err        *SyntaxError
	errFrom    int
	errGeneric bool
}

// tokens is what the tokenizer found in a source.
type tokens struct {
	// keywords are the reserved keywords, up to an overriding error.
	keywords []keywordToken
	// flat is the source to parse with tree-sitter.
	flat []byte
	// err is the error to report. It is more specific than any error
	// tree-sitter reports from line errFrom on, the first line of its
	// statement. An overriding error also wins over a plain "invalid
	// syntax" anywhere.
	err        *SyntaxError
	errFrom    int
	overriding bool
	// stop is where an error stopped the tokenizer, as it stops CPython's,
	// or len(flat): what follows cannot hold the error to report, and
	// tree-sitter need not parse it. Past 200 nested brackets it must not:
	// its error recovery over thousands of unclosed brackets is quadratic
	// (4 s for 40,000 of them, minutes for a megabyte).
	stop int
}

// tokenize checks src (lone CRs already turned into LFs, no BOM).
func tokenize(src []byte) tokens {
	flat := make([]byte, len(src))
	copy(flat, src)
	t := &tokenizer{src: src, flat: flat, line: 1, indents: make([]indentLevel, 1, 16)}
	out := tokens{flat: flat, stop: len(flat)}
	hard := t.run()
	if hard != nil {
		out.stop = min(t.pos, len(flat))
	}
	if hard != nil && (t.err == nil || t.errGeneric) {
		out.err, out.errFrom, out.overriding = hard, hard.Line, true
	} else {
		out.err, out.errFrom = t.err, t.errFrom
	}
	out.keywords = t.keywords
	return out
}

// report records an ordinary error: the first one is kept.
func (t *tokenizer) report(e *SyntaxError) {
	if t.err != nil {
		return
	}
	t.err, t.errFrom = e, e.Line
	if t.tokens > 0 {
		t.errFrom = min(e.Line, t.headerLine)
	}
}

// reportGeneric records an ordinary error that CPython would report as
// plain "invalid syntax", which a later overriding error replaces.
func (t *tokenizer) reportGeneric(e *SyntaxError) {
	if t.err == nil {
		t.report(e)
		t.errGeneric = true
	}
}

// blank replaces src[from:to] with spaces in the flat copy.
func (t *tokenizer) blank(from, to int) {
	for i := from; i < to; i++ {
		t.flat[i] = ' '
	}
}

func (t *tokenizer) run() *SyntaxError {
	atLineStart := true
	for {
		if atLineStart {
			atLineStart = false
			if err := t.indentation(); err != nil {
				return err
			}
		}
		if t.pos >= len(t.src) {
			t.eof()
			return nil
		}
		c := t.src[t.pos]
		var err *SyntaxError
		switch {
		case c == ' ' || c == '\t' || c == '\f':
			t.pos++
		case c == '\r': // only before \n: lone CRs are LFs already
			if len(t.brackets) > 0 {
				t.blank(t.pos, t.pos+1)
			}
			t.pos++
		case c == '#':
			start := t.pos
			for t.pos < len(t.src) && t.src[t.pos] != '\n' {
				t.pos++
			}
			if len(t.brackets) > 0 {
				t.blank(start, t.pos)
			}
		case c == '\n':
			if len(t.brackets) > 0 {
				t.blank(t.pos, t.pos+1)
			}
			t.pos++
			t.newLine()
			if len(t.brackets) == 0 {
				t.endLogicalLine()
				atLineStart = true
			}
		case c == '\\':
			t.continuation()
		case c == '"' || c == '\'':
			err = t.str(t.pos, "")
		case isASCIILetter(c) || c == '_' || c >= utf8.RuneSelf:
			err = t.name()
		case isDigit(c) || c == '.' && t.pos+1 < len(t.src) && isDigit(t.src[t.pos+1]):
			err = t.number()
		case c == '(' || c == '[' || c == '{':
			if len(t.brackets) >= maxParenLevel {
				return t.errHere("too many nested parentheses")
			}
			t.brackets = append(t.brackets, openBracket{ch: c, line: t.line, col: t.column(t.pos)})
			t.token(false, "")
			t.pos++
		case c == ')' || c == ']' || c == '}':
			err = t.closeBracket(c)
		case c == '`' || c == '$' || c == '?' || c == '!' && (t.pos+1 >= len(t.src) || t.src[t.pos+1] != '='):
			t.reportGeneric(t.errHere(fmt.Sprintf("invalid syntax near %q", string(c))))
			t.token(false, "")
			t.pos++
		case c < ' ' || c == 0x7f:
			return t.errHere(fmt.Sprintf("invalid non-printable character U+%04X", c))
		case c == ':' && t.pos+1 < len(t.src) && t.src[t.pos+1] == '=':
			t.token(false, "")
			t.pos += 2
		case c == '.' && t.pos+2 < len(t.src) && t.src[t.pos+1] == '.' && t.src[t.pos+2] == '.':
			t.token(false, "") // Ellipsis
			t.pos += 3
		case strings.IndexByte(operatorChars, c) >= 0 || c == '.':
			if c == '@' && t.tokens == 0 {
				t.decorator = true
			}
			start := t.pos
			for t.pos++; c != '.' && t.pos < len(t.src) && strings.IndexByte(operatorChars, t.src[t.pos]) >= 0; t.pos++ {
			}
			prev := t.lastWord
			t.token(false, "")
			if op := string(t.src[start:t.pos]); op != "*" || prev != "import" { // from m import *
				t.danglingAt(start, op)
			}
		default: // a delimiter: , ; : )
			t.token(c == ':', "")
			t.lastComma = c == ',' && len(t.brackets) == 0
			t.pos++
		}
		if err != nil {
			return err
		}
	}
}

func (t *tokenizer) newLine() {
	t.line++
	t.lineStart = t.pos
}

// column is the 1-based character column of offset p on the current line.
func (t *tokenizer) column(p int) int {
	return utf8.RuneCount(t.src[t.lineStart:p]) + 1
}

func (t *tokenizer) errHere(msg string) *SyntaxError {
	return &SyntaxError{Line: t.line, Column: t.column(t.pos), Msg: msg}
}

// token records a token of the current logical line; word is its text when
// it is a name.
func (t *tokenizer) token(colon bool, word string) {
	if t.tokens == 0 {
		t.headerLine = t.line
	}
	if colon && len(t.brackets) == 0 {
		t.colonOutside = true
	}
	if t.tokens < len(t.firstWords) {
		t.firstWords[t.tokens] = word
	}
	t.tokens++
	t.endsWithColon = colon
	t.lastWord = word
	t.lastComma = false
	t.dangling = ""
}

// danglingAt marks the token just read, at offset start, as one that cannot
// end a logical line.
func (t *tokenizer) danglingAt(start int, text string) {
	t.dangling, t.danglingLine, t.danglingCol = text, t.line, t.column(start)
}

func (t *tokenizer) endLogicalLine() {
	if t.tokens == 0 {
		return
	}
	word := t.firstWords[0]
	if word == "async" {
		word = t.firstWords[1]
	}
	what, isHeader := blockHeaders[word]
	switch {
	case t.dangling != "":
		// tree-sitter-python reads on past the line break after an
		// operator (x = a +), joining the next line to this one.
		t.reportGeneric(&SyntaxError{Line: t.danglingLine, Column: t.danglingCol,
			Msg: fmt.Sprintf("invalid syntax: the line ends with %q", t.dangling)})
	case t.lastComma && (word == "import" || word == "from"):
		t.report(&SyntaxError{Line: t.headerLine, Msg: "trailing comma not allowed without surrounding parentheses"})
	case isHeader && !t.colonOutside && word != "match" && word != "case":
		// A compound statement (match and case may be names) without its
		// colon; tree-sitter would report the whole line as an error.
		t.report(&SyntaxError{Line: t.headerLine, Msg: `expected ":"`})
	}
	// A line that ends with ':' but is no compound statement is an error
	// tree-sitter may miss (`f = lambda:` then an indented line): leaving
	// blockPending false turns the indented line into "unexpected indent".
	t.blockPending = t.endsWithColon && isHeader
	t.blockWhat, t.blockLine = what, t.headerLine
	t.afterDecorator, t.decorator = t.decorator, false
	t.tokens, t.endsWithColon, t.colonOutside, t.lastWord = 0, false, false, ""
	t.firstWords = [2]string{}
}

// indentation measures the indentation of the line starting at t.pos (not
// inside brackets) and checks it as CPython's tokenizer and parser do.
func (t *tokenizer) indentation() *SyntaxError {
	var col, alt, p int
	for {
		col, alt, p = t.measureIndent()
		if p >= len(t.src) {
			return nil
		}
		switch t.src[p] {
		case '#', '\n': // blank and comment-only lines do not count
			return nil
		case '\r':
			if p+1 < len(t.src) && t.src[p+1] == '\n' {
				return nil
			}
		}
		// A line holding only a backslash continues into the next line,
		// whose indentation counts.
		end := lineContinuationEnd(t.src, p)
		if end < 0 {
			break
		}
		if end >= len(t.src) {
			t.report(t.errHere("unexpected EOF while parsing"))
			return nil
		}
		t.pos = end
		t.newLine()
	}
	at := func(msg string) *SyntaxError {
		return &SyntaxError{Line: t.line, Column: t.column(p), Msg: msg}
	}
	const tabError = "inconsistent use of tabs and spaces in indentation"
	pending, afterDecorator := t.blockPending, t.afterDecorator
	t.blockPending, t.afterDecorator = false, false
	// "expected an indented block" is about the statement that opened it.
	expectedBlock := func() {
		if t.err == nil {
			t.report(at(t.expectedBlock()))
			t.errFrom = min(t.errFrom, t.blockLine)
		}
	}
	top := t.indents[len(t.indents)-1]
	switch {
	case col == top.col:
		if alt != top.alt {
			t.report(at(tabError))
		}
		if pending {
			expectedBlock()
		}
	case col > top.col:
		if alt <= top.alt {
			t.report(at(tabError))
		}
		if !pending {
			t.report(at("unexpected indent"))
		}
		if len(t.indents) >= maxIndent {
			return at("too many levels of indentation")
		}
		t.indents = append(t.indents, indentLevel{col, alt})
	default:
		for len(t.indents) > 1 && col < t.indents[len(t.indents)-1].col {
			t.indents = t.indents[:len(t.indents)-1]
		}
		top = t.indents[len(t.indents)-1]
		if col != top.col {
			t.report(at("unindent does not match any outer indentation level"))
			t.indents = append(t.indents, indentLevel{col, alt}) // read on at this level
		} else if alt != top.alt {
			t.report(at(tabError))
		}
		if pending {
			expectedBlock()
		}
		if afterDecorator && t.err == nil { // a decorator and what it decorates
			t.report(at("unexpected unindent"))
			t.errFrom = min(t.errFrom, t.blockLine)
		}
	}
	return nil
}

// measureIndent returns the indentation of the line at t.pos as CPython
// measures it (col with tabs to multiples of 8, alt with tabs as 1 column),
// and the offset of its first other character.
func (t *tokenizer) measureIndent() (col, alt, p int) {
	for p = t.pos; p < len(t.src); p++ {
		switch t.src[p] {
		case ' ':
			col++
			alt++
		case '\t':
			col = (col/tabSize + 1) * tabSize
			alt++
		case '\f':
			col, alt = 0, 0
		default:
			return col, alt, p
		}
	}
	return col, alt, p
}

// lineContinuationEnd returns the offset after the backslash and line break
// at src[p:], or -1 if there are none.
func lineContinuationEnd(src []byte, p int) int {
	switch {
	case p+1 < len(src) && src[p] == '\\' && src[p+1] == '\n':
		return p + 2
	case p+2 < len(src) && src[p] == '\\' && src[p+1] == '\r' && src[p+2] == '\n':
		return p + 3
	}
	return -1
}

func (t *tokenizer) expectedBlock() string {
	return fmt.Sprintf("expected an indented block after %s on line %d", t.blockWhat, t.blockLine)
}

func (t *tokenizer) eof() {
	if n := len(t.brackets); n > 0 {
		b := t.brackets[n-1]
		t.report(&SyntaxError{Line: b.line, Column: b.col,
			Msg: fmt.Sprintf("unbalanced %q opened here is never closed", string(b.ch))})
		return
	}
	t.endLogicalLine()
	if t.blockPending {
		t.report(&SyntaxError{Line: t.blockLine, Msg: t.expectedBlock()})
	}
}

// continuation handles a backslash outside strings, which may only end a line.
func (t *tokenizer) continuation() {
	end := lineContinuationEnd(t.src, t.pos)
	switch {
	case t.pos+1 >= len(t.src):
		t.report(t.errHere("unexpected EOF while parsing"))
		t.pos++
		return
	case end < 0:
		t.report(t.errHere("unexpected character after line continuation character"))
		t.pos++
		return
	}
	if t.tokens > 0 {
		t.blank(t.pos, end)
	}
	t.pos = end
	t.newLine()
	if t.pos >= len(t.src) {
		t.report(t.errHere("unexpected EOF while parsing"))
	}
}

func (t *tokenizer) closeBracket(c byte) *SyntaxError {
	n := len(t.brackets)
	if n == 0 {
		return t.errHere(fmt.Sprintf("unbalanced %q has no opening bracket", string(c)))
	}
	open := t.brackets[n-1]
	if want := closerOf(open.ch); c != want {
		msg := fmt.Sprintf("unbalanced %q does not match %q", string(c), string(open.ch))
		if open.line != t.line {
			msg += fmt.Sprintf(" opened on line %d", open.line)
		}
		return t.errHere(msg)
	}
	t.brackets = t.brackets[:n-1]
	t.token(false, "")
	t.pos++
	return nil
}

func closerOf(open byte) byte {
	switch open {
	case '(':
		return ')'
	case '[':
		return ']'
	}
	return '}'
}

// name reads an identifier, a keyword, or the prefix of a string literal.
func (t *tokenizer) name() *SyntaxError {
	start := t.pos
	for t.pos < len(t.src) {
		c := t.src[t.pos]
		if c < utf8.RuneSelf {
			if !isASCIILetter(c) && !isDigit(c) && c != '_' {
				break
			}
			t.pos++
			continue
		}
		r, size := utf8.DecodeRune(t.src[t.pos:])
		if t.pos == start && !isIDStart(r) || t.pos > start && !isIDContinue(r) {
			if t.pos == start {
				return t.invalidCharacter(r)
			}
			break // reported when the main loop reads it again
		}
		t.pos += size
	}
	word := string(t.src[start:t.pos])
	if t.pos < len(t.src) && (t.src[t.pos] == '"' || t.src[t.pos] == '\'') {
		if isStringPrefix(word) {
			return t.str(start, word)
		}
		// A name right before a string: `ur"x"`, `print"x"`. Keywords may be
		// (`if"a"in s:`), and so may the soft keywords of match statements.
		if !hardKeywords[word] && word != "match" && word != "case" {
			t.reportGeneric(&SyntaxError{Line: t.line, Column: t.column(start), Msg: fmt.Sprintf("invalid syntax near %q", word)})
		}
	}
	if hardKeywords[word] {
		t.keywords = append(t.keywords, keywordToken{offset: start, length: len(word)})
	}
	t.token(false, word)
	if needsOperand[word] {
		t.danglingAt(start, word)
	}
	return nil
}

func (t *tokenizer) invalidCharacter(r rune) *SyntaxError {
	if unicode.IsPrint(r) {
		return t.errHere(fmt.Sprintf("invalid character '%c' (U+%04X)", r, r))
	}
	return t.errHere(fmt.Sprintf("invalid non-printable character U+%04X", r))
}

// number reads a numeric literal loosely (tree-sitter checks its form) and
// rejects the Python 2 forms tree-sitter accepts: 0777 and 10L.
func (t *tokenizer) number() *SyntaxError {
	start := t.pos
	alnum := func() {
		for t.pos < len(t.src) && (isASCIILetter(t.src[t.pos]) || isDigit(t.src[t.pos]) || t.src[t.pos] == '_') {
			t.pos++
		}
	}
	digits := func() {
		for t.pos < len(t.src) && (isDigit(t.src[t.pos]) || t.src[t.pos] == '_') {
			t.pos++
		}
	}
	if t.src[t.pos] == '0' && t.pos+1 < len(t.src) && strings.IndexByte("xXoObB", t.src[t.pos+1]) >= 0 {
		t.pos += 2
	} else {
		digits()
		if t.pos < len(t.src) && t.src[t.pos] == '.' {
			t.pos++
			digits()
		}
		if t.pos < len(t.src) && (t.src[t.pos] == 'e' || t.src[t.pos] == 'E') {
			p := t.pos + 1
			if p < len(t.src) && (t.src[p] == '+' || t.src[p] == '-') {
				p++
			}
			if p < len(t.src) && isDigit(t.src[p]) {
				t.pos = p
				digits()
			}
		}
	}
	alnum() // hex digits, and suffixes: j, the invalid L, or a keyword as in 1if
	text := t.src[start:t.pos]
	errAt := func(msg string) *SyntaxError {
		return &SyntaxError{Line: t.line, Column: t.column(start), Msg: msg}
	}
	if last := text[len(text)-1]; (last == 'l' || last == 'L') && isPython2Integer(text[:len(text)-1]) {
		return errAt("invalid decimal literal")
	}
	if len(text) > 1 && text[0] == '0' && allDecimal(text) && strings.Trim(string(text), "0_") != "" {
		return errAt("leading zeros in decimal integer literals are not permitted; use an 0o prefix for octal integers")
	}
	t.token(false, "")
	return nil
}

func isPython2Integer(b []byte) bool {
	if len(b) > 2 && b[0] == '0' && strings.ContainsRune("xXoObB", rune(b[1])) {
		b = b[2:]
		for _, c := range b {
			if !isDigit(c) && c != '_' && !strings.ContainsRune("abcdefABCDEF", rune(c)) {
				return false
			}
		}
		return true
	}
	return len(b) > 0 && allDecimal(b)
}

func allDecimal(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) && c != '_' {
			return false
		}
	}
	return true
}

// str reads a string literal whose prefix starts at start and whose opening
// quote is at t.pos. f-strings are read as Python 3.11 reads them: the first
// matching quote ends them, whatever the braces.
func (t *tokenizer) str(start int, prefix string) *SyntaxError {
	q := t.src[t.pos]
	triple := t.pos+2 < len(t.src) && t.src[t.pos+1] == q && t.src[t.pos+2] == q
	lower := strings.ToLower(prefix)
	raw, isBytes, isF := strings.Contains(lower, "r"), strings.Contains(lower, "b"), strings.Contains(lower, "f")
	fieldDepth := 0 // of f-string replacement fields, {...}
	startLine, startCol := t.line, t.column(start)
	unterminated := func() *SyntaxError {
		msg := "unterminated string literal"
		if triple {
			msg = "unterminated triple-quoted string literal"
		}
		return &SyntaxError{Line: startLine, Column: startCol,
			Msg: fmt.Sprintf("%s (detected at line %d)", msg, t.line)}
	}
	if triple {
		t.pos += 3
	} else {
		t.pos++
	}
	for {
		if t.pos >= len(t.src) {
			return unterminated()
		}
		switch c := t.src[t.pos]; {
		case isF && (c == '{' || c == '}'):
			if fieldDepth == 0 && t.pos+1 < len(t.src) && t.src[t.pos+1] == c {
				t.pos += 2 // {{ or }}
				continue
			}
			if c == '{' {
				fieldDepth++
			} else if fieldDepth > 0 {
				fieldDepth--
			}
			t.pos++
		case c == '\\' && fieldDepth > 0:
			t.report(t.errHere("f-string expression part cannot include a backslash"))
			t.pos++
		case c == '\\' && isF && t.pos+1 < len(t.src) && (t.src[t.pos+1] == '{' || t.src[t.pos+1] == '}'):
			t.pos++ // the brace is not escaped: \{{ is a backslash and a brace
		case c == '\\':
			if t.pos+1 >= len(t.src) {
				t.pos++
				return unterminated()
			}
			switch n := t.src[t.pos+1]; {
			case n == '\n':
				t.pos += 2
				t.newLine()
			case n == '\r' && t.pos+2 < len(t.src) && t.src[t.pos+2] == '\n':
				t.pos += 3
				t.newLine()
			case raw:
				t.pos += 2
			default:
				t.escape(isBytes, startLine, startCol)
			}
		case c == '\n':
			if !triple {
				return unterminated()
			}
			t.pos++
			t.newLine()
		case c == q:
			t.pos++
			if !triple {
				t.token(false, "")
				return nil
			}
			if t.pos+1 < len(t.src) && t.src[t.pos] == q && t.src[t.pos+1] == q {
				t.pos += 2
				t.token(false, "")
				return nil
			}
		case c >= utf8.RuneSelf && isBytes:
			t.report(&SyntaxError{Line: startLine, Column: startCol, Msg: "bytes can only contain ASCII literal characters"})
			t.pos++
		default:
			t.pos++
		}
	}
}

// escape checks the escape sequence at t.pos (a backslash) of a non-raw
// string and moves past it. Only the sequences whose errors CPython reports
// are checked; an unknown escape like \d is merely a warning.
func (t *tokenizer) escape(isBytes bool, line, col int) {
	fail := func(msg string) {
		t.report(&SyntaxError{Line: line, Column: col, Msg: "(unicode error) " + msg})
		t.pos += 2
	}
	hexDigits := func(n int) (rune, bool) {
		var v rune
		for i := 0; i < n; i++ {
			p := t.pos + 2 + i
			if p >= len(t.src) || !isHexDigit(t.src[p]) {
				return 0, false
			}
			v = v*16 + rune(hexValue(t.src[p]))
		}
		return v, true
	}
	switch n := t.src[t.pos+1]; {
	case n == 'x':
		if _, ok := hexDigits(2); !ok {
			fail(`truncated \xXX escape`)
			return
		}
		t.pos += 4
	case n == 'u' && !isBytes:
		if _, ok := hexDigits(4); !ok {
			fail(`truncated \uXXXX escape`)
			return
		}
		t.pos += 6
	case n == 'U' && !isBytes:
		v, ok := hexDigits(8)
		if !ok {
			fail(`truncated \UXXXXXXXX escape`)
			return
		}
		if v > unicode.MaxRune {
			fail(`illegal Unicode character`)
			return
		}
		t.pos += 10
	case n == 'N' && !isBytes:
		p := t.pos + 2
		if p >= len(t.src) || t.src[p] != '{' {
			fail(`malformed \N character escape`)
			return
		}
		for p++; p < len(t.src) && t.src[p] != '}'; p++ {
			if c := t.src[p]; c == '\n' || c == '"' || c == '\'' || c == '\\' {
				fail(`malformed \N character escape`)
				return
			}
		}
		if p >= len(t.src) || p == t.pos+3 {
			fail(`malformed \N character escape`)
			return
		}
		t.pos = p + 1
	default:
		// Skip the backslash and the escaped byte; a multi-byte character's
		// other bytes are read as ordinary string content.
		t.pos += 2
		if n >= utf8.RuneSelf && isBytes {
			t.report(&SyntaxError{Line: line, Column: col, Msg: "bytes can only contain ASCII literal characters"})
		}
	}
}

func isStringPrefix(word string) bool {
	switch strings.ToLower(word) {
	case "r", "u", "b", "br", "rb", "f", "fr", "rf":
		return true
	}
	return false
}

func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool       { return '0' <= c && c <= '9' }
func isHexDigit(c byte) bool    { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func hexValue(c byte) byte {
	switch {
	case isDigit(c):
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// isIDStart and isIDContinue approximate Unicode's XID_Start and
// XID_Continue, which CPython applies to identifiers (after NFKC
// normalization, which is not done here).
func isIDStart(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.In(r, unicode.Nl, unicode.Other_ID_Start)
}

func isIDContinue(r rune) bool {
	return isIDStart(r) || unicode.In(r, unicode.Mn, unicode.Mc, unicode.Nd, unicode.Pc, unicode.Other_ID_Continue)
}
