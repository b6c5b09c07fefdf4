package realtime_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/api/realtime"
)

// listenPIDs are the backend pids of the LISTEN connections of the realtime
// servers on e's database.
func (e *env) listenPIDs() []int32 {
	e.t.Helper()
	rows, err := e.Pool.Query(context.Background(), `
		SELECT pid FROM pg_stat_activity
		WHERE application_name = $1 AND datname = current_database()
		ORDER BY pid`, realtime.ListenApplicationName)
	if err != nil {
		e.t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		e.t.Fatal(err)
	}
	return pids
}

// waitListening waits until exactly one LISTEN connection exists other than
// old, and returns its pid.
func (e *env) waitListening(old int32) int32 {
	e.t.Helper()
	var pid int32
	e.waitUntil(func() bool {
		pids := e.listenPIDs()
		if len(pids) == 1 && pids[0] != old {
			pid = pids[0]
		}
		return pid != 0
	})
	return pid
}

// TestListenConnectionKilled: the LISTEN connection is terminated
// repeatedly while events are written; every event still arrives exactly
// once, in order. The poll fallback is off, so only the reconnect and its
// catch-up can deliver what was committed while nobody listened.
func TestListenConnectionKilled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.project()
	c := e.dial(t)
	c.Subscribe(p)
	pid := e.waitListening(0)

	var written []int64
	var writing sync.WaitGroup
	var stop atomic.Bool
	writing.Go(func() {
		for i := 0; !stop.Load() || i < 50; i++ {
			written = append(written, e.emit(p, "e", map[string]any{"i": i}))
		}
	})
	for range 4 {
		var ok bool
		if err := e.Pool.QueryRow(context.Background(), `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
			t.Fatalf("terminate %d: %v %v", pid, ok, err)
		}
		pid = e.waitListening(pid)
	}
	stop.Store(true)
	writing.Wait()
	// A last event after the final reconnect, and one written while the
	// listener is down for good measure.
	if _, err := e.Pool.Exec(context.Background(), `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	written = append(written, e.emit(p, "e", map[string]any{"last": true}))
	e.waitListening(pid)
	written = append(written, e.emit(p, "e", map[string]any{"sentinel": true}))

	c.expect(written...)
	if n := c.Events.Pending(); n != 0 {
		t.Fatalf("%d events more than written", n)
	}
}

// TestRunEndsWithItsContext: Run returns when its context ends, and the
// LISTEN connection goes with it.
func TestRunEndsWithItsContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rt, err := realtime.New(realtime.Options{Pool: e.Pool})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	e.waitUntil(func() bool { return len(e.listenPIDs()) == 2 })
	if err := rt.Run(context.Background()); err == nil {
		t.Fatal("a second Run did not fail")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	case <-waitTimer():
		t.Fatal("Run did not return")
	}
	e.waitUntil(func() bool { return len(e.listenPIDs()) == 1 })
}

// waitUntil polls cond (a database state, which nothing announces) until it
// holds.
func (e *env) waitUntil(cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatal("condition not met within the wait")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
