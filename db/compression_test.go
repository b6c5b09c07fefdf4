package db_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/event"
	"github.com/vibegrapher/vibegrapher/internal/fixtures"
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

	// A file of about 600 lines (about 18 KB) and its agents' nodes.
	file := fixtures.AgentsFile(600)
	p, err := store.CreateProject(ctx, domain.NewProject{Name: "compressed", Code: &file})
	if err != nil {
		t.Fatal(err)
	}
	if nodes, err := store.ProjectNodes(ctx, p.ID); err != nil || len(nodes) == 0 {
		t.Fatalf("the project's nodes: %d (%v)", len(nodes), err)
	}

	// A reply whose raw response is about 10 KB.
	_, _, accepted, turn, _ := startedStep(t, store, "a large response")
	answer := strings.Repeat("The workflow hands the question to the writer agent. ", 200)
	response := modelResponse(answer)
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

// BenchmarkLargeValues stores a model call's raw response (about 3 KB of
// JSON) and the 5,000-line agents file of the parsing benchmarks (147 KB)
// with each of PostgreSQL's ways for a value over its 2 KB threshold: pglz
// (the server's default, and the columns' before migration 00015), lz4, and
// none (storage EXTERNAL). An operation stores the value 100 times in one INSERT;
// stored-B/value is what one value takes in its table.
func BenchmarkLargeValues(b *testing.B) {
	pool := dbtest.New(b)
	ctx := context.Background()
	values := []struct {
		name, typ string
		value     any
	}{
		{"response", "jsonb", string(modelResponse(prose(250)))},
		{"file", "bytea", []byte(fixtures.AgentsFile(5000))},
	}
	for _, v := range values {
		for _, method := range []string{"pglz", "lz4", "none"} {
			b.Run(v.name+"/"+method, func(b *testing.B) {
				table := "bench_" + v.name + "_" + method
				column := "v " + v.typ
				if method != "none" {
					column += " COMPRESSION " + method
				}
				if _, err := pool.Exec(ctx, "CREATE TABLE "+table+" ("+column+")"); err != nil {
					b.Skipf("%s: %v", method, err) // a server built without lz4
				}
				if method == "none" {
					if _, err := pool.Exec(ctx, "ALTER TABLE "+table+" ALTER COLUMN v SET STORAGE EXTERNAL"); err != nil {
						b.Fatal(err)
					}
				}
				// 100 rows a statement, each value compressed as it is stored:
				// the round trip and the commit stay out of the figure.
				insert := "INSERT INTO " + table + " (v) SELECT $1::" + v.typ + " FROM generate_series(1, 100)"
				for b.Loop() {
					if _, err := pool.Exec(ctx, insert, v.value); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/100, "µs/value")
				var stored float64
				if err := pool.QueryRow(ctx, "SELECT avg(pg_column_size(v)) FROM "+table).Scan(&stored); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(stored, "stored-B/value")
			})
		}
	}
}

// prose is n words drawn from a small vocabulary in a fixed order: text that
// compresses about as a model's answer does.
func prose(n int) string {
	words := strings.Fields(`the workflow agent hands question answer writer researcher tool call returns
		result summary code change patch review evaluator approves rejects because line function
		name instructions model output input handoff guardrail session memory step test passes fails`)
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.String()
}

// modelResponse is a Responses API response answering text, as a model
// call's raw response is stored.
func modelResponse(text string) []byte {
	r, err := json.Marshal(map[string]any{
		"id": "resp_68af0c2e5b8c8190a1b2c3d4e5f60718", "object": "response", "created_at": 1764676800, "status": "completed",
		"model": "gpt-5-mini-2025-08-07", "instructions": "You are VibeCoder. Change the workflow as asked, or answer.",
		"output": []any{
			map[string]any{"id": "rs_68af0c2f1a2b8190", "type": "reasoning", "summary": []any{}},
			map[string]any{"id": "msg_68af0c30c4d88190", "type": "message", "status": "completed", "role": "assistant",
				"content": []any{map[string]any{"type": "output_text", "annotations": []any{}, "logprobs": []any{}, "text": text}}},
		},
		"tools": []any{map[string]any{"type": "function", "name": "submit_patch", "strict": true,
			"description": "Submit a unified diff of script.py that makes the change asked for.",
			"parameters": map[string]any{"type": "object", "additionalProperties": false, "required": []any{"diff"},
				"properties": map[string]any{"diff": map[string]any{"type": "string", "description": "A unified diff against script.py"}}}}},
		"usage": map[string]any{"input_tokens": 1834, "input_tokens_details": map[string]any{"cached_tokens": 1536},
			"output_tokens": 412, "output_tokens_details": map[string]any{"reasoning_tokens": 256}, "total_tokens": 2246},
		"parallel_tool_calls": true, "temperature": 1.0, "top_p": 1.0, "tool_choice": "auto", "truncation": "disabled",
		"text":      map[string]any{"format": map[string]any{"type": "text"}, "verbosity": "medium"},
		"reasoning": map[string]any{"effort": "medium", "summary": nil}, "store": true, "metadata": map[string]any{},
	})
	if err != nil {
		panic(err)
	}
	return r
}

func deref(s *string) string {
	if s == nil {
		return "nothing (stored as it is)"
	}
	return *s
}
