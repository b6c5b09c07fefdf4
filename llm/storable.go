package llm

import (
	"bytes"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// replacementEscape is U+FFFD as a JSON escape.
const replacementEscape = `\ufffd`

// storableJSON is data, JSON from the model, with what PostgreSQL cannot
// store replaced by U+FFFD, as JSON parsers replace what they cannot read:
//
//   - a \u0000 escape: jsonb refuses it, and a text column refuses the NUL
//     it decodes to;
//   - a \u escape of a lone UTF-16 surrogate: jsonb refuses it;
//   - bytes that are not UTF-8: PostgreSQL refuses them anywhere.
//
// Without this, a reply that holds one of them could never be stored: the
// job would call the model again on each attempt and fail each time. The
// result is data itself when it has none of them (the common case: two fast
// scans); escapes of escaped backslashes (\\u0000 is text, not a NUL) are
// left alone. JSON nested in a string (a function call's arguments) is
// decoded from the outer string first, then scrubbed again before decoding.
func storableJSON(data []byte) []byte {
	if !utf8.Valid(data) {
		data = validUTF8(data)
	}
	if !bytes.Contains(data, []byte(`\u`)) {
		return data
	}
	var out []byte // nil until something is replaced
	kept := 0      // data[kept:] is not yet in out
	for i := 0; i < len(data); {
		j := bytes.IndexByte(data[i:], '\\')
		if j < 0 {
			break
		}
		i += j
		if i+1 >= len(data) || data[i+1] != 'u' {
			i += 2 // \" \\ \n …: the escaped byte is not an escape's start
			continue
		}
		r, ok := hex4(data, i+2)
		if !ok {
			i += 2 // not JSON; the decoder says so
			continue
		}
		size, bad := 6, r == 0
		switch {
		case utf16.IsSurrogate(r) && r < 0xDC00: // high: a low one must follow
			if lo, ok := hex4(data, i+8); ok && data[i+6] == '\\' && data[i+7] == 'u' && lo >= 0xDC00 && lo <= 0xDFFF {
				size = 12
			} else {
				bad = true
			}
		case utf16.IsSurrogate(r): // a low one alone
			bad = true
		}
		if bad {
			out = append(append(out, data[kept:i]...), replacementEscape...)
			kept = i + 6
		}
		i += size
	}
	if out == nil {
		return data
	}
	return append(out, data[kept:]...)
}

// storableJSONString is storableJSON of a decoded string that holds JSON,
// which is valid UTF-8.
func storableJSONString(s string) string {
	if !strings.Contains(s, `\u`) {
		return s
	}
	return string(storableJSON([]byte(s)))
}

// validUTF8 is data with each byte that is not part of UTF-8 replaced by
// U+FFFD, as encoding/json reads it (bytes.ToValidUTF8 replaces a run once).
func validUTF8(data []byte) []byte {
	out := make([]byte, 0, len(data)+16)
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r == utf8.RuneError && size == 1 {
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
	if i < 0 || i+4 > len(data) {
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
