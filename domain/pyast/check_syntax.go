package pyast

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	sitter "github.com/tree-sitter/go-tree-sitter"
)

// CheckSyntax returns nil when code is valid Python and a *SyntaxError for
// its first error otherwise. The reference is Python 3.11's parser, which
// `python3 -m py_compile` runs: CheckSyntax rejects the errors people and
// models make (unbalanced brackets; unterminated strings; unexpected indent,
// unindent that matches no outer level, a missing indented block, tabs and
// spaces mixed inconsistently; missing colons, commas and operands; keywords
// used as names; invalid characters such as a no-break space or smart
// quotes; Python 2 syntax such as print "x", <>, 0777, 10L and ur"";
// misplaced arguments, parameters, unpacking and assignment expressions)
// and syntax that needs Python 3.12 (type statements and type parameters,
// f-strings that reuse their quote or hold a backslash in an expression).
//
// Known differences from py_compile, measured on the Python files of this
// machine and on mutants of them (see corpus_test.go):
//   - Accepted: what CPython's compiler rejects after parsing (return, await,
//     yield, break outside their context, misplaced or unknown __future__
//     imports, nonlocal without a binding, a starred expression alone), and
//     rare constructs tree-sitter-python parses and no check covers
//     (knownDifferences in check_syntax_test.go). About 1 mutant in 500 that
//     CPython's parser rejects is accepted.
//   - Rejected: code that is not UTF-8 (a coding cookie is not honoured), and
//     the Python 3.12 syntax above.
//   - The line is CPython's for about 19 errors in 20; otherwise usually the
//     line before or after, for instance the line after a missing comma at
//     the end of a line. Messages say the same as CPython's in other words.
func CheckSyntax(code string) error {
	p, err := parse(code)
	if p != nil {
		p.close()
	}
	if err != nil {
		return err
	}
	return nil
}

// checksQuery finds what tree-sitter-python parses without an error but
// CPython rejects. Every match is an error; checkMessages[i] describes
// pattern i.
const checksQuery = `
(print_statement) @e
(exec_statement) @e
(comparison_operator "<>" @e)
[((keyword_argument) . ` + positionalArgument + ` @e)
 ((keyword_argument) . (list_splat) . ` + positionalArgument + ` @e)]
((dictionary_splat) . ` + positionalArgument + ` @e)
((dictionary_splat) . (list_splat) @e)
[([(default_parameter) (typed_default_parameter)] . [(identifier) (typed_parameter)] @nondefault)
 ([(default_parameter) (typed_default_parameter)] . (positional_separator) . [(identifier) (typed_parameter)] @nondefault)]
(parameters (keyword_separator) @e .)
(lambda_parameters (keyword_separator) @e .)
(parameters . (positional_separator) @e)
(lambda_parameters . (positional_separator) @e)
(assignment right: (assignment type: (_)) @e)
(assignment left: (pattern_list) @e type: (_))
[(expression_statement (named_expression) @e)
 (assignment right: (named_expression) @e)
 (augmented_assignment right: (named_expression) @e)
 (pair key: (named_expression) @e)
 (pair value: (named_expression) @e)
 (keyword_argument value: (named_expression) @e)
 (conditional_expression (named_expression) @e)
 (return_statement (named_expression) @e)
 (if_clause (named_expression) @e)
 (lambda body: (named_expression) @e)
 (assert_statement (named_expression) @e)
 (for_in_clause right: (named_expression) @e)
 (for_statement right: (named_expression) @e)
 (list_splat (named_expression) @e)
 (expression_list (named_expression) @e)
 (yield (named_expression) @e)
 (with_item value: (named_expression) @e)
 (assignment type: (type (named_expression) @e))]
[(augmented_assignment right: (assignment) @e)
 (assignment right: (augmented_assignment) @e)]
(expression_statement (as_pattern) @e)
(list_splat (list_splat) @e)
[(comparison_operator (list_splat) @e)
 (boolean_operator (list_splat) @e)
 (binary_operator (list_splat) @e)
 (unary_operator (list_splat) @e)
 (not_operator (list_splat) @e)]
[(parameters [(dictionary_splat_pattern) (typed_parameter (dictionary_splat_pattern))] . (_) @e)
 (lambda_parameters (dictionary_splat_pattern) . (_) @e)]
(except_clause value: (_) . "," @e)
(import_from_statement name: [(dotted_name (identifier) (identifier)) (aliased_import name: (dotted_name (identifier) (identifier)))] @e)
(augmented_assignment left: [(pattern_list) (tuple_pattern (_) (_)) (list_pattern)] @e)
(delete_statement [(call) (integer) (float) (string) (concatenated_string) (true) (false) (none)] @e)
(delete_statement (expression_list [(call) (integer) (float) (string) (concatenated_string) (true) (false) (none)] @e))
(for_in_clause right: (_) . "," @e)
(as_pattern_target [(integer) (float) (string) (concatenated_string) (true) (false) (none) (call)] @e)
(interpolation type_conversion: (type_conversion) @conversion)
(concatenated_string) @concatenation
(type_alias_statement) @typealias
(function_definition type_parameters: (type_parameter) @e)
(class_definition type_parameters: (type_parameter) @e)
`

// positionalArgument is any expression that can be a plain call argument:
// the supertype matches every kind of expression but not *args, **kwargs or
// a keyword argument, and costs far less than listing the kinds.
const positionalArgument = `(expression)`

var checkMessages = []string{
	"Missing parentheses in call to 'print'. Did you mean print(...)?",
	"Missing parentheses in call to 'exec'. Did you mean exec(...)?",
	`invalid syntax near "<>"`,
	"positional argument follows keyword argument",
	"positional argument follows keyword argument unpacking",
	"iterable argument unpacking follows keyword argument unpacking",
	"non-default argument follows default argument",
	"named arguments must follow bare *",
	"named arguments must follow bare *",
	"at least one argument must precede /",
	"at least one argument must precede /",
	"an annotated assignment cannot be part of a chained assignment",
	"only single target (not tuple) can be annotated",
	`invalid syntax: an unparenthesized assignment expression (":=") is not allowed here`,
	"invalid syntax: an augmented assignment cannot be chained",
	`invalid syntax: "as" is only valid in import, with and except statements and in case patterns`,
	`invalid syntax: "**" unpacking is only valid in calls and dict displays`,
	"can't use starred expression here",
	"arguments cannot follow var-keyword argument",
	"multiple exception types must be parenthesized",
	`invalid syntax: "from ... import" takes names, not dotted names`,
	"illegal expression for augmented assignment",
	"cannot delete a call or a literal",
	"cannot delete a call or a literal",
	"invalid syntax: a generator expression among other arguments, or a tuple after \"in\" in a comprehension, needs parentheses",
	"cannot assign to a call or a literal",
	"f-string: invalid conversion character: expected 's', 'r', or 'a'",
	"cannot mix bytes and nonbytes literals",
	`"type" statements need Python 3.12`,
	"type parameter lists need Python 3.12",
	"type parameter lists need Python 3.12",
}

// printPattern is the index of (print_statement) in checksQuery.
const printPattern = 0

func isChevron(n *sitter.Node, g *grammar) bool {
	return n != nil && n.KindId() == g.chevron
}

// isKeywordOnly reports whether parameter n, which follows one with a
// default, comes after * or *args (and so may lack a default) or is itself
// *args: T or **kwargs: T.
func isKeywordOnly(n *sitter.Node, g *grammar) bool {
	if n.KindId() == g.typedParameter {
		if first := n.NamedChild(0); first != nil && first.KindId() != g.identifier {
			return true
		}
	}
	for p := n.PrevNamedSibling(); p != nil; p = p.PrevNamedSibling() {
		switch p.KindId() {
		case g.keywordSeparator, g.listSplatPattern:
			return true
		case g.typedParameter:
			if first := p.NamedChild(0); first != nil && first.KindId() == g.listSplatPattern {
				return true
			}
		}
	}
	return false
}

// mixesBytes reports whether a concatenation of string literals has both
// bytes and str literals.
func mixesBytes(n *sitter.Node, src []byte) bool {
	var isBytes, isStr bool
	for i := uint(0); i < n.NamedChildCount(); i++ {
		part := n.NamedChild(i)
		lit := src[part.StartByte():part.EndByte()]
		if bytes.HasPrefix(lit, []byte("#")) {
			continue // a comment
		}
		prefix := lit[:max(bytes.IndexAny(lit, `'"`), 0)]
		if bytes.ContainsAny(prefix, "bB") {
			isBytes = true
		} else {
			isStr = true
		}
	}
	return isBytes && isStr
}

// isTypeAlias tells a PEP 695 type statement (type X = ...) from what
// tree-sitter-python also parses as one: type(x).attr = value.
func isTypeAlias(n *sitter.Node, src []byte) bool {
	i := int(n.StartByte()) + len("type")
	if i >= len(src) || (src[i] != ' ' && src[i] != '\t' && src[i] != '\\') {
		return false
	}
	for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\\' || src[i] == '\n' || src[i] == '\r') {
		i++
	}
	return i < len(src) && (isASCIILetter(src[i]) || src[i] == '_' || src[i] >= utf8.RuneSelf)
}

// treeError is an error found in the tree, at a byte offset. For an error
// tree-sitter found, regionEnd is where the ERROR node around it ends: the
// tokenizer's error, if it is in that region, is likely the cause.
type treeError struct {
	offset    int
	msg       string
	regionEnd int
	// generic is true for a plain "invalid syntax", which CPython replaces
	// with an overriding tokenizer error (see tokenize.go).
	generic bool
}

func (e *treeError) before(other *treeError) bool {
	return other == nil || e.offset < other.offset
}

// checkTree returns the first of: tree-sitter's own first error, a match of
// checksQuery, and a reserved keyword that tree-sitter took for a name. With
// within (CheckEdit's statements an edit reached, in order) it looks for the
// last two there only; nil is the whole tree.
func checkTree(w *worker, p *parsed, keywords []keywordToken, within []*sitter.Node) *treeError {
	g := loadGrammar()
	root := p.tree.RootNode()
	var first *treeError
	if root.HasError() {
		n, region := firstError(root, g)
		first = describeError(n, p.src)
		first.generic = true
		if region.IsError() {
			first.regionEnd = int(region.EndByte())
		}
	}

	scopes := within
	if scopes == nil {
		scopes = []*sitter.Node{root}
	}
	for _, scope := range scopes {
		if first != nil && int(scope.StartByte()) >= first.offset {
			break
		}
		if e := firstMatch(w, p, scope); e != nil && e.before(first) {
			first = e
		}
	}

	// With keyword extraction, tree-sitter lexes a keyword that is not
	// valid where it stands as an identifier: `else:` alone becomes an
	// annotation of a variable named else, `x = pass` an assignment.
	for _, k := range keywords {
		if first != nil && k.offset >= first.offset {
			break
		}
		if within != nil && !inside(within, k.offset) {
			continue
		}
		n := root.DescendantForByteRange(uint(k.offset), uint(k.offset+k.length))
		if n != nil && n.KindId() == g.identifier {
			word := string(p.src[k.offset : k.offset+k.length])
			first = &treeError{offset: k.offset, msg: fmt.Sprintf("invalid syntax near %q (a reserved keyword)", word), generic: true}
			break
		}
	}
	return first
}

// inside reports whether byte offset off is in one of nodes.
func inside(nodes []*sitter.Node, off int) bool {
	for _, n := range nodes {
		if off >= int(n.StartByte()) && off < int(n.EndByte()) {
			return true
		}
	}
	return false
}

// firstMatch returns the first match of checksQuery in scope's subtree.
func firstMatch(w *worker, p *parsed, scope *sitter.Node) *treeError {
	g := loadGrammar()
	var first *treeError
	matches := w.cursor.Matches(g.checks, scope, p.src)
	for m := matches.Next(); m != nil; m = matches.Next() {
		if m.PatternIndex == printPattern && isChevron(m.Captures[0].Node.NamedChild(0), g) {
			continue // print >>f, x is a valid Python 3 expression
		}
		for _, c := range m.Captures {
			switch g.checks.CaptureNames()[c.Index] {
			case "nondefault":
				if isKeywordOnly(&c.Node, g) {
					continue
				}
			case "conversion":
				if text := p.src[c.Node.StartByte():c.Node.EndByte()]; len(text) == 2 && strings.IndexByte("rsa", text[1]) >= 0 {
					continue
				}
			case "concatenation":
				if !mixesBytes(&c.Node, p.src) {
					continue
				}
			case "typealias":
				if !isTypeAlias(&c.Node, p.src) {
					continue
				}
			}
			if e := (&treeError{offset: int(c.Node.StartByte()), msg: checkMessages[m.PatternIndex],
				generic: strings.HasPrefix(checkMessages[m.PatternIndex], "invalid syntax")}); e.before(first) {
				first = e
			}
		}
	}
	return first
}

// firstError returns where the first error of a tree that has one is: a
// MISSING node, or in the first ERROR node, its first child that is not a
// complete statement. tree-sitter often wraps the statements that parsed
// well before an error in the ERROR node, up to the whole file from line 1.
//
// region is the outermost ERROR node around the error, or the error itself.
func firstError(root *sitter.Node, g *grammar) (n, region *sitter.Node) {
	c := root.Walk()
	defer c.Close()
	found := func(n *sitter.Node) (*sitter.Node, *sitter.Node) {
		if region == nil {
			region = n
		}
		return n, region
	}
	for {
		n := c.Node()
		if n.IsMissing() || !c.GotoFirstChild() {
			return found(n)
		}
		if n.IsError() {
			if region == nil {
				region = n
			}
			for g.isCompleteStatement(c.Node()) {
				if !c.GotoNextSibling() {
					c.GotoParent()
					return found(c.Node())
				}
			}
			if first := c.Node(); !first.HasError() {
				return found(first)
			}
			continue
		}
		for !c.Node().HasError() {
			if !c.GotoNextSibling() {
				c.GotoParent()
				return found(c.Node())
			}
		}
	}
}

func (g *grammar) isCompleteStatement(n *sitter.Node) bool {
	k := n.KindId()
	return int(k) < len(g.statement) && g.statement[k] && !n.HasError() || k == g.comment || k == g.lineContinuation
}

func describeError(n *sitter.Node, src []byte) *treeError {
	start := int(n.StartByte())
	if n.IsMissing() {
		if n.IsNamed() {
			return &treeError{offset: start, msg: "invalid syntax: expected " + strings.ReplaceAll(n.Kind(), "_", " ")}
		}
		return &treeError{offset: start, msg: fmt.Sprintf("expected %q", n.Kind())}
	}
	text := string(src[start:n.EndByte()])
	text, _, _ = strings.Cut(strings.TrimSpace(text), "\n")
	text = strings.TrimSpace(text)
	if text == "" {
		return &treeError{offset: start, msg: "invalid syntax"}
	}
	const maxRunes = 40
	if utf8.RuneCountInString(text) > maxRunes {
		text = string([]rune(text)[:maxRunes]) + "…"
	}
	return &treeError{offset: start, msg: fmt.Sprintf("invalid syntax near %q", text)}
}
