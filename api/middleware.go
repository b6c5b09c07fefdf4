package api

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
)

// limitBody answers 413 for bodies over MaxBodyBytes: at once when the
// Content-Length says so, else when a handler reads past the limit.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over the limit of %d bytes", MaxBodyBytes))
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		}
		if ct := r.Header.Get("Content-Type"); r.ContentLength != 0 && ct != "" && !isJSON(ct) && !strings.HasPrefix(r.URL.Path, "/socket.io/") {
			writeProblem(w, http.StatusUnsupportedMediaType, "request bodies must be JSON (Content-Type: application/json), got "+ct)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isJSON(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.TrimSpace(strings.ToLower(mt))
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// publicPaths need no API token: probes, the API description, and Socket.IO,
// whose handshake checks the token itself.
func publicPath(p string) bool {
	return p == "/healthz" || p == "/readyz" || strings.HasPrefix(p, "/swagger/") ||
		strings.HasPrefix(p, "/socket.io/") || strings.HasPrefix(p, "/riverui/")
}

// requireToken checks the API token on REST calls when one is configured,
// taken from "Authorization: Bearer <token>" or "X-API-Token".
func (s *Server) requireToken(next http.Handler) http.Handler {
	if s.opts.APIToken == "" {
		return next
	}
	want := []byte(s.opts.APIToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions || publicPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		got := r.Header.Get("X-API-Token")
		if auth := r.Header.Get("Authorization"); strings.HasPrefix(auth, "Bearer ") {
			got = strings.TrimPrefix(auth, "Bearer ")
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vibegrapher"`)
			writeProblem(w, http.StatusUnauthorized, "a valid API token is required: send Authorization: Bearer <API_TOKEN>")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cors answers preflights and sets the CORS headers for the allowed origins.
// Socket.IO sets its own (engine.io), so it is left alone here.
func cors(origins []string, next http.Handler) http.Handler {
	any := slices.Contains(origins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || strings.HasPrefix(r.URL.Path, "/socket.io/") {
			next.ServeHTTP(w, r)
			return
		}
		if !any && !slices.Contains(origins, origin) {
			if r.Method == http.MethodOptions {
				writeProblem(w, http.StatusForbidden, "origin "+origin+" is not allowed (CORS_ORIGINS)")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Allow-Credentials", "true")
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
				writeProblem(w, http.StatusInternalServerError, "internal error; the server logged the details")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// RequireToken puts h behind token the way the REST API is (no-op when
// token is empty): what the worker's metrics listener uses.
func RequireToken(token string, h http.Handler) http.Handler {
	return (&Server{opts: Options{APIToken: token}}).requireToken(h)
}
