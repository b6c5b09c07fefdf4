package jobs

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/vibegrapher/vibegrapher/db"
)

// deltaBatcher turns streamed text into vibecode_delta events, at most one
// per interval, so a client is not flooded with one event per token: text is
// held until an interval has passed since the first of it arrived, and sent
// at the next delta of text, tool arguments or refusal (add("") for those
// that are not text), so text followed by a tool call's long arguments shows
// while they stream. The interval starts with the text, not with the call or
// the last event: a
// model answers after a pause (hundreds of milliseconds to seconds), and a
// batcher that counted the pause emitted the first token alone, in a
// transaction of its own, while the stream waited for it. Text that streams
// within one interval goes with the reply, in the step's last transaction.
//
// Under load the interval grows (Deps.DeltaRate): with more calls holding
// text at once than the rate allows at DeltaInterval, each holds its text
// longer, so the process writes about DeltaRate deltas a second in all and
// clients see the text in larger pieces instead of the database and the
// clients' connections taking an event per call every 75 ms; never longer
// than maxDeltaInterval. A call counts while it holds text: not while it
// streams a tool call's arguments after its text, nor once it is done.
//
// When the message is deleted (its session cleared, its project deleted)
// the batcher emits nothing more and calls gone, which stops the call.
type deltaBatcher struct {
	ctx       context.Context
	gone      func()
	d         *Deps
	t         *db.Turn
	agent     string
	iteration int
	mu        sync.Mutex
	buf       strings.Builder
	held      time.Time // when the oldest text in buf arrived
	stopped   bool      // the message is gone
	holding   bool      // counted in Deps.streams: buf holds text
	ended     bool      // done: counted no more
}

func newDeltaBatcher(ctx context.Context, d *Deps, t *db.Turn, agent string, iteration int, gone func()) *deltaBatcher {
	return &deltaBatcher{ctx: ctx, d: d, t: t, agent: agent, iteration: iteration, gone: gone}
}

// add holds text s; "" only tells the batcher that the stream goes on.
func (b *deltaBatcher) add(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s != "" {
		if b.buf.Len() == 0 {
			b.held = time.Now()
		}
		b.buf.WriteString(s)
		if !b.holding && !b.ended {
			b.holding = true
			b.d.streams.Add(1)
		}
	}
	if b.buf.Len() > 0 && time.Since(b.held) >= b.d.deltaInterval(b.d.streams.Load()) {
		b.flushLocked()
	}
}

// release ends the call's count among those holding text.
func (b *deltaBatcher) release() {
	if b.holding {
		b.holding = false
		b.d.streams.Add(-1)
	}
}

// done ends the call's count for good; call it once the call has returned.
func (b *deltaBatcher) done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ended = true
	b.release()
}

func (b *deltaBatcher) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
}

func (b *deltaBatcher) flushLocked() {
	if b.buf.Len() == 0 || b.stopped {
		b.release() // a gone message's text is sent no more
		return
	}
	defer b.release()
	err := b.d.Store.EmitDelta(b.ctx, b.t, b.agent, b.iteration, b.buf.String())
	switch {
	case errors.Is(err, db.ErrTurnGone):
		b.stopped = true
		if b.gone != nil {
			b.gone()
		}
	case err != nil:
		b.d.Log.Warn("emit vibecode_delta", "error", err)
	}
	b.buf.Reset()
}

// take returns the text not emitted yet and forgets it: the caller emits it
// with the reply, in one transaction.
func (b *deltaBatcher) take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	b.release()
	return s
}
