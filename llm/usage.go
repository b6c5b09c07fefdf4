package llm

import (
	"github.com/openai/openai-go/v3/responses"

	"github.com/vibegrapher/vibegrapher/domain"
)

// Usage is the token usage of one model call: SPEC's TokenUsage, where the
// Responses API's input and output tokens are prompt and completion tokens.
// Agent and Iteration are set by the caller.
type Usage = domain.TokenUsage

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
