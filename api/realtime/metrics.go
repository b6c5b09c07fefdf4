package realtime

import (
	"context"
	"strings"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/vibegrapher/vibegrapher/db"
)

// Metrics of this process's Socket.IO side (Options.Meter):
//
//   - socketio.connections: connected sockets by transport (websocket,
//     polling), read on each scrape
//   - socketio.rooms: project rooms with at least one socket
//   - socketio.events.emitted: events sent live to a project's room, by event
//   - socketio.events.replayed: events sent from the outbox to a socket
//     catching up (subscribe with since), by event
//   - socketio.outbox.lag: newest committed seq − the seq this process has
//     delivered up to; events committed but not yet sent
//   - socketio.outbox.reads: reads of the outbox for live delivery, by why
//     (hub.go: start, notification, gap, poll, subscribe); events handed
//     over in their announcement need none
//   - socketio.connections.behind: connections dropped because their client
//     was more than MaxQueuedBytes behind, by transport; each reconnects and
//     catches up with since
type metrics struct {
	emitted, replayed, reads, behind metric.Int64Counter
	reg                              metric.Registration

	// byEvent are emitted's attributes by event name, made once (a set is
	// sorted and hashed when made); the hub's goroutine alone uses it.
	byEvent map[string]metric.AddOption
}

// maxEventNames bounds byEvent; names past it are not kept.
const maxEventNames = 64

const scope = "github.com/vibegrapher/vibegrapher/api/realtime"

func newMetrics(mp metric.MeterProvider, s *Server) (*metrics, error) {
	m := mp.Meter(scope)
	var out metrics
	var err error
	if out.emitted, err = m.Int64Counter("socketio.events.emitted", metric.WithUnit("{event}"),
		metric.WithDescription("Events sent live to a project's room")); err != nil {
		return nil, err
	}
	if out.replayed, err = m.Int64Counter("socketio.events.replayed", metric.WithUnit("{event}"),
		metric.WithDescription("Events replayed from the outbox to a socket that subscribed with since")); err != nil {
		return nil, err
	}
	if out.reads, err = m.Int64Counter("socketio.outbox.reads", metric.WithUnit("{read}"),
		metric.WithDescription("Reads of the outbox for live delivery, by why; events that came in their announcement need none")); err != nil {
		return nil, err
	}
	if out.behind, err = m.Int64Counter("socketio.connections.behind", metric.WithUnit("{connection}"),
		metric.WithDescription("Connections dropped because their client was more than MaxQueuedBytes behind")); err != nil {
		return nil, err
	}
	// Its series exist from the start, at 0: an alert on its rate, or a
	// check that it stays 0, sees the metric rather than nothing until the
	// first drop.
	for _, transport := range []string{"websocket", "polling"} {
		out.behind.Add(context.Background(), 0, metric.WithAttributes(attribute.String("transport", transport)))
	}
	conns, err := m.Int64ObservableGauge("socketio.connections", metric.WithUnit("{connection}"),
		metric.WithDescription("Connected sockets by transport"))
	if err != nil {
		return nil, err
	}
	rooms, err := m.Int64ObservableGauge("socketio.rooms", metric.WithUnit("{room}"),
		metric.WithDescription("Project rooms with at least one socket"))
	if err != nil {
		return nil, err
	}
	lag, err := m.Int64ObservableGauge("socketio.outbox.lag", metric.WithUnit("{event}"),
		metric.WithDescription("Newest committed event seq minus the seq delivered up to"))
	if err != nil {
		return nil, err
	}
	out.reg, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		byTransport := map[string]int64{"websocket": 0, "polling": 0}
		s.io.Sockets().Sockets().Range(func(_ socket.SocketId, sock *socket.Socket) bool {
			if t := sock.Conn().Transport(); t != nil {
				byTransport[t.Name()]++
			}
			return true
		})
		for name, n := range byTransport {
			o.ObserveInt64(conns, n, metric.WithAttributes(attribute.String("transport", name)))
		}
		var n int64
		s.io.Sockets().Adapter().Rooms().Range(func(r socket.Room, _ *types.Set[socket.SocketId]) bool {
			if strings.HasPrefix(string(r), "project_") {
				n++
			}
			return true
		})
		o.ObserveInt64(rooms, n)
		if s.started.Load() {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if newest, err := db.LatestSeq(ctx, s.opts.Pool); err == nil {
				o.ObserveInt64(lag, max(0, newest-s.hub.delivered.Load()))
			}
		}
		return nil
	}, conns, rooms, lag)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func (m *metrics) emit(name string) {
	if m == nil {
		return
	}
	attrs, ok := m.byEvent[name]
	if !ok {
		attrs = metric.WithAttributes(attribute.String("event", name))
		if m.byEvent == nil {
			m.byEvent = make(map[string]metric.AddOption)
		}
		if len(m.byEvent) < maxEventNames {
			m.byEvent[name] = attrs
		}
	}
	m.emitted.Add(context.Background(), 1, attrs)
}

func (m *metrics) replay(name string) {
	if m != nil {
		m.replayed.Add(context.Background(), 1, metric.WithAttributes(attribute.String("event", name)))
	}
}

func (m *metrics) read(why string) {
	if m != nil {
		m.reads.Add(context.Background(), 1, metric.WithAttributes(attribute.String("why", why)))
	}
}

func (m *metrics) dropBehind(transport string) {
	if m != nil {
		m.behind.Add(context.Background(), 1, metric.WithAttributes(attribute.String("transport", transport)))
	}
}

func (m *metrics) close() {
	if m != nil {
		_ = m.reg.Unregister()
	}
}
