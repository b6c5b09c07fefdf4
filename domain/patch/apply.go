package patch

import "strings"

// Apply applies a unified diff to original and returns the patched text, or
// an *Error that tells the diff's author what to fix. The package
// documentation describes what Apply tolerates.
//
// Hunks are placed where their context and removed lines occur in original,
// which must be exactly one place, in the order of the patch and without
// overlapping. Unchanged lines are copied from original, so a hunk that
// matched despite trailing whitespace or CRLF differences leaves those lines
// as they were. Added lines get original's line ending (LF or CRLF, whichever
// most of its line breaks are), or keep the patch's when original has no line
// break to go by.
func Apply(original, diff string) (string, error) {
	// A UTF-8 byte order mark (which Python accepts, and editors on Windows
	// write) is not part of the first line: the model never sees it (its
	// listing leaves it out) nor writes it, so it is set aside for the
	// match and kept on the result.
	if rest, ok := strings.CutPrefix(original, bom); ok {
		// A diff made with the mark (by Unified of an earlier release, or
		// by a model that copied it) has it on line 1's text: set aside too,
		// in the first line of a hunk at line 1, and nowhere else.
		diff = withoutFirstBOM(diff)
		patched, err := Apply(rest, diff)
		if err != nil || patched == "" {
			return patched, err
		}
		return bom + patched, nil
	}
	pp, err := parse(diff)
	if err != nil {
		return "", err
	}
	if len(pp.hunks) == 0 {
		return "", &Error{Reason: "no hunks found: the patch must be a unified diff with @@ hunks"}
	}
	// Blank code counts as empty: a patch that creates the file may replace it.
	blank := strings.TrimSpace(original) == ""
	if pp.newFile && !blank {
		return "", &Error{Reason: "the patch creates the file (--- /dev/null), but the file already has code; write the patch against the current code"}
	}
	if err := check(pp.hunks, blank); err != nil {
		return "", err
	}
	t := splitText(original)
	if len(pp.hunks[0].old) == 0 {
		return t.create(pp.hunks[0]), nil
	}
	starts, err := t.locate(pp.hunks)
	if err != nil {
		return "", err
	}
	return t.render(pp.hunks, starts), nil
}

// withoutFirstBOM removes the mark from line 1 of the old and of the new
// text in a hunk that starts at line 1 (the first context or removed line,
// and the first context or added line), where those lines have it.
func withoutFirstBOM(diff string) string {
	lines := strings.SplitAfter(diff, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "@@ -1,") && !strings.HasPrefix(l, "@@ -1 ") {
			continue
		}
		oldSeen, newSeen := false, false
		for j := i + 1; j < len(lines) && !strings.HasPrefix(lines[j], "@@") && !(oldSeen && newSeen); j++ {
			l := lines[j]
			if l == "" {
				continue
			}
			isOld, isNew := l[0] == ' ' || l[0] == '-', l[0] == ' ' || l[0] == '+'
			if (isOld && !oldSeen || isNew && !newSeen) && strings.HasPrefix(l[1:], bom) {
				lines[j] = l[:1] + l[1+len(bom):]
			}
			oldSeen, newSeen = oldSeen || isOld, newSeen || isNew
		}
		break
	}
	return strings.Join(lines, "")
}

// bom is the UTF-8 byte order mark.
const bom = "\ufeff"

// check refuses hunks that cannot be placed or would do nothing.
func check(hunks []*hunk, blank bool) error {
	for i, h := range hunks {
		switch {
		case !h.changes():
			return hunkError(i, h, 0, "it changes nothing: it has no '+' or '-' lines; drop it or add the intended change")
		case len(h.old) > 0:
		case !blank:
			return hunkError(i, h, 0, "it has no context lines; include at least one unchanged line around the insertion")
		case len(hunks) > 1:
			return hunkError(i, h, 0, "it has no context lines, which is only valid for a patch that fills the empty file with a single hunk")
		}
	}
	return nil
}

// text is the current code as lines.
type text struct {
	lines   []string // without "\n"; the lines of a CRLF file keep their "\r"
	finalNL bool     // the last line ends with "\n"
	eol     eolStyle // the line ending that added lines get
	loose   []string // lines without trailing whitespace, made when first needed
	size    int      // length in bytes, to size the result
}

func splitText(s string) *text {
	if s == "" {
		return &text{finalNL: true}
	}
	lines := strings.Split(s, "\n")
	t := &text{lines: lines, finalNL: lines[len(lines)-1] == "", size: len(s)}
	if t.finalNL {
		t.lines = lines[:len(lines)-1]
	}
	switch breaks := strings.Count(s, "\n"); {
	case breaks == 0:
		t.eol = eolAsPatch
	case 2*strings.Count(s, "\r\n") > breaks:
		t.eol = eolCRLF
	default:
		t.eol = eolLF
	}
	return t
}

// eolStyle is the line ending of a text: that of most of its line breaks.
type eolStyle uint8

const (
	eolAsPatch eolStyle = iota // no line breaks to go by: added lines keep the patch's
	eolLF
	eolCRLF
)

// outLine is a line of the result in two forms: followed by "\n", and as the
// last line of a file without a final newline.
type outLine struct{ term, bare string }

// original returns line i of the current code for the result.
func (t *text) original(i int) outLine {
	l := t.lines[i]
	if i < len(t.lines)-1 || t.finalNL {
		bare := l
		if t.eol == eolCRLF {
			bare = strings.TrimSuffix(l, "\r")
		}
		return outLine{term: l, bare: bare}
	}
	term := l
	if t.eol == eolCRLF && !strings.HasSuffix(l, "\r") {
		term = l + "\r"
	}
	return outLine{term: term, bare: l}
}

// added returns an added line with the current code's line ending. A last
// line without a final newline is kept as the patch wrote it.
func (t *text) added(s string) outLine {
	switch t.eol {
	case eolLF:
		return outLine{term: strings.TrimRight(s, "\r"), bare: s}
	case eolCRLF:
		return outLine{term: strings.TrimRight(s, "\r") + "\r", bare: s}
	default:
		return outLine{term: s, bare: s}
	}
}

// create returns the content of a hunk without context lines, which check
// allows only as the one hunk of a patch for blank code.
func (t *text) create(h *hunk) string {
	var w writer
	for _, l := range h.lines {
		if l.op == '+' {
			w.add(t.added(l.text))
		}
	}
	return w.finish(!h.newNoEOL)
}

// render builds the result from the original lines around the hunks and the
// hunks' new sides; starts are the hunks' places found by locate.
func (t *text) render(hunks []*hunk, starts []int) string {
	var w writer
	w.b.Grow(t.size + t.size/8)
	pos := 0
	for k, h := range hunks {
		for ; pos < starts[k]; pos++ {
			w.add(t.original(pos))
		}
		for _, l := range h.lines {
			switch l.op {
			case ' ':
				w.add(t.original(pos))
				pos++
			case '-':
				pos++
			case '+':
				w.add(t.added(l.text))
			}
		}
	}
	atEnd := pos == len(t.lines)
	for ; pos < len(t.lines); pos++ {
		w.add(t.original(pos))
	}
	return w.finish(t.finalNewline(hunks[len(hunks)-1], atEnd))
}

// finalNewline decides whether the result ends with a newline: as the current
// code does, unless the last hunk reaches the end of the file and says
// otherwise with "\ No newline at end of file".
func (t *text) finalNewline(last *hunk, atEnd bool) bool {
	switch {
	case !atEnd:
		return t.finalNL
	case last.newNoEOL:
		return false
	case last.oldNoEOL:
		return true
	default:
		return t.finalNL
	}
}

// writer joins the result's lines; it holds back the last one until it knows
// whether the file ends with a newline.
type writer struct {
	b    strings.Builder
	last outLine
	any  bool
}

func (w *writer) add(l outLine) {
	if w.any {
		w.b.WriteString(w.last.term)
		w.b.WriteByte('\n')
	}
	w.last, w.any = l, true
}

func (w *writer) finish(finalNL bool) string {
	if !w.any {
		return ""
	}
	if finalNL {
		w.b.WriteString(w.last.term)
		w.b.WriteByte('\n')
	} else {
		w.b.WriteString(w.last.bare)
	}
	return w.b.String()
}
