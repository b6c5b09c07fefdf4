package realtime

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vibegrapher/vibegrapher/db"
)

// Once a run of events is written, the hub holds none of it: a page of big
// events (a replay of code_changed) stayed pinned by its reused buffers and
// payload slice for the life of the process, smaller runs after it
// overwriting only their first entries.
func TestTheHubKeepsNoRunItSent(t *testing.T) {
	h := &hub{}
	payload := json.RawMessage(`{"code":"` + strings.Repeat("x", 8<<10) + `"}`)
	page := make([]db.Event, pageSize)
	for i := range page {
		page[i] = db.Event{Seq: int64(i + 1), ProjectID: "p", Name: "code_changed", Payload: payload}
	}
	// One event larger than the buffers kept, so each grows past the bound.
	page[0].Payload = json.RawMessage(`{"code":"` + strings.Repeat("x", maxScratchBytes+1) + `"}`)
	send := func(events []db.Event) {
		// As fanOut to a room with a socket off the websocket path, which
		// takes the payloads as Emit arguments.
		e := h.encode(events)
		if got := e.emitted(); len(got) != len(events) || string(got[len(got)-1]) != string(outgoing(events[len(events)-1])) {
			t.Fatalf("%d payloads for %d events", len(got), len(events))
		}
		h.release()
	}
	send(page)      // 5 MiB of frames, to a room
	send(page[1:2]) // then a small run
	if c := cap(h.scratch.frames); c > maxScratchBytes {
		t.Errorf("the frames buffer keeps %d bytes, over %d", c, maxScratchBytes)
	}
	if c := cap(h.packet); c > maxScratchBytes {
		t.Errorf("the packet buffer keeps %d bytes, over %d", c, maxScratchBytes)
	}
	if c := cap(h.payload); c > maxScratchBytes {
		t.Errorf("the payload buffer keeps %d bytes, over %d", c, maxScratchBytes)
	}
	if h.scratch.events != nil {
		t.Errorf("the last run's %d events are still held", len(h.scratch.events))
	}
	for i, p := range h.scratch.payloads[:cap(h.scratch.payloads)] {
		if p != nil {
			t.Fatalf("payload %d of an earlier run is still held (%d bytes)", i, len(p))
		}
	}
}
