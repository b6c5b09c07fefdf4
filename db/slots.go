package db

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// A transaction of InTx on a pool waits for its slot here before it takes a
// connection: a pool has MaxConns slots, and when they are all taken the
// transactions of jobs (marked by ForJob) go before the others, each class
// first come first served. pgxpool serves its waiters in arrival order
// only, so in a burst a job's start or end queued behind every request that
// came before it: 500 messages posted at once were all accepted before
// almost any of their jobs could start, and the answers of the first ones
// waited behind the next messages' POSTs (docs/benchmarks.md, eighth round).
// A job's transaction finishes work a person is already waiting for; a
// request's admits new work, which can wait a little longer for its 202.
// Not indefinitely: a job's transaction overtakes only the requests that
// came less than maxOvertake before it, so that jobs that keep the pool
// busy (hundreds of streaming replies, each writing its deltas) delay new
// messages, reviews and commits by about that at most rather than starve
// them.
//
// The classes meet in a process whose pool serves both the API and the
// workers (role all); in a process of one role every transaction is of one
// class, served in arrival order as before. Statements outside InTx (reads
// on the pool, River's fetches and maintenance) take connections from
// pgxpool directly; a transaction holding a slot may then wait for a
// connection in pgxpool behind them, and a streaming job's deltas (a job's
// transactions too) go before reviews and commits.
// A transaction that nests another InTx on the same pool needs two slots,
// as it needed two connections: the pool's limit, not a new one.

// maxOvertake is how long a request may have waited and still be overtaken
// by a job's transaction. A burst of 500 messages at once takes about a
// second of this 2-core machine to admit and start (docs/benchmarks.md,
// eighth round); within it, the jobs' starts and ends go first.
const maxOvertake = time.Second

// Queue classes of a pool's transactions, in the order they are served.
const (
	ClassJob   = iota // a job's transactions: work already under way
	ClassOther        // everything else: requests, mostly
	classes
)

type forJobKey struct{}

// ForJob marks ctx as a job's: its transactions of InTx go before the
// others when the pool is busy. The workers' River middleware sets it for
// every job.
func ForJob(ctx context.Context) context.Context {
	return context.WithValue(ctx, forJobKey{}, true)
}

func classOf(ctx context.Context) int {
	if job, _ := ctx.Value(forJobKey{}).(bool); job {
		return ClassJob
	}
	return ClassOther
}

// slots hands out a pool's slots.
type slots struct {
	mu      sync.Mutex
	free    int
	waiting [classes][]waiter // each class in arrival order
	waits   [classes]int64
	waited  [classes]time.Duration
}

// waiter is a transaction waiting for a slot.
type waiter struct {
	ready chan struct{} // closed when it has one
	since time.Time
}

var poolSlots sync.Map // *pgxpool.Pool → *slots

func slotsOf(pool *pgxpool.Pool) *slots {
	if t, ok := poolSlots.Load(pool); ok {
		return t.(*slots)
	}
	t, _ := poolSlots.LoadOrStore(pool, &slots{free: int(pool.Config().MaxConns)})
	return t.(*slots)
}

// take waits for a slot of ctx's class, or for ctx to end.
func (t *slots) take(ctx context.Context) error {
	class := classOf(ctx)
	t.mu.Lock()
	if t.free > 0 {
		t.free--
		t.mu.Unlock()
		return nil
	}
	ready, start := make(chan struct{}), time.Now()
	t.waiting[class] = append(t.waiting[class], waiter{ready, start})
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.waits[class]++
		t.waited[class] += time.Since(start)
		t.mu.Unlock()
	}()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
	}
	t.mu.Lock()
	for i, w := range t.waiting[class] {
		if w.ready == ready {
			t.waiting[class] = append(t.waiting[class][:i], t.waiting[class][i+1:]...)
			t.mu.Unlock()
			return ctx.Err()
		}
	}
	t.mu.Unlock()
	// The slot was handed over as ctx ended: pass it on.
	t.give()
	return ctx.Err()
}

// give returns a slot: to the first job's transaction waiting, unless the
// first other one came more than maxOvertake before it; or to the free
// slots.
func (t *slots) give() {
	t.mu.Lock()
	defer t.mu.Unlock()
	jobs, others := t.waiting[ClassJob], t.waiting[ClassOther]
	var class int
	switch {
	case len(jobs) > 0 && len(others) > 0:
		class = ClassJob
		if others[0].since.Add(maxOvertake).Before(jobs[0].since) {
			class = ClassOther
		}
	case len(jobs) > 0:
		class = ClassJob
	case len(others) > 0:
		class = ClassOther
	default:
		t.free++
		return
	}
	q := t.waiting[class]
	close(q[0].ready)
	q[0] = waiter{}
	t.waiting[class] = q[1:]
}

// SlotStats is what a pool's transactions waited for their slots, by class
// (ClassJob, ClassOther).
type SlotStats struct {
	Free     int                    // slots no transaction holds
	Waiting  [classes]int           // transactions waiting now
	Waits    [classes]int64         // transactions that had to wait, so far
	WaitTime [classes]time.Duration // their total wait
}

// PoolSlots returns the slot statistics of pool's transactions of InTx.
func PoolSlots(pool *pgxpool.Pool) SlotStats {
	t := slotsOf(pool)
	t.mu.Lock()
	defer t.mu.Unlock()
	s := SlotStats{Free: t.free, Waits: t.waits, WaitTime: t.waited}
	for class, q := range t.waiting {
		s.Waiting[class] = len(q)
	}
	return s
}
