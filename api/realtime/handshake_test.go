package realtime_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/vibegrapher/vibegrapher/api/realtime"
)

func TestHeartbeatCountsConnections(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *realtime.Options) { o.HeartbeatInterval = 100 * time.Millisecond })
	p := e.project()

	// waitFor reads c's heartbeats until one matches.
	waitFor := func(c *client, connections int, project string) map[string]any {
		t.Helper()
		for {
			hb, ok := c.Heartbeats.Next()
			if !ok {
				t.Fatalf("no heartbeat with connections=%d project_id=%q within the wait", connections, project)
			}
			pid, _ := hb["project_id"].(string)
			if hb["connections"] == float64(connections) && pid == project {
				if hb["status"] != "alive" {
					t.Fatalf("heartbeat %v", hb)
				}
				if _, err := time.Parse(time.RFC3339, hb["server_time"].(string)); err != nil {
					t.Fatalf("server_time: %v", err)
				}
				return hb
			}
		}
	}

	lobby := e.dial(t)
	waitFor(lobby, 1, "")
	member := e.dial(t)
	member.Subscribe(p)
	waitFor(member, 2, p)
	waitFor(lobby, 2, "")
	third := e.dial(t)
	waitFor(lobby, 3, "")
	third.Sock.Disconnect()
	member.Sock.Disconnect()
	waitFor(lobby, 1, "")
	if n := e.RT.ConnectionCount(); n != 1 {
		t.Fatalf("ConnectionCount = %d", n)
	}
}

func TestTokenRequired(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *realtime.Options) { o.APIToken = "s3cret" })
	p := e.project()

	for name, opts := range map[string][]dialOption{
		"no token":    nil,
		"wrong token": {withAuth(map[string]any{"token": "guess"})},
		"token typed": {withAuth(map[string]any{"token": 12345})},
		"wrong query": {withQuery(url.Values{"token": {"guess"}})},
	} {
		_, err := e.connect(t, opts...)
		if err == nil || err.Error() != "unauthorized" {
			t.Errorf("%s: connect error %v, want unauthorized", name, err)
		}
	}
	if n := e.RT.ConnectionCount(); n != 0 {
		t.Fatalf("refused clients count as connections: %d", n)
	}
	byAuth := e.dial(t, withAuth(map[string]any{"token": "s3cret"}))
	byQuery := e.dial(t, withQuery(url.Values{"token": {"s3cret"}}))
	byAuth.Subscribe(p)
	byQuery.Subscribe(p)
	seq := e.emit(p, "e", map[string]any{})
	byAuth.expect(seq)
	byQuery.expect(seq)
}

// TestEmitRightAfterConnect: clients that emit the moment they are connected
// (as a frontend subscribing in on("connect") does) are served, not dropped
// for a packet that raced the server's registration of their socket
// (connect_gate.go).
func TestEmitRightAfterConnect(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.project()
	const n = 100
	acks := make(chan map[string]any, n)
	for range n {
		go func() {
			c, err := e.connect(t)
			if err != nil {
				acks <- map[string]any{"error": err.Error()}
				return
			}
			c.Sock.Timeout(wait).EmitWithAck("subscribe", p)(func(a []any, err error) {
				if err != nil || len(a) == 0 {
					acks <- map[string]any{"error": fmt.Sprint(err)}
					return
				}
				m, _ := a[0].(map[string]any)
				acks <- m
			})
		}()
	}
	for range n {
		if ack := <-acks; ack["ok"] != true {
			t.Fatalf("ack %v", ack)
		}
	}
}
