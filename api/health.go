package api

import (
	"context"
	"net/http"
	"time"

	"github.com/go-fuego/fuego"
	"github.com/go-fuego/fuego/option"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain"
)

// Health is the answer of the probes.
type Health struct {
	Status  string `json:"status"`
	Version string `json:"version,omitempty"`
}

func (s *Server) registerHealth() {
	tags := option.Tags("health")
	fuego.Get(s.fuego, "/healthz", func(fuego.ContextNoBody) (Health, error) {
		return Health{Status: "ok", Version: s.opts.Version}, nil
	}, tags, option.Summary("Liveness: the process serves HTTP"))
	fuego.Get(s.fuego, "/readyz", s.ready, tags,
		option.Summary("Readiness: the database answers and every migration is applied"),
		problemResponse(http.StatusServiceUnavailable, "Not ready: the database is unavailable or not migrated"))
}

func (s *Server) ready(c fuego.ContextNoBody) (Health, error) {
	ctx, cancel := context.WithTimeout(c.Context(), 3*time.Second)
	defer cancel()
	// The probe is public: the answer names the failing check, and the log
	// keeps the detail (hosts, users, database names stay out of it).
	if _, err := s.opts.Store.Pool.Exec(ctx, "SELECT 1"); err != nil {
		s.opts.Log.WarnContext(ctx, "readyz: database unavailable", "error", err)
		return Health{}, domain.Errorf(domain.EUNAVAILABLE, "database unavailable")
	}
	if err := s.opts.Schema.Check(ctx); err != nil {
		s.opts.Log.WarnContext(ctx, "readyz: database not migrated", "error", err)
		if db.IsUnavailable(err) {
			return Health{}, domain.Errorf(domain.EUNAVAILABLE, "database unavailable")
		}
		return Health{}, domain.Errorf(domain.EUNAVAILABLE, "database not migrated: %v", err)
	}
	return Health{Status: "ready", Version: s.opts.Version}, nil
}
