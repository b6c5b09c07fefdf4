package llm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/vibegrapher/vibegrapher/domain/vibecode"
	"github.com/vibegrapher/vibegrapher/internal/openaitest"
	"github.com/vibegrapher/vibegrapher/llm"
)

// stored joins the items of turns as db.ReadMemoryLater does, spaced the way
// PostgreSQL prints jsonb.
func stored(t *testing.T, turns []json.RawMessage) json.RawMessage {
	t.Helper()
	var all []string
	for _, turn := range turns {
		var items []json.RawMessage
		if err := json.Unmarshal(turn, &items); err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			all = append(all, string(it))
		}
	}
	return json.RawMessage("[" + strings.Join(all, ", ") + "]")
}

func decodeItems(t *testing.T, data []byte) []any {
	t.Helper()
	var items []any
	if err := json.Unmarshal(data, &items); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
	return items
}

// Each call sends the stored items of every earlier turn, in order and
// unchanged, followed by the items of the turn in progress.
func TestAgentsSendTheStoredMemory(t *testing.T) {
	s := openaitest.New(t)
	c := newClient(s, 0)
	ctx := context.Background()
	var turns []json.RawMessage
	for i := range 3 {
		s.Enqueue(
			openaitest.Reasoning(fmt.Sprintf("turn %d", i)).And(openaitest.FunctionCall("submit_patch", fmt.Sprintf(`{"patch":"p%d","description":"d"}`, i))),
			openaitest.Text(fmt.Sprintf("Done %d.", i)),
			openaitest.JSON(map[string]any{"approved": true, "reasoning": "ok", "commit_message": "m"}),
		)
		memory, err := llm.MemoryOf(stored(t, turns))
		if err != nil {
			t.Fatal(err)
		}
		var turn llm.Items
		turn.AddUser(fmt.Sprintf("message %d: \"quoted\" <tag> é", i))
		r, err := c.VibeCoder(ctx, llm.AgentCall{SessionKey: "s", Memory: memory, Turn: turn}, nil)
		if err != nil {
			t.Fatal(err)
		}
		turn.AddReply(r)
		turn.AddToolOutputs([]vibecode.ToolOutput{{CallID: r.ToolCalls()[0].CallID, Output: "applied"}})
		if r, err = c.VibeCoder(ctx, llm.AgentCall{SessionKey: "s", Memory: memory, Turn: turn}, nil); err != nil {
			t.Fatal(err)
		}
		turn.AddReply(r)
		if _, err := c.Evaluator(ctx, llm.AgentCall{SessionKey: "s", Memory: memory, Turn: turn}); err != nil {
			t.Fatal(err)
		}
		turns = append(turns, turn.Marshal())
	}

	reqs := s.Requests()
	if len(reqs) != 9 {
		t.Fatalf("%d requests", len(reqs))
	}
	for i := range 3 {
		before := decodeItems(t, stored(t, turns[:i]))
		all := decodeItems(t, stored(t, turns[:i+1]))
		first, second, eval := reqs[3*i], reqs[3*i+1], reqs[3*i+2]
		// The first call of a turn: the memory and the user message.
		if got := decodeItems(t, first.Input); !reflect.DeepEqual(got, append(before[:len(before):len(before)], all[len(before)])) {
			t.Errorf("turn %d, first call: input\n%s", i, first.Input)
		}
		// The second: also the reasoning, the call and its output.
		if got := decodeItems(t, second.Input); !reflect.DeepEqual(got, all[:len(all)-1]) {
			t.Errorf("turn %d, second call: input\n%s", i, second.Input)
		}
		// The Evaluator: everything, the answer included.
		if got := decodeItems(t, eval.Input); !reflect.DeepEqual(got, all) {
			t.Errorf("turn %d, evaluator: input\n%s", i, eval.Input)
		}
		if !first.Stream || !second.Stream || eval.Stream || eval.TextFormat == nil || len(first.Tools) != 1 {
			t.Errorf("turn %d: stream %v %v %v, format %s, tools %d", i, first.Stream, second.Stream, eval.Stream, eval.TextFormat, len(first.Tools))
		}
	}
	var types []string
	for _, it := range reqs[8].InputItems() {
		types = append(types, fmt.Sprint(it["type"]))
	}
	if got := strings.Join(types, " "); got != strings.Repeat("message reasoning function_call function_call_output message ", 3)[:len(got)] || len(types) != 15 {
		t.Errorf("item types %s", got)
	}
	if got := reqs[8].InputItems()[5]["content"]; got != "message 1: \"quoted\" <tag> é" {
		t.Errorf("second user message %q", got)
	}
}

func TestMemoryOf(t *testing.T) {
	for _, bad := range []string{``, `{}`, `[`, `"x"`} {
		if _, err := llm.MemoryOf(json.RawMessage(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	m, err := llm.MemoryOf(json.RawMessage(" [ ] "))
	if err != nil {
		t.Fatal(err)
	}
	if data := m.Marshal(); string(data) != "[]" {
		t.Errorf("empty memory is %s", data)
	}
	// Adding to memory does not write into the stored bytes.
	raw := json.RawMessage(`[{"role": "user", "content": "a"}]`)
	m, _ = llm.MemoryOf(raw)
	m.AddUser("b")
	if string(raw) != `[{"role": "user", "content": "a"}]` {
		t.Errorf("stored bytes changed: %s", raw)
	}
	if data := m.Marshal(); !sameJSON(t, data, []byte(`[{"role":"user","content":"a"},{"type":"message","role":"user","content":"b"}]`)) {
		t.Errorf("memory %s", data)
	}
}

// A retried agent call sends the same body again, memory included.
func TestAgentCallsRetryWithTheWholeBody(t *testing.T) {
	s := openaitest.New(t)
	s.Enqueue(openaitest.Status(500, "boom"), openaitest.Text("hi"),
		openaitest.Status(503, "busy"), openaitest.JSON(map[string]any{"approved": true, "reasoning": "ok", "commit_message": "m"}))
	c := newClient(s, 1)
	memory, err := llm.MemoryOf(json.RawMessage(`[{"role": "user", "content": "before"}, {"id": "msg_1", "role": "assistant", "type": "message", "status": "completed", "content": [{"text": "ok", "type": "output_text", "annotations": []}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	var turn llm.Items
	turn.AddUser("now")
	call := llm.AgentCall{SessionKey: "s", Memory: memory, Turn: turn}
	if _, err := c.VibeCoder(context.Background(), call, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Evaluator(context.Background(), call); err != nil {
		t.Fatal(err)
	}
	reqs := s.Requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests", len(reqs))
	}
	for i := 0; i < 4; i += 2 {
		if string(reqs[i].Body) != string(reqs[i+1].Body) || len(reqs[i+1].InputItems()) != 3 {
			t.Errorf("retry %d sent\n%s\nafter\n%s", i/2, reqs[i+1].Body, reqs[i].Body)
		}
	}
}

// The VibeCoder's onDelta gets the text as it streams, and "" for each delta
// of the tool call's arguments that follows, so a caller holding the text
// can send it while the patch streams.
func TestVibeCoderTellsOfEveryDelta(t *testing.T) {
	s := openaitest.New(t)
	args := `{"patch":"--- a/script.py\n+++ b/script.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n","description":"set x to 2"}`
	s.Enqueue(openaitest.Text("I will set x to 2.").And(openaitest.FunctionCall("submit_patch", args)))
	var turn llm.Items
	turn.AddUser("x=2")
	var text strings.Builder
	var afterText, beforeText int
	_, err := newClient(s, 0).VibeCoder(context.Background(), llm.AgentCall{SessionKey: "s", Turn: turn}, func(d string) {
		switch {
		case d != "":
			text.WriteString(d)
		case text.Len() > 0:
			afterText++
		default:
			beforeText++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if text.String() != "I will set x to 2." || afterText < 3 || beforeText != 0 {
		t.Fatalf("onDelta got text %q, %d empty calls after it and %d before; want the text, then one per argument delta", text.String(), afterText, beforeText)
	}
}
