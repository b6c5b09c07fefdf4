package llm

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// The metrics of model calls follow OpenTelemetry's GenAI conventions where
// they exist (gen_ai.client.operation.duration, gen_ai.client.token.usage),
// with gen_ai.agent.name telling the VibeCoder, the Evaluator and the
// commit-message writer apart:
//
//   - gen_ai.client.operation.duration (s): every call, error.type on failures
//   - gen_ai.client.time_to_first_token (s): streamed calls, until the first
//     output delta
//   - gen_ai.client.token.usage ({token}): per call, by gen_ai.token.type
//     input, output, cached (part of input) and reasoning (part of output)
//   - gen_ai.client.errors: failed calls by error.type (the HTTP status, or
//     incomplete, failed, timeout, canceled, stream_broken, connection, …)
//   - gen_ai.client.retries: HTTP attempts the SDK retried within a call
//   - gen_ai.client.cost.usd: what the calls cost, from the price table
//
// Each call is also a span "chat <model>" of kind client.
const scope = "github.com/vibegrapher/vibegrapher/llm"

type instruments struct {
	tracer   trace.Tracer
	duration metric.Float64Histogram
	ttft     metric.Float64Histogram
	tokens   metric.Int64Histogram
	errors   metric.Int64Counter
	retries  metric.Int64Counter
	cost     metric.Float64Counter

	sets sync.Map // callKey → *callSets
}

// callKey names the metrics' attributes of a call: its model and agent.
type callKey struct{ model, agent string }

// callSets are the attribute sets of a call's metrics, made once per model
// and agent: a set is sorted and hashed when it is made, which the seven
// recordings of every call did again.
type callSets struct {
	call   metric.MeasurementOption
	tokens [4]metric.MeasurementOption // by tokenKinds
}

var tokenKinds = [4]string{"input", "output", "cached", "reasoning"}

func (i *instruments) setsOf(attrs []attribute.KeyValue, model, agent string) *callSets {
	k := callKey{model, agent}
	if s, ok := i.sets.Load(k); ok {
		return s.(*callSets)
	}
	s := &callSets{call: metric.WithAttributeSet(attribute.NewSet(slices.Clone(attrs)...))} // NewSet sorts what it is given
	for n, kind := range tokenKinds {
		s.tokens[n] = metric.WithAttributeSet(attribute.NewSet(append(attrs[:len(attrs):len(attrs)], attribute.String("gen_ai.token.type", kind))...))
	}
	got, _ := i.sets.LoadOrStore(k, s)
	return got.(*callSets)
}

func newInstruments(mp metric.MeterProvider, tp trace.TracerProvider) *instruments {
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	m := mp.Meter(scope)
	seconds := metric.WithExplicitBucketBoundaries(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 600)
	i := &instruments{tracer: tp.Tracer(scope)}
	// The SDK's instruments never fail for valid names; a no-op is kept
	// if one does.
	i.duration, _ = m.Float64Histogram("gen_ai.client.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of model calls"), seconds)
	i.ttft, _ = m.Float64Histogram("gen_ai.client.time_to_first_token", metric.WithUnit("s"),
		metric.WithDescription("Time from a streamed call's start to its first output delta"), seconds)
	i.tokens, _ = m.Int64Histogram("gen_ai.client.token.usage", metric.WithUnit("{token}"),
		metric.WithDescription("Tokens per call by type: input, output, cached (part of input), reasoning (part of output)"),
		metric.WithExplicitBucketBoundaries(1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304))
	i.errors, _ = m.Int64Counter("gen_ai.client.errors", metric.WithUnit("{call}"),
		metric.WithDescription("Failed model calls by error.type"))
	i.retries, _ = m.Int64Counter("gen_ai.client.retries", metric.WithUnit("{attempt}"),
		metric.WithDescription("HTTP attempts the client retried within a call (429, 5xx, connection errors)"))
	i.cost, _ = m.Float64Counter("gen_ai.client.cost.usd", metric.WithUnit("{USD}"),
		metric.WithDescription("What the calls cost in US dollars, from the price table (MODEL_PRICES)"))
	return i
}

// callState travels in a call's context to the SDK middleware and the
// stream reader.
type callState struct {
	attempts atomic.Int32
	once     sync.Once
	first    time.Time
}

type callStateKey struct{}

func stateOf(ctx context.Context) *callState {
	s, _ := ctx.Value(callStateKey{}).(*callState)
	return s
}

// firstToken notes the first output delta of a streamed call.
func (s *callState) firstToken() {
	if s != nil {
		s.once.Do(func() { s.first = time.Now() })
	}
}

// countAttempts is an openai-go middleware; it runs once per HTTP attempt.
func countAttempts(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	if s := stateOf(req.Context()); s != nil {
		s.attempts.Add(1)
	}
	return next(req)
}

// observe runs one model call for agent in a span and records its metrics.
func (c *Client) observe(ctx context.Context, agent string, p responses.ResponseNewParams, call func(context.Context) (*response, error)) (*response, error) {
	model := string(p.Model)
	attrs := []attribute.KeyValue{
		attribute.String("gen_ai.operation.name", "chat"),
		attribute.String("gen_ai.provider.name", "openai"),
		attribute.String("gen_ai.request.model", model),
		attribute.String("gen_ai.agent.name", agent),
	}
	ctx, span := c.inst.tracer.Start(ctx, "chat "+model, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	defer span.End()
	st := &callState{}
	start := time.Now()
	resp, err := call(context.WithValue(ctx, callStateKey{}, st))
	elapsed := time.Since(start)

	sets := c.inst.setsOf(attrs, model, agent)
	if resp != nil {
		u := resp.usage()
		for n, tokens := range [4]int64{u.PromptTokens, u.CompletionTokens, u.CachedTokens, u.ReasoningTokens} {
			c.inst.tokens.Record(ctx, tokens, sets.tokens[n])
		}
		cost := c.prices.Cost(u)
		c.inst.cost.Add(ctx, cost, sets.call)
		span.SetAttributes(
			attribute.String("gen_ai.response.model", resp.Model),
			attribute.String("gen_ai.response.id", resp.ID),
			attribute.Int64("gen_ai.usage.input_tokens", u.PromptTokens),
			attribute.Int64("gen_ai.usage.output_tokens", u.CompletionTokens),
			attribute.Float64("vibegrapher.cost_usd", cost))
	}
	if !st.first.IsZero() {
		c.inst.ttft.Record(ctx, st.first.Sub(start).Seconds(), sets.call)
	}
	if n := st.attempts.Load(); n > 1 {
		c.inst.retries.Add(ctx, int64(n-1), sets.call)
	}
	if err != nil {
		kind := errorType(err)
		failed := metric.WithAttributes(append(attrs, attribute.String("error.type", kind))...)
		c.inst.errors.Add(ctx, 1, failed)
		c.inst.duration.Record(ctx, elapsed.Seconds(), failed)
		span.SetStatus(codes.Error, ErrorMessage(err))
		span.SetAttributes(attribute.String("error.type", kind))
		return resp, err
	}
	c.inst.duration.Record(ctx, elapsed.Seconds(), sets.call)
	return resp, err
}

// errorType is a failed call's error.type: the HTTP status OpenAI answered,
// the status of a response that did not complete, or what broke.
func errorType(err error) string {
	var apiErr *openai.Error
	var respErr *ResponseError
	var netErr net.Error
	switch {
	case errors.As(err, &apiErr):
		return strconv.Itoa(apiErr.StatusCode)
	case errors.As(err, &respErr):
		return respErr.Status
	case errors.Is(err, ErrNoAPIKey):
		return "no_api_key"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, ErrStreamEnded), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "stream_broken"
	case errors.As(err, &netErr):
		return "connection"
	}
	return "other"
}
