package patch

import (
	"fmt"
	"strconv"
	"strings"
)

// contextLines is how many unchanged lines surround each change.
const contextLines = 3

// Unified returns a unified diff that turns oldText into newText, with
// "--- a/path" and "+++ b/path" headers and a shortest edit script, or "" when
// the texts are equal. Lines are compared with their line endings, and a last
// line without a newline is marked "\ No newline at end of file".
//
// Hunks have 3 lines of context, and more where the code repeats itself:
// each hunk is widened until its context and removed lines occur only once in
// oldText, because Apply refuses ambiguous hunks. So
// Apply(oldText, Unified(oldText, newText, path)) == newText whenever newText
// uses oldText's line ending, since Apply gives added lines that one.
func Unified(oldText, newText, path string) string {
	if oldText == newText {
		return ""
	}
	// A byte order mark both texts keep is no change and no text of line 1:
	// the diff is made without it, as Apply matches without it.
	if o, n, ok := cutBOMs(oldText, newText); ok {
		oldText, newText = o, n
	}
	a, b := splitKeepEOL(oldText), splitKeepEOL(newText)
	ids := map[string]int{}
	ops := editScript(intern(ids, a), intern(ids, b))

	// Apply compares lines without their "\n", so uniqueness is judged that way.
	content := make([]string, len(a))
	for i, l := range a {
		content[i] = strings.TrimSuffix(l, "\n")
	}
	spans := hunkSpans(ops, intern(map[string]int{}, content))

	var w strings.Builder
	w.Grow(len(newText)/2 + 64)
	w.WriteString("--- a/" + path + "\n+++ b/" + path + "\n")
	for _, s := range spans {
		writeHunk(&w, ops[s.lo:s.hi], a, b)
	}
	return w.String()
}

// splitKeepEOL splits s into lines that keep their "\n".
func splitKeepEOL(s string) []string {
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// intern numbers lines so that equal lines get equal numbers.
func intern(ids map[string]int, lines []string) []int {
	out := make([]int, len(lines))
	for i, l := range lines {
		id, ok := ids[l]
		if !ok {
			id = len(ids)
			ids[l] = id
		}
		out[i] = id
	}
	return out
}

// span is a hunk as a range of ops.
type span struct{ lo, hi int }

// hunkSpans groups the changes of ops into hunks with their context, each
// unique in old (the old text's line numbers).
func hunkSpans(ops []op, old []int) []span {
	var spans []span
	for i := 0; i < len(ops); {
		if ops[i].kind == opEqual {
			i++
			continue
		}
		j := i
		for j < len(ops) && ops[j].kind != opEqual {
			j++
		}
		spans = merge(spans, span{max(i-contextLines, 0), min(j+contextLines, len(ops))})
		i = j
	}
	// Widening only adds lines, so a hunk made of a unique one stays unique.
	var unique []span
	for _, s := range spans {
		unique = merge(unique, widen(s, ops, old))
	}
	return unique
}

// merge appends s to spans, joining it with the spans it overlaps or touches.
func merge(spans []span, s span) []span {
	for len(spans) > 0 && spans[len(spans)-1].hi >= s.lo {
		last := spans[len(spans)-1]
		s = span{min(last.lo, s.lo), max(last.hi, s.hi)}
		spans = spans[:len(spans)-1]
	}
	return append(spans, s)
}

// widen returns s with the fewest extra ops on each side that make its old
// side occur once in old. A hunk covering everything is unique, and a wider
// hunk matches no more places than a narrower one, so a binary search finds
// the smallest widening.
func widen(s span, ops []op, old []int) span {
	grow := func(e int) span { return span{max(s.lo-e, 0), min(s.hi+e, len(ops))} }
	unique := func(e int) bool {
		lo, hi := oldRange(ops, grow(e))
		return occursOnce(old, old[lo:hi])
	}
	if unique(0) {
		return s
	}
	lo, hi := 0, 1 // unique(lo) is false
	for !unique(hi) {
		lo, hi = hi, 2*hi
	}
	for hi-lo > 1 {
		if mid := (lo + hi) / 2; unique(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return grow(hi)
}

// oldRange returns the lines of the old text that the ops of s cover.
func oldRange(ops []op, s span) (lo, hi int) {
	last := ops[s.hi-1]
	hi = last.ai
	if last.kind != opInsert {
		hi++
	}
	return ops[s.lo].ai, hi
}

// newRange returns the lines of the new text that the ops of s cover.
func newRange(ops []op, s span) (lo, hi int) {
	last := ops[s.hi-1]
	hi = last.bi
	if last.kind != opDelete {
		hi++
	}
	return ops[s.lo].bi, hi
}

func occursOnce(lines, seq []int) bool {
	if len(seq) == 0 {
		return len(lines) == 0
	}
	n := 0
	for i := 0; i+len(seq) <= len(lines); i++ {
		if equalInts(lines[i:i+len(seq)], seq) {
			if n++; n > 1 {
				return false
			}
		}
	}
	return n == 1
}

func equalInts(a, b []int) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func writeHunk(w *strings.Builder, ops []op, a, b []string) {
	s := span{0, len(ops)}
	aLo, aHi := oldRange(ops, s)
	bLo, bHi := newRange(ops, s)
	fmt.Fprintf(w, "@@ -%s +%s @@\n", hunkRange(aLo, aHi-aLo), hunkRange(bLo, bHi-bLo))
	for _, o := range ops {
		switch o.kind {
		case opEqual:
			writeLine(w, ' ', a[o.ai])
		case opDelete:
			writeLine(w, '-', a[o.ai])
		case opInsert:
			writeLine(w, '+', b[o.bi])
		}
	}
}

// hunkRange formats a header range as diff does: an empty range names the
// line before it, and a count of 1 is left out.
func hunkRange(start, n int) string {
	switch n {
	case 0:
		return strconv.Itoa(start) + ",0"
	case 1:
		return strconv.Itoa(start + 1)
	default:
		return strconv.Itoa(start+1) + "," + strconv.Itoa(n)
	}
}

func writeLine(w *strings.Builder, prefix byte, line string) {
	w.WriteByte(prefix)
	w.WriteString(line)
	if !strings.HasSuffix(line, "\n") {
		w.WriteString("\n\\ No newline at end of file\n")
	}
}

// cutBOMs returns a and b without the byte order mark both start with, if
// they do.
func cutBOMs(a, b string) (string, string, bool) {
	a2, okA := strings.CutPrefix(a, bom)
	b2, okB := strings.CutPrefix(b, bom)
	return a2, b2, okA && okB
}
