package llm_test

import (
	"strings"
	"testing"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/llm"
)

func TestPrices(t *testing.T) {
	p, err := llm.ParsePrices(" my-model=0.5/0.25/2 , gpt-5=2/1/20")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		usage domain.TokenUsage
		want  float64
	}{
		// 1M uncached input, 1M output.
		{domain.TokenUsage{Model: "my-model", PromptTokens: 1_000_000, CompletionTokens: 1_000_000}, 2.5},
		// Half the input cached; MODEL_PRICES overrides the default gpt-5.
		{domain.TokenUsage{Model: "gpt-5", PromptTokens: 1_000_000, CachedTokens: 500_000}, 1.5},
		// A dated snapshot takes its family's price; gpt-5-mini is not gpt-5.
		{domain.TokenUsage{Model: "gpt-5-mini-2025-08-07", CompletionTokens: 1_000_000}, 2},
		{domain.TokenUsage{Model: "gpt-5-2025-08-07", CompletionTokens: 1_000_000}, 20},
		// Unknown models cost nothing rather than a guess.
		{domain.TokenUsage{Model: "llama-3", PromptTokens: 1_000_000}, 0},
	} {
		if got := p.Cost(c.usage); got != c.want {
			t.Errorf("Cost(%+v) = %v, want %v", c.usage, got, c.want)
		}
	}
	for _, bad := range []string{"gpt-5", "gpt-5=1/2", "=1/2/3", "gpt-5=1/x/3", "gpt-5=-1/0/0"} {
		if _, err := llm.ParsePrices(bad); err == nil || !strings.Contains(err.Error(), "MODEL_PRICES") {
			t.Errorf("ParsePrices(%q) = %v, want an error naming MODEL_PRICES", bad, err)
		}
	}
	if p, err := llm.ParsePrices(""); err != nil || len(p) != len(llm.DefaultPrices()) {
		t.Errorf("ParsePrices(\"\") = %v, %v; want the defaults", p, err)
	}
}
