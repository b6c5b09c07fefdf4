// Package telemetry is the service's OpenTelemetry setup: a meter provider
// read by a Prometheus exporter on its own registry (served at /metrics), a
// tracer provider that exports over OTLP only when OTEL_EXPORTER_OTLP_ENDPOINT
// (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, pprof handlers, and the
// instruments of the pieces that belong to no other package: HTTP, River and
// the pgx pool.
//
// Packages that record their own metrics and spans (llm, sandbox,
// api/realtime) take a metric.MeterProvider and a trace.TracerProvider from
// here; they depend on the OpenTelemetry API only. A nil *Telemetry is valid
// and records nothing, which is what tests that do not look at telemetry use.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Config says what the process is and where its spans go.
type Config struct {
	// Service is service.name; "vibegrapher" when empty.
	Service string
	// Version is service.version.
	Version string
	// Role is the process's roles ("api", "worker", "all", …), a resource
	// attribute that tells processes of one service apart.
	Role string
	// SpanExporter receives the spans. When nil, spans are exported over OTLP
	// (HTTP/protobuf, configured by the standard OTEL_EXPORTER_OTLP_* variables)
	// if TracesEnabled, and not recorded at all otherwise.
	SpanExporter sdktrace.SpanExporter
	// SyncExport exports each span as it ends instead of in batches (tests).
	SyncExport bool
	Log        *slog.Logger
}

// TracesEnabled reports whether the environment names an OTLP endpoint for
// traces: the one switch that turns tracing on.
func TracesEnabled() bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Telemetry holds the providers of one process.
type Telemetry struct {
	registry *prometheus.Registry
	meters   *sdkmetric.MeterProvider
	tracers  *sdktrace.TracerProvider // nil when tracing is off
	log      *slog.Logger
	inst     instruments
	stops    []func()
	shutdown sync.Once
	err      error // Shutdown's
}

// Propagator is the W3C trace context, used for HTTP headers and job metadata.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// New builds the providers. Metrics are always on: recording them is a few
// atomic adds, and reading happens only when /metrics is scraped.
func New(ctx context.Context, cfg Config) (*Telemetry, error) {
	if cfg.Service == "" {
		cfg.Service = "vibegrapher"
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(cfg.Service), semconv.ServiceVersion(cfg.Version),
		attribute.String("vibegrapher.role", cfg.Role)))
	if err != nil && !errors.Is(err, resource.ErrSchemaURLConflict) {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	if env, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if merged, err := resource.Merge(res, env); err == nil {
			res = merged
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	t := &Telemetry{
		registry: reg,
		meters: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res),
			// The Host header a client sends is not a label: any client
			// could mint series at will.
			sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "http.server.*"},
				sdkmetric.Stream{AttributeFilter: attribute.NewDenyKeysFilter("server.address", "server.port")})),
			// otelriver's durations are in seconds, but it gives its
			// histograms no buckets: OpenTelemetry's default ones (0, 5, 10,
			// 25, … 10000) are made for milliseconds, and put every job
			// under 5 s in one bucket (a p95 of 4.75 s for 10 ms jobs).
			sdkmetric.WithView(sdkmetric.NewView(
				sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram, Unit: "s", Scope: instrumentation.Scope{Name: otelriverScope}},
				sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: secondsBuckets}}))),
		log: cfg.Log,
	}

	spans := cfg.SpanExporter
	if spans == nil && TracesEnabled() {
		spans, err = otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("OTLP trace exporter: %w", err)
		}
	}
	if spans != nil {
		export := sdktrace.WithBatcher(spans)
		if cfg.SyncExport {
			export = sdktrace.WithSyncer(spans)
		}
		t.tracers = sdktrace.NewTracerProvider(export, sdktrace.WithResource(res))
	}
	if err := t.inst.init(t.Meter()); err != nil {
		return nil, err
	}
	return t, nil
}

// Meter is the meter provider; a no-op one for a nil Telemetry.
func (t *Telemetry) Meter() metric.MeterProvider {
	if t == nil {
		return metricnoop.NewMeterProvider()
	}
	return t.meters
}

// Tracer is the tracer provider: a no-op one when tracing is off, so spans
// cost nothing.
func (t *Telemetry) Tracer() trace.TracerProvider {
	if t == nil || t.tracers == nil {
		return tracenoop.NewTracerProvider()
	}
	return t.tracers
}

// Tracing reports whether spans are recorded and exported.
func (t *Telemetry) Tracing() bool { return t != nil && t.tracers != nil }

// Shutdown stops what Observe* started and flushes pending spans. Later
// calls return the first one's result.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	t.shutdown.Do(func() {
		for _, stop := range t.stops {
			stop()
		}
		var errs []error
		if t.tracers != nil {
			errs = append(errs, t.tracers.Shutdown(ctx))
		}
		errs = append(errs, t.meters.Shutdown(ctx))
		t.err = errors.Join(errs...)
	})
	return t.err
}
