package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/vibegrapher/vibegrapher/api"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
	"github.com/vibegrapher/vibegrapher/telemetry"
)

func (r roles) String() string {
	switch {
	case r.api && r.realtime && r.worker:
		return "all"
	case r.api && r.realtime:
		return "api+realtime"
	case r.api:
		return "api"
	case r.worker:
		return "worker"
	case r.realtime:
		return "realtime"
	}
	return "none"
}

// startTelemetry builds the process's metrics and (when
// OTEL_EXPORTER_OTLP_ENDPOINT is set) tracing, and observes the pool.
func startTelemetry(ctx context.Context, e env, r roles) (*telemetry.Telemetry, error) {
	tel, err := telemetry.New(ctx, telemetry.Config{Version: version, Role: r.String(), Log: e.log})
	if err != nil {
		return nil, err
	}
	if err := tel.ObservePool("main", e.pool); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if tel.Tracing() {
		e.log.Info("tracing: exporting spans over OTLP")
	}
	return tel, nil
}

// stopTelemetry flushes the spans still buffered.
func stopTelemetry(log *slog.Logger, tel *telemetry.Telemetry) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		log.Warn("telemetry shutdown", "error", err)
	}
}

// observeWorker adds the job outcomes and queue depths of a working client.
func observeWorker(e env, client *jobargs.Client) error {
	e.tel.ObserveJobs(client)
	return e.tel.ObserveQueues(e.pool)
}

// serveMetrics is the worker role's only HTTP: /metrics and /debug/pprof/ on
// METRICS_ADDR, behind API_TOKEN when set, until ctx ends.
func serveMetrics(ctx context.Context, e env) error {
	if e.cfg.MetricsAddr == "" {
		<-ctx.Done()
		return nil
	}
	ln, err := net.Listen("tcp", e.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("METRICS_ADDR: %w", err)
	}
	srv := &http.Server{Handler: api.RequireToken(e.cfg.APIToken, e.tel.Handler()), ReadHeaderTimeout: 10 * time.Second}
	e.log.Info("metrics: /metrics and /debug/pprof/", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(newPatientListener(ln, e.log, e.tel.Meter())) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
