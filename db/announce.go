package db

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// A transaction of InTx on a pool announces its events after COMMIT without
// waiting for the announcement: the committing goroutine (a job between its
// steps, a request before its response) goes on at once.
//
//   - The realtime hubs of this process are handed the events directly
//     (OnCommit): they neither wait for a round trip through PostgreSQL's
//     LISTEN/NOTIFY nor read the outbox for them.
//   - The other processes get the NOTIFY (notifyAfterCommit), sent by one
//     goroutine per pool, one at a time, each with the highest seq committed
//     so far and the events committed since the last one, as many as fit
//     (notification.go): a burst of commits costs one NOTIFY, and a
//     listener reads the outbox only for what did not fit.
//
// A notification still follows its commit. One that a dying process did not
// send is covered by the realtime role's poll, as before.

// notifyEvery spaces a process's NOTIFYs: one follows the last by at least
// this long, so under load a NOTIFY carries the commits of notifyEvery (up
// to 100 a second per pool, each a round trip and a wake-up of every
// listening connection), while a commit after a quiet spell is announced at
// once. The realtime hubs of the committing process do not wait for it
// (OnCommit); other processes hear of a commit up to this much later.
const notifyEvery = 10 * time.Millisecond

// notifyTimeout bounds one NOTIFY while the database is away (its error is
// dropped like every NOTIFY's; the poll covers).
const notifyTimeout = 5 * time.Second

// announcer announces the commits of one pool.
type announcer struct {
	pool *pgxpool.Pool

	mu      sync.Mutex
	pending int64     // highest seq committed and not sent yet; 0: none
	events  []Event   // committed and not sent yet, while they fit in one notification
	size    int       // their size in a notification
	full    bool      // an event did not fit: no later one is carried either
	dropped int64     // the lowest seq of those not carried; 0: none
	sending bool      // a goroutine is sending
	spare   []Event   // the slice send used last, for the next events
	sent    time.Time // when the last NOTIFY went; only the sending goroutine uses it
	hubs    []*hubHook
	notify  func(ctx context.Context, q Querier, payload string) // notifyAfterCommit; tests watch it
}

// hubHook is one function registered with OnCommit.
type hubHook struct {
	fn func(seq int64, events []Event)
}

var announcers sync.Map // *pgxpool.Pool → *announcer

func announcerOf(pool *pgxpool.Pool) *announcer {
	if a, ok := announcers.Load(pool); ok {
		return a.(*announcer)
	}
	a, _ := announcers.LoadOrStore(pool, &announcer{pool: pool, notify: notifyAfterCommit})
	return a.(*announcer)
}

// OnCommit calls fn with the highest seq and the events of each transaction
// of InTx on pool that wrote events (in seq order), right after its COMMIT,
// on the committing goroutine (fn must not block nor keep events' slice),
// until the returned function is called. The realtime hub uses it to deliver
// without waiting for the NOTIFY, which it still gets (with seqs it already
// delivered, then: the hub skips them).
func OnCommit(pool *pgxpool.Pool, fn func(seq int64, events []Event)) (stop func()) {
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

// committed announces a transaction's events, up to seq, as committed.
func (a *announcer) committed(seq int64, events []Event) {
	a.mu.Lock()
	a.pending = max(a.pending, seq)
	for _, e := range events {
		if a.full = a.full || a.size+notificationSize(e) > maxNotification-20; a.full {
			if a.dropped == 0 || e.Seq < a.dropped {
				a.dropped = e.Seq
			}
			continue
		}
		a.events = append(a.events, e)
		a.size += notificationSize(e)
	}
	start := !a.sending
	a.sending = true
	hubs := a.hubs
	a.mu.Unlock()
	for _, h := range hubs {
		h.fn(seq, events)
	}
	if start {
		go a.send()
	}
}

// send sends NOTIFYs until nothing is pending.
func (a *announcer) send() {
	var buf []byte
	for {
		if wait := notifyEvery - time.Since(a.sent); wait > 0 {
			time.Sleep(wait) // commits meanwhile join this NOTIFY
		}
		a.mu.Lock()
		seq, events, dropped, notify := a.pending, a.events, a.dropped, a.notify
		if seq == 0 { // and no events
			a.sending = false
			a.mu.Unlock()
			return
		}
		// committed appends to the other slice while this one is sent.
		a.pending, a.events, a.spare, a.size, a.full, a.dropped = 0, a.spare, nil, 0, false, 0
		a.mu.Unlock()
		// Concurrent transactions may have committed out of seq order. The
		// events carried are a run: none above one that did not fit, which
		// leaves the notification's seq above the last carried, and the
		// hubs read the rest.
		slices.SortFunc(events, func(x, y Event) int { return cmp.Compare(x.Seq, y.Seq) })
		carried := events
		if dropped != 0 {
			i, _ := slices.BinarySearchFunc(events, dropped, func(e Event, s int64) int { return cmp.Compare(e.Seq, s) })
			carried = events[:i]
		}
		buf = appendNotification(buf[:0], seq, carried)
		ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
		notify(ctx, a.pool, string(buf))
		cancel()
		a.sent = time.Now()
		clear(events)
		a.mu.Lock()
		a.spare = events[:0]
		a.mu.Unlock()
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
