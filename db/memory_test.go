package db_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// ReadMemoryLater joins the items of an agent's turns, in the order they were
// written, into one JSON array.
func TestReadMemoryJoinsTheTurns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	write := func(session, agent, key, items string) {
		t.Helper()
		if _, err := pool.Exec(ctx, `INSERT INTO agent_memory (session_key, agent, turn_key, items) VALUES ($1, $2, $3, $4)`,
			session, agent, key, json.RawMessage(items)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := db.ReadMemoryLater(ctx, pool, "s1", "vibecoder", nil).Result(); err != nil || string(got) != "[]" {
		t.Fatalf("no memory: %s, %v", got, err)
	}
	write("s1", "vibecoder", "m1/0", `[{"type":"message","role":"user","content":"one \"quoted\" <b> é\n"},{"type":"function_call_output","call_id":"c1","output":"ok"}]`)
	write("s1", "evaluator", "m1/1", `[{"role":"user","content":"not mine"}]`)
	write("s2", "vibecoder", "m1/0", `[{"role":"user","content":"other session"}]`)
	write("s1", "vibecoder", "m1/1", `[]`)
	write("s1", "vibecoder", "a", `[{"id":"msg_1","type":"message","role":"assistant","status":"completed","content":[{"type":"output_text","text":"two","annotations":[]}]}]`)
	write("s1", "vibecoder", "0", `[{"role":"user","content":"three"}]`)

	var want []any
	_ = json.Unmarshal([]byte(`[{"type":"message","role":"user","content":"one \"quoted\" <b> é\n"},{"type":"function_call_output","call_id":"c1","output":"ok"},
		{"id":"msg_1","type":"message","role":"assistant","status":"completed","content":[{"type":"output_text","text":"two","annotations":[]}]},
		{"role":"user","content":"three"}]`), &want)
	// Into a new slice, into a buffer that held another conversation (a
	// worker's pooled one), and into one too small for it.
	for _, dst := range [][]byte{nil, []byte(`[{"role":"user","content":"an earlier conversation, longer than this one's first item"}]` + strings.Repeat(" ", 400)), make([]byte, 3, 8)} {
		got, err := db.ReadMemoryLater(ctx, pool, "s1", "vibecoder", dst).Result()
		if err != nil {
			t.Fatal(err)
		}
		var items []any
		if err := json.Unmarshal(got, &items); err != nil {
			t.Fatalf("%v: %s", err, got)
		}
		if !reflect.DeepEqual(items, want) {
			t.Errorf("memory read into a buffer of %d bytes: %s", cap(dst), got)
		}
		if cap(dst) >= len(got) && &got[0] != &dst[:1][0] {
			t.Errorf("a buffer of %d bytes was not used for a memory of %d", cap(dst), len(got))
		}
	}
}

// ReadMemoryLater in a transaction of InTx reads with the COMMIT's batch,
// in the transaction (it sees the transaction's own writes), and the memory
// is there once InTx returns; a memory that is not items is the read's
// error, and the transaction still commits.
func TestReadMemoryLaterGoesWithCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, counted := countedPool(t)
	if _, err := pool.Exec(ctx, `INSERT INTO agent_memory (session_key, agent, turn_key, items) VALUES
		('s', 'vibecoder', '1', '[{"role":"user","content":"one"}]'), ('bad', 'vibecoder', '1', '{"not":"items"}')`); err != nil {
		t.Fatal(err)
	}
	before := counted.count()
	var m *db.PendingMemory
	err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO agent_memory (session_key, agent, turn_key, items) VALUES ($1, 'vibecoder', '2', '[{"role":"user","content":"two"}]')`, "s"); err != nil {
			return err
		}
		m = db.ReadMemoryLater(ctx, tx, "s", "vibecoder", make([]byte, 0, 16))
		if _, err := m.Result(); err == nil {
			t.Error("the memory was read before the transaction sent the read")
		}
		return db.QueueEvent(ctx, tx, uuid.NewString(), dbtest.Event{Name: "started"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if sent := counted.since(before); len(sent) != 2 {
		t.Errorf("a write, then the read with an event and COMMIT: %d round trips, want 2: %q", len(sent), sent)
	}
	got, err := m.Result()
	if err != nil || string(got) != `[{"role": "user", "content": "one"},{"role": "user", "content": "two"}]` {
		t.Fatalf("memory read with COMMIT: %s, %v", got, err)
	}

	err = db.InTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO agent_memory (session_key, agent, turn_key, items) VALUES ($1, 'vibecoder', '3', '[]')`, "s"); err != nil {
			return err
		}
		m = db.ReadMemoryLater(ctx, tx, "bad", "vibecoder", nil)
		return nil
	})
	if err != nil {
		t.Fatalf("a memory that is not items failed the transaction: %v", err)
	}
	if _, err := m.Result(); err == nil || !strings.Contains(err.Error(), "not a JSON array") {
		t.Fatalf("a memory that is not items: %v, want its error", err)
	}
	if n := dbtest.Count(t, pool, `SELECT count(*) FROM agent_memory WHERE turn_key = '3'`); n != 1 {
		t.Fatalf("the transaction of the bad read did not commit: %d rows", n)
	}
}

// BenchmarkAgentMemory reads a session's memory of 12 turns, each with a
// request that carries a 5 KB script, as the VibeCoder's 12th message does.
//
//	go test -run '^$' -bench AgentMemory -benchmem ./db/
func BenchmarkAgentMemory(b *testing.B) {
	ctx := context.Background()
	pool := dbtest.New(b)
	script, _ := json.Marshal(strings.Repeat("agent = Agent(name='triage', instructions='...')\n", 100))
	for i := range 12 {
		items := `[{"type":"message","role":"user","content":` + string(script) + `},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Done."}]}]`
		if _, err := pool.Exec(ctx, `INSERT INTO agent_memory (session_key, agent, turn_key, items) VALUES ('s', 'vibecoder', $1, $2)`,
			strconv.Itoa(i), json.RawMessage(items)); err != nil {
			b.Fatal(err)
		}
	}
	// new: a buffer per read; reused: the worker's pooled buffer.
	b.Run("new", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.ReadMemoryLater(ctx, pool, "s", "vibecoder", nil).Result(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reused", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			var err error
			if buf, err = db.ReadMemoryLater(ctx, pool, "s", "vibecoder", buf).Result(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
