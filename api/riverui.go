package api

import (
	"context"
	"log/slog"
	"net/http"

	"riverqueue.com/riverui"

	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
)

// RiverUIUser is the basic-auth user that goes with RIVER_UI_PASSWORD.
const RiverUIUser = "admin"

// NewRiverUI returns River UI's handler for /riverui/, started under ctx.
// Mount it on a Server, whose authenticate guards it: the UI can read job
// arguments and cancel and delete jobs.
func NewRiverUI(ctx context.Context, client *jobargs.Client, log *slog.Logger) (http.Handler, error) {
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    log,
		Prefix:    "/riverui",
	})
	if err != nil {
		return nil, err
	}
	if err := h.Start(ctx); err != nil {
		return nil, err
	}
	return methodProblems(h), nil
}

// methodProblems answers a method the handler refuses (its 405, with the
// Allow it sets) as the API refuses one: problem JSON. River UI's own was
// "method not allowed" in plain text, to an OPTIONS that is not a CORS
// preflight among others.
func methodProblems(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&methodProblemWriter{ResponseWriter: w, r: r}, r)
	})
}

// methodProblemWriter replaces a 405 and its body with the problem.
type methodProblemWriter struct {
	http.ResponseWriter
	r       *http.Request
	sent    bool // the handler's status went out
	refused bool // the problem went out instead: drop the handler's body
}

func (w *methodProblemWriter) WriteHeader(code int) {
	if w.refused {
		return
	}
	if w.sent || code != http.StatusMethodNotAllowed {
		w.sent = true
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.refused = true
	allow := w.Header().Get("Allow")
	w.Header().Del("X-Content-Type-Options")
	writeProblemf(w.ResponseWriter, code, "%s is not allowed on %s; allowed: %s", w.r.Method, w.r.URL.Path, allow)
}

func (w *methodProblemWriter) Write(b []byte) (int, error) {
	if w.refused {
		return len(b), nil
	}
	w.sent = true
	return w.ResponseWriter.Write(b)
}

func (w *methodProblemWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
