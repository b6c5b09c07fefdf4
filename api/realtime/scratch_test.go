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
	h.fanOut(nil, page)     // 4 MiB of frames, to a room
	h.fanOut(nil, page[:1]) // then a small run
	if c := cap(h.scratch.frames); c > maxScratchBytes {
		t.Errorf("the frames buffer keeps %d bytes, over %d", c, maxScratchBytes)
	}
	if c := cap(h.packet); c > maxScratchBytes {
		t.Errorf("the packet buffer keeps %d bytes, over %d", c, maxScratchBytes)
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
