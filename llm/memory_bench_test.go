package llm

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/responses"

	"github.com/vibegrapher/vibegrapher/domain"
)

// benchTurns is a conversation of n turns as agent_memory rows hold them: each
// turn a user message carrying a 30-line script, an encrypted reasoning item,
// a submit_patch call, its output and the assistant's answer.
func benchTurns(b *testing.B, n int) []json.RawMessage {
	code := strings.Repeat("agent = Agent(name=\"Helper\", instructions=\"Answer in one line.\")\n", 30)
	patch, _ := json.Marshal(map[string]string{"patch": strings.Repeat("-x = 1\n+x = 2\n", 20), "description": "Set x."})
	turns := make([]json.RawMessage, 0, n)
	for i := range n {
		items := []responses.ResponseInputItemUnionParam{
			UserMessage(fmt.Sprintf("Change the helper (%d).\n%s", i, code)),
			param.Override[responses.ResponseInputItemUnionParam](json.RawMessage(fmt.Sprintf(
				`{"id":"rs_%d","type":"reasoning","summary":[],"encrypted_content":%q}`, i, strings.Repeat("gAAAAB", 200)))),
			param.Override[responses.ResponseInputItemUnionParam](json.RawMessage(fmt.Sprintf(
				`{"id":"fc_%d","type":"function_call","status":"completed","arguments":%q,"call_id":"call_%d","name":"submit_patch"}`, i, patch, i))),
			ToolOutput(fmt.Sprintf("call_%d", i), "The patch applies cleanly."),
			param.Override[responses.ResponseInputItemUnionParam](json.RawMessage(fmt.Sprintf(
				`{"id":"msg_%d","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Done: x is now 2."}],"role":"assistant"}`, i))),
		}
		raw, err := MarshalItems(items)
		if err != nil {
			b.Fatal(err)
		}
		turns = append(turns, raw)
	}
	return turns
}

// BenchmarkAgentRequest is the work of one model call on the memory of a
// session of 10 and 50 turns, from the rows read from PostgreSQL to the
// request body: what db.ReadMemoryLater does with the rows (joins their
// items as they are), MemoryOf, and the VibeCoder's request body.
func BenchmarkAgentRequest(b *testing.B) {
	c := New(Config{})
	for _, n := range []int{10, 50} {
		turns := benchTurns(b, n)
		var turn Items
		turn.AddUser("Now set y.")
		b.Run(fmt.Sprintf("turns=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				stored := []byte{'['}
				for _, t := range turns {
					items, _ := arrayElements(t)
					if len(stored) > 1 {
						stored = append(stored, ',')
					}
					stored = append(stored, items...)
				}
				memory, err := MemoryOf(append(stored, ']'))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.vibecoder.get(c.vibecoderParams).body("session", memory, turn, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUserItem is a step's user message with the project's script, as
// Items.AddUser builds it and as openai-go's encoder did before.
//
//	go test -run '^$' -bench UserItem -benchmem ./llm/
func BenchmarkUserItem(b *testing.B) {
	text := VibeCoderRequest("Make the Spanish agent more polite.", domain.SampleWorkflow, nil)
	b.Run("AddUser", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var it Items
			it.AddUser(text)
		}
	})
	b.Run("openai-go", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := UserMessage(text).MarshalJSON(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
