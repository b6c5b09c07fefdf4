package pyast

import "fmt"

// SyntaxError says why code is not valid Python and where: the first error in
// the file, as CPython would name it where this package can tell.
type SyntaxError struct {
	// Line is 1-based.
	Line int `json:"line"`
	// Column is 1-based and counted in characters (Unicode code points), as
	// CPython's SyntaxError.offset is; 0 when unknown.
	Column int `json:"column"`
	// Msg is the reason without the position, e.g. `unexpected indent`.
	Msg string `json:"msg"`
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}
