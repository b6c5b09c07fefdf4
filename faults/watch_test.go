package faults

import (
	"sync"
	"testing"
	"time"

	sio "github.com/zishang520/socket.io/clients/socket/v3"

	"github.com/vibegrapher/vibegrapher/internal/sockettest"
)

// watcher is a Socket.IO client following one project as the frontend does:
// when its connection drops it connects again and resubscribes with the last
// seq it saw; a refused subscribe is retried after the server's
// retry_after_ms.
type watcher struct {
	t       testing.TB
	url     string
	project string
	stop    chan struct{}
	done    chan struct{}

	mu          sync.Mutex
	last        int64
	events      []sockettest.Event
	repeated    int // events with a seq already seen
	resubscribe int
	retryAfter  int // refusals that carried retry_after_ms
	refusedFor  []string
}

func watch(t testing.TB, url, project string) *watcher {
	w := &watcher{t: t, url: url, project: project, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	t.Cleanup(w.close)
	return w
}

func (w *watcher) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *watcher) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

func (w *watcher) run() {
	defer close(w.done)
	noReconnect := func(o *sio.Options) { o.SetReconnection(false) }
	for first := true; !w.stopped(); first = false {
		c, err := sockettest.Connect(w.t, w.url, noReconnect)
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if !first {
			w.mu.Lock()
			w.resubscribe++
			w.mu.Unlock()
		}
		if !w.subscribe(c) {
			c.Sock.Disconnect()
			continue
		}
		w.follow(c)
		c.Sock.Disconnect()
	}
}

// subscribe subscribes with since, following retry_after_ms; false means
// start over with a new connection.
func (w *watcher) subscribe(c *sockettest.Client) bool {
	for !w.stopped() {
		w.mu.Lock()
		since := w.last
		w.mu.Unlock()
		res := make(chan []any, 1)
		c.Sock.Timeout(5*time.Second).EmitWithAck("subscribe", map[string]any{"project_id": w.project, "since": since})(func(a []any, err error) {
			if err != nil {
				a = nil
			}
			res <- a
		})
		a := <-res
		if len(a) == 0 {
			return false
		}
		ack, _ := a[0].(map[string]any)
		if ok, _ := ack["ok"].(bool); ok {
			return true
		}
		w.mu.Lock()
		w.refusedFor = append(w.refusedFor, stringOf(ack["error"]))
		w.mu.Unlock()
		retry, _ := ack["retry_after_ms"].(float64)
		if retry <= 0 {
			return false
		}
		w.mu.Lock()
		w.retryAfter++
		w.mu.Unlock()
		time.Sleep(time.Duration(retry) * time.Millisecond)
	}
	return false
}

func (w *watcher) follow(c *sockettest.Client) {
	for {
		if c.Events.Pending() > 0 {
			ev, _ := c.Events.Next()
			w.mu.Lock()
			if s := ev.Seq(); s > 0 {
				if s <= w.last {
					w.repeated++
				} else {
					w.last = s
					w.events = append(w.events, ev)
				}
			}
			w.mu.Unlock()
			continue
		}
		select {
		case <-w.stop:
			return
		case <-c.Gone:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// snapshot returns the events received so far, in order.
func (w *watcher) snapshot() []sockettest.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]sockettest.Event(nil), w.events...)
}

// waitEnd waits for the vibecode_response of messageID and returns when it
// was received.
func (w *watcher) waitEnd(messageID string, d time.Duration) (time.Time, bool) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, ev := range w.snapshot() {
			if ev.Name == "vibecode_response" && ev.Payload["message_id"] == messageID {
				return time.Now(), true
			}
		}
	}
	return time.Time{}, false
}

func stringOf(v any) string {
	s, _ := v.(string)
	return s
}
