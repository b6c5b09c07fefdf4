package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	sio "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// loadClient is one Socket.IO client subscribed to the load project.
type loadClient struct {
	sock     *sio.Socket
	want     int
	complete chan struct{} // closed once want events arrived

	mu   sync.Mutex
	got  []receipt
	done bool
}

type receipt struct {
	seq    int64
	sentAt time.Time // from the payload: taken before the writer's transaction began
	at     time.Time
}

func (c *loadClient) received() []receipt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

func (c *loadClient) close() { c.sock.Disconnect() }

func (c *loadClient) onEvent(args ...any) {
	at := time.Now()
	if len(args) < 2 || args[0] != "load" {
		return
	}
	payload, _ := args[1].(map[string]any)
	seq, _ := payload["seq"].(float64)
	sent, _ := payload["sent_at_us"].(float64)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, receipt{seq: int64(seq), sentAt: time.UnixMicro(int64(sent)), at: at})
	if len(c.got) >= c.want && !c.done {
		c.done = true
		close(c.complete)
	}
}

// openTimeout bounds opening the engine connection. The Go client
// (clients/socket/v3 v3.0.6) races on a fast loopback connect: its manager
// can miss the engine's "open" (dial starts over after openTimeout), its
// connect timer can outlive a successful open and close the connection when
// it fires (so the manager's own timeout is set out of reach), and
// Socket.Connect can send CONNECT twice (so the socket is made only once the
// manager is open). See api/realtime/helpers_test.go.
const openTimeout = 2 * time.Second

func dial(ctx context.Context, base, project string, events int) (*loadClient, error) {
	for attempt := 1; ; attempt++ {
		c, err := dialOnce(ctx, base, project, events)
		if errors.Is(err, errMissedOpen) && attempt < 5 {
			continue
		}
		return c, err
	}
}

var errMissedOpen = errors.New("the client missed its engine's open")

func dialOnce(ctx context.Context, base, project string, events int) (*loadClient, error) {
	o := sio.DefaultOptions()
	o.SetReconnection(false)
	o.SetAutoConnect(false)
	o.SetTimeout(24 * time.Hour)
	o.SetTransports(types.NewSet(sio.WebSocket))
	m := sio.NewManager(base, o)
	opened := make(chan error, 1)
	m.Open(func(err error) { opened <- err })
	select {
	case err := <-opened:
		if err != nil {
			return nil, err
		}
	case <-time.After(openTimeout):
		if eng := m.Engine(); eng != nil {
			eng.Close()
		}
		return nil, errMissedOpen
	case <-ctx.Done():
		return nil, ctx.Err()
	}

	c := &loadClient{want: events, complete: make(chan struct{}), got: make([]receipt, 0, events)}
	c.sock = m.Socket("/", o)
	subscribed := make(chan error, 1)
	_ = c.sock.On("connect", func(...any) {
		c.sock.Timeout(10*time.Second).EmitWithAck("subscribe", map[string]any{"project_id": project})(func(a []any, err error) {
			if err == nil && len(a) > 0 {
				if ack, _ := a[0].(map[string]any); ack["ok"] != true {
					err = fmt.Errorf("subscribe refused: %v", ack)
				}
			}
			subscribed <- err
		})
	})
	_ = c.sock.On("connect_error", func(args ...any) {
		subscribed <- fmt.Errorf("connect: %v", args)
	})
	c.sock.OnAny(c.onEvent)
	c.sock.Connect()
	select {
	case err := <-subscribed:
		if err != nil {
			c.close()
			return nil, err
		}
		return c, nil
	case <-ctx.Done():
		c.close()
		return nil, ctx.Err()
	}
}
