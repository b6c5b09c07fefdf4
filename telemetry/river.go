package telemetry

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/riverqueue/rivercontrib/otelriver"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// RiverPlugins are the plugins every River client of the process gets, in
// this order:
//
//   - jobTrace makes the trace context that the inserting span left in a
//     job's metadata the parent of the job's work, so that a message's jobs
//     belong to the trace of its POST (otelriver itself only links to it);
//     it also counts jobs that the rescuer handed back.
//   - otelriver's middleware: the river.insert_many and river.work spans,
//     insert and work counts and durations, and the fetch metrics of its
//     MetricEmit hook, which it gets only when installed as a plugin.
func (t *Telemetry) RiverPlugins() []rivertype.Plugin {
	if t == nil {
		return nil
	}
	return []rivertype.Plugin{
		&jobTrace{t: t},
		otelriver.NewMiddleware(&otelriver.MiddlewareConfig{
			MeterProvider:  t.Meter(),
			TracerProvider: t.Tracer(),
			// Without tracing, spans are no-ops and nothing is propagated:
			// the propagation would only decode every job's metadata (a
			// JSON map, the most objects any step allocated) for nothing.
			EnableTracePropagation:      t.Tracing(),
			EnableWorkSpanJobKindSuffix: true,
		}),
	}
}

// jobTrace is a work middleware; see RiverPlugins.
type jobTrace struct {
	river.MiddlewareDefaults
	t *Telemetry
}

// rescuerError is what River's rescuer writes as the error of an attempt
// whose worker vanished (internal/maintenance/job_rescuer.go).
const rescuerError = "Stuck job rescued by JobRescuer"

func (m *jobTrace) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	if n := len(job.Errors); n > 0 && job.Errors[n-1].Error == rescuerError {
		m.t.inst.jobOutcomes.Add(ctx, 1, metric.WithAttributes(
			attribute.String("queue", job.Queue), attribute.String("kind", job.Kind), attribute.String("outcome", "rescued")))
	}
	if m.t.Tracing() && len(job.Metadata) > 0 {
		if sc := jobSpanContext(job.Metadata); sc.IsValid() {
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
	}
	return doInner(ctx)
}

// jobSpanContext reads the traceparent otelriver stored in job metadata.
func jobSpanContext(metadata []byte) trace.SpanContext {
	var md map[string]any
	if err := json.Unmarshal(metadata, &md); err != nil {
		return trace.SpanContext{}
	}
	carrier := propagation.MapCarrier{}
	for _, k := range Propagator.Fields() {
		if v, ok := md[k].(string); ok {
			carrier[k] = v
		}
	}
	return trace.SpanContextFromContext(Propagator.Extract(context.Background(), carrier))
}

// ObserveJobs records what otelriver does not, for a client that works jobs:
// each job's outcome (completed, retried, discarded, cancelled, snoozed,
// interrupted; rescued comes from the work middleware) and its time from
// available to started, from River's event subscription. It stops at
// Shutdown.
func (t *Telemetry) ObserveJobs(client *river.Client[pgx.Tx]) {
	if t == nil {
		return
	}
	events, cancel := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed,
		river.EventKindJobCancelled, river.EventKindJobSnoozed, river.EventKindJobInterrupted)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case ev, ok := <-events:
				if !ok {
					return
				}
				t.jobEvent(ev)
			}
		}
	})
	t.stops = append(t.stops, func() { close(done); cancel(); wg.Wait() })
}

func (t *Telemetry) jobEvent(ev *river.Event) {
	if ev.Job == nil {
		return
	}
	var outcome string
	switch ev.Kind {
	case river.EventKindJobCompleted:
		outcome = "completed"
	case river.EventKindJobCancelled:
		outcome = "cancelled"
	case river.EventKindJobSnoozed:
		outcome = "snoozed"
	case river.EventKindJobInterrupted:
		outcome = "interrupted"
	case river.EventKindJobFailed:
		outcome = "retried"
		if ev.Job.State == rivertype.JobStateDiscarded {
			outcome = "discarded"
		}
	default:
		return
	}
	ctx := context.Background()
	queue, kind := attribute.String("queue", ev.Job.Queue), attribute.String("kind", ev.Job.Kind)
	t.inst.jobOutcomes.Add(ctx, 1, metric.WithAttributes(queue, kind, attribute.String("outcome", outcome)))
	if ev.JobStats != nil && ev.JobStats.QueueWaitDuration > 0 {
		t.inst.jobWait.Record(ctx, ev.JobStats.QueueWaitDuration.Seconds(), metric.WithAttributes(queue, kind))
	}
}

// ObserveQueues reports, on each scrape, how many jobs are available,
// running, retryable, scheduled and pending per queue and kind: one grouped
// count over river_job. Every process that calls it reports the same
// numbers, so dashboards take the max across instances; the worker role calls
// it.
func (t *Telemetry) ObserveQueues(pool *pgxpool.Pool) error {
	if t == nil {
		return nil
	}
	gauge, err := t.meters.Meter(scope).Int64ObservableGauge("river.queue.jobs",
		metric.WithDescription("Jobs per queue, kind and state (available, running, retryable, scheduled, pending)"),
		metric.WithUnit("{job}"))
	if err != nil {
		return err
	}
	reg, err := t.meters.Meter(scope).RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		rows, err := pool.Query(ctx, `SELECT queue, kind, state::text, count(*) FROM river_job
			WHERE state IN ('available', 'running', 'retryable', 'scheduled', 'pending') GROUP BY 1, 2, 3`)
		if err != nil {
			t.log.Warn("telemetry: count River jobs", "error", err)
			return nil
		}
		defer rows.Close()
		for rows.Next() {
			var queue, kind, state string
			var n int64
			if err := rows.Scan(&queue, &kind, &state, &n); err != nil {
				return err
			}
			o.ObserveInt64(gauge, n, metric.WithAttributes(
				attribute.String("queue", queue), attribute.String("kind", kind), attribute.String("state", state)))
		}
		return rows.Err()
	}, gauge)
	if err != nil {
		return err
	}
	t.stops = append(t.stops, func() { _ = reg.Unregister() })
	return nil
}
