package vibecode

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/vibegrapher/vibegrapher/domain/pyast"
)

// MaxPatchRounds bounds how often the VibeCoder may retry a patch that does
// not apply within one step.
const MaxPatchRounds = 5

// ToolCall is a function call in a model reply.
type ToolCall struct {
	CallID    string
	Name      string
	Arguments string
}

// ToolOutput is the answer to one tool call, sent back to the model.
type ToolOutput struct {
	CallID string
	Output string
}

// ReplyDecision is what follows one VibeCoder reply.
type ReplyDecision struct {
	// Answered is a reply without tool calls: the message ends answered,
	// with the reply's text.
	Answered bool
	// Empty is a reply with neither text nor a tool call: the message
	// fails (EmptyReply), rather than end answered with nothing.
	Empty bool
	// Accepted is a valid patch: it goes to the Evaluator.
	Accepted *PatchCheck
	// Outputs answer every tool call of the reply, in order.
	Outputs []ToolOutput
	// Content is the assistant message stored for the reply: its text and
	// the accepted patch's description, or a note per refused call.
	Content string
	// Problem is the last refusal, for the error when the rounds run out.
	Problem string
}

// AfterVibeCoderReply judges a VibeCoder reply to a request about code (and,
// in a node session, node): a text answer ends the message; each
// submit_patch call is checked, the first acceptable patch is taken and later
// calls are ignored; a refused patch is explained to the model, which may try
// again in the next round.
func AfterVibeCoderReply(code string, node *pyast.AgentNode, text string, calls []ToolCall) ReplyDecision {
	if len(calls) == 0 {
		if strings.TrimSpace(text) == "" {
			return ReplyDecision{Empty: true}
		}
		return ReplyDecision{Answered: true, Content: text}
	}
	var d ReplyDecision
	var notes []string
	for _, fc := range calls {
		switch {
		case d.Accepted != nil:
			d.Outputs = append(d.Outputs, ToolOutput{fc.CallID, "Ignored: a patch from this reply was already accepted."})
		case fc.Name != SubmitPatchTool:
			d.Problem = fmt.Sprintf("unknown tool %q; the only tool is %s", fc.Name, SubmitPatchTool)
			notes = append(notes, "Tool call refused: "+d.Problem)
			d.Outputs = append(d.Outputs, ToolOutput{fc.CallID, "Error: " + d.Problem})
		default:
			c := CheckPatch(code, fc.Arguments, node)
			if c.Err != "" {
				d.Problem = c.Err
				notes = append(notes, "Patch refused: "+c.Err)
				d.Outputs = append(d.Outputs, ToolOutput{fc.CallID, "Error: " + c.Err + "\nFix the patch and call submit_patch again."})
				continue
			}
			d.Accepted = &c
			// The message shows the patch it carries: the refusals before it
			// in the same reply are the model's drafts (still in its memory,
			// as tool outputs), not what the person or the Evaluator reviews.
			notes = []string{c.Description}
			d.Outputs = append(d.Outputs, ToolOutput{fc.CallID, "The patch applies cleanly and the result is valid Python. It was sent to the reviewer."})
		}
	}
	d.Content = strings.TrimSpace(text + "\n" + strings.Join(notes, "\n"))
	return d
}

// EmptyReply is the end of a step whose reply had neither text nor a tool
// call (only reasoning, or no output at all).
func EmptyReply() error {
	return Permanent("the VibeCoder's reply had neither text nor a patch")
}

// NoPatchAfterRounds is the end of a step whose rounds ran out without an
// acceptable patch.
func NoPatchAfterRounds(problem string) error {
	return Permanent(fmt.Sprintf("the VibeCoder did not produce a patch that applies after %d attempts; last problem: %s", MaxPatchRounds, problem))
}

// Verdict is the Evaluator's structured answer.
type Verdict struct {
	Approved      bool   `json:"approved"`
	Reasoning     string `json:"reasoning"`
	CommitMessage string `json:"commit_message"`
}

// Next is the step after an Evaluator verdict.
type Next int

const (
	// Approve makes the Diff and ends the message diff_created.
	Approve Next = iota
	// Revise sends the feedback to the VibeCoder's next iteration.
	Revise
	// GiveUp ends the message max_iterations.
	GiveUp
)

// VerdictDecision is what follows an Evaluator verdict.
type VerdictDecision struct {
	Next Next
	// CommitMessage is the approved diff's message: the Evaluator's, else
	// the first line of the VibeCoder's description.
	CommitMessage string
	// Content is the assistant message stored for the verdict.
	Content string
}

// AfterVerdict decides what follows verdict v on the patch of iteration
// (1-based) when at most maxIterations are allowed; proposal is the
// VibeCoder's message that carried the patch.
func AfterVerdict(v Verdict, iteration, maxIterations int, proposal string) VerdictDecision {
	if v.Approved {
		msg := strings.TrimSpace(v.CommitMessage)
		if msg == "" {
			msg = firstLine(proposal, DefaultCommitMessage)
		}
		return VerdictDecision{Next: Approve, CommitMessage: msg, Content: "Approved: " + v.Reasoning}
	}
	d := VerdictDecision{Next: Revise, Content: "Rejected: " + v.Reasoning}
	if iteration >= maxIterations {
		d.Next = GiveUp
	}
	return d
}

func firstLine(s, fallback string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return fallback
	}
	return s
}

// PermanentError ends a message as failed at once: retrying cannot help.
type PermanentError struct{ Reason string }

func (e *PermanentError) Error() string { return e.Reason }

// Permanent returns a *PermanentError.
func Permanent(reason string) error { return &PermanentError{reason} }

// Failure is how a failed step ends.
type Failure struct {
	// Retry: the job runs again later; the message stays running.
	Retry bool
	// Reason is what the person is told: the job_status error while
	// retrying, the message's error when it fails.
	Reason string
}

// AfterError decides how a step that failed with err on attempt (of
// maxAttempts) ends. A permanent error, or any error on the last attempt,
// fails the message; other errors retry. Errors that know whether trying
// again can help (model call errors: a Transient method) decide for
// themselves, and say what went wrong in their own words (an Explain method);
// database and other errors are retried.
func AfterError(err error, attempt, maxAttempts int) Failure {
	reason := Explain(err)
	if !Retryable(err) {
		return Failure{Reason: reason}
	}
	if attempt < maxAttempts {
		return Failure{Retry: true, Reason: reason}
	}
	return Failure{Reason: "gave up after " + strconv.Itoa(attempt) + " attempts: " + reason}
}

// Retryable reports whether err may pass when the step runs again.
func Retryable(err error) bool {
	var perm *PermanentError
	if errors.As(err, &perm) {
		return false
	}
	var t interface{ Transient() bool }
	if errors.As(err, &t) {
		return t.Transient()
	}
	return true
}

// Explain says what went wrong in words a person can act on.
func Explain(err error) string {
	var perm *PermanentError
	if errors.As(err, &perm) {
		return perm.Reason
	}
	var e interface{ Explain() string }
	if errors.As(err, &e) {
		return e.Explain()
	}
	return err.Error()
}
