package pyast

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// stringLiteralValue returns the value of one Python string literal as
// written in source (prefix and quotes included). ok is false for bytes and
// for f-strings with replacement fields, whose value is not known statically.
// \N{NAME} escapes are kept as written.
func stringLiteralValue(lit string) (value string, ok bool) {
	i := strings.IndexAny(lit, `'"`)
	if i < 0 {
		return "", false
	}
	prefix := strings.ToLower(lit[:i])
	body := lit[i:]
	quote := body[:1]
	if strings.HasPrefix(body, strings.Repeat(quote, 3)) && len(body) >= 6 {
		quote = body[:3]
	}
	if len(body) < 2*len(quote) {
		return "", false
	}
	body = body[len(quote) : len(body)-len(quote)]
	body = strings.ReplaceAll(body, "\r\n", "\n")
	if strings.Contains(prefix, "b") {
		return "", false
	}
	if strings.Contains(prefix, "f") {
		var ok bool
		if body, ok = unescapeBraces(body); !ok {
			return "", false
		}
	}
	if strings.Contains(prefix, "r") {
		return body, true
	}
	return unescape(body), true
}

// unescapeBraces turns {{ and }} into { and }; a lone brace starts or ends
// a replacement field.
func unescapeBraces(s string) (string, bool) {
	if !strings.ContainsAny(s, "{}") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '{' || c == '}' {
			if i+1 >= len(s) || s[i+1] != c {
				return "", false
			}
			i++
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

// unescape decodes the escape sequences of a non-raw str literal's body.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch c := s[i]; c {
		case '\n': // line continuation
		case '\\', '\'', '"':
			b.WriteByte(c)
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			j := i
			for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
				j++
			}
			v, _ := strconv.ParseUint(s[i:j], 8, 32)
			b.WriteRune(rune(v))
			i = j - 1
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
			v, err := strconv.ParseUint(s[min(i+1, len(s)):min(i+1+n, len(s))], 16, 32)
			if err != nil || i+1+n > len(s) || !utf8.ValidRune(rune(v)) {
				b.WriteByte('\\')
				b.WriteByte(c)
				continue
			}
			b.WriteRune(rune(v))
			i += n
		default: // unknown escapes, and \N{...}, stay as written
			b.WriteByte('\\')
			b.WriteByte(c)
		}
	}
	return b.String()
}
