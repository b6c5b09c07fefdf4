package llm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/vibegrapher/vibegrapher/internal/openaitest"
	"github.com/vibegrapher/vibegrapher/llm"
)

// storeAndLoad is what the database does with conversation memory.
func storeAndLoad(t *testing.T, items []responses.ResponseInputItemUnionParam) []responses.ResponseInputItemUnionParam {
	t.Helper()
	data, err := llm.MarshalItems(items)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := llm.UnmarshalItems(data)
	if err != nil {
		t.Fatal(err)
	}
	again, err := llm.MarshalItems(loaded)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, again) {
		t.Fatalf("items changed on a round trip through JSON:\n%s\n%s", data, again)
	}
	return loaded
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

// The tool loop of one message, then a second message, with memory kept only
// as JSON between the calls.
func TestMemoryRoundTrip(t *testing.T) {
	s := openaitest.New(t)
	s.Enqueue(
		openaitest.Reasoning("the user wants x=2").And(openaitest.FunctionCall("submit_patch", `{"patch":"p","description":"d"}`)),
		openaitest.Text("Done: x is now 2."),
		openaitest.Text("It was 1."),
	)
	c := newClient(s, 0)
	ctx := context.Background()
	turn := func(memory []responses.ResponseInputItemUnionParam) *responses.Response {
		t.Helper()
		resp, err := c.Stream(ctx, llm.Stateless(responses.ResponseNewParams{Model: c.ThinkingModel(), Input: llm.Input(memory),
			Tools: []responses.ToolUnionParam{llm.FunctionTool("submit_patch", "Propose a unified diff.", map[string]any{
				"type": "object", "additionalProperties": false, "required": []string{"patch", "description"},
				"properties": map[string]any{"patch": map[string]any{"type": "string"}, "description": map[string]any{"type": "string"}},
			})}}), nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	memory := storeAndLoad(t, []responses.ResponseInputItemUnionParam{llm.UserMessage("set x to 2")})
	first := turn(memory)
	fc := llm.FunctionCalls(first)[0]
	replay := llm.InputItemsOf(first)
	if len(replay) != 2 {
		t.Fatalf("want the reasoning item and the call, got %d items", len(replay))
	}
	memory = storeAndLoad(t, append(append(memory, replay...), llm.ToolOutput(fc.CallID, "patch applied")))

	second := turn(memory)
	memory = storeAndLoad(t, append(memory, llm.InputItemsOf(second)...))
	memory = storeAndLoad(t, append(memory, llm.UserMessage("what was it before?")))
	third := turn(memory)
	if third.OutputText() != "It was 1." {
		t.Errorf("third answer %q", third.OutputText())
	}

	reqs := s.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests", len(reqs))
	}
	r0 := reqs[0]
	if r0.Store == nil || *r0.Store || !r0.Includes("reasoning.encrypted_content") || r0.Tools[0].Strict == nil || !*r0.Tools[0].Strict {
		t.Errorf("first request not stateless and strict: %s", r0.Body)
	}
	// The last request carries the whole conversation, exactly as stored.
	stored, _ := llm.MarshalItems(memory)
	if !sameJSON(t, reqs[2].Input, stored) {
		t.Errorf("sent input differs from memory:\n%s\n%s", reqs[2].Input, stored)
	}
	items := reqs[2].InputItems()
	var types []string
	for _, it := range items {
		types = append(types, it["type"].(string))
	}
	if got := strings.Join(types, " "); got != "message reasoning function_call function_call_output message message" {
		t.Fatalf("item types %s", got)
	}
	rs, call, out, answer := items[1], items[2], items[3], items[4]
	if enc, _ := rs["encrypted_content"].(string); enc == "" {
		t.Errorf("reasoning replayed without its encrypted content: %v", rs)
	}
	if call["id"] != fc.ID || call["call_id"] != fc.CallID || call["arguments"] != fc.Arguments || call["name"] != "submit_patch" {
		t.Errorf("call %v", call)
	}
	if out["call_id"] != fc.CallID || out["output"] != "patch applied" {
		t.Errorf("output %v", out)
	}
	if answer["id"] != second.Output[0].ID || answer["role"] != "assistant" || answer["status"] != "completed" {
		t.Errorf("assistant message lost fields: %v", answer)
	}
	if items[5]["content"] != "what was it before?" || items[5]["role"] != "user" {
		t.Errorf("user message %v", items[5])
	}
}

func TestInputItemsOfDropsUnreplayableReasoning(t *testing.T) {
	s := openaitest.New(t)
	s.Enqueue(openaitest.Reasoning("hmm").And(openaitest.Text("hi")))
	c := newClient(s, 0)
	p := ask("hello")
	p.Store = openai.Bool(false) // but no include of the encrypted content
	resp, err := c.Create(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	items := llm.InputItemsOf(resp)
	if len(items) != 1 {
		t.Fatalf("items %d", len(items))
	}
	data, _ := json.Marshal(items[0])
	if !strings.Contains(string(data), `"type":"message"`) {
		t.Errorf("item %s", data)
	}

	// Sending such a reasoning item is what OpenAI refuses.
	raw, err := llm.UnmarshalItem([]byte(resp.Output[0].RawJSON()))
	if err != nil {
		t.Fatal(err)
	}
	p.Input = llm.Input([]responses.ResponseInputItemUnionParam{llm.UserMessage("hello"), raw})
	_, err = c.Create(context.Background(), p)
	if err == nil || llm.IsTransient(err) || !strings.Contains(llm.ErrorMessage(err), "Items are not persisted") {
		t.Errorf("err %v", err)
	}
}

func TestUnmarshalItems(t *testing.T) {
	items, err := llm.UnmarshalItems([]byte(`[{"role":"user","content":"hi"},{"type":"function_call_output","call_id":"call_1","output":"ok"}]`))
	if err != nil || len(items) != 2 {
		t.Fatalf("items %v err %v", items, err)
	}
	if data, _ := llm.MarshalItems(nil); string(data) != "[]" {
		t.Errorf("empty memory is %s", data)
	}
	for _, bad := range []string{`{}`, `[1]`, `["x"]`, `[{"content":"no role or type"}]`, `not json`} {
		if _, err := llm.UnmarshalItems([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestToolOutputAndUserMessageJSON(t *testing.T) {
	data, err := llm.MarshalItems([]responses.ResponseInputItemUnionParam{llm.UserMessage("hi"), llm.ToolOutput("call_9", "done")})
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"type":"message","role":"user","content":"hi"},{"type":"function_call_output","call_id":"call_9","output":"done"}]`
	if !sameJSON(t, data, []byte(want)) {
		t.Errorf("got %s", data)
	}
}
