package realtime_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/vibegrapher/vibegrapher/api/realtime"
	"github.com/vibegrapher/vibegrapher/db"
)

// A client that asks for a long history and does not read it is sent one
// page at a time, as it takes them: the server holds about one page for
// it, not the whole history (before: all of it, 20 MB per client for a
// 5,000-event project in the soak, until the ping timeout). When it reads
// again it gets every event, in order, then the ack.
func TestAReplayWaitsForItsClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n, size = 3000, 4 << 10 // 12 MB: six pages of 2 MB
	p, slow := unreadReplay(t, e, n, size)
	// Each subscribe is answered from the hub's goroutine: after these the
	// hub has had every chance to send the remaining pages.
	other, q := e.dial(t), e.project()
	for range 50 {
		other.Subscribe(q)
	}
	const onePage = 500 * (size + 100)
	if b := e.RT.PendingBytes(); b > onePage+onePage/4 {
		t.Fatalf("%d bytes wait for the client that does not read: more than a page (%d)", b, onePage)
	}

	slow.readOld(t, n)
	if ack := slow.read(); !strings.HasPrefix(ack, "430") || !strings.Contains(ack, `"ok":true`) || !strings.Contains(ack, fmt.Sprintf(`"replayed":%d`, n)) {
		t.Fatalf("subscribe ack: %.300q", ack)
	}
	live := e.emit(p, "live", map[string]any{})
	if name, payload := slow.event(); name != "live" || payload["seq"] != float64(live) {
		t.Fatalf("live event: %s %v", name, payload)
	}
}

// A replay of large events goes in writes of at most MaxReplayBytes, not
// a page of 500 events (13 MB here, 500 MB for 500 commits of a 1 MiB
// project) at once: a client that does not read costs the server that,
// well under MaxQueuedBytes, so that live events of its other projects do
// not drop it again each time it reconnects.
func TestAReplayOfLargeEventsGoesInBoundedWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n, size = 200, 64 << 10
	p, slow := unreadReplay(t, e, n, size)
	other, q := e.dial(t), e.project()
	for range 50 {
		other.Subscribe(q)
	}
	if b := e.RT.PendingBytes(); b > realtime.MaxReplayBytes+size {
		t.Fatalf("%d bytes wait for the client that does not read: more than a replay write (%d)", b, realtime.MaxReplayBytes)
	}
	slow.readOld(t, n)
	if ack := slow.read(); !strings.HasPrefix(ack, "430") || !strings.Contains(ack, fmt.Sprintf(`"replayed":%d`, n)) {
		t.Fatalf("subscribe ack: %.300q", ack)
	}
	live := e.emit(p, "live", map[string]any{})
	if name, payload := slow.event(); name != "live" || payload["seq"] != float64(live) {
		t.Fatalf("live event: %s %v", name, payload)
	}
}

// A project deleted while a replay of it waits for its client: the replay
// ends at the project_deleted and the subscribe is refused, as for a
// project deleted before it; it does not join the room that the deletion
// closed, where it would stay for the connection's life.
func TestAReplayReachingTheDeletionIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	const n = 3000
	p, slow := unreadReplay(t, e, n, 4<<10)
	if err := e.Store.DeleteProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	deleted, err := db.ProjectDeletedSeq(ctx, e.Pool, p)
	if err != nil {
		t.Fatal(err)
	}
	slow.readOld(t, n)
	if name, payload := slow.event(); name != "project_deleted" || payload["seq"] != float64(deleted) {
		t.Fatalf("after the history: %s %v, want project_deleted seq %d", name, payload, deleted)
	}
	msg := slow.read()
	for strings.HasPrefix(msg, `42["error"`) {
		msg = slow.read()
	}
	if !strings.HasPrefix(msg, "430") || !strings.Contains(msg, `"ok":false`) || !strings.Contains(msg, "project deleted") ||
		!strings.Contains(msg, fmt.Sprintf(`"replayed":%d`, n+1)) {
		t.Fatalf("subscribe ack: %.300q, want it refused after %d replayed", msg, n+1)
	}
}

// unreadReplay stores n events ("old", i, and size bytes of padding) of a
// new project, then subscribes to the project from before them with a raw
// client that does not read, and returns once the server's writes to that
// client back up.
func unreadReplay(t *testing.T, e *env, n, size int) (project string, slow *rawClient) {
	t.Helper()
	project = e.project()
	since := e.latestSeq()
	emitPadded(t, e, project, "old", 0, n, size)
	slow = dialRaw(t, e.URL)
	slow.write(fmt.Sprintf(`420["subscribe",{"project_id":%q,"since":%d}]`, project, since))
	e.backedUp()
	return project, slow
}

// readOld reads the n events unreadReplay stored, in order.
func (c *rawClient) readOld(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		if name, payload := c.event(); name != "old" || payload["i"] != float64(i) {
			t.Fatalf("event %d: %s %v", i, name, payload["i"])
		}
	}
}
