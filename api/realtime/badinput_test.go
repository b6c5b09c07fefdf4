package realtime_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestBadInput: malformed requests get an `error` event and a failed ack,
// never a crash, and the socket keeps working.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.project()
	c := e.dial(t)
	bystander := e.dial(t)
	bystander.Subscribe(p)

	unknown := uuid.NewString()
	cases := []struct {
		name    string
		event   string
		args    []any
		message string // part of the error message
		project string // project_id expected in the error, if any
	}{
		{"nothing", "subscribe", nil, "project_id is required", ""},
		{"null", "subscribe", []any{nil}, "project_id is required", ""},
		{"number", "subscribe", []any{42}, "got a JSON number", ""},
		{"array", "subscribe", []any{[]any{p}}, "got a JSON array", ""},
		{"boolean", "join_project", []any{true}, "got a JSON boolean", ""},
		{"object without project_id", "subscribe", []any{map[string]any{"since": 1}}, "project_id is required", ""},
		{"project_id number", "subscribe", []any{map[string]any{"project_id": 7}}, "must be a UUID string, got a JSON number", ""},
		{"project_id object", "subscribe", []any{map[string]any{"project_id": map[string]any{"$ne": ""}}}, "got a JSON object", ""},
		{"project_id array", "subscribe", []any{map[string]any{"project_id": []any{p}}}, "got a JSON array", ""},
		{"malformed uuid", "subscribe", []any{map[string]any{"project_id": "not-a-uuid"}}, "not a valid UUID", "not-a-uuid"},
		{"sql in the id", "subscribe", []any{"'; DROP TABLE events; --"}, "not a valid UUID", "'; DROP TABLE events; --"},
		{"long id", "subscribe", []any{strings.Repeat("a", 5000)}, "not a valid UUID", strings.Repeat("a", 64) + "…"},
		{"unknown project", "subscribe", []any{map[string]any{"project_id": unknown}}, "project not found", unknown},
		{"negative since", "subscribe", []any{map[string]any{"project_id": p, "since": -1}}, "since must be", p},
		{"fractional since", "subscribe", []any{map[string]any{"project_id": p, "since": 1.5}}, "since must be", p},
		{"text since", "subscribe", []any{map[string]any{"project_id": p, "since": "yesterday"}}, "since must be", p},
		{"object since", "subscribe", []any{map[string]any{"project_id": p, "since": map[string]any{}}}, "since must be", p},
		// Integers past any seq a bigint holds: from another history, not malformed.
		{"since past 2^63-1", "subscribe", []any{map[string]any{"project_id": p, "since": "9223372036854775808"}},
			"since 9223372036854775808 is beyond the last event this server wrote: its history was reset or restored; load the project again", p},
		{"since past 2^63-1 as a number", "subscribe", []any{map[string]any{"project_id": p, "since": 1e19}},
			"since 10000000000000000000 is beyond the last event this server wrote: its history was reset or restored", p},
		{"since past 2^53 as a number", "subscribe", []any{map[string]any{"project_id": p, "since": 1e17}},
			"since 100000000000000000 is beyond the last event this server wrote (", p},
		{"negative since past -2^63", "subscribe", []any{map[string]any{"project_id": p, "since": "-9223372036854775809"}}, "since must be", p},
		{"unsubscribe number", "unsubscribe", []any{3}, "got a JSON number", ""},
		{"leave malformed", "leave_project", []any{"x"}, "not a valid UUID", "x"},
	}
	for _, tc := range cases {
		// With an ack: a failed ack and an error event.
		ack := c.Request(tc.event, tc.args...)
		if ack["ok"] != false || !strings.Contains(ack["error"].(string), tc.message) {
			t.Errorf("%s: ack %v, want ok=false and %q", tc.name, ack, tc.message)
		}
		ev := c.NextError()
		msg, _ := ev["message"].(string)
		pid, _ := ev["project_id"].(string)
		if !strings.Contains(msg, tc.message) || pid != tc.project {
			t.Errorf("%s: error event %v, want %q with project_id %q", tc.name, ev, tc.message, tc.project)
		}
		// Without an ack: the error event alone.
		if err := c.Sock.Emit(tc.event, tc.args...); err != nil {
			t.Fatal(err)
		}
		if ev := c.NextError(); !strings.Contains(ev["message"].(string), tc.message) {
			t.Errorf("%s without ack: error event %v", tc.name, ev)
		}
	}

	// Unknown events and odd payloads are ignored.
	for _, args := range [][]any{nil, {1, 2, 3}, {map[string]any{"a": []any{1, "b", nil}}}} {
		if err := c.Sock.Emit("no_such_event", args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Sock.Emit("heartbeat", "from a client"); err != nil {
		t.Fatal(err)
	}
	// The socket still works, and nothing else was sent to it meanwhile.
	c.Subscribe(p)
	seq := e.emit(p, "e", map[string]any{})
	c.expect(seq)
	bystander.expect(seq)
	if n := c.Errors.Pending(); n != 0 {
		t.Fatalf("%d unexpected error events", n)
	}
}

// TestOversizedMessage: a message over the 1 MB limit closes that client's
// connection, and only that one.
func TestOversizedMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.project()
	big := e.dial(t)
	other := e.dial(t)
	other.Subscribe(p)

	if err := big.Sock.Emit("subscribe", map[string]any{"project_id": strings.Repeat("x", 2<<20)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-big.Gone:
	case <-waitTimer():
		t.Fatal("the server kept a connection that sent 2 MB")
	}
	other.expect(e.emit(p, "e", map[string]any{}))
	again := e.dial(t)
	again.Subscribe(p)
	seq := e.emit(p, "e", map[string]any{})
	again.expect(seq)
	other.expect(seq)
}
