package api

import (
	"errors"
	"strconv"

	"github.com/go-fuego/fuego"
	"github.com/riverqueue/river/rivertype"

	"github.com/vibegrapher/vibegrapher/domain"
)

func (s *Server) getJob(c fuego.ContextNoBody) (domain.Job, error) {
	raw := c.PathParam("id")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != raw { // "+1" and "01" name no job
		return domain.Job{}, domain.NotFound("job", strconv.Quote(raw))
	}
	j, err := s.opts.Jobs.JobGet(c.Context(), id)
	if errors.Is(err, rivertype.ErrNotFound) {
		return domain.Job{}, domain.NotFound("job", raw)
	}
	if err != nil {
		return domain.Job{}, err
	}
	return jobOf(j), nil
}

// jobOf is the one place a River job row becomes the API's Job.
func jobOf(j *rivertype.JobRow) domain.Job {
	out := domain.Job{
		ID: j.ID, Kind: j.Kind, Queue: j.Queue, State: string(j.State), Attempt: j.Attempt,
		MaxAttempts: j.MaxAttempts, CreatedAt: j.CreatedAt.UTC(), FinalizedAt: j.FinalizedAt,
		Errors: make([]domain.JobError, 0, len(j.Errors)),
	}
	for _, e := range j.Errors {
		out.Errors = append(out.Errors, domain.JobError{At: e.At.UTC(), Attempt: e.Attempt, Error: e.Error})
	}
	return out
}
