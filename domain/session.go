package domain

import (
	"encoding/json"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Session types: a global session talks about the whole file, a node session
// about one agent of it.
const (
	SessionGlobal = "global"
	SessionNode   = "node"
)

// VibecodeSession is one conversation with the VibeCoder about a project. Its
// OpenAISessionKey names the agents' memory: the same key is the same
// conversation, so creating a session for an existing key returns that one.
type VibecodeSession struct {
	ID               string    `json:"id"`
	ProjectID        string    `json:"project_id"`
	OpenAISessionKey string    `json:"openai_session_key"`
	SessionType      string    `json:"session_type" enum:"global,node"`
	NodeID           *string   `json:"node_id"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

// NewSession is the optional body of POST /projects/{id}/sessions.
type NewSession struct {
	NodeID *string `json:"node_id,omitempty" description:"Agent (Python variable) to focus on; omit for a global session"`
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// IsIdentifier reports whether s can name a Python variable (ASCII).
func IsIdentifier(s string) bool { return len(s) <= 200 && identifier.MatchString(s) }

// SessionKey is the memory key of a session: project_{id}, or
// project_{id}_node_{node} for a node session.
func SessionKey(projectID string, nodeID *string) string {
	if nodeID == nil {
		return "project_" + projectID
	}
	return "project_" + projectID + "_node_" + *nodeID
}

// Message roles, agents and the statuses of a user message's processing.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"

	AgentUser      = "user"
	AgentVibeCoder = "vibecoder"
	AgentEvaluator = "evaluator"

	StatusQueued        = "queued"
	StatusRunning       = "running"
	StatusAnswered      = "answered"
	StatusDiffCreated   = "diff_created"
	StatusMaxIterations = "max_iterations"
	StatusFailed        = "failed"
)

// IsFinal reports whether a user message's processing has ended.
func IsFinal(status string) bool {
	switch status {
	case StatusAnswered, StatusDiffCreated, StatusMaxIterations, StatusFailed:
		return true
	}
	return false
}

// TokenUsage is what one model call consumed. The Responses API's input and
// output tokens are reported as prompt and completion tokens.
type TokenUsage struct {
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	TotalTokens      int64  `json:"total_tokens"`
	CachedTokens     int64  `json:"cached_tokens"`
	ReasoningTokens  int64  `json:"reasoning_tokens"`
	Model            string `json:"model"`
	Agent            string `json:"agent"`
	Iteration        int    `json:"iteration"`
	// CostUSD is what the call cost in US dollars, from the server's price
	// table (MODEL_PRICES); 0 for a model without a price.
	CostUSD float64 `json:"cost_usd"`
}

// Add sums the counts of two usages, e.g. the calls behind one message, o
// being the later: the sum takes o's labels (model, agent, iteration) where
// o has them, so that a running sum is labelled with its last call.
func (u TokenUsage) Add(o TokenUsage) TokenUsage {
	u.PromptTokens += o.PromptTokens
	u.CompletionTokens += o.CompletionTokens
	u.TotalTokens += o.TotalTokens
	u.CachedTokens += o.CachedTokens
	u.ReasoningTokens += o.ReasoningTokens
	u.CostUSD += o.CostUSD
	if o.Model != "" {
		u.Model = o.Model
	}
	if o.Agent != "" {
		u.Agent = o.Agent
	}
	if o.Iteration != 0 {
		u.Iteration = o.Iteration
	}
	return u
}

// ConversationMessage is one message of a session: the person's prompt, or
// what the VibeCoder or the Evaluator answered.
type ConversationMessage struct {
	ID         string      `json:"id"`
	SessionID  string      `json:"session_id"`
	Role       string      `json:"role" enum:"user,assistant"`
	Agent      string      `json:"agent" enum:"user,vibecoder,evaluator"`
	Iteration  int         `json:"iteration"`
	Content    string      `json:"content"`
	Patch      *string     `json:"patch"`
	DiffID     *string     `json:"diff_id"`
	TokenUsage *TokenUsage `json:"token_usage"`
	TraceID    string      `json:"trace_id"`
	Status     *string     `json:"status,omitempty" description:"user messages: queued, running, answered, diff_created, max_iterations or failed"`
	ReplyTo    *string     `json:"reply_to,omitempty" description:"assistant messages: the user message they answer"`
	CreatedAt  time.Time   `json:"created_at"`
}

// FullMessage adds the raw OpenAI responses behind a message.
type FullMessage struct {
	ConversationMessage
	OpenAIResponse json.RawMessage `json:"openai_response"`
	LastResponseID *string         `json:"last_response_id"`
}

// MaxPromptLen bounds a prompt, in characters.
const MaxPromptLen = 20_000

// MaxCommitMessageBytes bounds a commit message, whoever writes it: the
// person (commit, refine's current_message) or the small model (refine).
const MaxCommitMessageBytes = 10_000

// NewMessage is the body of POST /sessions/{id}/messages.
type NewMessage struct {
	Prompt    string  `json:"prompt" description:"What to change or ask, 1 to 20,000 characters"`
	MessageID *string `json:"message_id,omitempty" description:"Client-chosen UUID; sending the same one again returns the first answer and creates nothing"`
}

// Validate checks the message and returns its id: the client's, or a new one.
func (m *NewMessage) Validate() (uuid.UUID, error) {
	n := utf8.RuneCountInString(m.Prompt)
	switch {
	case strings.TrimSpace(m.Prompt) == "":
		return uuid.Nil, Invalid("prompt", "is required and must not be blank")
	case n > MaxPromptLen:
		return uuid.Nil, Invalid("prompt", "must be at most %d characters, got %d", MaxPromptLen, n)
	case !utf8.ValidString(m.Prompt) || strings.ContainsRune(m.Prompt, 0):
		return uuid.Nil, Invalid("prompt", "must be valid UTF-8 text without NUL bytes")
	}
	return ClientID("message_id", m.MessageID)
}

// ClientID is the id a create gives its row: the client's, field's UUID, or
// a new one without it. A client that chooses the id can send the same
// request again (its answer was lost) and find what the first one created
// instead of creating it twice.
func ClientID(field string, id *string) (uuid.UUID, error) {
	if id == nil {
		return uuid.New(), nil
	}
	u, err := uuid.Parse(*id)
	if err != nil {
		return uuid.Nil, Invalid(field, "must be a UUID, got %q", *id)
	}
	return u, nil
}

// MessageAccepted is the 202 answer to a new message.
type MessageAccepted struct {
	SessionID string `json:"session_id"`
	MessageID string `json:"message_id"`
	JobID     int64  `json:"job_id"`
	TraceID   string `json:"trace_id"`
	Status    string `json:"status"`
}

// Diff statuses.
const (
	DiffEvaluatorApproved = "evaluator_approved"
	DiffHumanApproved     = "human_approved"
	DiffHumanRejected     = "human_rejected"
	DiffCommitted         = "committed"
)

// Diff is a patch the Evaluator approved, waiting for a person's review and
// commit.
type Diff struct {
	ID                 string          `json:"id"`
	ProjectID          string          `json:"project_id"`
	SessionID          *string         `json:"session_id"`
	MessageID          *string         `json:"message_id"`
	BaseCommit         string          `json:"base_commit"`
	TargetBranch       string          `json:"target_branch"`
	DiffContent        string          `json:"diff_content"`
	Status             string          `json:"status" enum:"evaluator_approved,human_approved,human_rejected,committed"`
	VibecoderPrompt    string          `json:"vibecoder_prompt"`
	EvaluatorReasoning string          `json:"evaluator_reasoning"`
	CommitMessage      string          `json:"commit_message"`
	HumanFeedback      *string         `json:"human_feedback"`
	CommittedSHA       *string         `json:"committed_sha"`
	TestResults        json.RawMessage `json:"test_results"`
	TestsRunAt         *time.Time      `json:"tests_run_at"`
	CreatedAt          time.Time       `json:"created_at"`
	UpdatedAt          time.Time       `json:"updated_at"`
}

// Job is River's record of an asynchronous job.
type Job struct {
	ID          int64      `json:"id"`
	Kind        string     `json:"kind"`
	Queue       string     `json:"queue"`
	State       string     `json:"state"`
	Attempt     int        `json:"attempt"`
	MaxAttempts int        `json:"max_attempts"`
	Errors      []JobError `json:"errors"`
	CreatedAt   time.Time  `json:"created_at"`
	FinalizedAt *time.Time `json:"finalized_at"`
}

// JobError is one failed attempt of a job.
type JobError struct {
	At      time.Time `json:"at"`
	Attempt int       `json:"attempt"`
	Error   string    `json:"error"`
}
