package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/go-fuego/fuego"
	"github.com/go-fuego/fuego/option"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
)

// RunRequest is the optional body of POST /tests/{id}/run.
type RunRequest struct {
	DiffID    *string `json:"diff_id,omitempty" description:"Run on this diff's patched code instead of the project's head"`
	TestRunID *string `json:"test_run_id,omitempty" description:"Client-chosen UUID, the new run's id: sending the same one again (a retry whose answer was lost) answers that run as it is now and creates nothing; for another test or diff, 409"`
}

// RunAnswer is a queued run (202), or with ?wait=true the TestRun: as
// FinishedRun once Run is finished (a run still queued or running when the
// wait ends is the 202 answer, with the run as it is under test_run).
type RunAnswer struct {
	domain.TestRunAccepted
	Run *domain.TestRun `json:"test_run,omitempty"`
}

// FinishedRun is the answer with ?wait=true: the finished TestRun, as
// SPEC.md says (200), with test_run_id beside its id, and the same TestRun
// under test_run as earlier releases answered it.
type FinishedRun struct {
	domain.TestRun
	TestRunID string          `json:"test_run_id"`
	Run       *domain.TestRun `json:"test_run" description:"The same TestRun, as earlier releases answered it (deprecated: read the top-level fields)"`
}

// MarshalJSON writes a RunAnswer with its Run as a FinishedRun.
func (a RunAnswer) MarshalJSON() ([]byte, error) {
	if a.Run == nil || !a.Run.Finished() {
		type queued RunAnswer // without this method
		return json.Marshal(queued(a))
	}
	return json.Marshal(FinishedRun{TestRun: *a.Run, TestRunID: a.TestRunID, Run: a.Run})
}

func (s *Server) registerTests() {
	f := s.fuego
	tags := option.Tags("tests")
	fuego.Post(f, "/projects/{id}/tests", s.createProjectTest, tags, option.Summary("Create a test case"),
		option.DefaultStatusCode(http.StatusCreated))
	fuego.Post(f, "/tests", s.createTest, tags, option.Summary("Create a test case (project_id in the body)"),
		option.DefaultStatusCode(http.StatusCreated), problemResponse(http.StatusNotFound, "Not Found: no project with that project_id"))
	fuego.Get(f, "/projects/{id}/tests", s.listTests, tags, option.Summary("A project's test cases"))
	fuego.Get(f, "/tests/{id}", s.getTest, tags, option.Summary("One test case"))
	fuego.Delete(f, "/tests/{id}", s.deleteTest, tags, option.Summary("Delete a test case and its runs"),
		option.DefaultStatusCode(http.StatusNoContent))
	fuego.Post(f, "/tests/{id}/run", s.runTest, tags, option.Summary("Run a test on the head or on a diff"),
		option.QueryBool("wait", "wait for the result (up to the test's timeout plus a margin) and answer 200 with the TestRun"),
		option.AddResponse(http.StatusOK, "With ?wait=true: the finished TestRun", fuego.Response{Type: FinishedRun{}}),
		conflict("with diff_id, the diff's commit would be refused: it no longer applies to the branch's head, or the head already has its change"),
		option.AddResponse(http.StatusAccepted, "Queued (with ?wait=true and the run not finished in time: the TestRun as it is)", fuego.Response{Type: RunAnswer{}}))
	fuego.Post(f, "/diffs/{id}/test", s.testDiff, option.Tags("diffs"), option.Summary("Run every test of the project on the diff"),
		option.DefaultStatusCode(http.StatusAccepted), conflict("the project has no test cases, or batch_id is a batch of another diff"))
	fuego.Get(f, "/test-runs/{id}", s.getRun, tags, option.Summary("One test run"))
	fuego.Get(f, "/tests/{id}/runs", s.listRuns, tags, option.Summary("A test's runs, newest first"),
		pageParams("runs", "all of them",
			"The id of the last run of the previous page: the answer goes on after it. 400 if it is not a run of this test."))
}

func (s *Server) createProjectTest(c fuego.ContextWithBody[domain.NewTestCase]) (domain.TestCase, error) {
	in, err := readBody(s, c)
	if err != nil {
		return domain.TestCase{}, err
	}
	return s.opts.Store.CreateTest(c.Context(), c.PathParam("id"), in, s.opts.SandboxTimeout)
}

func (s *Server) createTest(c fuego.ContextWithBody[domain.NewTestCase]) (domain.TestCase, error) {
	in, err := readBody(s, c)
	if err != nil {
		return domain.TestCase{}, err
	}
	if in.ProjectID == "" {
		return domain.TestCase{}, domain.Invalid("project_id", "is required")
	}
	if _, err := db.ParseID("project", in.ProjectID); err != nil {
		return domain.TestCase{}, domain.Invalid("project_id", "must be the UUID of a project, got %q", in.ProjectID)
	}
	return s.opts.Store.CreateTest(c.Context(), in.ProjectID, in, s.opts.SandboxTimeout)
}

func (s *Server) listTests(c fuego.ContextNoBody) ([]domain.TestCase, error) {
	return s.opts.Store.ListTests(c.Context(), c.PathParam("id"))
}

func (s *Server) getTest(c fuego.ContextNoBody) (domain.TestCase, error) {
	return s.opts.Store.GetTest(c.Context(), c.PathParam("id"))
}

func (s *Server) deleteTest(c fuego.ContextNoBody) (any, error) {
	return nil, s.opts.Store.DeleteTest(c.Context(), c.PathParam("id"))
}

func (s *Server) enqueueRun(r *http.Request) db.EnqueueRun {
	return func(tx pgx.Tx, runID string) (int64, error) {
		res, err := jobargs.InsertTx(r.Context(), s.opts.Jobs, tx, jobargs.RunTestArgs{TestRunID: runID}, nil)
		if err != nil {
			return 0, err
		}
		return res.Job.ID, nil
	}
}

func (s *Server) runTest(c fuego.ContextWithBody[RunRequest]) (RunAnswer, error) {
	in, err := readBody(s, c)
	if err != nil {
		return RunAnswer{}, err
	}
	wait, err := queryBool(c.Request(), "wait")
	if err != nil {
		return RunAnswer{}, err
	}
	if in.DiffID != nil {
		if _, err := db.ParseID("diff", *in.DiffID); err != nil {
			return RunAnswer{}, domain.Invalid("diff_id", "must be the UUID of a diff, got %q", *in.DiffID)
		}
	}
	runID, err := domain.ClientID("test_run_id", in.TestRunID)
	if err != nil {
		return RunAnswer{}, err
	}
	acc, err := s.opts.Store.StartRun(c.Context(), runID, c.PathParam("id"), in.DiffID, s.enqueueRun(c.Request()))
	if err != nil {
		return RunAnswer{}, err
	}
	out := RunAnswer{TestRunAccepted: acc}
	if !wait {
		c.SetStatus(http.StatusAccepted)
		return out, nil
	}
	t, err := s.opts.Store.GetTest(c.Context(), acc.TestID)
	if err != nil {
		return out, err
	}
	run, err := s.waitRun(c.Context(), acc.TestRunID, time.Duration(t.TimeoutSeconds)*time.Second+30*time.Second)
	if err != nil {
		return out, err
	}
	out.Run = &run
	out.Status = run.Status
	if !run.Finished() {
		c.SetStatus(http.StatusAccepted)
	}
	return out, nil
}

// waitRun polls a run until it finishes or the wait is over; a run still
// queued then is answered as it is (202).
func (s *Server) waitRun(ctx context.Context, id string, max time.Duration) (domain.TestRun, error) {
	ctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		run, err := s.opts.Store.GetRun(context.WithoutCancel(ctx), id)
		if err != nil || run.Finished() {
			return run, err
		}
		select {
		case <-ctx.Done():
			return run, nil
		case <-tick.C:
		}
	}
}

// DiffTestRequest is the optional body of POST /diffs/{id}/test.
type DiffTestRequest struct {
	BatchID *string `json:"batch_id,omitempty" description:"Client-chosen UUID, the new batch's id: sending the same one again (a retry whose answer was lost) answers that batch's runs as they are now and queues none; for another diff, 409"`
}

func (s *Server) testDiff(c fuego.ContextWithBody[DiffTestRequest]) (db.DiffTestsAccepted, error) {
	in, err := readBody(s, c)
	if err != nil {
		return db.DiffTestsAccepted{}, err
	}
	batch, err := domain.ClientID("batch_id", in.BatchID)
	if err != nil {
		return db.DiffTestsAccepted{}, err
	}
	return s.opts.Store.StartDiffRuns(c.Context(), c.PathParam("id"), batch, s.enqueueRun(c.Request()))
}

func (s *Server) getRun(c fuego.ContextNoBody) (domain.TestRun, error) {
	return s.opts.Store.GetRun(c.Context(), c.PathParam("id"))
}

func (s *Server) listRuns(c fuego.ContextNoBody) ([]domain.TestRun, error) {
	page, err := queryPage(c.Request())
	if err != nil {
		return nil, err
	}
	return s.opts.Store.ListRuns(c.Context(), c.PathParam("id"), page)
}
