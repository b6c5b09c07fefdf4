package llm_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/vibegrapher/vibegrapher/internal/openaitest"
	"github.com/vibegrapher/vibegrapher/llm"
)

// collected sums a metric's data points whose attributes include want: a
// counter's value, or a histogram's count.
func collected(t *testing.T, r *sdkmetric.ManualReader, name string, want ...attribute.KeyValue) float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	matches := func(set attribute.Set) bool {
		for _, kv := range want {
			if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
				return false
			}
		}
		return true
	}
	var sum float64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if matches(p.Attributes) {
						sum += float64(p.Value)
					}
				}
			case metricdata.Sum[float64]:
				for _, p := range d.DataPoints {
					if matches(p.Attributes) {
						sum += p.Value
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					if matches(p.Attributes) {
						sum += float64(p.Count)
					}
				}
			}
		}
	}
	return sum
}

// A call the SDK retried counts one retry and one call; a call OpenAI
// refuses counts an error by its HTTP status.
func TestModelCallMetrics(t *testing.T) {
	s := openaitest.New(t)
	reader := sdkmetric.NewManualReader()
	c := llm.New(llm.Config{APIKey: "sk-test", BaseURL: s.URL(), SmallModel: "gpt-5-mini",
		Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	agent := attribute.String("gen_ai.agent.name", "commit_message")

	s.Enqueue(openaitest.Status(503, "busy"))
	s.Enqueue(openaitest.Text("Greet with hi").WithUsage(1_000_000, 1_000_000, 0, 0))
	if _, err := c.CommitMessage(context.Background(), llm.CommitMessageRequest{Request: "hi", Diff: "-a\n+b\n"}); err != nil {
		t.Fatal(err)
	}
	if got := collected(t, reader, "gen_ai.client.retries", agent); got != 1 {
		t.Errorf("retries = %v, want 1", got)
	}
	if got := collected(t, reader, "gen_ai.client.operation.duration", agent, attribute.String("gen_ai.request.model", "gpt-5-mini")); got != 1 {
		t.Errorf("calls = %v, want 1", got)
	}
	// gpt-5-mini: $0.25 per million input tokens, $2 per million output.
	if got := collected(t, reader, "gen_ai.client.cost.usd", agent); got != 2.25 {
		t.Errorf("cost = %v, want 2.25", got)
	}
	if got := collected(t, reader, "gen_ai.client.errors"); got != 0 {
		t.Errorf("errors = %v, want 0", got)
	}

	s.Enqueue(openaitest.Status(400, "bad request"))
	if _, err := c.CommitMessage(context.Background(), llm.CommitMessageRequest{Request: "hi", Diff: "-a\n+b\n"}); err == nil {
		t.Fatal("a 400 was accepted")
	}
	if got := collected(t, reader, "gen_ai.client.errors", agent, attribute.String("error.type", "400")); got != 1 {
		t.Errorf("errors{400} = %v, want 1", got)
	}
	if got := collected(t, reader, "gen_ai.client.operation.duration", agent, attribute.String("error.type", "400")); got != 1 {
		t.Errorf("failed calls in the duration = %v, want 1", got)
	}
}

// BenchmarkObservedCall is one Evaluator call with the SDK's meter, as the
// service records its metrics: -benchmem shows what the recording adds.
func BenchmarkObservedCall(b *testing.B) {
	s := openaitest.New(b)
	s.Handle(func(openaitest.Request) openaitest.Reply {
		return openaitest.JSON(map[string]any{"approved": true, "reasoning": "ok", "commit_message": "m"})
	})
	c := llm.New(llm.Config{APIKey: "sk-test", BaseURL: s.URL(), Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))})
	var turn llm.Items
	turn.AddUser("hello")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Evaluator(context.Background(), llm.AgentCall{SessionKey: "s", Turn: turn}); err != nil {
			b.Fatal(err)
		}
	}
}
