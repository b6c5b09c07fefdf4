// Package realtime is the Socket.IO side of Vibegrapher (SPEC.md §4): it
// follows the PostgreSQL outbox (db.Emit) with LISTEN/NOTIFY and delivers each
// committed event, once and in seq order, to the clients subscribed to the
// event's project, replaying missed events from the outbox on request.
//
// Any number of realtime processes can run against one database: each follows
// the outbox on its own and serves its own clients. No state is kept outside
// PostgreSQL except who is connected to this process.
package realtime

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	engine "github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
	"go.opentelemetry.io/otel/metric"

	"github.com/vibegrapher/vibegrapher/db"
)

// MaxMessageBytes bounds what a client may send in one message (engine.io's
// maxHttpBufferSize). Clients only send small subscribe requests; a bigger
// message closes that client's connection and nothing else.
const MaxMessageBytes = 1 << 20

// ListenApplicationName is the application_name of the connection that
// LISTENs for new events, to find it in pg_stat_activity.
const ListenApplicationName = "vibegrapher-realtime-listen"

// Options configure a Server.
type Options struct {
	Pool        *pgxpool.Pool // the outbox's database; the LISTEN connection is opened beside the pool
	Log         *slog.Logger
	CORSOrigins []string // origins allowed to connect; "*" allows any. Credentials are allowed.
	APIToken    string   // when set, the handshake must carry it as auth.token or ?token=

	HeartbeatInterval time.Duration // default 30s
	// PollInterval is how often the outbox is read even without a
	// notification, in case one was lost; default 2s.
	PollInterval time.Duration
	// PingInterval and PingTimeout are engine.io's heartbeat: a PING every
	// PingInterval, and a connection whose PONG takes longer than PingTimeout
	// is closed. Defaults 25s and 20s (engine.io's).
	PingInterval, PingTimeout time.Duration
	// Meter receives the Socket.IO metrics (metrics.go); nil records none.
	Meter metric.MeterProvider
}

// Server is a Socket.IO server fed by the outbox.
type Server struct {
	opts    Options
	log     *slog.Logger
	io      *socket.Server
	handler http.Handler
	hub     *hub
	metrics *metrics
	beats   *heartbeats
	queues  *engineQueues

	afterLookup func(project string) // tests: runs between a subscribe's check and the hub

	started   atomic.Bool
	closeOnce sync.Once
	stopped   chan struct{} // closed by Close
	ctx       context.Context
	cancel    context.CancelFunc
}

// New builds the Socket.IO server. Mount Handler at "/socket.io/" and call
// Run to start delivering events.
func New(opts Options) (*Server, error) {
	if opts.Pool == nil {
		return nil, errors.New("realtime: a database pool is required")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 30 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 2 * time.Second
	}

	so := socket.DefaultServerOptions()
	so.SetServeClient(false)
	so.SetMaxHttpBufferSize(MaxMessageBytes)
	if opts.PingInterval > 0 {
		so.SetPingInterval(opts.PingInterval)
	}
	if opts.PingTimeout > 0 {
		so.SetPingTimeout(opts.PingTimeout)
	}
	so.SetParser(gatedParser{parser.NewParser()}) // see connect_gate.go and encoder.go
	ws := &websocketCtor{}
	so.SetTransports(types.NewSet[engine.TransportCtor](engine.Polling, ws)) // see transport.go
	// Without CORS, engine.io refuses cross-origin websocket upgrades.
	switch {
	case slices.Contains(opts.CORSOrigins, "*"):
		so.SetCors(&types.Cors{Origin: "*", Credentials: true}) // reflects the request's origin
	case len(opts.CORSOrigins) > 0:
		so.SetCors(&types.Cors{Origin: slices.Clone(opts.CORSOrigins), Credentials: true})
	}
	io := socket.NewServer(nil, so)

	s := &Server{opts: opts, log: opts.Log, io: io, stopped: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.hub = newHub(io, opts.Pool, opts.Log, opts.PollInterval, opts.HeartbeatInterval, s.stopped)
	s.queues = &engineQueues{}
	s.hub.queues = s.queues
	if opts.Meter != nil {
		m, err := newMetrics(opts.Meter, s)
		if err != nil {
			return nil, err
		}
		s.metrics, s.hub.metrics = m, m
	}
	ws.behind = func() { s.droppedBehind("websocket") }
	s.queues.behind = func() { s.droppedBehind("polling") }
	if opts.APIToken != "" {
		io.Use(s.requireToken)
	}
	_ = io.On("connection", func(args ...any) {
		if sock, ok := args[0].(*socket.Socket); ok {
			s.onConnection(sock)
		}
	})
	s.handler = releaseAfterHijack(io.ServeHandler(so))
	// engine.io's pings for websocket connections, from one timer (heartbeat.go).
	eo := io.Engine().Opts() // with engine.io's defaults applied
	s.beats = newHeartbeats(eo.PingInterval(), eo.PingTimeout())
	_ = io.Engine().On("connection", func(args ...any) {
		if conn, ok := args[0].(engine.Socket); ok {
			s.beats.takeOver(conn)
			s.queues.follow(conn) // engine.io's buffer, bounded (enginequeue.go)
		}
	})
	return s, nil
}

// droppedBehind counts and logs a connection dropped for being more than
// MaxQueuedBytes behind (transport.go, enginequeue.go).
func (s *Server) droppedBehind(transport string) {
	s.metrics.dropBehind(transport)
	s.log.Info("realtime: dropped a client more than MaxQueuedBytes behind; it reconnects and catches up with since",
		"transport", transport, "max_queued_bytes", MaxQueuedBytes)
}

// Handler serves Socket.IO (websocket and polling); mount it at "/socket.io/".
func (s *Server) Handler() http.Handler { return s.handler }

// Run follows the outbox, delivers events and sends heartbeats until ctx
// ends or Close is called; it runs once per Server. The database may come
// and go meanwhile: Run reconnects and catches up without losing or
// repeating an event. (Old events are deleted by River's
// jobs.PruneEventsWorker, not here.)
func (s *Server) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("realtime: Run was already called")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.stopped:
			cancel()
		case <-ctx.Done():
		}
	}()

	reads, err := readPool(ctx, s.opts.Pool)
	if err != nil {
		return err
	}
	defer reads.Close()
	s.hub.pool = reads
	// This process's commits reach the hub directly (db.OnCommit), the
	// other processes' through LISTEN.
	stopLocal := db.OnCommit(s.opts.Pool, func(seq int64, events []db.Event) { s.hub.notify(seq, false, events) })
	defer stopLocal()
	var wg sync.WaitGroup
	wg.Go(func() { listen(ctx, s.opts.Pool, s.log, s.hub) })
	s.hub.run(ctx)
	cancel()
	wg.Wait()
	return nil
}

// ReadApplicationName is the application_name of the hub's connection to
// the outbox.
const ReadApplicationName = "vibegrapher-realtime-read"

// readPool is the hub's own connection for reading the outbox, beside pool
// (like the LISTEN connection). In the shared pool every delivery queued
// for a connection behind the jobs' transactions: under load, tens of
// milliseconds added to every event, and the hub waits with every client's.
// A pool of one connects when first used and again after a failure.
func readPool(ctx context.Context, pool *pgxpool.Pool) (*pgxpool.Pool, error) {
	cfg := pool.Config()
	cfg.MaxConns, cfg.MinConns, cfg.MinIdleConns = 1, 0, 0
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = ReadApplicationName
	reads, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("realtime: outbox read pool: %w", err)
	}
	return reads, nil
}

// Close disconnects every client and stops Run.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.stopped)
		s.cancel()
		s.metrics.close()
		s.io.Close(nil)
		s.beats.stop()
	})
}

// ConnectionCount is the number of sockets connected to this process.
func (s *Server) ConnectionCount() int {
	return s.io.Sockets().Sockets().Len()
}

// requireToken refuses handshakes without the API token (auth.token, or the
// token query parameter for clients that cannot send auth).
func (s *Server) requireToken(sock *socket.Socket, next func(*socket.ExtendedError)) {
	want := []byte(s.opts.APIToken)
	hs := sock.Handshake()
	got, _ := hs.Auth["token"].(string)
	if got == "" {
		got = queryValue(hs.Query, "token")
	}
	if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
		openGate(sock)
		next(socket.NewExtendedError("unauthorized", map[string]any{
			"message": "a valid API token is required: connect with auth: {token}",
		}))
		return
	}
	next(nil)
}

// onConnection runs on the socket's own task queue, as do its event
// handlers, so one socket's requests are handled in the order it sent them.
func (s *Server) onConnection(sock *socket.Socket) {
	openGate(sock) // the socket is registered: its packets can flow
	delete(sock.Handshake().Auth, gateKey)
	_ = sock.On("subscribe", func(args ...any) { s.subscribe(sock, args) })
	_ = sock.On("join_project", func(args ...any) { s.subscribe(sock, args) })
	_ = sock.On("unsubscribe", func(args ...any) { s.unsubscribe(sock, args) })
	_ = sock.On("leave_project", func(args ...any) { s.unsubscribe(sock, args) })
	_ = sock.On("disconnect", func(...any) { s.hub.send(command{kind: cmdGone, sock: sock}) })

	q := sock.Handshake().Query
	if queryValue(q, "project_id") != "" {
		req := map[string]any{"project_id": queryValue(q, "project_id")}
		if since := queryValue(q, "since"); since != "" {
			req["since"] = since
		}
		s.subscribe(sock, []any{req})
	}
}

func (s *Server) subscribe(sock *socket.Socket, args []any) {
	req, ack, err := parseRequest(args)
	if err != nil {
		s.hub.send(command{kind: cmdReject, sock: sock, ack: ack, project: req.rawProject, err: err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	// Read before the check: a project found to exist is deleted, if at
	// all, by an event after this (the hub's deletions).
	from := s.hub.delivered.Load()
	exists, err := db.ProjectExists(ctx, s.opts.Pool, req.project)
	var deleted int64
	if err == nil && !exists {
		// A client away when it was deleted learns it from the replay.
		deleted, err = db.ProjectDeletedSeq(ctx, s.opts.Pool, req.project)
	}
	if s.afterLookup != nil {
		s.afterLookup(req.project)
	}
	switch {
	case err != nil:
		s.log.Warn("realtime: look up project", "project_id", req.project, "error", err)
		s.hub.send(command{kind: cmdReject, sock: sock, ack: ack, project: req.project, err: "could not look up the project; retry shortly"})
	case deleted > 0:
		s.hub.send(command{kind: cmdSubscribe, sock: sock, ack: ack, project: req.project, since: req.since, deleted: deleted})
	case !exists:
		s.hub.send(command{kind: cmdReject, sock: sock, ack: ack, project: req.project, err: "project not found"})
	default:
		s.hub.send(command{kind: cmdSubscribe, sock: sock, ack: ack, project: req.project, since: req.since, from: from})
	}
}

func (s *Server) unsubscribe(sock *socket.Socket, args []any) {
	req, ack, err := parseRequest(args)
	if err != nil {
		s.hub.send(command{kind: cmdReject, sock: sock, ack: ack, project: req.rawProject, err: err.Error()})
		return
	}
	s.hub.send(command{kind: cmdUnsubscribe, sock: sock, ack: ack, project: req.project})
}
