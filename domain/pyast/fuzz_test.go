package pyast

import (
	"errors"
	"testing"
)

// FuzzParseAgents checks that ParseAgents never panics, agrees with
// CheckSyntax, reports line spans inside the file, and that replacing an
// agent with its own lines gives back the same file.
func FuzzParseAgents(f *testing.F) {
	f.Fuzz(func(t *testing.T, code string) {
		agents, err := ParseAgents(code)
		checkErr := CheckSyntax(code)
		if (err == nil) != (checkErr == nil) {
			t.Fatalf("ParseAgents error %v but CheckSyntax error %v", err, checkErr)
		}
		lines := splitLines(code)
		if err != nil {
			checkSyntaxError(t, err, len(lines))
			if agents != nil {
				t.Fatalf("agents %v with error %v", agents, err)
			}
			return
		}
		if agents == nil {
			t.Fatal("nil agents for valid code")
		}
		count := map[string]int{}
		for _, a := range agents {
			if a.LineStart < 1 || a.LineStart > a.LineEnd || a.LineEnd > len(lines) {
				t.Fatalf("agent %s has lines %d-%d in a file of %d lines", a.ID, a.LineStart, a.LineEnd, len(lines))
			}
			if a.ID == "" || a.Children == nil || a.Tools == nil {
				t.Fatalf("agent %+v", a)
			}
			count[a.ID]++
		}
		for _, a := range agents {
			if count[a.ID] > 1 {
				continue
			}
			own := code[lines[a.LineStart-1].start:lines[a.LineEnd-1].next]
			out, err := ReplaceAgent(code, a.ID, own)
			if err != nil {
				t.Fatalf("ReplaceAgent(%s) with its own lines: %v", a.ID, err)
			}
			if out != code {
				t.Fatalf("ReplaceAgent(%s) with its own lines changed the file to %q", a.ID, out)
			}
		}
	})
}

// FuzzCheckSyntax checks that CheckSyntax never panics, is deterministic and
// reports a position inside the file.
func FuzzCheckSyntax(f *testing.F) {
	f.Fuzz(func(t *testing.T, code string) {
		err := CheckSyntax(code)
		if err == nil {
			return
		}
		checkSyntaxError(t, err, len(splitLines(code)))
		if again := CheckSyntax(code); again == nil || again.Error() != err.Error() {
			t.Fatalf("CheckSyntax is not deterministic: %v, then %v", err, again)
		}
	})
}

func checkSyntaxError(t *testing.T, err error, lines int) {
	t.Helper()
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("error %v is not a *SyntaxError", err)
	}
	// A file ending in a line break has an empty last line, which CPython
	// counts but splitLines does not.
	if se.Line < 1 || se.Line > lines+1 || se.Column < 0 || se.Msg == "" {
		t.Fatalf("%#v for a file of %d lines", se, lines)
	}
}
