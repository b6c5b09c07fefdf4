package db

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// OutageWatch keeps a database outage to two log lines per process: one WARN
// when the database becomes unreachable and one INFO when it is back. In
// between, warnings and errors logged through Handler (River's retries, the
// realtime listener's reconnects, a job that failed on the database) go out
// at DEBUG, and so do, for Settle after, the ones about a lost connection.
type OutageWatch struct {
	pool *pgxpool.Pool
	log  *slog.Logger // unfiltered: the watch's own two lines

	// Settle is how long after recovery the warnings about a lost
	// connection (retry loops that end late) stay at DEBUG; other warnings
	// are logged as they are once the database is back.
	Settle time.Duration

	mu         sync.Mutex
	down       bool
	since      time.Time
	quietUntil time.Time
	probedAt   time.Time
	probeMu    sync.Mutex
}

// WatchOutages probes the database every interval until ctx ends; records
// that look like a lost connection trigger a probe at once.
func WatchOutages(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, interval time.Duration) *OutageWatch {
	w := &OutageWatch{pool: pool, log: log, Settle: 30 * time.Second}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				// While up, a ping on the pool is enough (and costs no
				// new backend); a lost connection's record probes anew.
				w.probe(ctx, now, w.Down())
			}
		}
	}()
	return w
}

// Down reports whether the database is unreachable now.
func (w *OutageWatch) Down() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.down
}

func (w *OutageWatch) quiet() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.down || time.Now().Before(w.quietUntil)
}

// probe asks the database and logs a change, unless a probe started after
// since already has: the records of one failure share one probe. fresh
// probes on a connection of its own.
func (w *OutageWatch) probe(ctx context.Context, since time.Time, fresh bool) {
	w.probeMu.Lock()
	defer w.probeMu.Unlock()
	if w.probedAt.After(since) {
		return
	}
	w.probedAt = time.Now()
	// A connection of its own, not one of the pool's: an open pooled
	// connection still answers for a moment while the server shuts down
	// and refuses new ones.
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	var err error
	if fresh {
		var conn *pgx.Conn
		conn, err = pgx.ConnectConfig(pctx, w.pool.Config().ConnConfig)
		if err == nil {
			err = conn.Ping(pctx)
			_ = conn.Close(context.WithoutCancel(pctx))
		}
	} else {
		err = w.pool.Ping(pctx)
	}
	cancel()
	if ctx.Err() != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err != nil && !w.down:
		w.down, w.since = true, time.Now()
		w.log.Warn("database unreachable; retrying quietly until it is back", "error", err)
	case err == nil && w.down:
		w.down, w.quietUntil = false, time.Now().Add(w.Settle)
		w.log.Info("database reachable again", "outage", time.Since(w.since).Round(time.Millisecond))
	}
}

// Handler wraps h: while the database is unreachable, warnings and errors go
// out at DEBUG, except panics. A warning or error that looks like a lost connection makes
// the watch probe the database first, so the first one of an outage is
// already quiet.
func (w *OutageWatch) Handler(h slog.Handler) slog.Handler { return quietHandler{h, w} }

type quietHandler struct {
	slog.Handler
	w *OutageWatch
}

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	// A panic is a bug, not the outage: it is never quieted.
	if r.Level >= slog.LevelWarn && !strings.Contains(strings.ToLower(r.Message), "panic") {
		quiet := h.w.Down()
		if !quiet && looksLikeLostConnection(r) {
			// The first sign of an outage, or a straggler of the last one
			// (a retry loop that gives up after the database came back).
			h.w.probe(context.WithoutCancel(ctx), r.Time, true)
			quiet = h.w.quiet()
		}
		if quiet {
			r = r.Clone()
			r.Level = slog.LevelDebug
			if !h.Handler.Enabled(ctx, slog.LevelDebug) {
				return nil
			}
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(a), h.w}
}

func (h quietHandler) WithGroup(n string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(n), h.w}
}

// lostConnection are fragments of the messages pgx, River and this package
// write when the server is gone or restarting.
var lostConnection = []string{
	"connection refused", "failed to connect", "conn closed", "connection reset", "broken pipe",
	"unexpected eof", "terminating connection", "the database system is", "database is unavailable",
	"server closed the connection", "57p01", "57p03", "no connection to the server", "closed pool",
	"too many errors; giving up", // River's completer, after retrying a write through the outage
}

func looksLikeLostConnection(r slog.Record) bool {
	if matchesLost(r.Message) {
		return true
	}
	found := false
	r.Attrs(func(a slog.Attr) bool {
		switch v := a.Value.Resolve().Any().(type) {
		case error:
			found = IsUnavailable(v) || matchesLost(v.Error())
		case string:
			found = matchesLost(v)
		}
		return !found
	})
	return found
}

func matchesLost(s string) bool {
	s = strings.ToLower(s)
	for _, f := range lostConnection {
		if strings.Contains(s, f) {
			return true
		}
	}
	return false
}
