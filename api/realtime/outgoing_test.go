package realtime

import (
	"encoding/json"
	"testing"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/vibegrapher/vibegrapher/db"
)

// outgoing adds seq and project_id to the stored bytes; clients must read
// the stored fields unchanged and the outbox's seq and project_id.
func TestOutgoing(t *testing.T) {
	const project = "5b0c8a4e-8f5e-4d34-9a43-0c1f4a9a2b10"
	for _, stored := range []string{
		`{}`,
		`{ }`,
		`{"content": "hi \"there\"", "n": [1, 2, {"a": null}]}`,
		"{\n  \"content\": \"x\"\n}\n",
		`{"seq": 1, "project_id": "someone else's", "content": "x"}`,
	} {
		raw := outgoing(db.Event{Seq: 42, ProjectID: project, Payload: json.RawMessage(stored)})
		var got, want map[string]any
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("%q → %s: %v", stored, raw, err)
		}
		if err := json.Unmarshal([]byte(stored), &want); err != nil {
			t.Fatalf("test case %q: %v", stored, err)
		}
		want["seq"], want["project_id"] = float64(42), project
		if mustMarshal(t, got) != mustMarshal(t, want) {
			t.Errorf("%q → %s, want %v", stored, raw, want)
		}
	}
}

// The encoder's shortcut writes what the library's encoder writes.
func TestRawEncoderMatchesLibrary(t *testing.T) {
	lib := parser.NewEncoder()
	raw := rawEncoder{lib}
	id := uint64(7)
	for _, p := range []*parser.Packet{
		{Type: parser.EVENT, Nsp: "/", Data: []any{"conversation_message", json.RawMessage(`{"a":1,"b":"c"}`)}},
		{Type: parser.EVENT, Nsp: "/admin", Id: &id, Data: []any{"x", json.RawMessage(`[1,2]`)}},
		{Type: parser.EVENT, Nsp: "/", Data: []any{"needs \"quotes\" <&>", json.RawMessage(`{"a":1}`)}},
		{Type: parser.EVENT, Nsp: "/", Data: []any{"plain", map[string]any{"a": 1}}},
		{Type: parser.ACK, Nsp: "/", Id: &id, Data: []any{map[string]any{"ok": true}}},
	} {
		want, got := lib.Encode(p), raw.Encode(p)
		if len(got) != 1 || len(want) != 1 || got[0].String() != want[0].String() {
			t.Errorf("packet %+v: got %v, library %v", p, got, want)
		}
		if _, ok := got[0].(*types.StringBuffer); !ok {
			t.Errorf("packet %+v: %T, want a string buffer", p, got[0])
		}
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
