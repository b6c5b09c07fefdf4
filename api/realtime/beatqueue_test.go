package realtime

import (
	"testing"
	"time"
)

// beatQueue hands beats out in order, only once due, however pushes and pops
// interleave (its space is reused when half of it was popped).
func TestBeatQueue(t *testing.T) {
	var q beatQueue
	t0 := time.Now()
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) }
	next, popped := 0, 0
	for round := range 50 {
		for range round%7 + 1 {
			q.push(beat{due: at(next), gen: uint32(next)})
			next++
		}
		if _, ok := q.due(at(popped).Add(-time.Nanosecond)); ok && popped < next {
			t.Fatalf("round %d: a beat came out before it was due", round)
		}
		for range round%5 + 1 {
			b, ok := q.due(at(next))
			if !ok {
				break
			}
			if int(b.gen) != popped {
				t.Fatalf("round %d: got beat %d, want %d", round, b.gen, popped)
			}
			popped++
		}
	}
	for b, ok := q.due(at(next)); ok; b, ok = q.due(at(next)) {
		if int(b.gen) != popped {
			t.Fatalf("got beat %d, want %d", b.gen, popped)
		}
		popped++
	}
	if popped != next {
		t.Fatalf("%d beats out of %d pushed", popped, next)
	}
	if _, ok := q.peek(); ok {
		t.Fatal("the queue is not empty")
	}
}
