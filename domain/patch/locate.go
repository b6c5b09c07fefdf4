package patch

import (
	"fmt"
	"strings"
)

// shownLines is how many of a hunk's expected lines an error quotes.
const shownLines = 4

// locate finds where each hunk's old side is in the current code: exactly
// once, first comparing lines exactly, then ignoring trailing whitespace. The
// header's line number is never used to choose: a patch that could mean two
// things is refused rather than guessed at.
func (t *text) locate(hunks []*hunk) ([]int, error) {
	starts := make([]int, len(hunks))
	prevStart, prevEnd := 0, 0
	for k, h := range hunks {
		at := find(t.lines, h.old)
		if len(at) == 0 {
			at = find(t.looseLines(), looseAll(h.old))
		}
		switch {
		case len(at) == 0:
			return nil, t.notFound(k, h)
		case len(at) > 1:
			return nil, hunkError(k, h, at[0]+1,
				"context/removed lines match %d places in the current code (lines %s); include more unchanged lines around the change so that it matches only one",
				len(at), lineList(at))
		}
		s, e := at[0], at[0]+len(h.old)
		if k > 0 && s < prevStart {
			return nil, hunkError(k, h, s+1,
				"context/removed lines match at line %d, before hunk %d (line %d); hunks must follow the order of the file",
				s+1, k, prevStart+1)
		}
		if k > 0 && s < prevEnd {
			return nil, hunkError(k, h, s+1,
				"context/removed lines match lines %d-%d, which overlap hunk %d (lines %d-%d); merge the two hunks into one",
				s+1, e, k, prevStart+1, prevEnd)
		}
		starts[k], prevStart, prevEnd = s, s, e
	}
	return starts, nil
}

// find returns every index at which want occurs in lines.
func find(lines, want []string) []int {
	var at []int
	for i := 0; i+len(want) <= len(lines); i++ {
		if equalAt(lines, i, want) {
			at = append(at, i)
		}
	}
	return at
}

func equalAt(lines []string, i int, want []string) bool {
	for j, w := range want {
		if lines[i+j] != w {
			return false
		}
	}
	return true
}

func (t *text) looseLines() []string {
	if t.loose == nil {
		t.loose = looseAll(t.lines)
	}
	return t.loose
}

func looseAll(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = loose(l)
	}
	return out
}

// loose drops trailing whitespace, which includes the "\r" of a CRLF line.
func loose(s string) string { return strings.TrimRight(s, " \t\r\f\v") }

// notFound explains a hunk that matches nowhere: what it expected, and where
// the code comes closest and how it differs there.
func (t *text) notFound(k int, h *hunk) *Error {
	var b strings.Builder
	b.WriteString("context/removed lines not found in the current code; expected")
	if h.oldStart > 0 {
		fmt.Fprintf(&b, " at line %d", h.oldStart)
	}
	b.WriteString(":\n")
	for i, l := range h.old {
		if i == shownLines {
			fmt.Fprintf(&b, "    ... (%d more lines)\n", len(h.old)-shownLines)
			break
		}
		b.WriteString("    " + strings.TrimSuffix(l, "\r") + "\n")
	}
	at, line := t.closest(h.old, h.oldStart-1), 0
	switch {
	case at < 0:
		b.WriteString("no similar lines were found; check that the patch is written against the current code")
	default:
		line = at + 1
		j := firstDifference(t.looseLines()[at:], looseAll(h.old))
		expected := loose(h.old[j])
		if at+j >= len(t.lines) {
			fmt.Fprintf(&b, "closest match at line %d runs past the end of the file (line %d): expected %q",
				at+1, len(t.lines), expected)
		} else {
			fmt.Fprintf(&b, "closest match at line %d differs in line %d: expected %q, found %q",
				at+1, at+j+1, expected, loose(t.lines[at+j]))
		}
	}
	return &Error{Hunk: k + 1, Header: h.header, Line: line, Reason: b.String()}
}

// closest returns the start at which most of want's lines agree with the
// code, ignoring trailing whitespace, or -1 when no line agrees anywhere.
// Agreeing blank lines count only to break ties, being weak evidence; then
// the start nearest hint (the header's line, 0-based) wins, then the first.
func (t *text) closest(want []string, hint int) int {
	lines, loosed := t.looseLines(), looseAll(want)
	type score struct{ nonBlank, all int }
	best, bestScore := -1, score{}
	for i := range lines {
		var s score
		for j := 0; j < len(loosed) && i+j < len(lines); j++ {
			if lines[i+j] == loosed[j] {
				s.all++
				if loosed[j] != "" {
					s.nonBlank++
				}
			}
		}
		better := s.nonBlank > bestScore.nonBlank ||
			(s.nonBlank == bestScore.nonBlank && s.all > bestScore.all) ||
			(s == bestScore && s.all > 0 && hint >= 0 && abs(i-hint) < abs(best-hint))
		if better {
			best, bestScore = i, s
		}
	}
	return best
}

// firstDifference returns the first index at which lines and want differ,
// counting the end of lines as a difference.
func firstDifference(lines, want []string) int {
	for j := range want {
		if j >= len(lines) || lines[j] != want[j] {
			return j
		}
	}
	return len(want) - 1 // not reached when want does not occur at this start
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// lineList formats 0-based indexes as 1-based line numbers: "3, 9 and 12",
// or "3, 9, 12, ..." when there are too many to list.
func lineList(at []int) string {
	const maxShown = 8
	parts := make([]string, 0, min(len(at), maxShown))
	for _, a := range at[:min(len(at), maxShown)] {
		parts = append(parts, fmt.Sprint(a+1))
	}
	switch {
	case len(at) > maxShown:
		return strings.Join(parts, ", ") + ", ..."
	case len(parts) == 1:
		return parts[0]
	default:
		return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
	}
}
