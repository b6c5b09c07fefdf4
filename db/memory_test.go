package db_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// AgentMemory joins the items of an agent's turns, in the order they were
// written, into one JSON array.
func TestAgentMemoryJoinsTheTurns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	write := func(session, agent, key, items string) {
		t.Helper()
		if _, err := pool.Exec(ctx, `INSERT INTO agent_memory (session_key, agent, turn_key, items) VALUES ($1, $2, $3, $4)`,
			session, agent, key, json.RawMessage(items)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := store.AgentMemory(ctx, "s1", "vibecoder"); err != nil || string(got) != "[]" {
		t.Fatalf("no memory: %s, %v", got, err)
	}
	write("s1", "vibecoder", "m1/0", `[{"type":"message","role":"user","content":"one \"quoted\" <b> é\n"},{"type":"function_call_output","call_id":"c1","output":"ok"}]`)
	write("s1", "evaluator", "m1/1", `[{"role":"user","content":"not mine"}]`)
	write("s2", "vibecoder", "m1/0", `[{"role":"user","content":"other session"}]`)
	write("s1", "vibecoder", "m1/1", `[]`)
	write("s1", "vibecoder", "a", `[{"id":"msg_1","type":"message","role":"assistant","status":"completed","content":[{"type":"output_text","text":"two","annotations":[]}]}]`)
	write("s1", "vibecoder", "0", `[{"role":"user","content":"three"}]`)

	got, err := store.AgentMemory(ctx, "s1", "vibecoder")
	if err != nil {
		t.Fatal(err)
	}
	var items, want []any
	if err := json.Unmarshal(got, &items); err != nil {
		t.Fatalf("%v: %s", err, got)
	}
	_ = json.Unmarshal([]byte(`[{"type":"message","role":"user","content":"one \"quoted\" <b> é\n"},{"type":"function_call_output","call_id":"c1","output":"ok"},
		{"id":"msg_1","type":"message","role":"assistant","status":"completed","content":[{"type":"output_text","text":"two","annotations":[]}]},
		{"role":"user","content":"three"}]`), &want)
	if !reflect.DeepEqual(items, want) {
		t.Errorf("memory %s", got)
	}
}

// BenchmarkAgentMemory reads a session's memory of 12 turns, each with a
// request that carries a 5 KB script, as the VibeCoder's 12th message does.
//
//	go test -run '^$' -bench AgentMemory -benchmem ./db/
func BenchmarkAgentMemory(b *testing.B) {
	ctx := context.Background()
	pool := dbtest.New(b)
	store := &db.Store{Pool: pool}
	script, _ := json.Marshal(strings.Repeat("agent = Agent(name='triage', instructions='...')\n", 100))
	for i := range 12 {
		items := `[{"type":"message","role":"user","content":` + string(script) + `},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Done."}]}]`
		if _, err := pool.Exec(ctx, `INSERT INTO agent_memory (session_key, agent, turn_key, items) VALUES ('s', 'vibecoder', $1, $2)`,
			strconv.Itoa(i), json.RawMessage(items)); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := store.AgentMemory(ctx, "s", "vibecoder"); err != nil {
			b.Fatal(err)
		}
	}
}
