package realtime_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/vibegrapher/vibegrapher/api/realtime"
)

// A long-polling client that stops polling is bounded as a websocket one
// is: a replay waits for its GETs, one page at a time (before, the whole
// history went into engine.io's buffer at once), and live events past
// MaxQueuedBytes drop its connection (before, engine.io buffered them until
// the ping timeout). Dropped, it reconnects and catches up with since, and
// the drop is counted as polling's.
func TestAPollingClientThatDoesNotPollIsBounded(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	e := newEnv(t, func(o *realtime.Options) { o.Meter = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)) })
	p := e.project()
	since := e.latestSeq()
	const history, size = 3000, 4 << 10 // 12 MB: six pages of 2 MB
	old := emitPadded(t, e, p, "old", 0, history, size)

	c := openPolling(t, e.URL)
	c.post(fmt.Sprintf(`420["subscribe",{"project_id":%q,"since":%d}]`, p, since))
	// Each subscribe is answered from the hub's goroutine: after these the
	// hub has had every chance to send the remaining pages.
	other, q := e.dial(t), e.project()
	for range 50 {
		other.Subscribe(q)
	}
	const onePage = 500 * (size + 100)
	if b := e.RT.PendingBytes(); b == 0 || b > onePage+onePage/4 {
		t.Fatalf("%d bytes wait for the client that does not poll (%d connections left): want about a page (%d)",
			b, e.RT.ConnectionCount(), onePage)
	}
	last := c.readUntilAck(t, old)

	// Live now. It stops polling while its project's events go on.
	fast := e.dial(t)
	fast.Subscribe(p)
	var live []int64
	for e.RT.ConnectionCount() > 2 { // the polling client, the fast one, other
		if len(live)*(64<<10) > 40<<20 {
			t.Fatalf("the client that does not poll was not dropped after %d MB", len(live)*(64<<10)>>20)
		}
		batch := emitPadded(t, e, p, "big", 0, 40, 64<<10)
		fast.expect(batch...)
		live = append(live, batch...)
	}
	if len(live)*(64<<10) < realtime.MaxQueuedBytes {
		t.Fatalf("dropped after %d bytes, below MaxQueuedBytes", len(live)*(64<<10))
	}
	if b := e.RT.PendingBytes(); b != 0 {
		t.Fatalf("%d bytes still wait once the client that did not poll is gone", b)
	}
	wantDropped(t, reader, map[string]int64{"polling": 1, "websocket": 0})
	res, err := http.Get(c.url())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("the next poll of the dropped client: %d %.200q, want its session unknown", res.StatusCode, b)
	}

	back := openPolling(t, e.URL)
	back.post(fmt.Sprintf(`420["subscribe",{"project_id":%q,"since":%d}]`, p, last))
	back.readUntilAck(t, live)
}

// readUntilAck polls until the subscribe's ack, checks that the events
// before it are want, and returns the last seq.
func (c *pollingClient) readUntilAck(t *testing.T, want []int64) int64 {
	t.Helper()
	got := 0
	for {
		for _, m := range c.get() {
			switch {
			case m == "2":
				c.post("3")
			case strings.HasPrefix(m, "430"):
				if !strings.Contains(m, `"ok":true`) || !strings.Contains(m, fmt.Sprintf(`"replayed":%d`, len(want))) || got != len(want) {
					t.Fatalf("subscribe ack %.200q after %d of %d events", m, got, len(want))
				}
				return want[len(want)-1]
			default:
				seq, ok := eventSeq(m)
				if !ok || got >= len(want) || seq != want[got] {
					t.Fatalf("event %d: %.100q, want seq %d", got, m, want[min(got, len(want)-1)])
				}
				got++
			}
		}
	}
}
