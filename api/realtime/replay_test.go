package realtime_test

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/api/realtime"
	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	domainevent "github.com/vibegrapher/vibegrapher/domain/event"
)

// TestReplaySinceThenLive: a client that comes back with `since` gets every
// later event of its project from the outbox, then the live ones, with no
// gap and no duplicate at the switch, while events keep being written.
// The history is longer than one page, so the replay interleaves with live
// delivery.
func TestReplaySinceThenLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p, other := e.project(), e.project()
	ctx := context.Background()

	since := e.latestSeq()
	const history = 1200
	err := db.InTx(ctx, e.Pool, func(tx pgx.Tx) error {
		for i := range history {
			project := p
			if i%5 == 4 {
				project = other // interleaved events of another project are not replayed
			}
			if _, err := db.Emit(ctx, tx, project, dbtest.Event{Name: "history", Payload: map[string]any{"i": i}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A writer keeps committing while the client subscribes and replays.
	const concurrent = 150
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range concurrent {
			project := p
			if i%3 == 2 {
				project = other
			}
			e.emit(project, "live", map[string]any{"i": i})
		}
	})
	c := e.dial(t)
	ack := c.Subscribe(p, since)
	wg.Wait()
	sentinel := e.emit(p, "sentinel", map[string]any{})

	want, err := db.ProjectEventsAfter(ctx, e.Pool, p, since, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	if want[len(want)-1].Seq != sentinel {
		t.Fatalf("the outbox does not end with the sentinel")
	}
	for i, w := range want {
		ev := c.Next()
		if ev.Seq() != w.Seq || ev.Name != w.Name || ev.Payload["project_id"] != p {
			t.Fatalf("event %d: got %s seq %d, want %s seq %d", i, ev.Name, ev.Seq(), w.Name, w.Seq)
		}
	}
	replayed, _ := ack["replayed"].(float64)
	if replayed < history*4/5 || int(replayed) > len(want) {
		t.Fatalf("ack says %v replayed; %d history events, %d in all", replayed, history*4/5, len(want))
	}
	// Nothing after the sentinel: a last event on the other project must
	// not reach the client, and one more of its own is next.
	e.emit(other, "e", map[string]any{})
	c.expect(e.emit(p, "after", map[string]any{}))
}

func TestReplayShortCases(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.project()
	base := e.latestSeq()
	s1 := e.emit(p, "a", map[string]any{"trace_id": "t1"})
	s2 := e.emit(p, "b", map[string]any{"trace_id": "t2"})
	s3 := e.emit(p, "c", map[string]any{"trace_id": "t3"})

	t.Run("since in the middle", func(t *testing.T) {
		c := e.dial(t)
		if ack := c.Subscribe(p, s1); ack["replayed"] != float64(2) {
			t.Fatalf("ack %v", ack)
		}
		got := c.expect(s2, s3)
		if got[0].Payload["trace_id"] != "t2" || got[0].Name != "b" {
			t.Fatalf("replayed %v", got[0])
		}
	})
	t.Run("since as a string", func(t *testing.T) {
		c := e.dial(t)
		ack := c.Request("subscribe", map[string]any{"project_id": p, "since": strconv.FormatInt(s2, 10)})
		if ack["ok"] != true || ack["replayed"] != float64(1) {
			t.Fatalf("ack %v", ack)
		}
		c.expect(s3)
	})
	t.Run("since zero replays everything", func(t *testing.T) {
		c := e.dial(t)
		ack := c.Subscribe(p, 0)
		n := int(ack["replayed"].(float64))
		all, _ := db.ProjectEventsAfter(context.Background(), e.Pool, p, 0, 100)
		if n != len(all) || n < 4 { // project_created and the three
			t.Fatalf("replayed %d of %d", n, len(all))
		}
		for range n {
			c.Next()
		}
	})
	t.Run("since at the end", func(t *testing.T) {
		c := e.dial(t)
		if ack := c.Subscribe(p, s3); ack["replayed"] != float64(0) {
			t.Fatalf("ack %v", ack)
		}
	})
	t.Run("since handed out but not committed yet", func(t *testing.T) {
		tx, err := e.Pool.Begin(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(context.Background()) //nolint:errcheck
		pending, err := db.Emit(context.Background(), tx, p, dbtest.Event{Name: "pending", Payload: map[string]any{}})
		if err != nil {
			t.Fatal(err)
		}
		c := e.dial(t)
		if ack := c.Subscribe(p, pending); ack["ok"] != true || ack["replayed"] != float64(0) {
			t.Fatalf("ack %v", ack)
		}
	})
	t.Run("since beyond every seq handed out", func(t *testing.T) {
		// From before a reset or a restore of the database: taken as it
		// is, the next thousand events would look seen already.
		c := e.dial(t)
		ack := c.Request("subscribe", map[string]any{"project_id": p, "since": s3 + 1000})
		if ack["ok"] != false || !strings.Contains(fmt.Sprint(ack["error"]), "reset or restored") {
			t.Fatalf("ack %v", ack)
		}
	})
	t.Run("handshake query", func(t *testing.T) {
		c := e.dial(t, withQuery(url.Values{"project_id": {p}, "since": {strconv.FormatInt(base, 10)}}))
		c.expect(s1, s2, s3)
	})
	t.Run("handshake query without since is live", func(t *testing.T) {
		c := e.dial(t, withQuery(url.Values{"project_id": {p}}))
		// The auto-join is handled before any later request of the socket,
		// so once this ack is back the socket is in the room.
		c.Request("unsubscribe", map[string]any{"project_id": "00000000-0000-0000-0000-000000000000"})
		c.expect(e.emit(p, "live", map[string]any{}))
	})
	t.Run("subscribing again with since restarts the replay", func(t *testing.T) {
		before := e.latestSeq()
		x := e.emit(p, "x", map[string]any{})
		c := e.dial(t)
		c.Subscribe(p)
		if ack := c.Subscribe(p, before); ack["replayed"] != float64(1) {
			t.Fatalf("ack %v", ack)
		}
		c.expect(x)
		c.expect(e.emit(p, "live", map[string]any{}))
	})
}

// A client that was away when its project was deleted learns it when it
// comes back: a subscribe with since gets what it missed, project_deleted
// last, then the refusal, which says the project was deleted. Nothing of the
// project reaches anyone after its project_deleted.
func TestSubscribeToADeletedProject(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	p, other := e.project(), e.project()
	there := e.dial(t)
	there.Subscribe(p)
	there.Subscribe(other)
	since := e.latestSeq()
	missed := e.emit(p, "missed", map[string]any{})
	if err := e.Store.DeleteProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	deleted, err := db.ProjectDeletedSeq(ctx, e.Pool, p)
	if err != nil || deleted <= missed {
		t.Fatalf("project_deleted seq %d, %v", deleted, err)
	}
	// A job of the project that ends after the delete reports nothing.
	if err := e.Store.EmitJobStatus(ctx, p, domainevent.JobStatus{JobID: 1, Kind: "vibecode", State: "completed"}); err != nil {
		t.Fatal(err)
	}
	if got := there.expect(missed, deleted); got[1].Name != "project_deleted" {
		t.Fatalf("the client that was there got %s", got[1].Name)
	}
	there.expect(e.emit(other, "next", map[string]any{}))

	refused := func(t *testing.T, ack map[string]any, replayed int) {
		t.Helper()
		msg, _ := ack["error"].(string)
		if ack["ok"] != false || ack["project_id"] != p || !strings.Contains(msg, "project deleted") {
			t.Fatalf("ack %v, want the project deleted", ack)
		}
		if n, _ := ack["replayed"].(float64); int(n) != replayed {
			t.Fatalf("ack %v, want %d replayed", ack, replayed)
		}
	}
	t.Run("since before the deletion", func(t *testing.T) {
		c := e.dial(t)
		refused(t, c.Request("subscribe", map[string]any{"project_id": p, "since": since}), 2)
		if got := c.expect(missed, deleted); got[1].Name != "project_deleted" || got[1].Payload["project_id"] != p {
			t.Fatalf("replayed %v", got[1])
		}
		if ev := c.NextError(); !strings.Contains(fmt.Sprint(ev["message"]), "project deleted") || ev["project_id"] != p {
			t.Fatalf("error event %v", ev)
		}
	})
	t.Run("handshake query", func(t *testing.T) {
		c := e.dial(t, withQuery(url.Values{"project_id": {p}, "since": {strconv.FormatInt(missed, 10)}}))
		c.expect(deleted)
		if ev := c.NextError(); !strings.Contains(fmt.Sprint(ev["message"]), "project deleted") {
			t.Fatalf("error event %v", ev)
		}
	})
	t.Run("without since, or having seen project_deleted", func(t *testing.T) {
		c := e.dial(t)
		refused(t, c.Request("subscribe", map[string]any{"project_id": p}), 0)
		refused(t, c.Request("join_project", map[string]any{"project_id": p, "since": deleted}), 0)
		if n := c.Events.Pending(); n != 0 {
			t.Fatalf("%d events for a refused subscribe", n)
		}
	})
	t.Run("events pruned", func(t *testing.T) {
		// Past the retention, a deleted project is one the outbox knows
		// nothing of.
		gone := e.project()
		if err := e.Store.DeleteProject(ctx, gone); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Pool.Exec(ctx, `DELETE FROM events WHERE project_id = $1`, gone); err != nil {
			t.Fatal(err)
		}
		c := e.dial(t)
		if ack := c.Request("subscribe", map[string]any{"project_id": gone, "since": 0}); ack["ok"] != false || ack["error"] != "project not found" {
			t.Fatalf("ack %v", ack)
		}
	})
}

// After the database is reset or restored, the outbox's seqs start again
// below what the hub delivered: it notices at its next poll, delivers from
// the new end, and drops its clients' connections: they reconnect and
// subscribe again (one with a since of the old history is told to reload).
// Before, it dropped every new event until the seqs passed the old ones.
func TestTheHubFollowsAnOutboxThatWentBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *realtime.Options) { o.PollInterval = 50 * time.Millisecond })
	p := e.project()
	c := e.dial(t)
	c.Subscribe(p)
	for i := range 5 {
		e.emit(p, "before", map[string]any{"i": i})
	}
	for range 5 {
		c.Next()
	}
	if _, err := e.Pool.Exec(context.Background(), `TRUNCATE events RESTART IDENTITY`); err != nil {
		t.Fatal(err)
	}
	select {
	case reason := <-c.Gone:
		// Dropped as a broken connection is, which clients reconnect after
		// by themselves; not "io server disconnect", a kick they do not.
		if reason == "io server disconnect" {
			t.Errorf("the client was kicked (%q): it would not reconnect", reason)
		}
	case <-time.After(wait):
		t.Fatal("the client of the old history was not disconnected")
	}
	d := e.dial(t)
	d.Subscribe(p)
	seq := e.emit(p, "after", map[string]any{"i": 0})
	if ev := d.Next(); ev.Name != "after" || ev.Seq() != seq {
		t.Fatalf("after the reset: %s seq %d, want after seq %d", ev.Name, ev.Seq(), seq)
	}
}
