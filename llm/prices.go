package llm

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vibegrapher/vibegrapher/domain"
)

// Price is what a model costs, in US dollars per million tokens. Cached
// input tokens are part of the input tokens and billed at CachedInput;
// reasoning tokens are part of the output tokens.
type Price struct {
	Input, CachedInput, Output float64
}

// Prices maps a model name to its price. A response names a dated snapshot
// ("gpt-5-2025-08-07"), which gets the price of the longest name that starts
// it.
type Prices map[string]Price

// DefaultPrices are OpenAI's list prices (standard tier) for the default
// models and their usual alternatives. MODEL_PRICES overrides or adds.
func DefaultPrices() Prices {
	return Prices{
		"gpt-5":        {Input: 1.25, CachedInput: 0.125, Output: 10},
		"gpt-5-mini":   {Input: 0.25, CachedInput: 0.025, Output: 2},
		"gpt-5-nano":   {Input: 0.05, CachedInput: 0.005, Output: 0.4},
		"gpt-4.1":      {Input: 2, CachedInput: 0.5, Output: 8},
		"gpt-4.1-mini": {Input: 0.4, CachedInput: 0.1, Output: 1.6},
		"gpt-4.1-nano": {Input: 0.1, CachedInput: 0.025, Output: 0.4},
		"gpt-4o":       {Input: 2.5, CachedInput: 1.25, Output: 10},
		"gpt-4o-mini":  {Input: 0.15, CachedInput: 0.075, Output: 0.6},
		"o3":           {Input: 2, CachedInput: 0.5, Output: 8},
		"o4-mini":      {Input: 1.1, CachedInput: 0.275, Output: 4.4},
	}
}

// ParsePrices reads MODEL_PRICES: comma-separated
// "model=input/cached_input/output", in US dollars per million tokens, e.g.
// "gpt-5=1.25/0.125/10,my-model=0.5/0.5/1.5". The result starts from
// DefaultPrices.
func ParsePrices(s string) (Prices, error) {
	p := DefaultPrices()
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		model, spec, ok := strings.Cut(entry, "=")
		parts := strings.Split(spec, "/")
		if !ok || strings.TrimSpace(model) == "" || len(parts) != 3 {
			return nil, fmt.Errorf("MODEL_PRICES: %q must be model=input/cached_input/output (USD per million tokens)", entry)
		}
		var v [3]float64
		for i, part := range parts {
			f, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
			if err != nil || f < 0 {
				return nil, fmt.Errorf("MODEL_PRICES: %q: %q is not a price", entry, part)
			}
			v[i] = f
		}
		p[strings.TrimSpace(model)] = Price{Input: v[0], CachedInput: v[1], Output: v[2]}
	}
	return p, nil
}

// Lookup finds a model's price: its own name, else the longest known name
// followed by "-" that starts it.
func (p Prices) Lookup(model string) (Price, bool) {
	if pr, ok := p[model]; ok {
		return pr, true
	}
	best, found := "", false
	for name := range p {
		if strings.HasPrefix(model, name+"-") && len(name) > len(best) {
			best, found = name, true
		}
	}
	return p[best], found
}

// Cost is what a call with usage u cost, in US dollars; 0 for a model
// without a price.
func (p Prices) Cost(u domain.TokenUsage) float64 {
	pr, ok := p.Lookup(u.Model)
	if !ok {
		return 0
	}
	cached := min(u.CachedTokens, u.PromptTokens)
	return (float64(u.PromptTokens-cached)*pr.Input + float64(cached)*pr.CachedInput + float64(u.CompletionTokens)*pr.Output) / 1e6
}
