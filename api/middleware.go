package api

import (
	"crypto/subtle"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
)

// limitBody answers 413 for bodies over MaxBodyBytes: at once when the
// Content-Length says so, else when a handler reads past the limit. A body
// must also arrive within timeout of the request's start: the connection's
// read deadline, lifted when the body ends (the server's own ReadTimeout
// would stay on the connection for the whole handler, and cut long polls
// and waits).
func limitBody(timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			writeProblemf(w, http.StatusRequestEntityTooLarge, "request body is over the limit of %d bytes", MaxBodyBytes)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(timeout)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
			r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		}
		if ct := r.Header.Get("Content-Type"); r.ContentLength != 0 && ct != "" && !isJSON(ct) && !strings.HasPrefix(r.URL.Path, "/socket.io/") {
			writeProblemf(w, http.StatusUnsupportedMediaType, "request bodies must be JSON (Content-Type: application/json), got %s", ct)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the connection's read deadline once the body is read.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

func isJSON(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.TrimSpace(strings.ToLower(mt))
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// publicPath needs no API token: probes, the API description, and
// Socket.IO, whose handshake checks the token itself.
func publicPath(p string) bool {
	return p == "/healthz" || p == "/readyz" || p == "/asyncapi.json" || p == "/swagger" || strings.HasPrefix(p, "/swagger/") ||
		strings.HasPrefix(p, "/socket.io/")
}

func riverUIPath(p string) bool { return p == "/riverui" || strings.HasPrefix(p, "/riverui/") }

// authenticate checks credentials when API_TOKEN or RIVER_UI_PASSWORD is
// set. REST calls need the token, as "Authorization: Bearer <token>" or
// "X-API-Token". River UI can read job arguments (users' prompts) and delete
// jobs, so it is never open while either is set: it takes the token (bearer,
// or as the basic-auth password a browser prompts for) or the user admin
// with RIVER_UI_PASSWORD.
func (s *Server) authenticate(next http.Handler) http.Handler {
	token, password := s.opts.APIToken, s.opts.RiverUIPassword
	if token == "" && password == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		// An OPTIONS request is no exception: a CORS preflight is answered
		// before this (cors), and anything else mounted here, pprof's
		// handlers among them, serves OPTIONS like GET.
		case publicPath(r.URL.Path):
			next.ServeHTTP(w, r)
		case riverUIPath(r.URL.Path):
			if riverUIAllowed(r, token, password) {
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="River UI", charset="UTF-8"`)
			writeProblemf(w, http.StatusUnauthorized, "River UI needs credentials: the API token (as a bearer token or the basic-auth password) or the user %s with RIVER_UI_PASSWORD", RiverUIUser)
		case token == "" || equal(bearer(r), token):
			next.ServeHTTP(w, r)
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="vibegrapher"`)
			writeProblemf(w, http.StatusUnauthorized, "a valid API token is required: send Authorization: Bearer <API_TOKEN>")
		}
	})
}

// bearer is the token a request carries: "Authorization: Bearer" or
// X-API-Token.
func bearer(r *http.Request) string {
	if auth := r.Header.Get("Authorization"); len(auth) > 7 && strings.EqualFold(auth[:7], "Bearer ") {
		return auth[7:]
	}
	return r.Header.Get("X-API-Token")
}

func riverUIAllowed(r *http.Request, token, password string) bool {
	user, pass, basic := r.BasicAuth()
	switch {
	case token != "" && equal(bearer(r), token):
		return true
	case basic && token != "" && equal(pass, token):
		return true
	case basic && password != "" && equal(user, RiverUIUser) && equal(pass, password):
		return true
	}
	return false
}

// equal compares secrets in constant time; an empty secret never matches.
func equal(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// cors answers preflights and sets the CORS headers for the allowed origins.
// Socket.IO sets its own (engine.io), so it is left alone here, and River UI
// gets none: it is a page of this origin, and the basic-auth login a browser
// keeps for it must not be usable by another site's scripts. Credentials
// (cookies, that login) are allowed only for origins listed by name: the
// REST API takes its token in a header, which needs no credentials, and
// with "*" any site's page could otherwise send the browser's.
func cors(origins []string, next http.Handler) http.Handler {
	any := slices.Contains(origins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || strings.HasPrefix(r.URL.Path, "/socket.io/") || riverUIPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		listed := slices.Contains(origins, origin)
		if !any && !listed {
			if r.Method == http.MethodOptions {
				writeProblemf(w, http.StatusForbidden, "origin %s is not allowed (CORS_ORIGINS)", origin)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		if listed {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		h.Set("Access-Control-Expose-Headers", "Location, "+EventSeqHeader)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-API-Token")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a handler panic into a logged 500 problem instead of a
// dropped connection.
func recoverPanics(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.ErrorContext(r.Context(), "handler panicked", "panic", v, "path", r.URL.Path)
				writeProblemf(w, http.StatusInternalServerError, "internal error; the server logged the details")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// RequireToken puts h behind token the way the REST API is (no-op when
// token is empty): what the worker's metrics listener uses.
func RequireToken(token string, h http.Handler) http.Handler {
	return (&Server{opts: Options{APIToken: token}}).authenticate(h)
}
