package pgtext

import (
	"encoding/json"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

func TestJSON(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":"plain ü"}`:             `{"a":"plain ü"}`,
		`"a\u0000b"`:                  `"a\ufffdb"`,
		`"a\\u0000b"`:                 `"a\\u0000b"`, // text, not a NUL
		`"a\\\u0000b"`:                `"a\\\ufffdb"`,
		`"\ud83d\ude00 \uD83D\uDE00"`: `"\ud83d\ude00 \uD83D\uDE00"`,
		`"\ud83d"`:                    `"\ufffd"`,
		`"\ud83dx"`:                   `"\ufffdx"`,
		`"\ude00\ud83d"`:              `"\ufffd\ufffd"`,
		`"\ud83d\u0041"`:              `"\ufffd\u0041"`,
		`"\ud83d\u0000"`:              `"\ufffd\ufffd"`,
		`"\ud83d\ud83d\ude00"`:        `"\ufffd\ud83d\ude00"`,
		"\"a\xffb\"":                  "\"a\uFFFDb\"",
		`"\u00e9 \n \" \/ \u2028"`:    `"\u00e9 \n \" \/ \u2028"`,
		`"cut \u00`:                   `"cut \u00`,
		`"\u0000"` + "\xc3":           `"\ufffd"` + "\uFFFD",
	} {
		if got := string(JSON([]byte(in))); got != want {
			t.Errorf("JSON(%s) = %s, want %s", in, got, want)
		}
	}

	// Nothing to replace: the same bytes, not a copy.
	in := []byte(`{"text":"no escapes, \n no NUL"}`)
	if out := JSON(in); &out[0] != &in[0] {
		t.Error("JSON copied JSON that needs nothing replaced")
	}
}

// What JSON returns decodes to what its input decodes to, NULs
// replaced: encoding/json itself reads lone surrogates and bytes that are not
// UTF-8 as U+FFFD. And it has nothing left that PostgreSQL refuses.
func TestJSONDecodesAsItsInput(t *testing.T) {
	pairs := regexp.MustCompile(`\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}`)
	refused := regexp.MustCompile(`\\u(0000|[dD][89a-fA-F])`)
	pieces := []string{`a`, `é`, `\u0000`, `\\`, `\\u0000`, `\ud83d`, `\ude00`, `\ud83d\ude00`, `\u0041`, `\n`, `\"`, "\xff", "\xc3", `u0000`, `\`}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b strings.Builder
		b.WriteByte('"')
		for range rng.IntN(8) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		b.WriteByte('"')
		in := b.String()
		var want string
		if json.Unmarshal([]byte(in), &want) != nil {
			continue // not JSON: the decoder refuses it either way
		}
		out := JSON([]byte(in))
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("JSON(%q) = %q, which does not decode: %v", in, out, err)
		}
		if want = strings.ReplaceAll(want, "\x00", "\uFFFD"); got != want {
			t.Fatalf("JSON(%q) = %q decodes to %q, want %q", in, out, got, want)
		}
		// PostgreSQL's refusals, found another way: escaped backslashes and
		// surrogate pairs taken out, no NUL or surrogate escape is left.
		rest := pairs.ReplaceAllString(strings.ReplaceAll(string(out), `\\`, ""), "")
		if refused.MatchString(rest) {
			t.Fatalf("JSON(%q) = %q, which PostgreSQL refuses", in, out)
		}
	}
}

// JSON on a final response of the usual size that needs nothing replaced:
// what every model reply pays.
func BenchmarkJSONNothingToReplace(b *testing.B) {
	data := []byte(`{"id":"resp_1","status":"completed","output":[{"type":"message","content":[{"type":"output_text","text":"` +
		strings.Repeat("greet() returns a greeting, ü; \n", 60) + `"}]}]}`)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		JSON(data)
	}
}
