// Package event declares every realtime event of the product: its name on the
// wire and its payload. db.Emit writes them to the outbox, the realtime role
// delivers them to Socket.IO rooms (adding seq and project_id), and the
// AsyncAPI document is generated from these types, so the three cannot drift.
//
// An event about an entity carries that entity's id as <entity>_id, beside
// the entity itself where the event carries it whole.
package event

import (
	"time"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/pyast"
)

// Event is a payload that knows its name. Payloads are JSON objects.
type Event interface {
	EventName() string
}

// Described is what the AsyncAPI document says about an event.
type Described interface {
	Event
	EventSummary() string
}

// All returns one zero value of every event type the outbox carries, in the
// order the documentation lists them.
func All() []Described {
	return []Described{
		ConversationMessage{}, TokenUsage{}, VibecodeDelta{}, VibecodeResponse{},
		DiffCreated{}, DiffUpdated{}, CodeChanged{}, TestCompleted{}, JobStatus{},
		ProjectCreated{}, ProjectDeleted{}, SessionCreated{}, SessionCleared{},
		TestCreated{}, TestDeleted{},
	}
}

// ConversationMessage is a stored message, as soon as it exists.
type ConversationMessage struct {
	domain.ConversationMessage
	MessageID string `json:"message_id"`
	// PatchPreview is the first 10 lines of the patch, when there is one.
	PatchPreview *string `json:"patch_preview"`
}

func (ConversationMessage) EventName() string { return "conversation_message" }
func (ConversationMessage) EventSummary() string {
	return "A message of a session was stored (the person's, the VibeCoder's or the Evaluator's)."
}

// TokenUsage follows every model call.
type TokenUsage struct {
	SessionID string            `json:"session_id"`
	MessageID string            `json:"message_id" description:"the reply made of the call; for a call that failed after the model worked on it (incomplete, failed: billed, no reply), the user message"`
	ReplyTo   string            `json:"reply_to" description:"the user message the call works on"`
	TraceID   string            `json:"trace_id"`
	Usage     domain.TokenUsage `json:"usage"`
	Timestamp time.Time         `json:"timestamp"`
}

func (TokenUsage) EventName() string    { return "token_usage" }
func (TokenUsage) EventSummary() string { return "A model call finished; its token usage." }

// VibecodeDelta is streamed model text, batched.
type VibecodeDelta struct {
	SessionID string `json:"session_id"`
	MessageID string `json:"message_id"`
	TraceID   string `json:"trace_id"`
	Agent     string `json:"agent"`
	Iteration int    `json:"iteration"`
	Delta     string `json:"delta"`
}

func (VibecodeDelta) EventName() string { return "vibecode_delta" }
func (VibecodeDelta) EventSummary() string {
	return "Text a model is streaming, batched (best effort: a delta may be dropped during a database outage)."
}

// VibecodeResponse ends a user message, once. Its token usage is the sum
// over every model call behind the message, labelled with the last call's
// model, agent and iteration.
type VibecodeResponse struct {
	SessionID     string            `json:"session_id"`
	MessageID     string            `json:"message_id"`
	TraceID       string            `json:"trace_id"`
	Status        string            `json:"status" enum:"answered,diff_created,max_iterations,failed"`
	Response      *string           `json:"response,omitempty"`
	DiffID        *string           `json:"diff_id,omitempty"`
	Patch         *string           `json:"patch,omitempty"`
	CommitMessage *string           `json:"commit_message,omitempty"`
	Error         *string           `json:"error,omitempty"`
	FinalFeedback *string           `json:"final_feedback,omitempty"`
	TokenUsage    domain.TokenUsage `json:"token_usage"`
}

func (VibecodeResponse) EventName() string { return "vibecode_response" }
func (VibecodeResponse) EventSummary() string {
	return "The end of a user message: answered, diff_created, max_iterations or failed. Sent once per message."
}

// DiffCreated is a diff the Evaluator approved.
type DiffCreated struct {
	domain.Diff
	DiffID  string `json:"diff_id"`
	TraceID string `json:"trace_id"`
}

func (DiffCreated) EventName() string { return "diff_created" }
func (DiffCreated) EventSummary() string {
	return "The Evaluator approved a patch: the Diff waiting for a person's review."
}

// DiffUpdated is a diff whose status or commit message changed.
type DiffUpdated struct {
	domain.Diff
	DiffID string `json:"diff_id"`
}

func (DiffUpdated) EventName() string { return "diff_updated" }
func (DiffUpdated) EventSummary() string {
	return "A diff was reviewed, committed or got a new commit message."
}

// CodeChanged is a commit that landed on a project's branch.
type CodeChanged struct {
	ProjectID     string            `json:"project_id"`
	NewCode       string            `json:"new_code"`
	Commit        string            `json:"commit"`
	Parent        string            `json:"parent"`
	Branch        string            `json:"branch"`
	Nodes         []pyast.AgentNode `json:"nodes"`
	Timestamp     time.Time         `json:"timestamp"`
	DiffID        *string           `json:"diff_id,omitempty"`
	CommitMessage *string           `json:"commit_message,omitempty"`
}

func (CodeChanged) EventName() string { return "code_changed" }
func (CodeChanged) EventSummary() string {
	return "A commit landed: the project's new code and its agents."
}

// TestCompleted is a finished test run.
type TestCompleted struct {
	TestID     string  `json:"test_id"`
	TestRunID  string  `json:"test_run_id"`
	DiffID     *string `json:"diff_id"`
	Status     string  `json:"status" enum:"passed,failed,timeout,error"`
	Output     string  `json:"output" description:"stdout followed by stderr"`
	Stdout     string  `json:"stdout"`
	Stderr     string  `json:"stderr"`
	ExitCode   *int    `json:"exit_code"`
	DurationMS int64   `json:"duration_ms"`
	Error      *string `json:"error"`
	Commit     string  `json:"commit"`
}

func (TestCompleted) EventName() string    { return "test_completed" }
func (TestCompleted) EventSummary() string { return "A test run finished." }

// JobStatus reports a job starting, retrying, failing or completing. It is
// progress information: best effort during a database outage.
type JobStatus struct {
	JobID     int64   `json:"job_id"`
	Kind      string  `json:"kind"`
	State     string  `json:"state" enum:"running,retryable,failed,completed"`
	Attempt   int     `json:"attempt"`
	Error     *string `json:"error,omitempty"`
	MessageID string  `json:"message_id,omitempty"`
	SessionID string  `json:"session_id,omitempty"`
	TraceID   string  `json:"trace_id,omitempty"`
	TestRunID string  `json:"test_run_id,omitempty"`
	TestID    string  `json:"test_id,omitempty"`
}

func (JobStatus) EventName() string { return "job_status" }
func (JobStatus) EventSummary() string {
	return "A job started, will retry, failed or completed (vibecode, evaluate, run_test)."
}

// ProjectCreated is a new project.
type ProjectCreated struct {
	Project domain.Project `json:"project"`
}

func (ProjectCreated) EventName() string    { return "project_created" }
func (ProjectCreated) EventSummary() string { return "A project was created." }

// ProjectDeleted is a deleted project.
type ProjectDeleted struct {
	ProjectID string `json:"project_id"`
}

func (ProjectDeleted) EventName() string { return "project_deleted" }
func (ProjectDeleted) EventSummary() string {
	return "A project was deleted with everything under it: the project's last event, which ends every subscription to it (the socket leaves its room). A subscribe to it is refused; one with since below this seq first replays up to it."
}

// SessionCreated is a new session.
type SessionCreated struct {
	Session   domain.VibecodeSession `json:"session"`
	SessionID string                 `json:"session_id"`
}

func (SessionCreated) EventName() string    { return "session_created" }
func (SessionCreated) EventSummary() string { return "A vibecode session was started." }

// SessionCleared is a session whose messages and memory were deleted.
type SessionCleared struct {
	SessionID string `json:"session_id"`
}

func (SessionCleared) EventName() string { return "session_cleared" }
func (SessionCleared) EventSummary() string {
	return "A session's messages and the agents' memory were cleared."
}

// TestCreated is a new test case.
type TestCreated struct {
	Test   domain.TestCase `json:"test"`
	TestID string          `json:"test_id"`
}

func (TestCreated) EventName() string    { return "test_created" }
func (TestCreated) EventSummary() string { return "A test case was created." }

// TestDeleted is a deleted test case.
type TestDeleted struct {
	TestID string `json:"test_id"`
}

func (TestDeleted) EventName() string    { return "test_deleted" }
func (TestDeleted) EventSummary() string { return "A test case was deleted." }
