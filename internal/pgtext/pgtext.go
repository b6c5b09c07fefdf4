// Package pgtext makes text storable in PostgreSQL, which refuses a NUL in
// text and in jsonb, a \u escape of a lone UTF-16 surrogate in jsonb, and
// bytes that are not UTF-8 anywhere. What comes from outside and cannot be
// refused (a model's reply, a program's output) has each such character
// replaced by U+FFFD, as JSON parsers show what they cannot read; what a
// client sends is refused instead (api), and EscapeAt finds it.
package pgtext

import (
	"bytes"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Text is out with each NUL, and each byte that is not UTF-8, replaced by
// U+FFFD.
func Text(out []byte) string {
	if utf8.Valid(out) && bytes.IndexByte(out, 0) < 0 {
		return string(out)
	}
	return string(replaceInvalid(out, true))
}

// JSON is data, JSON text, with what PostgreSQL cannot store replaced by
// U+FFFD: a \u0000 escape, a \u escape of a lone surrogate, and bytes that
// are not UTF-8. The result is data itself when it has none of them (the
// common case: two fast scans). An escaped backslash followed by "u0000" is
// text, not a NUL, and is left alone. JSON nested in a string (a function
// call's arguments) is decoded from the outer string first, then made
// storable again before decoding (JSONString).
func JSON(data []byte) []byte {
	if !utf8.Valid(data) {
		data = replaceInvalid(data, false)
	}
	var out []byte // nil until something is replaced
	kept := 0      // data[kept:] is not yet in out
	for at := EscapeAt(data, 0); at >= 0; at = EscapeAt(data, kept) {
		out = append(append(out, data[kept:at]...), `\ufffd`...)
		kept = at + 6
	}
	if out == nil {
		return data
	}
	return append(out, data[kept:]...)
}

// JSONString is JSON of a decoded string that holds JSON.
func JSONString(s string) string {
	if !strings.Contains(s, `\u`) {
		return s
	}
	return string(JSON([]byte(s)))
}

// EscapeAt is the offset of the first \u escape at or after from in data,
// JSON text, that PostgreSQL's jsonb refuses (\u0000, or half a surrogate
// pair without the other half), or -1. Outside strings JSON has no
// backslash, so data is scanned for escapes alone.
func EscapeAt(data []byte, from int) int {
	if !bytes.Contains(data[from:], []byte(`\u`)) {
		return -1
	}
	for i := from; i < len(data); {
		j := bytes.IndexByte(data[i:], '\\')
		if j < 0 {
			return -1
		}
		i += j
		if i+1 >= len(data) || data[i+1] != 'u' {
			i += 2 // \" \\ \n …: the escaped byte is not an escape's start
			continue
		}
		r, ok := hex4(data, i+2)
		switch {
		case !ok:
			i += 2 // not JSON; the decoder says so
		case r == 0:
			return i
		case utf16.IsSurrogate(r) && r < 0xDC00: // high: a low one must follow
			lo, ok := hex4(data, i+8)
			if !ok || data[i+6] != '\\' || data[i+7] != 'u' || lo < 0xDC00 || lo > 0xDFFF {
				return i
			}
			i += 12
		case utf16.IsSurrogate(r): // a low one alone
			return i
		default:
			i += 6
		}
	}
	return -1
}

// replaceInvalid replaces each byte of data that is not part of UTF-8 (and,
// with nul, each NUL) by U+FFFD, one per byte as encoding/json reads them
// (bytes.ToValidUTF8 replaces a run once).
func replaceInvalid(data []byte, nul bool) []byte {
	out := make([]byte, 0, len(data)+16)
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r == utf8.RuneError && size == 1 || nul && r == 0 {
			out = append(out, "\uFFFD"...)
		} else {
			out = append(out, data[:size]...)
		}
		data = data[size:]
	}
	return out
}

// hex4 is the rune of the four hex digits at data[i:], if there are four.
func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
