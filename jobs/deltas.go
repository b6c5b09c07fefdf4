package jobs

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/vibegrapher/vibegrapher/db"
)

// deltaBatcher turns streamed text into vibecode_delta events, at most one
// per interval, so a client is not flooded with one event per token. The
// first interval starts with the first text, not with the call: a model
// answers after a pause (hundreds of milliseconds to seconds), and a batcher
// that counted the pause emitted the first token alone, in a transaction of
// its own, while the stream waited for it. A reply that streams within one
// interval is now emitted with the reply, in the step's last transaction.
type deltaBatcher struct {
	ctx       context.Context
	d         *Deps
	t         *db.Turn
	agent     string
	iteration int
	mu        sync.Mutex
	buf       strings.Builder
	last      time.Time // the last emission, or the first text; zero before it
}

func newDeltaBatcher(ctx context.Context, d *Deps, t *db.Turn, agent string, iteration int) *deltaBatcher {
	return &deltaBatcher{ctx: ctx, d: d, t: t, agent: agent, iteration: iteration}
}

func (b *deltaBatcher) add(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s)
	if b.last.IsZero() {
		b.last = time.Now()
		return
	}
	if time.Since(b.last) >= b.d.DeltaInterval {
		b.flushLocked()
	}
}

func (b *deltaBatcher) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
}

func (b *deltaBatcher) flushLocked() {
	if b.buf.Len() == 0 {
		return
	}
	if err := b.d.Store.EmitDelta(b.ctx, b.t, b.agent, b.iteration, b.buf.String()); err != nil {
		b.d.Log.Warn("emit vibecode_delta", "error", err)
	}
	b.buf.Reset()
	b.last = time.Now()
}

// take returns the text not emitted yet and forgets it: the caller emits it
// with the reply, in one transaction.
func (b *deltaBatcher) take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}
