package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// exhaustion are the Accept failures that say the kernel is short of
// something for the new connection, not that the listener is broken. The
// likeliest is ENOSPC: the server's uid has used up its epoll watches
// (fs.epoll.max_user_watches), which a server that is not root shares with
// its test runs (sandbox/doc.go, "What runs at once share"). Go reports it
// as a permanent error, on which http.Server.Serve returns and the process
// would stop serving.
// The values are the names counted in error.type.
var exhaustion = map[syscall.Errno]string{
	syscall.ENOSPC: "ENOSPC", syscall.ENOMEM: "ENOMEM", syscall.EMFILE: "EMFILE", syscall.ENFILE: "ENFILE", syscall.ENOBUFS: "ENOBUFS",
}

// Waits between Accept attempts while the kernel is short: doubled from the
// first to the last, as http.Server does for its temporary errors.
const (
	acceptRetryFirst = 5 * time.Millisecond
	acceptRetryMax   = time.Second
)

// patientListener retries Accept on exhaustion errors, with a bounded
// backoff, instead of handing them to http.Server, and counts them. One WARN
// when a run of failures starts and one INFO when a connection is accepted
// again.
type patientListener struct {
	net.Listener
	log      *slog.Logger
	failures metric.Int64Counter

	closeOnce sync.Once
	closed    chan struct{} // ends a wait when the server shuts down
}

func newPatientListener(ln net.Listener, log *slog.Logger, mp metric.MeterProvider) *patientListener {
	// The SDK's instruments never fail for valid names; a no-op is kept if
	// one does.
	failures, _ := mp.Meter("github.com/vibegrapher/vibegrapher/cmd/vibegrapher").Int64Counter("vibegrapher.accept.errors",
		metric.WithUnit("{error}"),
		metric.WithDescription("Accept failures for want of a kernel resource (retried), by error.type"))
	return &patientListener{Listener: ln, log: log, failures: failures, closed: make(chan struct{})}
}

func (l *patientListener) Accept() (net.Conn, error) {
	failed := 0
	wait := acceptRetryFirst
	for {
		c, err := l.Listener.Accept()
		var errno syscall.Errno
		name := ""
		if errors.As(err, &errno) {
			name = exhaustion[errno]
		}
		if name == "" {
			if err == nil && failed > 0 {
				l.log.Info("accepting connections again", "failed", failed)
			}
			return c, err
		}
		failed++
		l.failures.Add(context.Background(), 1, metric.WithAttributes(attribute.String("error.type", name)))
		if failed == 1 {
			l.log.Warn("accept failed for want of a kernel resource; retrying until it succeeds", "error", err)
		}
		select {
		case <-time.After(wait):
		case <-l.closed:
			return nil, net.ErrClosed
		}
		wait = min(2*wait, acceptRetryMax)
	}
}

func (l *patientListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}
