package realtime_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vibegrapher/vibegrapher/api/realtime"
	"github.com/vibegrapher/vibegrapher/db"
)

// lookupGates holds subscribes between their check of the project and the
// hub (realtime.AfterLookup), for the projects a test chose.
type lookupGates struct {
	mu    sync.Mutex
	gates map[string]*lookupGate
}

type lookupGate struct {
	checked chan struct{} // closed when a subscribe to the project has checked it
	proceed chan struct{} // closed by the test to let it go on to the hub
	once    sync.Once
}

func (g *lookupGates) hook(project string) {
	g.mu.Lock()
	gate := g.gates[project]
	g.mu.Unlock()
	if gate == nil {
		return
	}
	gate.once.Do(func() { close(gate.checked) })
	select {
	case <-gate.proceed:
	case <-time.After(wait):
	}
}

// hold makes the next subscribes to project wait after their check.
func (g *lookupGates) hold(project string) *lookupGate {
	gate := &lookupGate{checked: make(chan struct{}), proceed: make(chan struct{})}
	g.mu.Lock()
	if g.gates == nil {
		g.gates = map[string]*lookupGate{}
	}
	g.gates[project] = gate
	g.mu.Unlock()
	return gate
}

// requestAsync emits a request and returns where its ack will come.
func (c *client) requestAsync(name string, arg any) <-chan []any {
	res := make(chan []any, 1)
	c.Sock.Timeout(wait).EmitWithAck(name, arg)(func(a []any, err error) {
		if err != nil {
			a = []any{err}
		}
		res <- a
	})
	return res
}

func ackOf(t *testing.T, res <-chan []any) map[string]any {
	t.Helper()
	var a []any
	select {
	case a = <-res:
	case <-time.After(2 * wait):
		t.Fatal("no ack")
	}
	if len(a) == 0 {
		t.Fatal("empty ack")
	}
	m, ok := a[0].(map[string]any)
	if !ok {
		t.Fatalf("ack %#v", a)
	}
	return m
}

// A subscribe checks its project exists, then the hub joins the socket to
// the project's room. A project deleted between the two had its
// project_deleted delivered to a room the socket was not in yet: the client
// was acked and sat in the room of a deleted project, never told. Now it is
// refused as a subscribe checked after the delete is (TestSubscribeToADeletedProject),
// also when another process deleted it.
func TestASubscribeCheckedBeforeTheProjectWasDeletedIsRefused(t *testing.T) {
	t.Parallel()
	var gates lookupGates
	e := newEnvWith(t, func(s *realtime.Server) { realtime.AfterLookup(s, gates.hook) })
	elsewhere := &db.Store{Pool: e.otherProcess()}
	ctx := context.Background()

	for _, tc := range []struct {
		name      string
		withSince bool
	}{{"without since", false}, {"with since", true}} {
		t.Run(tc.name, func(t *testing.T) {
			p, other := e.project(), e.project()
			there := e.dial(t)
			there.Subscribe(p)
			req := map[string]any{"project_id": p}
			if tc.withSince {
				req["since"] = e.latestSeq()
			}
			gate := gates.hold(p)
			c := e.dial(t)
			res := c.requestAsync("subscribe", req)
			select {
			case <-gate.checked:
			case <-time.After(wait):
				t.Fatal("the subscribe did not check its project")
			}
			if err := elsewhere.DeleteProject(ctx, p); err != nil {
				t.Fatal(err)
			}
			deleted, err := db.ProjectDeletedSeq(ctx, e.Pool, p)
			if err != nil || deleted == 0 {
				t.Fatalf("project_deleted seq %d, %v", deleted, err)
			}
			there.expect(deleted) // the room had it before the socket reached the hub
			close(gate.proceed)

			ack := ackOf(t, res)
			msg, _ := ack["error"].(string)
			if ack["ok"] != false || ack["project_id"] != p || msg != fmt.Sprintf("project deleted: its project_deleted event is seq %d", deleted) {
				t.Fatalf("ack %v, want the project deleted", ack)
			}
			if tc.withSince {
				// Replayed up to project_deleted, as a client away
				// during the delete is.
				if ack["replayed"] != float64(1) {
					t.Fatalf("ack %v, want 1 replayed", ack)
				}
				if ev := c.Next(); ev.Name != "project_deleted" || ev.Seq() != deleted {
					t.Fatalf("replayed %s seq %d", ev.Name, ev.Seq())
				}
			}
			if ev := c.NextError(); !strings.Contains(fmt.Sprint(ev["message"]), "project deleted") || ev["project_id"] != p {
				t.Fatalf("error event %v", ev)
			}
			// Not in the project's room: what is written under its id
			// afterwards does not reach the client, the next event of
			// another project does.
			e.emit(p, "after the delete", map[string]any{})
			c.Subscribe(other)
			c.expect(e.emit(other, "next", map[string]any{}))
		})
	}
}

// The hub remembers a bounded number of deletions. One it has forgotten is
// read from the outbox instead.
func TestASubscribeRacingAForgottenDeletionIsRefused(t *testing.T) {
	t.Parallel()
	var gates lookupGates
	e := newEnvWith(t, func(s *realtime.Server) {
		realtime.AfterLookup(s, gates.hook)
		realtime.KeepDeletions(s, 1)
	})
	ctx := context.Background()
	p, q := e.project(), e.project()
	there := e.dial(t)
	there.Subscribe(p)
	there.Subscribe(q)
	gate := gates.hold(p)
	c := e.dial(t)
	res := c.requestAsync("subscribe", map[string]any{"project_id": p})
	select {
	case <-gate.checked:
	case <-time.After(wait):
		t.Fatal("the subscribe did not check its project")
	}
	var seqs []int64
	for _, id := range []string{p, q} { // q's deletion pushes p's out
		if err := e.Store.DeleteProject(ctx, id); err != nil {
			t.Fatal(err)
		}
		seq, err := db.ProjectDeletedSeq(ctx, e.Pool, id)
		if err != nil || seq == 0 {
			t.Fatalf("project_deleted seq %d, %v", seq, err)
		}
		seqs = append(seqs, seq)
	}
	there.expect(seqs...)
	close(gate.proceed)
	ack := ackOf(t, res)
	if msg, _ := ack["error"].(string); ack["ok"] != false || msg != fmt.Sprintf("project deleted: its project_deleted event is seq %d", seqs[0]) {
		t.Fatalf("ack %v, want the project deleted", ack)
	}
}
