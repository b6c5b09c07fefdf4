package sandbox

import (
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/vibegrapher/vibegrapher/internal/pgtext"
)

// cappedBuffer keeps the first limit bytes written to it and counts the rest,
// so that a print flood costs the server at most limit bytes per stream while
// the program keeps running to its natural end (a full pipe would otherwise
// stall it until the timeout).
type cappedBuffer struct {
	mu    sync.Mutex
	limit int
	buf   []byte
	total int64
}

func newCappedBuffer(limit int) *cappedBuffer {
	return &cappedBuffer{limit: limit}
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total += int64(n)
	if room := b.limit - len(b.buf); room > 0 {
		if len(p) > room {
			p = p[:room]
		}
		b.buf = append(b.buf, p...)
	}
	return n, nil
}

// text returns what was kept, followed by a marker line when output was cut,
// as storable text.
func (b *cappedBuffer) text() (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.total <= int64(b.limit) {
		return pgtext.Text(b.buf), false
	}
	kept := b.buf
	// Do not end on half a character.
	i := len(kept) - 1
	for i > 0 && len(kept)-i < utf8.UTFMax && !utf8.RuneStart(kept[i]) {
		i--
	}
	if i >= 0 && !utf8.FullRune(kept[i:]) {
		kept = kept[:i]
	}
	return pgtext.Text(kept) + truncationMarker(b.limit), true
}

func truncationMarker(limit int) string {
	return fmt.Sprintf("\n[output truncated: more than %d bytes]\n", limit)
}
