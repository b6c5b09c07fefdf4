// Package openaitest is a fake of the OpenAI Responses API for tests: an HTTP
// server that speaks the wire format of POST /v1/responses, JSON and
// server-sent events, to the real openai-go client. Each test scripts the
// replies it expects and inspects the requests it received.
//
//	s := openaitest.New(t)
//	s.Enqueue(openaitest.FunctionCall("submit_patch", `{"patch":"…","description":"…"}`))
//	s.Enqueue(openaitest.Text("done"))
//	client := llm.New(llm.Config{APIKey: "test", BaseURL: s.URL()})
//
// The fake checks requests the way OpenAI does where mistakes are easy: a
// missing model or API key, strict schemas that do not list every property or
// allow extra ones, tool outputs without their call (fc.ID sent instead of
// fc.CallID), calls without their output, and reasoning items without
// encrypted content when store is false. It answers those with OpenAI's error
// JSON, not with a test failure, so tests can assert on them too.
package openaitest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Server is a running fake. It is safe for concurrent use.
type Server struct {
	errorf func(format string, args ...any) // fails the test, or reports
	srv    *httptest.Server

	mu       sync.Mutex
	queue    []Reply
	handle   func(Request) Reply
	requests []Request
	conns    int
	left     int // responses the client left before their end
}

// New starts a fake server; it is closed when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{errorf: t.Errorf}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	s.srv.Config.ConnState = s.countConns
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s
}

// Serve starts a fake on ln outside a test (the load command): what would
// fail a test is passed to errorf instead. Close stops it.
func Serve(ln net.Listener, errorf func(format string, args ...any)) *Server {
	s := &Server{errorf: errorf}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	s.srv.Listener.Close()
	s.srv.Listener = ln
	s.srv.Config.ConnState = s.countConns
	s.srv.Start()
	return s
}

// Close stops a fake started with Serve.
func (s *Server) Close() { s.srv.Close() }

// URL is the base URL to give the client: it ends in /v1, as openai-go needs.
func (s *Server) URL() string { return s.srv.URL + "/v1" }

// Enqueue adds replies to serve, in order, one per request.
func (s *Server) Enqueue(replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, replies...)
}

// Handle sets a function that decides the reply to each request once the
// queue of enqueued replies is empty. It may be called concurrently.
func (s *Server) Handle(fn func(Request) Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handle = fn
}

// Requests returns every request received on /v1/responses, in order,
// including the ones that were answered with an error.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// CallsLeft is how many responses the client stopped waiting for or
// reading before their end (it cancelled the call, or its connection
// broke): streams, and unstreamed responses while they stalled
// (Reply.Stall).
func (s *Server) CallsLeft() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.left
}

// Calls is the number of requests received on /v1/responses.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// Connections is the number of connections clients opened to the fake.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

func (s *Server) countConns(_ net.Conn, state http.ConnState) {
	if state == http.StateNew {
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
	}
}

// Pending is the number of enqueued replies not served yet.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-request-id", newID("req_"))
	if r.Method != http.MethodPost || r.URL.Path != "/v1/responses" {
		s.errorf("openaitest: unexpected request %s %s (the base URL must end in /v1)", r.Method, r.URL.Path)
		writeError(w, &apiError{status: http.StatusNotFound, typ: "invalid_request_error",
			message: fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path)})
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	req, apiErr := parseRequest(r.Header.Clone(), body)
	if auth := r.Header.Get("Authorization"); !strings.HasPrefix(auth, "Bearer ") || strings.TrimPrefix(auth, "Bearer ") == "" {
		apiErr = &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error", code: "missing_api_key",
			message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."}
	}

	// A request OpenAI would reject does not consume a scripted reply.
	s.mu.Lock()
	s.requests = append(s.requests, req)
	n := len(s.requests)
	var reply Reply
	scripted := true
	switch {
	case apiErr != nil:
	case len(s.queue) > 0:
		reply, s.queue = s.queue[0], s.queue[1:]
	case s.handle != nil:
		handle := s.handle
		s.mu.Unlock()
		reply = handle(req)
		s.mu.Lock()
	default:
		scripted = false
	}
	s.mu.Unlock()

	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	if !scripted {
		msg := fmt.Sprintf("openaitest: no reply scripted for request #%d (model %q, stream %v): Enqueue more replies or set Handle", n, req.Model, req.Stream)
		s.errorf("%s", msg)
		// The client must not retry a script mismatch.
		w.Header().Set("x-should-retry", "false")
		writeError(w, &apiError{status: http.StatusInternalServerError, typ: "server_error", message: msg})
		return
	}
	for k, vs := range reply.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if reply.StatusCode >= 400 {
		writeError(w, &apiError{status: reply.StatusCode, typ: reply.ErrorType, code: reply.ErrorCode, message: reply.ErrorMessage})
		return
	}
	resp := build(req, reply)
	if req.Stream && !reply.Unstreamed {
		defer func() { // also when the stream panics to abort the connection
			if r.Context().Err() != nil {
				s.mu.Lock()
				s.left++
				s.mu.Unlock()
			}
		}()
		stream(r.Context(), w, resp, reply)
		if reply.Linger > 0 { // the events go now; the body ends later
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
			stall(r.Context(), reply.Linger)
		}
		return
	}
	if !stall(r.Context(), reply.Stall) {
		s.mu.Lock()
		s.left++
		s.mu.Unlock()
		return
	}
	if reply.CutAfter > 0 {
		panic(http.ErrAbortHandler)
	}
	if reply.StreamErrorCode != "" || reply.StreamErrorMessage != "" {
		writeError(w, &apiError{status: http.StatusInternalServerError, typ: "server_error", code: reply.StreamErrorCode, message: reply.StreamErrorMessage})
		return
	}
	writeJSON(w, http.StatusOK, resp.final())
}
