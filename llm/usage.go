package llm

import "github.com/openai/openai-go/v3/responses"

// Usage is the token usage of one model call, shaped as SPEC's TokenUsage:
// the Responses API's input and output tokens are prompt and completion
// tokens. Agent and Iteration are set by the caller.
type Usage struct {
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	TotalTokens      int64  `json:"total_tokens"`
	CachedTokens     int64  `json:"cached_tokens"`
	ReasoningTokens  int64  `json:"reasoning_tokens"`
	Model            string `json:"model"`
	Agent            string `json:"agent"`
	Iteration        int    `json:"iteration"`
}

// UsageOf reads the usage of a response. A response without usage (some
// OpenAI-compatible servers omit it) gives zero counts.
func UsageOf(r *responses.Response) Usage {
	if r == nil {
		return Usage{}
	}
	u := r.Usage
	total := u.TotalTokens
	if total == 0 {
		total = u.InputTokens + u.OutputTokens
	}
	return Usage{
		PromptTokens:     u.InputTokens,
		CompletionTokens: u.OutputTokens,
		TotalTokens:      total,
		CachedTokens:     u.InputTokensDetails.CachedTokens,
		ReasoningTokens:  u.OutputTokensDetails.ReasoningTokens,
		Model:            string(r.Model),
	}
}

// Add sums the counts of two usages, e.g. the calls of one tool loop; the
// labels of u are kept, or taken from o when u has none.
func (u Usage) Add(o Usage) Usage {
	u.PromptTokens += o.PromptTokens
	u.CompletionTokens += o.CompletionTokens
	u.TotalTokens += o.TotalTokens
	u.CachedTokens += o.CachedTokens
	u.ReasoningTokens += o.ReasoningTokens
	if u.Model == "" {
		u.Model = o.Model
	}
	if u.Agent == "" {
		u.Agent = o.Agent
	}
	if u.Iteration == 0 {
		u.Iteration = o.Iteration
	}
	return u
}
