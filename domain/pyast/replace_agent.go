package pyast

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrUnknownAgent is returned (wrapped, with the ids the code defines)
	// by ReplaceAgent for an id that names no agent.
	ErrUnknownAgent = errors.New("pyast: unknown agent")
	// ErrAmbiguousAgent is returned (wrapped) by ReplaceAgent for an id that
	// is assigned an agent more than once: which one to replace is unknown.
	ErrAmbiguousAgent = errors.New("pyast: agent defined more than once")
)

// ReplaceAgent replaces the lines of agent id's assignment statement
// (AgentNode.LineStart to LineEnd, whole lines) with newDefinition and
// returns the new code. Every other byte is kept: the lines before and after,
// and the line ending of the last replaced line (LF, CRLF, or none at the
// end of the file), which newDefinition's own final line ending, if any,
// does not double. An empty newDefinition deletes the lines. newDefinition is
// inserted as written, so an agent defined inside a function needs its
// indentation.
//
// Errors: a *SyntaxError when the result is not valid Python (its line is a
// line of the result), and otherwise an error wrapping the current code's
// *SyntaxError, ErrUnknownAgent (naming the known ids) or ErrAmbiguousAgent.
func ReplaceAgent(code, id, newDefinition string) (string, error) {
	agents, err := ParseAgents(code)
	if err != nil {
		return "", fmt.Errorf("pyast: the current code is not valid Python: %w", err)
	}
	var found []AgentNode
	var known []string
	seen := map[string]bool{}
	for _, a := range agents {
		if a.ID == id {
			found = append(found, a)
		}
		if !seen[a.ID] {
			seen[a.ID] = true
			known = append(known, a.ID)
		}
	}
	switch {
	case len(found) == 0 && len(known) == 0:
		return "", fmt.Errorf("%w %q: the code defines no agents", ErrUnknownAgent, id)
	case len(found) == 0:
		return "", fmt.Errorf("%w %q: the code defines %s", ErrUnknownAgent, id, strings.Join(known, ", "))
	case len(found) > 1:
		lines := make([]string, len(found))
		for i, a := range found {
			lines[i] = fmt.Sprint(a.LineStart)
		}
		return "", fmt.Errorf("%w: %q is assigned on lines %s", ErrAmbiguousAgent, id, strings.Join(lines, ", "))
	}

	a := found[0]
	lines := splitLines(code)
	if a.LineStart < 1 || a.LineEnd > len(lines) || a.LineStart > a.LineEnd {
		return "", fmt.Errorf("pyast: agent %q has lines %d-%d outside the file's %d lines", id, a.LineStart, a.LineEnd, len(lines))
	}
	first, last := lines[a.LineStart-1], lines[a.LineEnd-1]
	eol := code[last.end:last.next]
	def := trimLineEnding(newDefinition)
	if def != "" {
		def += eol
		if first.start == 0 && strings.HasPrefix(code, "\ufeff") {
			def = "\ufeff" + strings.TrimPrefix(def, "\ufeff")
		}
	}
	out := code[:first.start] + def + code[last.next:]
	if err := CheckSyntax(out); err != nil {
		return "", err
	}
	return out, nil
}

// lineSpan is one line of a file: its text is [start, end) and its line
// ending [end, next).
type lineSpan struct{ start, end, next int }

// splitLines splits code into lines the way CPython counts them: LF, CRLF
// and a lone CR each end a line. A final line ending does not start another
// line, but an empty file has one empty line.
func splitLines(code string) []lineSpan {
	var lines []lineSpan
	start := 0
	for i := 0; i < len(code); i++ {
		switch code[i] {
		case '\n':
			lines = append(lines, lineSpan{start, i, i + 1})
			start = i + 1
		case '\r':
			next := i + 1
			if next < len(code) && code[next] == '\n' {
				next++
			}
			lines = append(lines, lineSpan{start, i, next})
			start = next
			i = next - 1
		}
	}
	if start < len(code) || len(lines) == 0 {
		lines = append(lines, lineSpan{start, len(code), len(code)})
	}
	return lines
}

func trimLineEnding(s string) string {
	for _, eol := range []string{"\r\n", "\n", "\r"} {
		if t, ok := strings.CutSuffix(s, eol); ok {
			return t
		}
	}
	return s
}
