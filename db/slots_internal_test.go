package db

import (
	"context"
	"sync"
	"testing"
)

// A wait whose context ends just as a slot is handed to it passes the slot
// on. Each round, one transaction waits for the only slot, and its context
// ends while the slot is given back; whichever comes first, the slot must
// be free again afterwards and no one waiting.
func TestASlotHandedToAWaitThatEndedIsKept(t *testing.T) {
	t.Parallel()
	for round := range 2000 {
		s := &slots{}
		ctx, cancel := context.WithCancel(context.Background())
		var all sync.WaitGroup
		all.Go(func() {
			if s.take(ctx) == nil {
				s.give() // it got the slot before its context ended
			}
		})
		for {
			s.mu.Lock()
			n := len(s.waiting[ClassOther])
			s.mu.Unlock()
			if n == 1 {
				break
			}
		}
		start := make(chan struct{})
		all.Go(func() { <-start; cancel() })
		all.Go(func() { <-start; s.give() })
		close(start)
		all.Wait()
		if s.free != 1 || len(s.waiting[ClassOther]) != 0 {
			t.Fatalf("round %d: %d free, %d waiting; want the slot free and no one waiting", round, s.free, len(s.waiting[ClassOther]))
		}
	}
}
