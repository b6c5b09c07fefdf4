package api

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"

	"riverqueue.com/riverui"

	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
)

// RiverUIUser is the basic-auth user of /riverui/ when RIVER_UI_PASSWORD is set.
const RiverUIUser = "admin"

// NewRiverUI returns River UI's handler for /riverui/, started under ctx, and
// behind basic auth when password is set: the UI can cancel and delete jobs.
func NewRiverUI(ctx context.Context, client *jobargs.Client, log *slog.Logger, password string) (http.Handler, error) {
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
	if password == "" {
		return h, nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(RiverUIUser)) != 1 ||
			subtle.ConstantTimeCompare([]byte(pass), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="River UI"`)
			writeProblem(w, http.StatusUnauthorized, "River UI needs the user admin and RIVER_UI_PASSWORD")
			return
		}
		h.ServeHTTP(w, r)
	}), nil
}
