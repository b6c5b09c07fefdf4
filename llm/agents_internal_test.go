package llm

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/vibegrapher/vibegrapher/domain/vibecode"
)

// requestBody makes the request openai-go would encode with the same items as
// input.
func TestRequestBodyIsWhatOpenAIGoEncodes(t *testing.T) {
	memory, err := MemoryOf(json.RawMessage(`[{"role": "user", "content": "a"}, {"id": "fc_1", "name": "submit_patch", "type": "function_call", "call_id": "call_1", "arguments": "{}"}, {"type": "function_call_output", "output": "ok", "call_id": "call_1"}]`))
	if err != nil {
		t.Fatal(err)
	}
	var turn Items
	turn.AddUser("b <c> \"d\"")
	turn.AddToolOutputs([]vibecode.ToolOutput{{CallID: "call_2", Output: "fine"}})
	p := reasoning(responses.ResponseNewParams{
		Model:          "gpt-5",
		Instructions:   openai.String(vibecoderInstructions),
		Tools:          []responses.ToolUnionParam{FunctionTool(vibecode.SubmitPatchTool, "Submit.", submitPatchSchema())},
		PromptCacheKey: openai.String("key"),
	}, "high")

	for _, tc := range []struct {
		name         string
		memory, turn Items
		stream       bool
	}{{"memory and turn", memory, turn, true}, {"turn only", Items{}, turn, false}, {"memory only", memory, Items{}, false}, {"nothing", Items{}, Items{}, true}} {
		body, err := requestBody(p, tc.memory, tc.turn, tc.stream)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := tc.memory.Marshal()
		tu, _ := tc.turn.Marshal()
		a, err := UnmarshalItems(m)
		if err != nil {
			t.Fatal(err)
		}
		b, err := UnmarshalItems(tu)
		if err != nil {
			t.Fatal(err)
		}
		want := p
		want.Input = Input(append(append([]responses.ResponseInputItemUnionParam{}, a...), b...))
		wantBody, err := want.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var got, exp map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%s: %v: %s", tc.name, err, body)
		}
		if err := json.Unmarshal(wantBody, &exp); err != nil {
			t.Fatal(err)
		}
		if tc.stream {
			exp["stream"] = true
		}
		if !reflect.DeepEqual(got, exp) {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, body, wantBody)
		}
	}
}
