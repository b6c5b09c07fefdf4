package telemetry

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/vibegrapher/vibegrapher/db"
)

// ObservePool reports the pgx pool's statistics on each scrape, under
// OpenTelemetry's db.client.connection names where they exist:
//
//   - db.client.connection.count{db.client.connection.state=used|idle}
//   - db.client.connection.max
//   - db.client.connection.acquires: acquisitions so far, and
//     db.client.connection.acquire_time: their total time (rate(time) /
//     rate(acquires) is the mean acquire time)
//   - db.client.connection.waits and db.client.connection.wait_time: the
//     acquisitions that found no idle connection and had to wait, and how
//     long they waited in total. pgxpool does not expose how many wait right
//     now; a growing wait rate is the sign of a pool that is too small.
//   - db.client.connection.slot.pending{vibegrapher.transaction.class=
//     job|other}: the service's transactions (db.InTx) waiting for one of
//     the pool's slots now (db/slots.go: a job's go first), and
//     db.client.connection.slot.waits and .slot.wait_time: those that had
//     to wait, and how long in total. A busy pool's transactions queue
//     there first; a transaction with its slot may still wait above for a
//     connection, behind River's statements and reads outside transactions,
//     which take theirs from the pool directly.
//   - vibegrapher.submissions{vibegrapher.submission.stored=alone|group|
//     fallback}: messages submitted so far, by how they were stored
//     (db/submissions.go: alone, in a group with others, or alone after
//     their group could not store them), vibegrapher.messages.ended by
//     final status (db.PoolMessageEnds), and vibegrapher.submissions.waiting:
//     those waiting for a group now.
//   - vibegrapher.steps{vibegrapher.step.phase=start|end,
//     vibegrapher.step.ran=alone|group|fallback}: the steps of the vibecode
//     loop started and ended so far, by how their transaction ran
//     (db/starts.go, db/ends.go: alone, in a group with others, or alone
//     after their group could not run them; the ends that enqueue a job or
//     create a diff always go alone).
func (t *Telemetry) ObservePool(name string, pool *pgxpool.Pool) error {
	if t == nil {
		return nil
	}
	m := t.meters.Meter(scope)
	count, err := m.Int64ObservableUpDownCounter("db.client.connection.count",
		metric.WithDescription("Connections by state"), metric.WithUnit("{connection}"))
	if err != nil {
		return err
	}
	maxConns, err := m.Int64ObservableUpDownCounter("db.client.connection.max",
		metric.WithDescription("The most connections the pool opens"), metric.WithUnit("{connection}"))
	if err != nil {
		return err
	}
	acquires, err := m.Int64ObservableCounter("db.client.connection.acquires",
		metric.WithDescription("Connections acquired from the pool"), metric.WithUnit("{acquire}"))
	if err != nil {
		return err
	}
	acquireTime, err := m.Float64ObservableCounter("db.client.connection.acquire_time",
		metric.WithDescription("Total time spent acquiring connections"), metric.WithUnit("s"))
	if err != nil {
		return err
	}
	waits, err := m.Int64ObservableCounter("db.client.connection.waits",
		metric.WithDescription("Acquisitions that found no idle connection and waited"), metric.WithUnit("{acquire}"))
	if err != nil {
		return err
	}
	waitTime, err := m.Float64ObservableCounter("db.client.connection.wait_time",
		metric.WithDescription("Total time acquisitions waited for a connection"), metric.WithUnit("s"))
	if err != nil {
		return err
	}
	pending, err := m.Int64ObservableUpDownCounter("db.client.connection.slot.pending",
		metric.WithDescription("Transactions waiting for a slot of the pool"), metric.WithUnit("{transaction}"))
	if err != nil {
		return err
	}
	slotWaits, err := m.Int64ObservableCounter("db.client.connection.slot.waits",
		metric.WithDescription("Transactions that waited for a slot of the pool"), metric.WithUnit("{transaction}"))
	if err != nil {
		return err
	}
	slotWaitTime, err := m.Float64ObservableCounter("db.client.connection.slot.wait_time",
		metric.WithDescription("Total time transactions waited for a slot of the pool"), metric.WithUnit("s"))
	if err != nil {
		return err
	}
	submitted, err := m.Int64ObservableCounter("vibegrapher.submissions",
		metric.WithDescription("Messages submitted, by how they were stored"), metric.WithUnit("{message}"))
	if err != nil {
		return err
	}
	submitWaiting, err := m.Int64ObservableUpDownCounter("vibegrapher.submissions.waiting",
		metric.WithDescription("Messages waiting to be stored with others"), metric.WithUnit("{message}"))
	if err != nil {
		return err
	}
	steps, err := m.Int64ObservableCounter("vibegrapher.steps",
		metric.WithDescription("Steps of the vibecode loop started and ended, and their streamed text written (delta), by how their transaction ran"), metric.WithUnit("{step}"))
	if err != nil {
		return err
	}
	ended, err := m.Int64ObservableCounter("vibegrapher.messages.ended",
		metric.WithDescription("User messages ended, by their final status: answered, diff_created, max_iterations, failed"), metric.WithUnit("{message}"))
	if err != nil {
		return err
	}
	poolName := attribute.String("db.client.connection.pool.name", name)
	storedAs := func(how string) metric.MeasurementOption {
		return metric.WithAttributes(poolName, attribute.String("vibegrapher.submission.stored", how))
	}
	alone, grouped, fallback := storedAs("alone"), storedAs("group"), storedAs("fallback")
	stepRan := func(phase, how string) metric.MeasurementOption {
		return metric.WithAttributes(poolName, attribute.String("vibegrapher.step.phase", phase), attribute.String("vibegrapher.step.ran", how))
	}
	phases := []struct {
		stats                    func(*pgxpool.Pool) db.GroupStats
		alone, grouped, fallback metric.MeasurementOption
	}{
		{db.PoolStarts, stepRan("start", "alone"), stepRan("start", "group"), stepRan("start", "fallback")},
		{db.PoolEnds, stepRan("end", "alone"), stepRan("end", "group"), stepRan("end", "fallback")},
		{db.PoolDeltas, stepRan("delta", "alone"), stepRan("delta", "group"), stepRan("delta", "fallback")},
	}
	byClass := [...]metric.MeasurementOption{
		db.ClassJob:   metric.WithAttributes(poolName, attribute.String("vibegrapher.transaction.class", "job")),
		db.ClassOther: metric.WithAttributes(poolName, attribute.String("vibegrapher.transaction.class", "other")),
	}
	used := metric.WithAttributes(poolName, attribute.String("db.client.connection.state", "used"))
	idle := metric.WithAttributes(poolName, attribute.String("db.client.connection.state", "idle"))
	only := metric.WithAttributes(poolName)
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := pool.Stat()
		o.ObserveInt64(count, int64(s.AcquiredConns()), used)
		o.ObserveInt64(count, int64(s.IdleConns()), idle)
		o.ObserveInt64(maxConns, int64(s.MaxConns()), only)
		o.ObserveInt64(acquires, s.AcquireCount(), only)
		o.ObserveFloat64(acquireTime, s.AcquireDuration().Seconds(), only)
		o.ObserveInt64(waits, s.EmptyAcquireCount(), only)
		o.ObserveFloat64(waitTime, s.EmptyAcquireWaitTime().Seconds(), only)
		slots := db.PoolSlots(pool)
		for class, attrs := range byClass {
			o.ObserveInt64(pending, int64(slots.Waiting[class]), attrs)
			o.ObserveInt64(slotWaits, slots.Waits[class], attrs)
			o.ObserveFloat64(slotWaitTime, slots.WaitTime[class].Seconds(), attrs)
		}
		subs := db.PoolSubmissions(pool)
		o.ObserveInt64(submitted, subs.Alone, alone)
		o.ObserveInt64(submitted, subs.Grouped, grouped)
		o.ObserveInt64(submitted, subs.Fallback, fallback)
		o.ObserveInt64(submitWaiting, int64(subs.Waiting), only)
		for _, p := range phases {
			st := p.stats(pool)
			o.ObserveInt64(steps, st.Alone, p.alone)
			o.ObserveInt64(steps, st.Grouped, p.grouped)
			o.ObserveInt64(steps, st.Fallback, p.fallback)
		}
		for status, n := range db.PoolMessageEnds(pool) {
			o.ObserveInt64(ended, n, metric.WithAttributes(poolName, attribute.String("vibegrapher.message.status", status)))
		}
		return nil
	}, count, maxConns, acquires, acquireTime, waits, waitTime, pending, slotWaits, slotWaitTime, submitted, submitWaiting, steps, ended)
	if err != nil {
		return err
	}
	t.stops = append(t.stops, func() { _ = reg.Unregister() })
	return nil
}
