package jobs

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
)

// Text is held until an interval has passed since it arrived, and sent at
// the next delta of the stream, text or not: a reply's text followed by its
// tool call's arguments shows while they stream. Deltas that are not text
// never start the interval, and what is held when the stream ends is the
// caller's to send with the reply.
func TestDeltaBatcherHoldsTextForAnInterval(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	const interval = 200 * time.Millisecond
	deps := &Deps{Store: &db.Store{Pool: pool}, Log: slog.New(slog.DiscardHandler), DeltaInterval: interval}
	turn := deltaTurn(t, deps)
	emitted := func() []string {
		t.Helper()
		rows, err := pool.Query(ctx, `SELECT payload->>'delta' FROM events WHERE name = 'vibecode_delta' ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	b := newDeltaBatcher(ctx, deps, turn, domain.AgentVibeCoder, 1, nil)
	b.add("") // the model streams something else first: nothing starts
	time.Sleep(interval + 50*time.Millisecond)
	b.add("I will add a note.")
	b.add("") // an argument delta at once: the text is held
	if got := emitted(); len(got) != 0 {
		t.Fatalf("emitted %q before the interval had passed since the text", got)
	}
	time.Sleep(interval + 50*time.Millisecond)
	b.add("") // an argument delta after the interval: the text goes
	if got := emitted(); len(got) != 1 || got[0] != "I will add a note." {
		t.Fatalf("emitted %q, want the held text once the interval passed", got)
	}
	b.add(" Done.")
	b.add("")
	if rest := b.take(); rest != " Done." || len(emitted()) != 1 {
		t.Fatalf("at the end: %q left for the reply, %d events; want \" Done.\" and still 1", rest, len(emitted()))
	}
}

// With more calls holding streamed text at once than DeltaRate allows at
// DeltaInterval, each holds its text longer, so that the process writes
// about DeltaRate deltas a second; a call counts while it holds text, and
// not once it is done. (The text's age is set instead of slept, so a slow
// machine does not move the test.)
func TestDeltaIntervalGrowsWithTheCallsStreamingAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	deps := &Deps{Store: &db.Store{Pool: pool}, Log: slog.New(slog.DiscardHandler), DeltaInterval: 200 * time.Millisecond, DeltaRate: 5}
	turn := deltaTurn(t, deps)
	count := func() int { return dbtest.Count(t, pool, `SELECT count(*) FROM events WHERE name = 'vibecode_delta'`) }
	holding := func(want int64) {
		t.Helper()
		if n := deps.streams.Load(); n != want {
			t.Fatalf("%d calls counted as holding text, want %d", n, want)
		}
	}
	aged := func(b *deltaBatcher, d time.Duration) {
		b.mu.Lock()
		b.held = time.Now().Add(-d)
		b.mu.Unlock()
	}

	calls := []*deltaBatcher{
		newDeltaBatcher(ctx, deps, turn, domain.AgentVibeCoder, 1, nil),
		newDeltaBatcher(ctx, deps, turn, domain.AgentVibeCoder, 1, nil),
		newDeltaBatcher(ctx, deps, turn, domain.AgentVibeCoder, 1, nil),
	}
	calls[0].add("") // no text yet: not counted
	holding(0)
	for _, b := range calls {
		b.add("text ")
	}
	holding(3)
	// Three at once at 5 a second: 600 ms each, not 200.
	aged(calls[0], 400*time.Millisecond)
	calls[0].add("")
	if n := count(); n != 0 {
		t.Fatalf("%d deltas of text 400 ms old with three calls holding text at 5 a second", n)
	}
	aged(calls[0], 700*time.Millisecond)
	calls[0].add("")
	if n := count(); n != 1 {
		t.Fatalf("%d deltas of text 700 ms old, want the first call's", n)
	}
	// Its text is sent: it streams a tool call's arguments now, and counts
	// no more.
	calls[0].add("")
	holding(2)
	// The other two end: one call holds text, at DeltaInterval again.
	calls[1].done()
	if rest := calls[2].take(); rest != "text " {
		t.Fatalf("take: %q", rest)
	}
	calls[2].done()
	holding(0)
	calls[0].add("more ")
	holding(1)
	aged(calls[0], 250*time.Millisecond)
	calls[0].add("")
	if n := count(); n != 2 {
		t.Fatalf("%d deltas, want the lone call's text 250 ms old", n)
	}
	calls[0].done()
	calls[0].add("after its end") // counted no more
	holding(0)

	if got := deps.deltaInterval(1000); got != maxDeltaInterval {
		t.Fatalf("1,000 holding text at 5 a second: %s, want the ceiling %s", got, maxDeltaInterval)
	}
	deps.DeltaRate = 0
	if got := deps.deltaInterval(1000); got != deps.DeltaInterval {
		t.Fatalf("no bound: %s, want DeltaInterval", got)
	}
}

// deltaTurn is a turn of a message stored in a project of its own, whose
// deltas EmitDelta writes (it sends none of a deleted project or message).
func deltaTurn(t *testing.T, deps *Deps) *db.Turn {
	t.Helper()
	ctx := context.Background()
	p, err := deps.Store.CreateProject(ctx, domain.NewProject{Name: "deltas"})
	if err != nil {
		t.Fatal(err)
	}
	turn := &db.Turn{
		Session: domain.VibecodeSession{ID: uuid.NewString(), ProjectID: p.ID},
		Message: domain.ConversationMessage{ID: uuid.NewString(), TraceID: "trace"},
	}
	pool := deps.Store.Pool
	if _, err := pool.Exec(ctx, `INSERT INTO sessions (id, project_id, openai_session_key, session_type) VALUES ($1, $2, $3, 'global')`,
		turn.Session.ID, p.ID, "deltas-session"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO messages (id, session_id, project_id, role, agent, content, trace_id, status)
		VALUES ($1, $2, $3, 'user', 'user', 'Add a note', 'trace', 'running')`, turn.Message.ID, turn.Session.ID, p.ID); err != nil {
		t.Fatal(err)
	}
	return turn
}
