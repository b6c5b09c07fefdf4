package sandbox

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCappedBuffer(t *testing.T) {
	tests := []struct {
		name      string
		writes    []string
		limit     int
		want      string
		truncated bool
	}{
		{"under", []string{"ab", "cd"}, 8, "abcd", false},
		{"exactly", []string{"abcd", "efgh"}, 8, "abcdefgh", false},
		{"over", []string{"abcd", "efgh", "ij"}, 8, "abcdefgh" + truncationMarker(8), true},
		{"cut inside a character", []string{"abcdef", "é✓"}, 8, "abcdefé" + truncationMarker(8), true},
		{"cut after a character", []string{"abcd", "✓✓"}, 8, "abcd✓" + truncationMarker(8), true},
		// PostgreSQL stores neither NUL nor bytes that are not UTF-8.
		{"invalid bytes are replaced", []string{"abcdefg\xff", "x"}, 8, "abcdefg\uFFFD" + truncationMarker(8), true},
		{"each invalid byte is replaced", []string{"a\xff\xfeb\xc3"}, 8, "a\uFFFD\uFFFDb\uFFFD", false},
		{"NUL is replaced", []string{"a\x00b", "\x00"}, 8, "a\uFFFDb\uFFFD", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newCappedBuffer(tc.limit)
			for _, w := range tc.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			got, truncated := b.text()
			if got != tc.want || truncated != tc.truncated {
				t.Errorf("got %q %v, want %q %v", got, truncated, tc.want, tc.truncated)
			}
			if !utf8.ValidString(got) || strings.Contains(got, "\x00") {
				t.Errorf("%q is not storable text", got)
			}
		})
	}
	if !strings.Contains(truncationMarker(65536), "[output truncated: more than 65536 bytes]") {
		t.Error(truncationMarker(65536))
	}
}
