package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/go-fuego/fuego"
	"github.com/go-fuego/fuego/option"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/pyast"
	"github.com/vibegrapher/vibegrapher/domain/vibecode"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
	"github.com/vibegrapher/vibegrapher/llm"
)

// ReviewRequest is a person's verdict on a diff.
type ReviewRequest struct {
	Approved *bool  `json:"approved" description:"true to approve, false to reject"`
	Feedback string `json:"feedback,omitempty" description:"With a rejection: sent to the VibeCoder as the next message of the session"`
}

// CommitRequest is the optional body of a commit.
type CommitRequest struct {
	CommitMessage string `json:"commit_message,omitempty" description:"Overrides the Evaluator's commit message"`
}

// RefineRequest asks the small model for a better commit message.
type RefineRequest struct {
	Prompt         string `json:"prompt,omitempty" description:"How to change the message, e.g. 'shorter'"`
	CurrentMessage string `json:"current_message,omitempty" description:"The message to start from; the diff's when omitted"`
}

// RefinedDiff is the answer of refine-message: the Diff with its new commit
// message, which is also given as refined_message (the field the frontend
// reads, as the Python backend answered).
type RefinedDiff struct {
	domain.Diff
	RefinedMessage string `json:"refined_message" description:"The new commit message, also stored as the diff's commit_message"`
}

func (s *Server) registerDiffs() {
	f := s.fuego
	tags := option.Tags("diffs")
	fuego.Get(f, "/projects/{id}/diffs", s.projectDiffs, tags, option.Summary("A project's diffs, newest first"),
		option.Query("status", "evaluator_approved, human_approved, human_rejected or committed"))
	fuego.Get(f, "/sessions/{id}/diffs", s.sessionDiffs, tags, option.Summary("A session's diffs, newest first"))
	fuego.Get(f, "/sessions/{id}/diffs/pending", s.pendingDiffs, tags, option.Summary("A session's diffs waiting for a commit"))
	fuego.Get(f, "/diffs/{id}", s.getDiff, tags, option.Summary("One diff"))
	fuego.Get(f, "/diffs/{id}/preview", s.previewDiff, tags, option.Summary("The code before and after the diff"),
		conflict("the diff does not apply to its base commit"))
	fuego.Post(f, "/diffs/{id}/review", s.reviewDiff, tags, option.Summary("A person's verdict"),
		option.Description("Approve (human_approved) or reject (human_rejected). Rejection feedback goes to the VibeCoder as the next message of the session, with its own job and events. An approved diff may be reviewed again until it is committed (a person changing their mind); a rejection is final."),
		conflict("the diff is already rejected or committed"))
	fuego.Post(f, "/diffs/{id}/commit", s.commitDiff, tags, option.Summary("Commit the diff onto the branch head"),
		option.Description("If the head moved since the diff's base commit and the diff still applies, it is committed on the new head; otherwise 409 with the failing hunk and nothing changes."),
		conflict("the diff no longer applies to the moved head, or is committed or rejected"))
	fuego.Post(f, "/diffs/{id}/refine-message", s.refineMessage, tags, option.Summary("A new commit message from the small model"),
		option.Description("Stores the new message as the diff's commit_message and answers the Diff with it also as refined_message."),
		conflict("the diff is already committed"),
		problemResponse(http.StatusServiceUnavailable, "Service Unavailable: the database or the small model is unavailable; retry shortly"))
	fuego.Get(f, "/projects/{id}/nodes", s.projectNodes, option.Tags("projects"), option.Summary("The agents of the current code"),
		conflict("the current code does not parse"))
}

func (s *Server) projectDiffs(c fuego.ContextNoBody) ([]domain.Diff, error) {
	status, err := queryParam(c.Request(), "status")
	if err != nil {
		return nil, err
	}
	return s.opts.Store.ListDiffs(c.Context(), db.DiffFilter{ProjectID: c.PathParam("id"), Status: status})
}

func (s *Server) sessionDiffs(c fuego.ContextNoBody) ([]domain.Diff, error) {
	return s.opts.Store.ListDiffs(c.Context(), db.DiffFilter{SessionID: c.PathParam("id")})
}

func (s *Server) pendingDiffs(c fuego.ContextNoBody) ([]domain.Diff, error) {
	return s.opts.Store.ListDiffs(c.Context(), db.DiffFilter{SessionID: c.PathParam("id"), PendingOnly: true})
}

func (s *Server) getDiff(c fuego.ContextNoBody) (domain.Diff, error) {
	return s.opts.Store.GetDiff(c.Context(), c.PathParam("id"))
}

func (s *Server) previewDiff(c fuego.ContextNoBody) (db.DiffPreview, error) {
	return s.opts.Store.PreviewDiff(c.Context(), c.PathParam("id"))
}

func (s *Server) reviewDiff(c fuego.ContextWithBody[ReviewRequest]) (db.ReviewResult, error) {
	in, err := readBody(s, c)
	if err != nil {
		return db.ReviewResult{}, err
	}
	if in.Approved == nil {
		return db.ReviewResult{}, domain.Invalid("approved", "is required: true or false")
	}
	return s.opts.Store.ReviewDiff(c.Context(), c.PathParam("id"), *in.Approved, in.Feedback, s.enqueueVibecode)
}

// enqueueVibecode inserts the first VibecodeJob of new messages in tx, one
// statement for all (River's InsertManyTx); ctx is the transaction's, which
// may store other requests' messages too (db.SubmitMessage). The ids are
// matched to the messages by the jobs' args, not by the order of the rows.
func (s *Server) enqueueVibecode(ctx context.Context, tx pgx.Tx, messageIDs []string) ([]int64, error) {
	params := make([]river.InsertManyParams, len(messageIDs))
	jobs := make([]jobargs.LoopArgs, len(messageIDs))
	for i, id := range messageIDs {
		jobs[i] = jobargs.VibecodeArgs{MessageID: id, Iteration: 1}
		params[i] = river.InsertManyParams{Args: jobs[i]}
	}
	res, err := jobargs.InsertManyTx(ctx, s.opts.Jobs, tx, params)
	if err != nil {
		return nil, err
	}
	return jobargs.InsertedIDs(jobs, res)
}

func (s *Server) commitDiff(c fuego.ContextWithBody[CommitRequest]) (db.CommitResult, error) {
	in, err := readBody(s, c)
	if err != nil {
		return db.CommitResult{}, err
	}
	if len(in.CommitMessage) > domain.MaxCommitMessageBytes {
		return db.CommitResult{}, domain.Invalid("commit_message", "must be at most %d bytes", domain.MaxCommitMessageBytes)
	}
	if strings.ContainsFunc(in.CommitMessage, vibecode.StrayControl) {
		// A terminal that shows the git log would act on an escape.
		return db.CommitResult{}, domain.Invalid("commit_message", "must not contain control characters but line breaks and tabs")
	}
	return s.opts.Store.CommitDiff(c.Context(), c.PathParam("id"), in.CommitMessage)
}

func (s *Server) refineMessage(c fuego.ContextWithBody[RefineRequest]) (RefinedDiff, error) {
	in, err := readBody(s, c)
	if err != nil {
		return RefinedDiff{}, err
	}
	if len([]rune(in.Prompt)) > 2000 {
		return RefinedDiff{}, domain.Invalid("prompt", "must be at most 2000 characters")
	}
	if len(in.CurrentMessage) > domain.MaxCommitMessageBytes {
		return RefinedDiff{}, domain.Invalid("current_message", "must be at most %d bytes", domain.MaxCommitMessageBytes)
	}
	d, err := s.opts.Store.GetDiff(c.Context(), c.PathParam("id"))
	if err != nil {
		return RefinedDiff{}, err
	}
	if d.Status == domain.DiffCommitted { // before the model is paid, or its outage answered
		return RefinedDiff{}, domain.Errorf(domain.ECONFLICT, "diff %s is already committed; its message cannot change", d.ID)
	}
	current := in.CurrentMessage
	if current == "" {
		current = d.CommitMessage
	}
	msg, err := s.opts.LLM.CommitMessage(c.Context(), llm.CommitMessageRequest{
		Request: d.VibecoderPrompt, Diff: d.DiffContent, Current: current, How: in.Prompt})
	if err != nil {
		return RefinedDiff{}, err
	}
	d, err = s.opts.Store.SetCommitMessage(c.Context(), d.ID, msg)
	return RefinedDiff{Diff: d, RefinedMessage: d.CommitMessage}, err
}

func (s *Server) projectNodes(c fuego.ContextNoBody) ([]pyast.AgentNode, error) {
	return s.opts.Store.ProjectNodes(c.Context(), c.PathParam("id"))
}
