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
	return fromSDK(r).usage()
}
