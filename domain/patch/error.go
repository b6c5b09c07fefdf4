package patch

import "fmt"

// Error says why a patch cannot be applied. Its message is written for the
// model that wrote the patch, so that it can fix it: it names the hunk, what
// was expected, what the current code has instead, and what to change.
type Error struct {
	Hunk   int    // 1-based index of the hunk in the patch; 0 when the error is about the whole patch
	Header string // the hunk's @@ line as written in the patch
	Line   int    // 1-based line of the current code the error points at; 0 when none
	Reason string
}

func (e *Error) Error() string {
	switch {
	case e.Hunk == 0:
		return e.Reason
	case e.Header == "":
		return fmt.Sprintf("hunk %d: %s", e.Hunk, e.Reason)
	default:
		return fmt.Sprintf("hunk %d (%s): %s", e.Hunk, e.Header, e.Reason)
	}
}

// hunkError returns an *Error about hunk i (0-based) of a patch.
func hunkError(i int, h *hunk, line int, format string, args ...any) *Error {
	return &Error{Hunk: i + 1, Header: h.header, Line: line, Reason: fmt.Sprintf(format, args...)}
}
