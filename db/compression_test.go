package db_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/event"
)

// The large values the service writes on its paths (a model call's raw
// response, a commit's file, the agents parsed from a commit) are compressed
// with lz4 where the server has it (migration 00015), pglz otherwise.
func TestLargeValuesAreCompressedWithLZ4(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	var lz4 bool
	if err := pool.QueryRow(ctx, `SELECT 'lz4' = ANY (enumvals) FROM pg_settings WHERE name = 'default_toast_compression'`).Scan(&lz4); err != nil {
		t.Fatal(err)
	}
	want := "pglz"
	if lz4 {
		want = "lz4"
	}

	// A file of 200 agents (about 20 KB) and its agents' nodes (about 30 KB).
	var code strings.Builder
	code.WriteString("from agents import Agent\n\n")
	for i := range 200 {
		fmt.Fprintf(&code, "agent_%d = Agent(name=\"Agent %d\", instructions=\"Answer question %d briefly.\")\n", i, i, i)
	}
	file := code.String()
	p, err := store.CreateProject(ctx, domain.NewProject{Name: "compressed", Code: &file})
	if err != nil {
		t.Fatal(err)
	}
	if nodes, err := store.ProjectNodes(ctx, p.ID); err != nil || len(nodes) != 200 {
		t.Fatalf("the project's nodes: %d (%v), want 200", len(nodes), err)
	}

	// A reply whose raw response is about 10 KB.
	_, _, accepted, turn, _ := startedStep(t, store, "a large response")
	answer := strings.Repeat("The workflow hands the question to the writer agent. ", 200)
	response, err := json.Marshal(map[string]any{"id": "resp_1", "output": []any{map[string]any{"type": "message", "content": answer}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EndTurn(ctx, &turn, db.TurnEnd{
		Reply: &db.AssistantMessage{Turn: &turn, CallKey: accepted.MessageID + "/vibecoder/1/1", Response: response,
			ResponseID: "resp_1", Agent: domain.AgentVibeCoder, Iteration: 1, Content: answer},
		Status: domain.StatusAnswered, Outcome: event.VibecodeResponse{Response: &answer},
	}); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct{ what, query, id string }{
		{"the model call's response", `SELECT pg_column_compression(response) FROM model_calls WHERE message_id = $1`, accepted.MessageID},
		{"the file's blob", `SELECT pg_column_compression(o.content) FROM git_objects o JOIN projects p USING (repository_id)
			WHERE p.id = $1 AND o.size > 10000`, p.ID},
		{"the commit's nodes", `SELECT pg_column_compression(n.nodes) FROM commit_nodes n JOIN projects p USING (repository_id) WHERE p.id = $1`, p.ID},
	} {
		var got *string
		if err := pool.QueryRow(ctx, c.query, c.id).Scan(&got); err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if got == nil || *got != want {
			t.Errorf("%s: compressed with %s, want %s", c.what, deref(got), want)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "nothing (stored as it is)"
	}
	return *s
}
