// Package api is the HTTP side of Vibegrapher: the REST API (Fuego, with an
// OpenAPI 3 description generated from the Go types), and the Socket.IO
// server of the realtime role. Handlers are thin: decode, validate, call the
// store, map errors.
package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-fuego/fuego"
	"github.com/go-fuego/fuego/option"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
	"github.com/vibegrapher/vibegrapher/llm"
	"github.com/vibegrapher/vibegrapher/telemetry"
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
	APIToken       string   // when set, REST calls and River UI need it as a bearer token
	// RiverUIPassword, when set, also opens River UI to the user admin.
	RiverUIPassword string
	Version         string
	// Telemetry, when set, serves /metrics and /debug/pprof/ (behind
	// APIToken) and measures and traces every request.
	Telemetry *telemetry.Telemetry
	// BodyTimeout bounds reading a request's body, from the request's
	// start; DefaultBodyTimeout when zero.
	BodyTimeout time.Duration
}

// DefaultBodyTimeout leaves a 4 MiB body about 70 KB/s. A client that sends
// a body more slowly, or stops half-way, is answered 408 and let go instead
// of holding its connection (and a shutdown) for as long as it likes.
const DefaultBodyTimeout = time.Minute

// Server serves the REST API. Extra handlers (Socket.IO, River UI) are
// mounted with Mount before Handler is called.
type Server struct {
	opts  Options
	fuego *fuego.Server

	describeOnce sync.Once
	openapiJSON  []byte
	openapiErr   error
	handlerOnce  sync.Once
	handler      http.Handler
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
		// Bodies are read by readBody, which ignores unknown fields; this
		// keeps Fuego's own decoder, were it ever used, to the same rule.
		fuego.WithDisallowUnknownFields(false),
		fuego.WithSerializer(sendJSON),
		fuego.WithErrorSerializer(sendProblem),
		fuego.WithRouteOptions(option.Middleware(jsonByDefault)),
		fuego.WithEngineOptions(
			fuego.WithOpenAPIConfig(fuego.OpenAPIConfig{
				DisableLocalSave:     true,
				DisableMessages:      true,
				DisableDefaultServer: true,
				DisableSwaggerUI:     true, // ours, offline: serveDocuments
				Info:                 &openapi3.Info{Title: "Vibegrapher API", Version: APIVersion},
			}),
			fuego.WithOpenAPIGeneratorSchemaCustomizer(schemaCustomizer),
			fuego.WithErrorHandler(problem(opts.Log)),
			fuego.WithRequestContentType(jsonType),
			fuego.WithResponseContentType(jsonType),
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

// Handler returns the complete HTTP handler: routes, the OpenAPI and
// AsyncAPI documents and the docs page, wrapped in the middlewares. Tests
// serve the same handler as production.
func (s *Server) Handler() http.Handler {
	s.handlerOnce.Do(func() {
		if err := s.serveDocuments(); err != nil {
			panic(fmt.Sprintf("api: the API documents: %v", err)) // a bug in the types, caught by the tests
		}
		s.opts.Telemetry.Mount(s.fuego.Mux.Handle)
		h := routeProblems(s.fuego.Mux)
		h = s.authenticate(h)
		h = cors(s.opts.CORSOrigins, h)
		h = limitBody(cmp.Or(s.opts.BodyTimeout, DefaultBodyTimeout), h)
		h = recoverPanics(s.opts.Log, h)
		// Outermost, and the wrappers above pass the request on unchanged,
		// so it reads the route the mux matched (r.Pattern).
		s.handler = s.opts.Telemetry.Middleware(h)
	})
	return s.handler
}

// problem maps every error a handler returns to an RFC 9457 problem. It is
// the one place where error codes become HTTP statuses.
func problem(log *slog.Logger) func(context.Context, error) error {
	return func(ctx context.Context, err error) error {
		status, detail, field := classify(err)
		switch {
		case status == http.StatusServiceUnavailable:
			log.WarnContext(ctx, "request failed: unavailable", "error", err)
		case status >= 500:
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
	case errors.Is(err, os.ErrDeadlineExceeded):
		return http.StatusRequestTimeout, "the request body did not arrive in time", ""
	case errors.As(err, &maxBytes):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over the limit of %d bytes", maxBytes.Limit), ""
	case errors.As(err, &typeErr):
		name := typeErr.Field
		if name == "" {
			return http.StatusBadRequest, fmt.Sprintf("request body must be a JSON object, got a JSON %s", typeErr.Value), ""
		}
		kind := jsonKind(typeErr.Type.String())
		return http.StatusBadRequest, fmt.Sprintf("%s: must be %s %s, got a JSON %s", name, article(kind), kind, typeErr.Value), name
	case errors.As(err, &syntaxErr):
		return http.StatusBadRequest, fmt.Sprintf("request body is not valid JSON: %v (at byte %d)", syntaxErr, syntaxErr.Offset), ""
	case errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest, "request body is not valid JSON: it ends too early", ""
	case db.IsUnavailable(err):
		return http.StatusServiceUnavailable, "the database is unavailable; retry shortly", ""
	case db.IsUnmigrated(err):
		return http.StatusServiceUnavailable, "the database's schema is behind this server: run `vibegrapher migrate` (/readyz says so too)", ""
	}
	var ws fuego.ErrorWithStatus
	if errors.As(err, &ws) {
		detail := err.Error()
		var he fuego.HTTPError
		if errors.As(err, &he) && he.Detail != "" {
			detail = he.Detail
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

func article(noun string) string {
	if strings.ContainsRune("aeiou", rune(noun[0])) {
		return "an"
	}
	return "a"
}

func jsonKind(goType string) string {
	switch {
	case goType == "string", goType == "*string":
		return "string"
	case goType == "bool", goType == "*bool":
		return "boolean"
	case strings.Contains(goType, "int"):
		return "integer" // also what a 1.5 or a 1e30 is refused for
	case strings.Contains(goType, "float"):
		return "number"
	case strings.HasPrefix(goType, "[]"):
		return "array"
	}
	return "object"
}
