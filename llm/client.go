// Package llm is the server's one way to call a model: a thin wrapper over the
// OpenAI Responses API (openai-go v3) that streams text deltas, returns the
// final response with its raw JSON and usage, tells transient errors from
// permanent ones, and turns responses into input items that can be stored as
// JSON and replayed as conversation memory (store=false: OpenAI keeps nothing).
//
// Tests use the real client against internal/openaitest.
package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/openai/openai-go/v3/responses"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/vibegrapher/vibegrapher/internal/pgtext"
)

// Default models, per SPEC §5.
const (
	DefaultThinkingModel = "gpt-5"
	DefaultSmallModel    = "gpt-5-mini"
	DefaultMaxRetries    = 2
	DefaultConcurrency   = 256
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
	// Concurrency is about how many calls this process may make at once
	// (the service passes VIBECODE_WORKERS + EVALUATE_WORKERS): up to that
	// many HTTP/1.1 connections are kept open for the next calls. 0 means
	// DefaultConcurrency.
	Concurrency int
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
	opts := []option.RequestOption{
		option.WithHTTPClient(&http.Client{Transport: newTransport(cfg.Concurrency)}),
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
	return sdkOf(c.create(ctx, params))
}

// withBody sends body, a whole request's JSON (requestBody), instead of the
// encoding of the params passed with it, which should be empty.
func withBody(body []byte) option.RequestOption {
	return option.WithRequestBody("application/json", body)
}

// create is Create with request options, e.g. withBody.
func (c *Client) create(ctx context.Context, params responses.ResponseNewParams, opts ...option.RequestOption) (*response, error) {
	if c.cfg.APIKey == "" {
		return nil, ErrNoAPIKey
	}
	var body []byte
	if _, err := c.svc.New(ctx, params, append(opts[:len(opts):len(opts)], option.WithResponseBodyInto(&body))...); err != nil {
		return nil, interrupted(ctx, err)
	}
	resp, err := decodeResponse(body)
	if err != nil {
		return nil, fmt.Errorf("decode the response: %w", err)
	}
	return resp, resp.statusError()
}

// Stream runs one streaming Responses call, calling onDelta (if not nil) with
// each piece of output text as it arrives, in order, on the calling goroutine.
// It returns the final response from response.completed, whose RawJSON is the
// whole response. A response that ends "incomplete" or "failed" is returned
// together with a *ResponseError; an "error" event, a broken connection or a
// stream that ends without a final response return an error and no response.
func (c *Client) Stream(ctx context.Context, params responses.ResponseNewParams, onDelta func(string)) (*responses.Response, error) {
	r, err := c.stream(ctx, params, onDelta, nil, option.WithJSONSet("stream", true))
	return sdkOf(r, err)
}

// sdkOf is a response decoded by openai-go, for the exported calls.
func sdkOf(r *response, err error) (*responses.Response, error) {
	if r == nil {
		return nil, err
	}
	s, decErr := sdkResponse(r)
	if decErr != nil {
		return nil, decErr
	}
	return s, err
}

// stream is Stream with request options, which must ask for a stream: either
// option.WithJSONSet("stream", true) or withBody of a body with "stream":true.
//
// It reads the events itself (sseReader, which reads what openai-go's SSE
// decoder reads, on a pooled buffer) instead of through ssestream.Stream,
// which decodes every event with encoding/json (after
// gjson looks for a top-level "error"): a reply is dozens of events, and
// response.created and in_progress carry the whole response. Here one pass
// over each event finds its type and whether it has an "error" key
// (scanEvent); only deltas, the final response and "error" events are
// decoded.
//
// onOther, if not nil, is called for each delta of a function call's
// arguments or of a refusal: a caller that holds text to batch it learns that
// time goes on while the model streams something else.
func (c *Client) stream(ctx context.Context, params responses.ResponseNewParams, onDelta func(string), onOther func(), opts ...option.RequestOption) (*response, error) {
	if c.cfg.APIKey == "" {
		return nil, ErrNoAPIKey
	}
	// The request ends with ctx only until the final event: then the rest of
	// its body is read in the background (sseReader.finish), and net/http
	// closes the connection of a request whose context ends before its body
	// does (the caller's ends as the call returns).
	rctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	finished := false
	defer func() {
		if !finished {
			stop()
			cancel(nil)
		}
	}()
	var raw *http.Response
	_, err := c.svc.New(rctx, params, append(opts[:len(opts):len(opts)], option.WithResponseBodyInto(&raw))...)
	var dec *sseReader
	if raw != nil && raw.Body != nil {
		dec = newSSEReader(raw.Body)
		defer dec.Close()
	}
	if err != nil {
		return nil, interrupted(ctx, err)
	}
	if dec == nil {
		return nil, ErrStreamEnded
	}
	if ct := raw.Header.Get("Content-Type"); !eventStream(ct) {
		return notStreamed(ctx, raw.Body, ct, onDelta)
	}
	resp, err := readStream(ctx, dec, onDelta, onOther)
	if resp != nil && stop() {
		finished = true
		dec.finish(func() { cancel(nil) })
	}
	return resp, err
}

// eventStream reports whether a response's Content-Type is that of a
// stream; none is taken as one, as openai-go does.
func eventStream(contentType string) bool {
	if contentType == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "text/event-stream"
}

// maxUnstreamed bounds the body read by notStreamed.
const maxUnstreamed = 64 << 20

// ErrNotAStream is a stream request answered with something that is not an
// event stream nor a whole response: OPENAI_BASE_URL likely points at
// something other than a Responses API (a proxy's page, another API). It is
// permanent: asking again gets the same answer.
var ErrNotAStream = errors.New("the model's server did not answer with an event stream")

// notStreamed reads the answer to a stream request that came as something
// else. Some gateways answer with the whole response as JSON: it is read as
// the stream's final response, its text passed to onDelta at once. Anything
// else is ErrNotAStream; reading it as an empty stream would retry it as a
// broken connection for minutes.
func notStreamed(ctx context.Context, body io.Reader, contentType string, onDelta func(string)) (*response, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/json" {
		raw, err := io.ReadAll(io.LimitReader(body, maxUnstreamed))
		if err != nil {
			return nil, interrupted(ctx, err)
		}
		if resp, err := decodeResponse(raw); err == nil && resp.ID != "" && resp.Status != "" {
			stateOf(ctx).firstToken()
			if text := resp.outputText(); text != "" && onDelta != nil {
				onDelta(text)
			}
			return resp, resp.statusError()
		}
	}
	return nil, fmt.Errorf("%w (Content-Type %q; check OPENAI_BASE_URL)", ErrNotAStream, contentType)
}

// readStream reads a Responses stream's events up to the final response.
func readStream(ctx context.Context, dec ssestream.Decoder, onDelta func(string), onOther func()) (*response, error) {
	for dec.Next() {
		ev := dec.Event()
		if bytes.HasPrefix(ev.Data, []byte("[DONE]")) {
			break
		}
		e, ok := scanEvent(ev.Data)
		if !ok {
			// Not the plain JSON object scanEvent reads: decode it as
			// ssestream.Stream would.
			var m map[string]json.RawMessage
			if err := json.Unmarshal(ev.Data, &m); err != nil {
				return nil, interrupted(ctx, err)
			}
			_, e.hasError = m["error"]
			if err := json.Unmarshal(m["type"], &e.typ); m["type"] != nil && err != nil {
				return nil, interrupted(ctx, err)
			}
			e.delta, e.response = m["delta"], m["response"]
		}
		if e.hasError {
			return nil, streamErrorEvent(&ssestream.StreamError{Message: "received error while streaming", Event: ev})
		}
		switch e.typ {
		case "response.output_text.delta", "response.function_call_arguments.delta", "response.refusal.delta":
			stateOf(ctx).firstToken()
			if e.typ != "response.output_text.delta" {
				if onOther != nil {
					onOther()
				}
				continue
			}
			if onDelta == nil {
				continue
			}
			if delta := deltaText(e.delta); delta != "" {
				onDelta(delta)
			}
		case "response.completed", "response.incomplete", "response.failed":
			resp, err := decodeResponse(e.response)
			if err != nil {
				return nil, fmt.Errorf("decode the final response: %w", err)
			}
			return resp, resp.statusError()
		case "error":
			var se streamEvent
			if err := json.Unmarshal(pgtext.JSON(ev.Data), &se); err != nil {
				return nil, interrupted(ctx, err)
			}
			return nil, &ResponseError{Status: "error", Code: se.Code, Message: se.Message}
		}
	}
	if err := dec.Err(); err != nil {
		return nil, interrupted(ctx, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, interrupted(ctx, err)
	}
	return nil, ErrStreamEnded
}

// deltaText is the text of a delta's JSON, or "" when it is not a string.
func deltaText(raw []byte) string {
	if len(raw) < 2 || raw[0] != '"' {
		return ""
	}
	if end, esc := stringEnd(raw, 0); end == len(raw) && !esc && plain(raw[1:end-1]) {
		return string(raw[1 : end-1])
	}
	var s string
	if json.Unmarshal(pgtext.JSON(raw), &s) != nil {
		return ""
	}
	return s
}

// plain reports whether s is valid UTF-8 without control characters: a JSON
// string's content that needs no decoding.
func plain(s []byte) bool {
	for _, c := range s {
		if c < 0x20 {
			return false
		}
	}
	return utf8.Valid(s)
}

// streamEvent is the part of an "error" event stream reads.
type streamEvent struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// scannedEvent is what scanEvent reads of an event.
type scannedEvent struct {
	typ      string
	hasError bool   // a top-level "error" key, on which ssestream.Stream ends the stream, even for "error":null
	delta    []byte // the JSON of "delta"
	response []byte // the JSON of "response"
}

// scanEvent reads an event's JSON object in one pass (eachField). ok is
// false when the data is not an object of that simple form (a malformed
// object, a key or type with escapes); the caller then decodes it with
// encoding/json. Values are skipped, not validated: the final response is
// validated when it is decoded, and a delta when it has escapes.
func scanEvent(data []byte) (ev scannedEvent, ok bool) {
	ok = eachField(data, func(key, value []byte) bool {
		switch string(key) {
		case "type":
			if value[0] != '"' {
				return false
			}
			if _, esc := stringEnd(value, 0); esc {
				return false
			}
			ev.typ = string(value[1 : len(value)-1])
		case "error":
			ev.hasError = true
		case "delta":
			ev.delta = value
		case "response":
			ev.response = value
		}
		return true
	})
	return ev, ok
}

// eachField calls f with each top-level key (without quotes) and value of
// the JSON object data, in one pass, until f returns false. It is false when
// f did or when data is not an object whose keys have no escapes.
func eachField(data []byte, f func(key, value []byte) bool) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return skipSpace(data, i+1) == len(data)
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return false
		}
		end, escaped := stringEnd(data, i)
		if end < 0 || escaped {
			return false
		}
		key := data[i+1 : end-1]
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		start := i
		if i = skipValue(data, i); i < 0 || !f(key, data[start:i]) {
			return false
		}
		var done, ok bool
		if i, done, ok = afterValue(data, i, '}'); done || !ok {
			return ok
		}
	}
}

// eachElement calls f with each element of the JSON array data.
func eachElement(data []byte, f func(value []byte)) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		return skipSpace(data, i+1) == len(data)
	}
	for {
		start := i
		if i = skipValue(data, i); i < 0 {
			return false
		}
		f(data[start:i])
		var done, ok bool
		if i, done, ok = afterValue(data, i, ']'); done || !ok {
			return ok
		}
	}
}

// afterValue reads what follows a value at i inside an object or array that
// closes with end: a ',' (next is where the next member starts), or end,
// which must close data (done; ok tells whether only space follows).
func afterValue(data []byte, i int, end byte) (next int, done, ok bool) {
	i = skipSpace(data, i)
	switch {
	case i >= len(data):
		return 0, false, false
	case data[i] == ',':
		return skipSpace(data, i+1), false, true
	case data[i] == end:
		return 0, true, skipSpace(data, i+1) == len(data)
	}
	return 0, false, false
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\n' || data[i] == '\t' || data[i] == '\r') {
		i++
	}
	return i
}

// stringEnd is the index after the closing quote of the string starting at
// data[i], or -1, and whether the string has escapes.
func stringEnd(data []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped
		}
	}
	return -1, escaped
}

// skipValue is the index after the JSON value starting at data[i], or -1.
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		end, _ := stringEnd(data, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				end, _ := stringEnd(data, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(data) && !strings.ContainsRune(",}] \t\r\n", rune(data[j])) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// interrupted makes a cancelled or expired context the reported cause, since
// the SDK may surface it as a read error of the body.
func interrupted(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("%w (%v)", ctxErr, err)
	}
	return err
}
