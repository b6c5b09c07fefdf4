package db

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
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
		deadline := time.Now().Add(10 * time.Second)
		for {
			s.mu.Lock()
			n := len(s.waiting[ClassOther])
			s.mu.Unlock()
			if n == 1 {
				break
			}
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("round %d: the transaction does not wait for the slot", round)
			}
			runtime.Gosched()
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

// A job's transaction overtakes the requests that came less than
// maxOvertake before it, not those that have waited longer.
func TestAJobOvertakesOnlyRecentRequests(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for _, c := range []struct {
		name       string
		requestAge time.Duration
		wantClass  int
	}{
		{"a request that came just before the job", time.Millisecond, ClassJob},
		{"a request that came almost maxOvertake before", maxOvertake - 10*time.Millisecond, ClassJob},
		{"a request that came more than maxOvertake before", maxOvertake + 10*time.Millisecond, ClassOther},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &slots{}
			request, job := make(chan struct{}), make(chan struct{})
			s.waiting[ClassOther] = []waiter{{request, now.Add(-c.requestAge)}}
			s.waiting[ClassJob] = []waiter{{job, now}}
			s.give()
			if isClosed(job) == isClosed(request) {
				t.Fatalf("job's handed a slot: %v, request's: %v; want exactly one", isClosed(job), isClosed(request))
			}
			if got := map[bool]int{true: ClassJob, false: ClassOther}[isClosed(job)]; got != c.wantClass {
				t.Errorf("the slot went to class %d, want %d", got, c.wantClass)
			}
		})
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
