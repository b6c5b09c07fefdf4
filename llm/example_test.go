package llm_test

import (
	"context"
	"fmt"
	"os"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"

	"github.com/vibegrapher/vibegrapher/llm"
)

// One user message through a tool loop, with the conversation kept as JSON by
// the caller (storedJSON would come from and go back to PostgreSQL).
func ExampleClient_Stream() {
	c := llm.New(llm.Config{APIKey: os.Getenv("OPENAI_API_KEY"), BaseURL: os.Getenv("OPENAI_BASE_URL")})
	ctx := context.Background()

	storedJSON := []byte(`[]`)
	memory, err := llm.UnmarshalItems(storedJSON)
	if err != nil {
		panic(err)
	}
	memory = append(memory, llm.UserMessage("Add a Spanish agent"))
	submitPatch := llm.FunctionTool("submit_patch", "Propose a unified diff of the code.", map[string]any{
		"type": "object", "additionalProperties": false, "required": []string{"patch", "description"},
		"properties": map[string]any{"patch": map[string]any{"type": "string"}, "description": map[string]any{"type": "string"}},
	})

	var total llm.Usage
	for range 5 {
		resp, err := c.Stream(ctx, llm.Stateless(responses.ResponseNewParams{
			Model:        c.ThinkingModel(),
			Instructions: openai.String("You are the VibeCoder."),
			Input:        llm.Input(memory),
			Tools:        []responses.ToolUnionParam{submitPatch},
			Reasoning:    shared.ReasoningParam{Effort: shared.ReasoningEffortHigh},
		}), func(delta string) { fmt.Print(delta) })
		if resp != nil {
			total = total.Add(llm.UsageOf(resp)) // and resp.RawJSON() for the message's full form
		}
		if err != nil {
			fmt.Println(llm.ErrorMessage(err), "retry:", llm.IsTransient(err))
			return
		}
		memory = append(memory, llm.InputItemsOf(resp)...)
		calls := llm.FunctionCalls(resp)
		if len(calls) == 0 {
			break // a text answer ends the message
		}
		for _, fc := range calls {
			memory = append(memory, llm.ToolOutput(fc.CallID, "patch applied"))
		}
	}
	storedJSON, _ = llm.MarshalItems(memory)
	_ = storedJSON
}
