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
	p, err := deps.Store.CreateProject(ctx, domain.NewProject{Name: "deltas"}) // a deleted project's text is not sent
	if err != nil {
		t.Fatal(err)
	}
	turn := &db.Turn{
		Session: domain.VibecodeSession{ID: uuid.NewString(), ProjectID: p.ID},
		Message: domain.ConversationMessage{ID: uuid.NewString(), TraceID: "trace"},
	}
	// A deleted message's text is not sent either: the message exists.
	if _, err := pool.Exec(ctx, `INSERT INTO sessions (id, project_id, openai_session_key, session_type) VALUES ($1, $2, $3, 'global')`,
		turn.Session.ID, p.ID, "deltas-session"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO messages (id, session_id, project_id, role, agent, content, trace_id, status)
		VALUES ($1, $2, $3, 'user', 'user', 'Add a note', 'trace', 'running')`, turn.Message.ID, turn.Session.ID, p.ID); err != nil {
		t.Fatal(err)
	}
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
