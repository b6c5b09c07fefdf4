package telemetry

import "go.opentelemetry.io/otel/metric"

// scope names the meter of this package's own instruments.
const scope = "github.com/vibegrapher/vibegrapher/telemetry"

// instruments are the ones this package records itself.
type instruments struct {
	jobOutcomes metric.Int64Counter
	jobWait     metric.Float64Histogram
}

func (i *instruments) init(mp metric.MeterProvider) error {
	m := mp.Meter(scope)
	var err error
	if i.jobOutcomes, err = m.Int64Counter("river.job.outcomes",
		metric.WithDescription("Jobs by how their attempt ended: completed, retried, discarded, cancelled, snoozed, interrupted, or rescued (handed back by the rescuer)"),
		metric.WithUnit("{job}")); err != nil {
		return err
	}
	i.jobWait, err = m.Float64Histogram("river.job.queue_wait",
		metric.WithDescription("Time from available to started"),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(secondsBuckets...))
	return err
}

// secondsBuckets are the buckets of the job durations, River's own
// (otelriver's, see New: also its fetches and inserts, under a few
// milliseconds) and the queue wait: from half a millisecond to a job's
// timeout.
var secondsBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600}

// otelriverScope is the instrumentation scope of otelriver's metrics.
const otelriverScope = "github.com/riverqueue/rivercontrib/otelriver"
