package db

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// A transaction of InTx on a pool announces its events after COMMIT without
// waiting for the announcement: the committing goroutine (a job between its
// steps, a request before its response) goes on at once.
//
//   - The realtime hubs of this process are told directly (OnCommit), so
//     their read of the outbox does not wait for a round trip through
//     PostgreSQL's LISTEN/NOTIFY.
//   - The other processes get the NOTIFY (notifyAfterCommit), sent by one
//     goroutine per pool, one at a time, each with the highest seq committed
//     so far: a burst of commits costs one NOTIFY and one read by each
//     listener, not one per commit.
//
// A notification still follows its commit. One that a dying process did not
// send is covered by the realtime role's poll, as before.

// notifyTimeout bounds one NOTIFY while the database is away (its error is
// dropped like every NOTIFY's; the poll covers).
const notifyTimeout = 5 * time.Second

// announcer announces the commits of one pool.
type announcer struct {
	pool *pgxpool.Pool

	mu      sync.Mutex
	pending int64 // highest seq committed and not sent yet; 0: none
	sending bool  // a goroutine is sending
	hubs    []*hubHook
}

// hubHook is one function registered with OnCommit.
type hubHook struct{ fn func(seq int64) }

var announcers sync.Map // *pgxpool.Pool → *announcer

func announcerOf(pool *pgxpool.Pool) *announcer {
	if a, ok := announcers.Load(pool); ok {
		return a.(*announcer)
	}
	a, _ := announcers.LoadOrStore(pool, &announcer{pool: pool})
	return a.(*announcer)
}

// OnCommit calls fn with the highest seq of each transaction of InTx on pool
// that wrote events, right after its COMMIT, on the committing goroutine (fn
// must not block), until the returned function is called. The realtime hub
// uses it to read the outbox without waiting for the NOTIFY, which it still
// gets (with a seq it already read, then: the hub skips it).
func OnCommit(pool *pgxpool.Pool, fn func(seq int64)) (stop func()) {
	a := announcerOf(pool)
	h := &hubHook{fn: fn}
	a.mu.Lock()
	a.hubs = append(a.hubs[:len(a.hubs):len(a.hubs)], h) // a new array: committed reads the old one unlocked
	a.mu.Unlock()
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		kept := make([]*hubHook, 0, len(a.hubs))
		for _, o := range a.hubs {
			if o != h {
				kept = append(kept, o)
			}
		}
		a.hubs = kept
	}
}

// committed announces that the events up to seq are committed.
func (a *announcer) committed(seq int64) {
	a.mu.Lock()
	a.pending = max(a.pending, seq)
	start := !a.sending
	a.sending = true
	hubs := a.hubs
	a.mu.Unlock()
	for _, h := range hubs {
		h.fn(seq)
	}
	if start {
		go a.send()
	}
}

// send sends NOTIFYs until nothing is pending.
func (a *announcer) send() {
	for {
		a.mu.Lock()
		seq := a.pending
		a.pending = 0
		if seq == 0 {
			a.sending = false
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
		notifyAfterCommit(ctx, a.pool, seq)
		cancel()
	}
}

// FlushAnnouncements waits until the NOTIFYs of pool's commits so far are
// sent, or ctx ends: a process that stops calls it before it closes the pool,
// so the other processes hear of its last events at once rather than from
// their poll.
func FlushAnnouncements(ctx context.Context, pool *pgxpool.Pool) {
	a := announcerOf(pool)
	for {
		a.mu.Lock()
		busy := a.sending
		a.mu.Unlock()
		if !busy {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}
