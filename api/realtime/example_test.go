package realtime_test

import (
	"context"
	"log"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/api/realtime"
)

// A realtime server on its own port: Socket.IO at /socket.io/, fed by the
// outbox of the database the pool is on. In the vibegrapher binary the same
// handler is mounted on the REST server (api.Server.Mount) instead.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/vibegrapher")
	if err != nil {
		log.Fatal(err)
	}
	rt, err := realtime.New(realtime.Options{
		Pool: pool, CORSOrigins: []string{"http://localhost:5173"}, HeartbeatInterval: 30 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close()
	go func() { _ = rt.Run(ctx) }()

	mux := http.NewServeMux()
	mux.Handle("/socket.io/", rt.Handler())
	srv := &http.Server{Addr: ":8001", Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); rt.Close(); _ = srv.Shutdown(context.Background()) }()
	_ = srv.ListenAndServe()
}
