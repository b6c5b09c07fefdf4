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
	return h, nil
}
