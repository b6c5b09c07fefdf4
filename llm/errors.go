package llm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/openai/openai-go/v3/responses"
)

// ErrNoAPIKey is returned, without any request, by a client made without an
// API key. It is permanent: retrying cannot help until the server is
// reconfigured.
var ErrNoAPIKey = errors.New("OPENAI_API_KEY is not set: the server cannot call the model")

// ErrStreamEnded means the stream closed before the response was complete.
// It is transient.
var ErrStreamEnded = errors.New("the model's stream ended before the response was complete")

// ResponseError is a model response that did not complete: the response ended
// "failed" or "incomplete", or the stream sent an "error" event.
type ResponseError struct {
	ResponseID string
	// Status is "failed", "incomplete" or "error" (an error event in a stream).
	Status string
	// Code is the error code, or the reason a response is incomplete
	// ("max_output_tokens", "content_filter").
	Code    string
	Message string
}

func (e *ResponseError) Error() string {
	var b strings.Builder
	switch e.Status {
	case "incomplete":
		b.WriteString("the model's response is incomplete")
	case "failed":
		b.WriteString("the model's response failed")
	default:
		b.WriteString("the model's stream reported an error")
	}
	if e.Code != "" {
		b.WriteString(" (" + e.Code + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.ResponseID != "" {
		b.WriteString(" [" + e.ResponseID + "]")
	}
	return b.String()
}

// transient reports whether the same request may succeed later. An incomplete
// response would end the same way again; a failure is OpenAI's unless its
// code says the request itself is at fault.
func (e *ResponseError) transient() bool {
	if e.Status == "incomplete" {
		return false
	}
	switch e.Code {
	case "", "server_error", "internal_error", "rate_limit_exceeded", "service_unavailable",
		"overloaded", "timeout", "vector_store_timeout":
		return true
	}
	return false
}

// statusError is the error of a response that did not complete, or nil.
func statusError(r *responses.Response) error { return fromSDK(r).statusError() }

// streamErrorEvent turns an event with a top-level "error" key, which
// openai-go ends the stream on, into a ResponseError.
func streamErrorEvent(se *ssestream.StreamError) error {
	var ev struct {
		Error json.RawMessage `json:"error"`
	}
	_ = json.Unmarshal(se.Event.Data, &ev)
	var detail struct {
		Code    string `json:"code"`
		Type    string `json:"type"`
		Message string `json:"message"`
	}
	if json.Unmarshal(ev.Error, &detail) != nil || (detail.Message == "" && detail.Code == "") {
		// Not an error object: "error": null from a server that adds it to
		// every event, or a bare string.
		var s string
		_ = json.Unmarshal(ev.Error, &s)
		detail.Message = strings.TrimSpace(s + " " + "(the server sent an event with an \"error\" field; openai-go stops reading the stream there)")
	}
	if detail.Code == "" {
		detail.Code = detail.Type
	}
	return &ResponseError{Status: "error", Code: detail.Code, Message: detail.Message}
}

// IsTransient reports whether err may go away if the same call is made again
// later: rate limits (except an exhausted quota), 408, 409, 5xx, connection
// failures, timeouts, a stream cut mid-way, and a cancelled context (the job
// was interrupted, e.g. by a shutdown, not judged). Invalid requests (400, 422),
// authentication and permission errors (401, 403), unknown models (404),
// incomplete responses and ErrNoAPIKey are permanent.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, ErrNoAPIKey) {
		return false
	}
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		if apiErr.Code == "insufficient_quota" {
			return false
		}
		if apiErr.Response != nil {
			switch apiErr.Response.Header.Get("x-should-retry") {
			case "true":
				return true
			case "false":
				return false
			}
		}
		s := apiErr.StatusCode
		return s == http.StatusRequestTimeout || s == http.StatusConflict || s == http.StatusTooManyRequests || s >= 500
	}
	var respErr *ResponseError
	if errors.As(err, &respErr) {
		return respErr.transient()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, ErrStreamEnded) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	if certificateError(err) {
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}

// serverSide reports whether a permanent error is the server's to fix, not
// the request's: no API key, a key refused, a model that does not exist, no
// quota left. The client is told the model is unavailable (503), not that
// its request was bad (400).
func serverSide(err error) bool {
	if errors.Is(err, ErrNoAPIKey) {
		return true
	}
	var apiErr *openai.Error
	return errors.As(err, &apiErr) && (apiErr.StatusCode == http.StatusUnauthorized || apiErr.StatusCode == http.StatusForbidden ||
		apiErr.StatusCode == http.StatusNotFound || apiErr.Code == "insufficient_quota")
}

func certificateError(err error) bool {
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verification *tls.CertificateVerificationError
	return errors.As(err, &unknownAuthority) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &verification)
}

// ErrorMessage says what went wrong in words an operator can act on: the
// HTTP status, OpenAI's own message and what to check. It never includes the
// API key.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, ErrNoAPIKey) {
		return ErrNoAPIKey.Error()
	}
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		return apiErrorMessage(apiErr)
	}
	var respErr *ResponseError
	if errors.As(err, &respErr) {
		return respErr.Error()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "the model call timed out: " + err.Error()
	case errors.Is(err, context.Canceled):
		return "the model call was cancelled before it finished (the job was stopped or the worker shut down)"
	case errors.Is(err, ErrStreamEnded), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the connection to OpenAI broke while the model was answering: " + err.Error()
	case certificateError(err):
		return "could not reach OpenAI: the server's TLS certificate was not accepted (check OPENAI_BASE_URL): " + err.Error()
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return "could not reach OpenAI (check OPENAI_BASE_URL and the network): " + err.Error()
	}
	return "the model call failed: " + err.Error()
}

func apiErrorMessage(e *openai.Error) string {
	status := fmt.Sprintf("%d", e.StatusCode)
	if text := http.StatusText(e.StatusCode); text != "" {
		status += " " + text
	}
	msg := "OpenAI returned " + status
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Code != "" {
		msg += " (code " + e.Code + ")"
	}
	var hint string
	switch {
	case e.Code == "insufficient_quota":
		hint = "the OpenAI account has no quota left: check its plan and billing"
	case e.StatusCode == http.StatusUnauthorized:
		hint = "check OPENAI_API_KEY"
	case e.StatusCode == http.StatusForbidden:
		hint = "the API key may not use this model, project or region"
	case e.StatusCode == http.StatusNotFound:
		hint = "check THINKING_MODEL and SMALL_MODEL, and that OPENAI_BASE_URL ends in /v1"
	case e.StatusCode == http.StatusTooManyRequests:
		hint = "rate limited by OpenAI: temporary, try again later"
	case e.StatusCode >= 500:
		hint = "a temporary error at OpenAI: try again later"
	}
	if hint != "" {
		msg += " — " + hint
	}
	return msg
}
