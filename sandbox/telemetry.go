package sandbox

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Metrics of runs (Config.Meter), and a span "sandbox.run" per run
// (Config.Tracer):
//
//   - sandbox.runs: runs by status (passed, failed, timeout, error)
//   - sandbox.run.duration (s): by status
//   - sandbox.limits_hit: runs that hit a limit, by limit: time (wall
//     clock), cpu, memory, output (stdout or stderr cut), processes
const scope = "github.com/vibegrapher/vibegrapher/sandbox"

type instruments struct {
	tracer   trace.Tracer
	runs     metric.Int64Counter
	duration metric.Float64Histogram
	limits   metric.Int64Counter
}

func newInstruments(mp metric.MeterProvider, tp trace.TracerProvider) *instruments {
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	m := mp.Meter(scope)
	i := &instruments{tracer: tp.Tracer(scope)}
	// The SDK's instruments never fail for valid names; a no-op is kept
	// if one does.
	i.runs, _ = m.Int64Counter("sandbox.runs", metric.WithUnit("{run}"), metric.WithDescription("Test runs by status"))
	i.duration, _ = m.Float64Histogram("sandbox.run.duration", metric.WithUnit("s"),
		metric.WithDescription("Wall-clock duration of test runs, by status"),
		metric.WithExplicitBucketBoundaries(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
	i.limits, _ = m.Int64Counter("sandbox.limits_hit", metric.WithUnit("{run}"),
		metric.WithDescription("Runs that hit a limit: time, cpu, memory, output or processes"))
	return i
}

// observe starts a run's span; the returned func records how it ended.
func (i *instruments) observe(ctx context.Context) (context.Context, func(Result)) {
	if i == nil {
		return ctx, func(Result) {}
	}
	ctx, span := i.tracer.Start(ctx, "sandbox.run")
	return ctx, func(res Result) {
		status := attribute.String("status", string(res.Status))
		i.runs.Add(ctx, 1, metric.WithAttributes(status))
		i.duration.Record(ctx, res.Duration.Seconds(), metric.WithAttributes(status))
		for _, l := range limitsHit(res) {
			i.limits.Add(ctx, 1, metric.WithAttributes(attribute.String("limit", l)))
		}
		span.SetAttributes(status, attribute.Int("exit_code", res.ExitCode))
		if res.Status == StatusError {
			span.SetStatus(codes.Error, res.Error)
		}
		span.End()
	}
}

// limitsHit names the limits a run ran into, from what it produced.
func limitsHit(res Result) []string {
	var out []string
	switch {
	case res.Status == StatusTimeout && strings.HasPrefix(res.Error, "CPU time"):
		out = append(out, "cpu")
	case res.Status == StatusTimeout:
		out = append(out, "time")
	case strings.Contains(res.Error, "memory limit") || strings.Contains(res.Error, "out-of-memory"):
		out = append(out, "memory")
	}
	if res.StdoutTruncated || res.StderrTruncated {
		out = append(out, "output")
	}
	// RLIMIT_NPROC makes fork and thread creation fail with EAGAIN.
	if strings.Contains(res.Stderr, "can't start new thread") ||
		(strings.Contains(res.Stderr, "Resource temporarily unavailable") && strings.Contains(res.Stderr, "BlockingIOError")) {
		out = append(out, "processes")
	}
	return out
}
