package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/go-fuego/fuego"
)

// The API speaks JSON only, whatever the Accept header says: answers are
// application/json, errors application/problem+json (RFC 9457).
const (
	jsonType    = "application/json"
	problemType = "application/problem+json"
)

// sendJSON is Fuego's serializer for every answer of a handler.
func sendJSON(w http.ResponseWriter, _ *http.Request, ans any) error {
	w.Header().Set("Content-Type", jsonType)
	return encodeJSON(w, ans)
}

// sendProblem is Fuego's serializer for every error of a handler; the error
// handler (problem) has already made it a fuego.HTTPError.
func sendProblem(w http.ResponseWriter, _ *http.Request, err error) {
	var p fuego.HTTPError
	if !errors.As(err, &p) {
		p = fuego.HTTPError{Status: http.StatusInternalServerError, Detail: "internal error; the server logged the details"}
	}
	writeProblem(w, p)
}

// encodeJSON writes v without HTML escaping: answers carry code, where
// \u003c for < only hinders a person reading them.
func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// writeProblem writes p as the whole answer. Middlewares use it directly.
func writeProblem(w http.ResponseWriter, p fuego.HTTPError) {
	if p.Status == 0 {
		p.Status = http.StatusInternalServerError
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	w.Header().Set("Content-Type", problemType)
	w.WriteHeader(p.Status)
	_ = encodeJSON(w, p)
}

// writeProblemf answers status with detail.
func writeProblemf(w http.ResponseWriter, status int, format string, args ...any) {
	writeProblem(w, fuego.HTTPError{Status: status, Detail: fmt.Sprintf(format, args...)})
}

// jsonByDefault wraps every Fuego route. Fuego writes the status (SetStatus,
// and the DefaultStatusCode of 201/202 routes) before its serializer sets
// the Content-Type, so without this every 201 and 202 went out as the
// sniffed text/plain. A handler that sets its own type keeps it.
func jsonByDefault(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(jsonWriter{w}, r)
	})
}

type jsonWriter struct{ http.ResponseWriter }

func (w jsonWriter) WriteHeader(code int) {
	if h := w.Header(); h.Get("Content-Type") == "" && code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified {
		h.Set("Content-Type", jsonType)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w jsonWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// routeProblems answers requests that match no route as problem JSON: 404
// for an unknown path, 405 with Allow for a known path and a wrong method.
// A path with an empty segment, "." or ".." (//projects, /projects/../x)
// names no route either: the mux would redirect it to its cleaned form with
// an HTML body, and a client would reach, by a 307 that repeats a POST or
// a DELETE, a route it did not write. A subtree's root without its slash
// (/swagger, /riverui) is redirected without that HTML (redirectToSubtree).
// Everything else goes to the mux as it is.
func routeProblems(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if clean := cleanPath(r.URL.Path); clean != r.URL.Path {
			writeProblemf(w, http.StatusNotFound, "no route %s %s: a path with an empty segment, . or .. names no route (cleaned, it is %s); the routes are listed at /swagger/", r.Method, r.URL.Path, clean)
			return
		}
		h, pattern := mux.Handler(r)
		if to, ok := subtreeRedirect(r, pattern); ok {
			redirectToSubtree(w, r, to)
			return
		}
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// The mux's own 404/405 handler, run to learn which and the Allow list.
		rec := &headerRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		switch rec.code {
		case http.StatusMethodNotAllowed:
			allow := rec.header.Get("Allow")
			w.Header().Set("Allow", allow)
			writeProblemf(w, http.StatusMethodNotAllowed, "%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow)
		case http.StatusNotFound:
			NotFound(w, r)
		default:
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.code)
			_, _ = w.Write(rec.body.Bytes())
		}
	})
}

// subtreeRedirect is where the mux sends a request for a subtree's root
// without its slash (/swagger, /riverui): to the path with the slash, the
// pattern it found for it. ok is false for any other request.
func subtreeRedirect(r *http.Request, pattern string) (to string, ok bool) {
	i := strings.IndexByte(pattern, '/') // after "METHOD " and a host, which hold none
	if i < 0 || strings.HasSuffix(r.URL.Path, "/") || pattern[i:] != r.URL.Path+"/" {
		return "", false
	}
	return (&url.URL{Path: r.URL.Path + "/", RawQuery: r.URL.RawQuery}).String(), true
}

// redirectToSubtree answers a subtree's root without its slash. A browser
// sent there (GET, HEAD) follows a redirect with no body: net/http's carried
// an HTML note, the only HTML answer of the API outside its pages. Another
// method is refused, as an unclean path is, rather than repeated on the
// subtree by the 307 the mux answered it with.
func redirectToSubtree(w http.ResponseWriter, r *http.Request, to string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeProblemf(w, http.StatusMethodNotAllowed, "%s is not allowed on %s, a redirect to %s; allowed: GET, HEAD", r.Method, r.URL.Path, to)
		return
	}
	w.Header().Set("Location", to)
	w.WriteHeader(http.StatusTemporaryRedirect)
}

// cleanPath is the path net/http's ServeMux redirects p to: rooted, with
// no empty, "." or ".." segment, a trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	clean := path.Clean(p)
	if p[len(p)-1] == '/' && clean != "/" {
		clean += "/"
	}
	return clean
}

// NotFound answers a request for a route that does not exist here, as
// problem JSON.
func NotFound(w http.ResponseWriter, r *http.Request) {
	writeProblemf(w, http.StatusNotFound, "no route %s %s; the routes are listed at /swagger/", r.Method, r.URL.Path)
}

// NotServedHere answers, as problem JSON, a request to a process of the
// realtime role alone, which serves Socket.IO and the probes only.
func NotServedHere(w http.ResponseWriter, r *http.Request) {
	writeProblemf(w, http.StatusNotFound, "no route %s %s: this process serves Socket.IO (/socket.io/), /healthz, /readyz and /metrics only; the REST API is the api role's", r.Method, r.URL.Path)
}

// headerRecorder keeps what the mux's fallback handler writes.
type headerRecorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (h *headerRecorder) Header() http.Header { return h.header }
func (h *headerRecorder) WriteHeader(code int) {
	if h.code == 0 {
		h.code = code
	}
}

func (h *headerRecorder) Write(b []byte) (int, error) {
	if h.code == 0 {
		h.code = http.StatusOK
	}
	return h.body.Write(b)
}
