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
		{"invalid bytes stay", []string{"abcdefg\xff", "x"}, 8, "abcdefg\xff" + truncationMarker(8), true},
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
			if tc.name != "invalid bytes stay" && !utf8.ValidString(got) {
				t.Errorf("invalid UTF-8")
			}
		})
	}
	if !strings.Contains(truncationMarker(65536), "[output truncated: more than 65536 bytes]") {
		t.Error(truncationMarker(65536))
	}
}
