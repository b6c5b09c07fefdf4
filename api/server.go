// Package api is the HTTP side of Vibegrapher: the REST API (Fuego, with an
// OpenAPI 3 description generated from the Go types), and the Socket.IO
// server of the realtime role. Handlers are thin: decode, validate, call the
// store, map errors.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-fuego/fuego"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
	"github.com/vibegrapher/vibegrapher/llm"
)

// MaxBodyBytes bounds every request body. Code fields have their own, smaller
// limit (domain.MaxCodeBytes); this one leaves room for JSON escaping.
const MaxBodyBytes = 4 << 20

// Options configure the HTTP server.
type Options struct {
	Store *db.Store
	Jobs  *jobargs.Client // inserts and reads River jobs
	LLM   *llm.Client     // commit-message refinement
	// SandboxTimeout is SANDBOX_TIMEOUT, the longest a test case may ask for.
	SandboxTimeout time.Duration
	Schema         *db.Schema
	Log            *slog.Logger
	CORSOrigins    []string // "*" allows any origin
	APIToken       string   // when set, REST calls need it as a bearer token
	Version        string
}

// Server serves the REST API. Extra handlers (Socket.IO, River UI) are
// mounted with Mount before Handler is called.
type Server struct {
	opts  Options
	fuego *fuego.Server
}

// New registers every route of the REST API.
func New(opts Options) *Server {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.SandboxTimeout <= 0 {
		opts.SandboxTimeout = 30 * time.Second
	}
	f := fuego.NewServer(
		fuego.WithoutStartupMessages(),
		fuego.WithMaxBodySize(MaxBodyBytes),
		fuego.WithLoggingMiddleware(fuego.LoggingConfig{DisableRequest: true, DisableResponse: true}),
		fuego.WithEngineOptions(
			fuego.WithOpenAPIConfig(fuego.OpenAPIConfig{
				DisableLocalSave:     true,
				DisableMessages:      true,
				DisableDefaultServer: true,
				Info: &openapi3.Info{
					Title:       "Vibegrapher API",
					Version:     opts.Version,
					Description: "Change an OpenAI Agents SDK workflow by talking to it. Realtime events are on Socket.IO at /socket.io/.",
				},
			}),
			fuego.WithErrorHandler(problem(opts.Log)),
		),
	)
	s := &Server{opts: opts, fuego: f}
	s.registerHealth()
	s.registerProjects()
	s.registerSessions()
	s.registerDiffs()
	s.registerTests()
	return s
}

// Mount serves h under pattern (e.g. "/socket.io/"), outside the OpenAPI
// description.
func (s *Server) Mount(pattern string, h http.Handler) {
	s.fuego.Mux.Handle(pattern, h)
}

// Handler returns the complete HTTP handler: routes, the OpenAPI spec and UI
// under /swagger/, wrapped in the middlewares. Tests serve the same handler
// as production.
func (s *Server) Handler() http.Handler {
	s.fuego.OutputOpenAPISpec()
	s.fuego.RegisterOpenAPIRoutes(s.fuego)
	var h http.Handler = s.fuego.Mux
	h = s.requireToken(h)
	h = cors(s.opts.CORSOrigins, h)
	h = limitBody(h)
	h = recoverPanics(s.opts.Log, h)
	return h
}

// problem maps every error a handler returns to an RFC 9457 problem. It is
// the one place where error codes become HTTP statuses.
func problem(log *slog.Logger) func(context.Context, error) error {
	return func(ctx context.Context, err error) error {
		status, detail, field := classify(err)
		if status >= 500 && status != http.StatusServiceUnavailable {
			log.ErrorContext(ctx, "request failed", "error", err)
			detail = "internal error; the server logged the details"
		}
		p := fuego.HTTPError{Err: err, Status: status, Title: http.StatusText(status), Detail: detail}
		if field != "" {
			p.Errors = []fuego.ErrorItem{{Name: field, Reason: detail}}
		}
		return p
	}
}

func classify(err error) (status int, detail, field string) {
	var de *domain.Error
	var maxBytes *http.MaxBytesError
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &de):
		return statusOf(de.Code), de.Error(), de.Field
	case errors.As(err, &maxBytes):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over the limit of %d bytes", maxBytes.Limit), ""
	case errors.As(err, &typeErr):
		name := typeErr.Field
		if name == "" {
			return http.StatusBadRequest, fmt.Sprintf("request body must be a JSON object, got a JSON %s", typeErr.Value), ""
		}
		return http.StatusBadRequest, fmt.Sprintf("%s: must be a %s, got a JSON %s", name, jsonKind(typeErr.Type.String()), typeErr.Value), name
	case errors.As(err, &syntaxErr):
		return http.StatusBadRequest, fmt.Sprintf("request body is not valid JSON: %v (at byte %d)", syntaxErr, syntaxErr.Offset), ""
	case errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest, "request body is not valid JSON: it ends too early", ""
	case db.IsUnavailable(err):
		return http.StatusServiceUnavailable, "the database is unavailable; retry shortly", ""
	}
	var ws fuego.ErrorWithStatus
	if errors.As(err, &ws) {
		detail := err.Error()
		var he fuego.HTTPError
		if errors.As(err, &he) && he.Detail != "" {
			detail = he.Detail
		}
		if i := strings.Index(detail, "json: unknown field "); i >= 0 {
			detail = "request body has an " + detail[i+len("json: "):]
		}
		return ws.StatusCode(), detail, ""
	}
	return http.StatusInternalServerError, "", ""
}

func statusOf(c domain.ErrorCode) int {
	switch c {
	case domain.EINVALID:
		return http.StatusBadRequest
	case domain.ENOTFOUND:
		return http.StatusNotFound
	case domain.ECONFLICT:
		return http.StatusConflict
	case domain.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case domain.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func jsonKind(goType string) string {
	switch {
	case goType == "string", goType == "*string":
		return "string"
	case goType == "bool", goType == "*bool":
		return "boolean"
	case strings.Contains(goType, "int"), strings.Contains(goType, "float"):
		return "number"
	case strings.HasPrefix(goType, "[]"):
		return "array"
	}
	return "object"
}

// writeProblem answers outside Fuego's handlers (middlewares).
func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(fuego.HTTPError{Title: http.StatusText(status), Status: status, Detail: detail})
}
