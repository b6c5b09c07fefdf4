package openaitest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Item is one output item of a scripted response. Leave ID and CallID empty to
// have them generated ("msg_…", "fc_…", "call_…", "rs_…") when the reply is served.
type Item struct {
	// Type is "message", "function_call" or "reasoning".
	Type string
	// Text of an assistant message.
	Text string
	// Refusal, when set, makes the assistant message a refusal (its one
	// content part) instead of Text.
	Refusal string
	// Name and Arguments of a function call.
	Name      string
	Arguments string
	// Summary of a reasoning item.
	Summary string
	ID      string
	CallID  string
}

// Reply is what the fake answers to one request: a completed response made of
// Items, or an HTTP error when StatusCode is set. Build it with Text,
// FunctionCall, JSON, Reasoning or Status and refine it with the With* methods.
type Reply struct {
	Items []Item

	// StatusCode, when >= 400, makes the reply an OpenAI error response with the
	// body {"error":{"message","type","param","code"}}.
	StatusCode   int
	ErrorMessage string
	ErrorType    string
	ErrorCode    string

	// Header is added to the HTTP response.
	Header http.Header

	// Usage reported on the response; nil means a non-zero usage derived from
	// the sizes of the request and of the output.
	Usage *Usage

	// Delay is slept before each streamed delta (text, arguments, summary).
	Delay time.Duration

	// Stall is waited before the output, as a model reasons before it
	// writes: a stream sends response.created and response.in_progress
	// first, an unstreamed response nothing. A client that goes away
	// meanwhile is counted by CallsLeft.
	Stall time.Duration

	// Outcome of the response: "" or "completed", "incomplete" (with
	// IncompleteReason) or "failed" (with ErrorCode and ErrorMessage, which then
	// go in the response's error object instead of an HTTP error).
	ResponseStatus   string
	IncompleteReason string

	// StreamErrorCode and StreamErrorMessage, when set, make a stream end with
	// an "error" event after its items instead of response.completed. A
	// non-streaming request gets a 500 with that message.
	StreamErrorCode    string
	StreamErrorMessage string

	// CutAfter, when > 0, aborts the connection after that many stream events,
	// as a network failure mid-stream would. A non-streaming request gets its
	// connection aborted before any byte is written.
	CutAfter int

	// Unstreamed answers a streaming request with the whole response as
	// plain JSON, as a gateway that does not pass streams on may do.
	Unstreamed bool

	// Linger keeps a stream's body open this long after its last event, as
	// the end of a body sent across a network comes a moment after the
	// event before it. A client that leaves meanwhile is counted by
	// CallsLeft.
	Linger time.Duration
}

// Usage is the token usage of a scripted response.
type Usage struct {
	InputTokens, OutputTokens, CachedTokens, ReasoningTokens int64
}

// Text is an assistant message with the given text.
func Text(text string) Reply {
	return Reply{Items: []Item{{Type: "message", Text: text}}}
}

// Refusal is an assistant message that refuses, with the given words.
func Refusal(text string) Reply {
	return Reply{Items: []Item{{Type: "message", Refusal: text}}}
}

// FunctionCall is a call of the named function tool with the given JSON arguments.
func FunctionCall(name, arguments string) Reply {
	return Reply{Items: []Item{{Type: "function_call", Name: name, Arguments: arguments}}}
}

// JSON is an assistant message whose text is v encoded as JSON, as a model
// answers under a json_schema text format. A string or json.RawMessage is
// used as is.
func JSON(v any) Reply {
	var text string
	switch v := v.(type) {
	case string:
		text = v
	case json.RawMessage:
		text = string(v)
	case []byte:
		text = string(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			panic(fmt.Sprintf("openaitest.JSON: %v", err))
		}
		text = string(b)
	}
	return Text(text)
}

// Reasoning is a reasoning item with a summary. Its encrypted_content is set
// only when the request asked for "reasoning.encrypted_content", as OpenAI does.
func Reasoning(summary string) Reply {
	return Reply{Items: []Item{{Type: "reasoning", Summary: summary}}}
}

// Status is an OpenAI error response with the given HTTP status and message.
// Retryable statuses (408, 409, 429, 5xx) carry "retry-after-ms: 10" so the
// client's own retries do not slow tests down.
func Status(code int, message string) Reply {
	r := Reply{StatusCode: code, ErrorMessage: message}
	switch {
	case code == http.StatusUnauthorized:
		r.ErrorType, r.ErrorCode = "invalid_request_error", "invalid_api_key"
	case code == http.StatusForbidden:
		r.ErrorType, r.ErrorCode = "invalid_request_error", "unsupported_country_region_territory"
	case code == http.StatusNotFound:
		r.ErrorType, r.ErrorCode = "invalid_request_error", "model_not_found"
	case code == http.StatusTooManyRequests:
		r.ErrorType, r.ErrorCode = "requests", "rate_limit_exceeded"
	case code >= 500:
		r.ErrorType, r.ErrorCode = "server_error", "server_error"
	default:
		r.ErrorType = "invalid_request_error"
	}
	if retryable(code) {
		r = r.WithHeader("retry-after-ms", "10")
	}
	return r
}

func retryable(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusConflict ||
		code == http.StatusTooManyRequests || code >= 500
}

// And appends the items of other to r: Reasoning("…").And(FunctionCall(…)).
func (r Reply) And(other Reply) Reply {
	r.Items = append(append([]Item(nil), r.Items...), other.Items...)
	return r
}

// WithUsage sets the usage reported on the response.
func (r Reply) WithUsage(input, output, cached, reasoning int64) Reply {
	r.Usage = &Usage{InputTokens: input, OutputTokens: output, CachedTokens: cached, ReasoningTokens: reasoning}
	return r
}

// WithDelay sleeps d before each streamed delta.
func (r Reply) WithDelay(d time.Duration) Reply {
	r.Delay = d
	return r
}

// WithStall waits d before the output (Reply.Stall).
func (r Reply) WithStall(d time.Duration) Reply {
	r.Stall = d
	return r
}

// WithHeader adds a header to the HTTP response.
func (r Reply) WithHeader(key, value string) Reply {
	h := r.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set(key, value)
	r.Header = h
	return r
}

// WithErrorCode sets the "code" of the error (e.g. "insufficient_quota" on a 429).
func (r Reply) WithErrorCode(code string) Reply {
	r.ErrorCode = code
	return r
}

// Incomplete makes the response end as "incomplete" with the given reason
// ("max_output_tokens", "content_filter").
func (r Reply) Incomplete(reason string) Reply {
	r.ResponseStatus, r.IncompleteReason = "incomplete", reason
	return r
}

// Failed makes the response end as "failed" with the given error.
func (r Reply) Failed(code, message string) Reply {
	r.ResponseStatus, r.ErrorCode, r.ErrorMessage = "failed", code, message
	return r
}

// StreamError makes a stream end with an "error" event after its items.
func (r Reply) StreamError(code, message string) Reply {
	r.StreamErrorCode, r.StreamErrorMessage = code, message
	return r
}

// Cut aborts the connection after n stream events.
func (r Reply) Cut(n int) Reply {
	r.CutAfter = n
	return r
}
