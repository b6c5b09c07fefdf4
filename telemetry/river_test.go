package telemetry

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// A job's work continues the trace its metadata names, and a job the
// rescuer handed back is counted as rescued when a worker picks it up.
func TestJobTraceMiddleware(t *testing.T) {
	tel, err := New(context.Background(), Config{SpanExporter: tracetest.NewInMemoryExporter(), SyncExport: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	mw := tel.RiverPlugins()[0].(*jobTrace)

	job := &rivertype.JobRow{
		Kind: "vibecode", Queue: "vibecode",
		Metadata: []byte(`{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`),
		Errors:   []rivertype.AttemptError{{Attempt: 1, Error: rescuerError}},
	}
	var parent trace.SpanContext
	if err := mw.Work(context.Background(), job, func(ctx context.Context) error {
		parent = trace.SpanContextFromContext(ctx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if parent.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || parent.SpanID().String() != "00f067aa0ba902b7" || !parent.IsRemote() {
		t.Errorf("the work's parent is %v, want the span in the metadata", parent)
	}

	rec := httptest.NewRecorder()
	tel.Handler().ServeHTTP(rec, httptest.NewRequest("GET", MetricsPath, nil))
	body, _ := io.ReadAll(rec.Body)
	if !strings.Contains(string(body), `river_job_outcomes_total{kind="vibecode",otel_scope_name="github.com/vibegrapher/vibegrapher/telemetry",otel_scope_schema_url="",otel_scope_version="",outcome="rescued",queue="vibecode"} 1`) {
		t.Errorf("no rescued outcome in:\n%s", grepLines(string(body), "river_job_outcomes"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// otelriver's durations get buckets in seconds: with OpenTelemetry's default
// ones (made for milliseconds) every job under 5 s fell in one bucket.
func TestRiverDurationsHaveBucketsInSeconds(t *testing.T) {
	tel, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	h, err := tel.Meter().Meter(otelriverScope).Float64Histogram("river.work_duration_histogram", metric.WithUnit("s"))
	if err != nil {
		t.Fatal(err)
	}
	h.Record(context.Background(), 0.012)
	rec := httptest.NewRecorder()
	tel.Handler().ServeHTTP(rec, httptest.NewRequest("GET", MetricsPath, nil))
	body, _ := io.ReadAll(rec.Body)
	lines := grepLines(string(body), "river_work_duration_histogram_seconds_bucket")
	if !strings.Contains(lines, `le="0.01"`) || !strings.Contains(lines, `le="0.025"`) || strings.Contains(lines, `le="25"`) {
		t.Errorf("buckets:\n%s", lines)
	}
}
