package llm

import (
	"encoding/json"
	"strings"
	"testing"
)

// BenchmarkMemoryOf reads a 50-turn conversation whose user turns carry a
// 30-line script, as a long session does before each call: MemoryOf passes
// the stored items on, "probe" checks every item again (UnmarshalItems).
func BenchmarkMemoryOf(b *testing.B) {
	var it Items
	code := strings.Repeat("agent = Agent(name=\"Helper\", instructions=\"Answer in one line.\")\n", 30)
	for range 50 {
		it.AddUser("Change the helper.\n" + code)
		it.list = append(it.list, ToolOutput("call_1", "The patch applies cleanly."))
	}
	raw, err := it.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		b.Fatal(err)
	}
	var turns []json.RawMessage
	for i := 0; i < len(items); i += 2 {
		t, _ := json.Marshal(items[i : i+2])
		turns = append(turns, t)
	}
	b.Run("stored", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := MemoryOf(turns); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("probe", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, t := range turns {
				if _, err := UnmarshalItems(t); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
