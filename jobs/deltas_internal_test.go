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

// With more calls streaming text at once than DeltaRate allows at
// DeltaInterval, each holds its text longer, so that the process writes
// about DeltaRate deltas a second; a call counts from its first text until
// it is done.
func TestDeltaIntervalGrowsWithTheCallsStreamingAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	deps := &Deps{Store: &db.Store{Pool: pool}, Log: slog.New(slog.DiscardHandler), DeltaInterval: 200 * time.Millisecond, DeltaRate: 5}
	turn := deltaTurn(t, deps)
	count := func() int { return dbtest.Count(t, pool, `SELECT count(*) FROM events WHERE name = 'vibecode_delta'`) }

	calls := []*deltaBatcher{
		newDeltaBatcher(ctx, deps, turn, domain.AgentVibeCoder, 1, nil),
		newDeltaBatcher(ctx, deps, turn, domain.AgentVibeCoder, 1, nil),
		newDeltaBatcher(ctx, deps, turn, domain.AgentVibeCoder, 1, nil),
	}
	if n := deps.streams.Load(); n != 0 {
		t.Fatalf("%d streaming before any text", n)
	}
	for _, b := range calls {
		b.add("text ")
	}
	// Three at once at 5 a second: 600 ms each, not 200.
	time.Sleep(350 * time.Millisecond)
	calls[0].add("")
	if n := count(); n != 0 {
		t.Fatalf("%d deltas after 350 ms with three calls streaming at 5 a second", n)
	}
	time.Sleep(350 * time.Millisecond)
	calls[0].add("")
	if n := count(); n != 1 {
		t.Fatalf("%d deltas after 700 ms, want the first call's", n)
	}
	// The other two end: one call streams, at DeltaInterval again.
	calls[1].done()
	calls[2].done()
	calls[0].add("more ")
	time.Sleep(300 * time.Millisecond)
	calls[0].add("")
	if n := count(); n != 2 {
		t.Fatalf("%d deltas, want the lone call's text after 300 ms", n)
	}
	calls[0].done()
	calls[0].done() // once is counted
	if n := deps.streams.Load(); n != 0 {
		t.Fatalf("%d streaming after every call is done", n)
	}
	if got, want := deps.deltaInterval(1000), 200*time.Second; got != want {
		t.Fatalf("1,000 streaming at 5 a second: %s, want %s", got, want)
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
