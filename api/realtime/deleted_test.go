package realtime_test

import (
	"context"
	"testing"
	"time"

	"github.com/vibegrapher/vibegrapher/api/realtime"
	"github.com/vibegrapher/vibegrapher/db"
)

// A project's deletion ends its subscriptions: the hub keeps no room for a
// deleted project, whose sockets would otherwise stay in it for as long as
// they are connected (a browser tab: days), each named in every heartbeat
// the socket gets. The socket stays connected and gets the heartbeat of a
// socket in no room.
func TestADeletedProjectsRoomIsClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *realtime.Options) { o.HeartbeatInterval = 50 * time.Millisecond })
	p := e.project()
	c := e.dial(t)
	c.Subscribe(p)
	if err := e.Store.DeleteProject(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	deleted, err := db.ProjectDeletedSeq(context.Background(), e.Pool, p)
	if err != nil {
		t.Fatal(err)
	}
	c.expect(deleted)
	// The heartbeats received before project_deleted name p (the client
	// handles what it receives in order); the next one names no project.
	for range c.Heartbeats.Pending() {
		c.Heartbeats.Next()
	}
	hb, ok := c.Heartbeats.Next()
	if !ok {
		t.Fatal("no heartbeat within the wait")
	}
	if pid, _ := hb["project_id"].(string); pid != "" {
		t.Fatalf("heartbeat %v after project_deleted: the socket is still in the deleted project's room", hb)
	}
	if n := e.RT.ConnectionCount(); n != 1 {
		t.Fatalf("ConnectionCount = %d, want the socket still connected", n)
	}
	if ack := c.Request("unsubscribe", map[string]any{"project_id": p}); ack["ok"] != true {
		t.Fatalf("unsubscribe after the deletion: ack %v", ack)
	}
}
