package api_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/vibegrapher/vibegrapher/api"
	"github.com/vibegrapher/vibegrapher/api/realtime"
	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/internal/sockettest"
)

// TestSocketProtocolMatchesAsyncAPI: what a real Socket.IO client gets
// besides outbox events (acks, heartbeats, errors) matches the AsyncAPI
// document, with the handshake query subscribing at connection.
func TestSocketProtocolMatchesAsyncAPI(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	log := slog.New(slog.DiscardHandler)
	rt, err := realtime.New(realtime.Options{Pool: pool, Log: log, CORSOrigins: []string{"*"}, HeartbeatInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	a := api.New(api.Options{Store: &db.Store{Pool: pool}, Log: log, CORSOrigins: []string{"*"}})
	srv := serveWithRealtime(t, a, rt)
	s := &testServer{t: t, URL: srv.URL, Pool: pool}
	s.checkEventsAtEnd()
	var p domain.Project
	s.do("POST", "/projects", map[string]any{"name": "Socket"}).json(t, &p)

	c := sockettest.Dial(t, srv.URL)
	checkEvent(t, "subscribe_ack", c.Request("subscribe", map[string]any{"project_id": p.ID, "since": 0}))
	ev := c.Next() // project_created, replayed
	checkEvent(t, ev.Name, ev.Payload)
	checkEvent(t, "subscribe_ack", c.Request("join_project", p.ID))
	checkEvent(t, "subscribe_ack", c.Request("leave_project", map[string]any{"project_id": p.ID}))
	checkEvent(t, "subscribe_ack", c.Request("unsubscribe", p.ID))
	refused := c.Request("subscribe", map[string]any{"project_id": "not-a-uuid"})
	if refused["ok"] != false {
		t.Fatalf("a bad project id was accepted: %v", refused)
	}
	checkEvent(t, "subscribe_ack", refused)
	checkEvent(t, "error", c.NextError())
	hb, ok := c.Heartbeats.Next()
	if !ok {
		t.Fatal("no heartbeat")
	}
	checkEvent(t, "heartbeat", hb)

	// Handshake query: subscribed at connection, heartbeats carry the project.
	q := sockettest.Dial(t, srv.URL, sockettest.WithQuery(map[string][]string{"project_id": {p.ID}, "since": {"0"}}))
	ev = q.Next()
	checkEvent(t, ev.Name, ev.Payload)
	for {
		hb, ok := q.Heartbeats.Next()
		if !ok {
			t.Fatal("no heartbeat for the project")
		}
		checkEvent(t, "heartbeat", hb)
		if hb["project_id"] == p.ID {
			break
		}
	}
}
