package telemetry

import (
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// MetricsPath and PprofPath are where Mount puts the handlers.
const (
	MetricsPath = "/metrics"
	PprofPath   = "/debug/pprof/"
)

// Mount registers GET /metrics and the pprof handlers under /debug/pprof/
// with mount (an http.ServeMux's Handle, say). Access control is the
// caller's: the API puts them behind API_TOKEN like any other route.
func (t *Telemetry) Mount(mount func(pattern string, h http.Handler)) {
	if t == nil {
		return
	}
	mount("GET "+MetricsPath, promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{ErrorLog: promLogger{t}}))
	mount(PprofPath, http.HandlerFunc(pprof.Index))
	mount(PprofPath+"cmdline", http.HandlerFunc(pprof.Cmdline))
	mount(PprofPath+"profile", http.HandlerFunc(pprof.Profile))
	mount(PprofPath+"symbol", http.HandlerFunc(pprof.Symbol))
	mount(PprofPath+"trace", http.HandlerFunc(pprof.Trace))
}

// Handler serves only /metrics and /debug/pprof/: the worker's metrics
// listener (METRICS_ADDR).
func (t *Telemetry) Handler() http.Handler {
	mux := http.NewServeMux()
	t.Mount(mux.Handle)
	return mux
}

// IsOwnPath reports whether a request path is one of Mount's.
func IsOwnPath(p string) bool {
	return p == MetricsPath || strings.HasPrefix(p, PprofPath)
}

// Middleware records http.server.request.duration (and the request and
// response body sizes) per route, method and status, and starts the server
// span of each request, continuing a trace whose traceparent header the
// client sent. It must wrap the http.ServeMux directly, or wrap only
// handlers that pass the same *http.Request on, because it reads the route
// from the Pattern the mux sets on it. Scrapes and profiles are left out;
// Socket.IO requests (long polls, websocket upgrades that last as long as
// the connection) are measured but get no span, which would only be noise
// in the traces.
func (t *Telemetry) Middleware(next http.Handler) http.Handler {
	if t == nil {
		return next
	}
	handler := func(tracer trace.TracerProvider) http.Handler {
		return otelhttp.NewHandler(next, "http.server",
			otelhttp.WithMeterProvider(t.Meter()),
			otelhttp.WithTracerProvider(tracer),
			otelhttp.WithPropagators(Propagator),
		)
	}
	traced, untraced := handler(t.Tracer()), handler(tracenoop.NewTracerProvider())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case IsOwnPath(r.URL.Path):
			next.ServeHTTP(w, r)
		case strings.HasPrefix(r.URL.Path, "/socket.io/"):
			untraced.ServeHTTP(w, r)
		default:
			traced.ServeHTTP(w, r)
		}
	})
}

type promLogger struct{ t *Telemetry }

func (l promLogger) Println(v ...any) { l.t.log.Warn("serving /metrics", "error", v) }
