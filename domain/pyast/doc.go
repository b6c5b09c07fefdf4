// Package pyast reads the one Python file of a Vibegrapher project: it finds
// the OpenAI Agents SDK agents defined in it (ParseAgents), rewrites one
// agent's definition (ReplaceAgent) and tells whether a file is valid Python
// (CheckSyntax; CheckEdit for an edit of a file, which reparses only what the
// edit changed), which the vibecode loop requires of every patch.
//
// Parsing uses tree-sitter-python. tree-sitter recovers from errors and
// accepts much that CPython rejects (it ignores indentation mistakes, takes
// keywords for identifiers, accepts Python 2 print statements), so
// CheckSyntax adds a Go tokenizer modelled on CPython's (indentation,
// brackets, strings, invalid characters) and a few targeted tree checks.
// The reference is the Python 3.11 grammar that `python3 -m py_compile`
// enforces; syntax added in 3.12 (PEP 695 type parameters and `type`
// statements, PEP 701 f-strings that reuse their own quote) is rejected so
// that patched code runs on 3.11 and later. Known differences are listed in
// check_syntax.go.
//
// Every function is safe for concurrent use. No tree-sitter object outlives a
// call, except the compiled query, which is built once per process, and the
// trees of the codes CheckEdit and ParseAgents saw last (editBases, about
// 20 MB at most).
package pyast
