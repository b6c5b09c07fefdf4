// Package llm is the server's one way to call a model: a thin wrapper over the
// OpenAI Responses API (openai-go v3) that streams text deltas, returns the
// final response with its raw JSON and usage, tells transient errors from
// permanent ones, and turns responses into input items that can be stored as
// JSON and replayed as conversation memory (store=false: OpenAI keeps nothing).
//
// Tests use the real client against internal/openaitest.
package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/openai/openai-go/v3/responses"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Default models, per SPEC §5.
const (
	DefaultThinkingModel = "gpt-5"
	DefaultSmallModel    = "gpt-5-mini"
	DefaultMaxRetries    = 2
)

// Config is what the client needs from the environment (SPEC §7).
type Config struct {
	// APIKey is OPENAI_API_KEY. When empty every call fails with ErrNoAPIKey
	// and nothing is sent.
	APIKey string
	// BaseURL is OPENAI_BASE_URL, e.g. "http://localhost:8080/v1"; it must
	// include the /v1 path. Empty means https://api.openai.com/v1/.
	BaseURL string
	// ThinkingModel and SmallModel default to gpt-5 and gpt-5-mini.
	ThinkingModel string
	SmallModel    string
	// MaxRetries is how often the SDK retries a 408, 409, 429, 5xx or a
	// connection error before the call returns, with backoff. 0 means
	// DefaultMaxRetries; a negative value disables retries. A stream that breaks
	// after it started is never retried here: IsTransient tells the caller.
	MaxRetries int
	// RequestTimeout bounds each attempt, including the reading of a stream.
	// 0 means no limit besides the context's.
	RequestTimeout time.Duration
	// Prices turn token usage into US dollars; DefaultPrices when nil.
	Prices Prices
	// Meter and Tracer receive the calls' metrics and spans (telemetry.go);
	// nil records nothing.
	Meter  metric.MeterProvider
	Tracer trace.TracerProvider
}

// Client calls the Responses API. It is safe for concurrent use.
type Client struct {
	cfg    Config
	svc    responses.ResponseService
	prices Prices
	inst   *instruments

	// The agents' params, encoded on their first call.
	vibecoder, evaluator agentParams
}

// responseHeaderTimeout is openai-go's own default: a server that accepts the
// connection but never answers fails instead of hanging.
const responseHeaderTimeout = 10 * time.Minute

// New makes a client from cfg alone. Unlike openai.NewClient it does not read
// OPENAI_* environment variables, so what the server was configured with is
// what it uses.
func New(cfg Config) *Client {
	if cfg.ThinkingModel == "" {
		cfg.ThinkingModel = DefaultThinkingModel
	}
	if cfg.SmallModel == "" {
		cfg.SmallModel = DefaultSmallModel
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = DefaultMaxRetries
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	transport := http.DefaultTransport
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		t = t.Clone()
		t.ResponseHeaderTimeout = responseHeaderTimeout
		// Hundreds of calls run at once (VIBECODE_WORKERS): keep their
		// connections for the next call instead of the default two, so a
		// call does not pay a new TCP and TLS handshake.
		t.MaxIdleConnsPerHost = 256
		transport = t
	}
	opts := []option.RequestOption{
		option.WithHTTPClient(&http.Client{Transport: transport}),
		option.WithEnvironmentProduction(),
		option.WithAPIKey(cfg.APIKey),
		option.WithMaxRetries(cfg.MaxRetries),
		option.WithMiddleware(countAttempts),
	}
	if cfg.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(cfg.BaseURL))
	}
	if cfg.RequestTimeout > 0 {
		opts = append(opts, option.WithRequestTimeout(cfg.RequestTimeout))
	}
	// responses.NewResponseService, not openai.NewClient: the latter adds the
	// environment's OPENAI_BASE_URL, OPENAI_ORG_ID, OPENAI_CUSTOM_HEADERS, ….
	prices := cfg.Prices
	if prices == nil {
		prices = DefaultPrices()
	}
	return &Client{cfg: cfg, svc: responses.NewResponseService(opts...), prices: prices, inst: newInstruments(cfg.Meter, cfg.Tracer)}
}

// ThinkingModel is the model for the VibeCoder and the Evaluator.
func (c *Client) ThinkingModel() string { return c.cfg.ThinkingModel }

// SmallModel is the model for small tasks such as commit messages.
func (c *Client) SmallModel() string { return c.cfg.SmallModel }

// Create runs one non-streaming Responses call. A response that ends
// "incomplete" or "failed" is returned together with a *ResponseError, so its
// usage and raw JSON can still be recorded.
func (c *Client) Create(ctx context.Context, params responses.ResponseNewParams) (*responses.Response, error) {
	return c.create(ctx, params)
}

// withBody sends body, a whole request's JSON (requestBody), instead of the
// encoding of the params passed with it, which should be empty.
func withBody(body []byte) option.RequestOption {
	return option.WithRequestBody("application/json", body)
}

// create is Create with request options, e.g. withBody.
func (c *Client) create(ctx context.Context, params responses.ResponseNewParams, opts ...option.RequestOption) (*responses.Response, error) {
	if c.cfg.APIKey == "" {
		return nil, ErrNoAPIKey
	}
	resp, err := c.svc.New(ctx, params, opts...)
	if err != nil {
		return nil, interrupted(ctx, err)
	}
	return resp, statusError(resp)
}

// Stream runs one streaming Responses call, calling onDelta (if not nil) with
// each piece of output text as it arrives, in order, on the calling goroutine.
// It returns the final response from response.completed, whose RawJSON is the
// whole response. A response that ends "incomplete" or "failed" is returned
// together with a *ResponseError; an "error" event, a broken connection or a
// stream that ends without a final response return an error and no response.
func (c *Client) Stream(ctx context.Context, params responses.ResponseNewParams, onDelta func(string)) (*responses.Response, error) {
	return c.stream(ctx, params, onDelta, option.WithJSONSet("stream", true))
}

// stream is Stream with request options, which must ask for a stream: either
// option.WithJSONSet("stream", true) or withBody of a body with "stream":true.
func (c *Client) stream(ctx context.Context, params responses.ResponseNewParams, onDelta func(string), opts ...option.RequestOption) (*responses.Response, error) {
	if c.cfg.APIKey == "" {
		return nil, ErrNoAPIKey
	}
	// What NewStreaming does, but each event is decoded into streamEvent:
	// the SDK's union type decodes every event (dozens per reply, each
	// response.created/in_progress carrying the whole response) by
	// reflection, which was a fifth of the server's CPU per message.
	var raw *http.Response
	_, err := c.svc.New(ctx, params, append(opts[:len(opts):len(opts)], option.WithResponseBodyInto(&raw))...)
	stream := ssestream.NewStream[streamEvent](ssestream.NewDecoder(raw), err)
	defer stream.Close()
	for stream.Next() {
		ev := stream.Current()
		switch ev.Type {
		case "response.output_text.delta", "response.function_call_arguments.delta", "response.refusal.delta":
			stateOf(ctx).firstToken()
			if ev.Type != "response.output_text.delta" {
				continue
			}
			var delta string
			if onDelta != nil && json.Unmarshal(ev.Delta, &delta) == nil && delta != "" {
				onDelta(delta)
			}
		case "response.completed", "response.incomplete", "response.failed":
			var resp responses.Response
			if err := resp.UnmarshalJSON(ev.Response); err != nil {
				return nil, fmt.Errorf("decode the final response: %w", err)
			}
			return &resp, statusError(&resp)
		case "error":
			return nil, &ResponseError{Status: "error", Code: ev.Code, Message: ev.Message}
		}
	}
	if err := stream.Err(); err != nil {
		var se *ssestream.StreamError
		if errors.As(err, &se) {
			return nil, streamErrorEvent(se)
		}
		return nil, interrupted(ctx, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, interrupted(ctx, err)
	}
	return nil, ErrStreamEnded
}

// streamEvent is the part of a Responses stream event Stream reads.
type streamEvent struct {
	Type     string          `json:"type"`
	Delta    json.RawMessage `json:"delta"` // a string here; other events' deltas may not be
	Code     string          `json:"code"`
	Message  string          `json:"message"`
	Response json.RawMessage `json:"response"`
}

// interrupted makes a cancelled or expired context the reported cause, since
// the SDK may surface it as a read error of the body.
func interrupted(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("%w (%v)", ctxErr, err)
	}
	return err
}
