package realtime

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/db"
)

// idleCheck is how long the LISTEN connection may stay silent before it is
// pinged: a connection that died without a word would otherwise wait forever.
const idleCheck = 30 * time.Second

// listen keeps a connection LISTENing on db.EventsChannel and hands every
// notification to the hub, until ctx ends. The connection is its own,
// outside the pool's budget. When it drops, listen reconnects with backoff
// and asks for a full read of the outbox: what was committed in between has
// no notification left to announce it.
func listen(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, h *hub) {
	const first, most = 100 * time.Millisecond, 5 * time.Second
	backoff := first
	for lost := false; ; lost = true {
		err := listenOnce(ctx, pool, func() {
			backoff = first
			if lost {
				log.Info("realtime: listening for events again")
			}
			h.notify(0, true, nil)
		}, h.notification)
		if ctx.Err() != nil {
			return
		}
		log.Warn("realtime: LISTEN connection lost; reconnecting", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, most)
	}
}

func listenOnce(ctx context.Context, pool *pgxpool.Pool, listening func(), notification func(payload string)) error {
	cfg := pool.Config().ConnConfig.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = ListenApplicationName
	connectCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(connectCtx, cfg)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{db.EventsChannel}.Sanitize()); err != nil {
		return err
	}
	listening()
	for {
		waitCtx, cancel := context.WithTimeout(ctx, idleCheck)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && pgconn.Timeout(err) && !conn.IsClosed():
			pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = conn.Ping(pingCtx)
			cancel()
			if err != nil {
				return err
			}
		case err != nil:
			return err
		case n == nil:
			return errors.New("no notification")
		default:
			notification(n.Payload)
		}
	}
}
