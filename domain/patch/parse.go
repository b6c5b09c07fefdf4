package patch

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

const devNull = "/dev/null"

// hunk is one @@ section of a patch.
type hunk struct {
	header   string // the @@ line, quoted in errors
	oldStart int    // first old line the header claims, 0 when absent; used only in messages
	lines    []hunkLine
	old      []string // context and removed lines: what the hunk expects in the current code
	oldNoEOL bool     // "\ No newline at end of file" follows the old side's last line
	newNoEOL bool     // "\ No newline at end of file" follows the new side's last line
}

type hunkLine struct {
	op   byte // ' ' unchanged, '-' removed, '+' added
	text string
}

// changes reports whether the hunk removes or adds anything.
func (h *hunk) changes() bool {
	return slices.ContainsFunc(h.lines, func(l hunkLine) bool { return l.op != ' ' })
}

// parsedPatch is what parse makes of a patch.
type parsedPatch struct {
	hunks   []*hunk
	newFile bool // a "--- /dev/null" header: the patch creates the file
}

// hunkHeader matches "@@ -3,4 +3,5 @@" and its shorter forms; counts default to 1.
var hunkHeader = regexp.MustCompile(`^@@+\s*-(\d+)(?:,(\d+))?(?:\s+\+(\d+)(?:,(\d+))?)?`)

// parser reads a patch line by line. Text outside hunks (git's index and mode
// lines, a model's preamble) is skipped.
type parser struct {
	lines   []string
	i       int // the line being read
	hunks   []*hunk
	paths   []string // distinct files named by headers
	newFile bool

	cur     *hunk
	blanks  []string // empty lines of cur not yet known to be followed by more hunk lines
	counted bool     // cur's header gave counts
	want    [2]int   // cur's header counts: old, new
	got     [2]int   // old and new lines read so far
}

func parse(patch string) (*parsedPatch, error) {
	p := &parser{lines: patchLines(patch)}
	for ; p.i < len(p.lines); p.i++ {
		if err := p.step(p.lines[p.i]); err != nil {
			return nil, err
		}
	}
	p.endHunk()
	if len(p.paths) > 1 {
		return nil, &Error{Reason: fmt.Sprintf(
			"the patch changes more than one file: %s; this project has one file, so write every hunk against it",
			strings.Join(p.paths, ", "))}
	}
	return &parsedPatch{hunks: p.hunks, newFile: p.newFile}, nil
}

// patchLines splits a patch into lines, undoing the ways it may have been
// wrapped: CRLF line breaks throughout and markdown fences.
func patchLines(patch string) []string {
	// When every line break is CRLF the patch was transported that way; when
	// only some are, the CRs belong to the lines of a CRLF file.
	if n := strings.Count(patch, "\n"); n > 0 && strings.Count(patch, "\r\n") == n {
		patch = strings.ReplaceAll(patch, "\r\n", "\n")
	}
	lines := strings.Split(patch, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return unfence(lines)
}

// unfence returns the contents of the markdown fenced blocks in lines, or
// lines itself when there are none. A fence is a line starting with ``` in the
// first column; no diff line can, since diff lines start with ' ', '-' or '+'.
// An unclosed block runs to the end.
func unfence(lines []string) []string {
	var all, labelled []string
	fenced, in, diffBlock := false, false, false
	for _, line := range lines {
		if strings.HasPrefix(line, "```") {
			fenced, in = true, !in
			label := strings.ToLower(strings.TrimSpace(line[3:]))
			diffBlock = in && (label == "diff" || label == "patch" || label == "udiff")
			continue
		}
		if !in {
			continue
		}
		all = append(all, line)
		if diffBlock {
			labelled = append(labelled, line)
		}
	}
	switch {
	case !fenced:
		return lines
	case labelled != nil:
		return labelled
	default:
		return all
	}
}

func (p *parser) step(line string) error {
	switch {
	case strings.HasPrefix(line, "@@"):
		p.endHunk()
		p.startHunk(line)
	case strings.HasPrefix(line, "diff --git "):
		p.endHunk()
		p.addPath(gitPath(line))
	case p.fileHeaderAt(p.i) && p.headerEndsHunk():
		p.endHunk()
		return p.fileHeader()
	case p.cur != nil:
		return p.bodyLine(line)
	}
	return nil
}

// fileHeaderAt reports whether lines i and i+1 are a "---"/"+++" pair.
func (p *parser) fileHeaderAt(i int) bool {
	return i+1 < len(p.lines) && strings.HasPrefix(p.lines[i], "--- ") && strings.HasPrefix(p.lines[i+1], "+++ ")
}

// headerEndsHunk decides, for a "---"/"+++" pair inside a hunk, whether it is
// a file header or a removed "-- x" followed by an added "++ y". Correct
// header counts settle it; without counts, a file header is recognised by the
// hunk header or end of patch that must come after it.
func (p *parser) headerEndsHunk() bool {
	if p.cur == nil {
		return true
	}
	if p.counted {
		b := len(p.blanks)
		return p.got[0]+b >= p.want[0] && p.got[1]+b >= p.want[1]
	}
	next := p.i + 2
	return next == len(p.lines) || strings.HasPrefix(p.lines[next], "@@") || strings.HasPrefix(p.lines[next], "diff --git ")
}

func (p *parser) fileHeader() error {
	oldPath, newPath := headerPath(p.lines[p.i][4:]), headerPath(p.lines[p.i+1][4:])
	p.i++ // the +++ line is read too
	if newPath == devNull {
		return &Error{Reason: "the patch deletes the file (+++ /dev/null); the project's one file cannot be deleted, remove code with '-' lines instead"}
	}
	if oldPath == devNull {
		p.newFile = true
	}
	p.addPath(newPath)
	return nil
}

func (p *parser) addPath(path string) {
	if path != "" && path != devNull && !slices.Contains(p.paths, path) {
		p.paths = append(p.paths, path)
	}
}

// headerPath returns the file named by a ---/+++ header, without git's a/ and
// b/ prefixes and diff -u's tab and timestamp.
func headerPath(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\t'); i >= 0 {
		s = s[:i]
	}
	s = strings.Trim(s, `"`)
	if s == devNull {
		return s
	}
	if strings.HasPrefix(s, "a/") || strings.HasPrefix(s, "b/") {
		s = s[2:]
	}
	return strings.TrimPrefix(s, "./")
}

// gitPath returns the new file named by a "diff --git a/x b/y" line.
func gitPath(line string) string {
	rest := strings.TrimSpace(strings.TrimPrefix(line, "diff --git "))
	if i := strings.LastIndex(rest, " b/"); i >= 0 {
		return headerPath(rest[i+1:])
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return ""
	}
	return headerPath(fields[len(fields)-1])
}

func (p *parser) startHunk(line string) {
	h := &hunk{header: strings.TrimRight(line, " \t\r")}
	p.cur, p.blanks, p.got, p.counted = h, p.blanks[:0], [2]int{}, false
	m := hunkHeader.FindStringSubmatch(line)
	if m == nil {
		return
	}
	h.oldStart, _ = strconv.Atoi(m[1])
	if m[3] != "" {
		p.counted = true
		p.want = [2]int{count(m[2]), count(m[4])}
	}
}

// count reads a header count, which is 1 when omitted.
func count(s string) int {
	if s == "" {
		return 1
	}
	n, _ := strconv.Atoi(s)
	return n
}

func (p *parser) endHunk() {
	if p.cur == nil {
		return
	}
	h := p.cur
	for _, l := range h.lines {
		if l.op != '+' {
			h.old = append(h.old, l.text)
		}
	}
	p.hunks = append(p.hunks, h)
	p.cur, p.blanks = nil, p.blanks[:0]
}

func (p *parser) bodyLine(line string) error {
	if line == "" || line == "\r" {
		// Models often drop the space that marks an empty unchanged line.
		p.blanks = append(p.blanks, line)
		return nil
	}
	switch line[0] {
	case ' ', '-', '+':
		if err := p.flushBlanks(); err != nil {
			return err
		}
		return p.add(line[0], line[1:])
	case '\\':
		if err := p.flushBlanks(); err != nil {
			return err
		}
		p.markNoEOL()
		return nil
	default:
		return p.stray(line)
	}
}

// flushBlanks turns the pending empty lines into unchanged lines, now that
// more of the hunk follows them.
func (p *parser) flushBlanks() error {
	for _, b := range p.blanks {
		if err := p.add(' ', b); err != nil {
			return err
		}
	}
	p.blanks = p.blanks[:0]
	return nil
}

func (p *parser) add(op byte, text string) error {
	h := p.cur
	if (op != '+' && h.oldNoEOL) || (op != '-' && h.newNoEOL) {
		return hunkError(len(p.hunks), h, 0,
			`"\ No newline at end of file" must come right after the file's last line, but the line %q follows it`, text)
	}
	h.lines = append(h.lines, hunkLine{op: op, text: text})
	if op != '+' {
		p.got[0]++
	}
	if op != '-' {
		p.got[1]++
	}
	return nil
}

// markNoEOL records a "\ No newline at end of file" line, which is about the
// line before it: of the old side, the new side, or both for context.
func (p *parser) markNoEOL() {
	h := p.cur
	if len(h.lines) == 0 {
		return
	}
	switch h.lines[len(h.lines)-1].op {
	case '-':
		h.oldNoEOL = true
	case '+':
		h.newNoEOL = true
	default:
		h.oldNoEOL, h.newNoEOL = true, true
	}
}

// stray handles a line of the current hunk that is not a diff line. It ends
// the hunk when only prose follows; when diff lines follow before the next
// header, the hunk would silently lose them, so it is an error.
func (p *parser) stray(line string) error {
	n, h := len(p.hunks), p.cur
	p.endHunk()
	for j := p.i + 1; j < len(p.lines); j++ {
		l := p.lines[j]
		if strings.HasPrefix(l, "@@") || strings.HasPrefix(l, "diff --git ") || p.fileHeaderAt(j) {
			break
		}
		if l != "" && strings.IndexByte(" +-\\", l[0]) >= 0 {
			return hunkError(n, h, 0,
				"the line %q does not start with ' ' (unchanged), '-' (removed) or '+' (added), yet diff lines follow it; start every unchanged line with a space",
				strings.TrimSuffix(line, "\r"))
		}
	}
	return nil
}

// OnlyAdds reports whether a unified diff adds lines and removes none (a
// diff that does not parse adds nothing).
func OnlyAdds(diff string) bool {
	pp, err := parse(diff)
	if err != nil || len(pp.hunks) == 0 {
		return false
	}
	adds := false
	for _, h := range pp.hunks {
		for _, l := range h.lines {
			switch l.op {
			case '-':
				return false
			case '+':
				adds = true
			}
		}
	}
	return adds
}
