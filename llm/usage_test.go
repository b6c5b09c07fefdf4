package llm_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/vibegrapher/vibegrapher/internal/openaitest"
	"github.com/vibegrapher/vibegrapher/llm"
)

func TestUsageOf(t *testing.T) {
	s := openaitest.New(t)
	s.Enqueue(openaitest.Text("hi").WithUsage(1200, 300, 1024, 256))
	resp, err := newClient(s, 0).Stream(context.Background(), ask("hi"), nil)
	if err != nil {
		t.Fatal(err)
	}
	u := llm.UsageOf(resp)
	want := llm.Usage{PromptTokens: 1200, CompletionTokens: 300, TotalTokens: 1500, CachedTokens: 1024, ReasoningTokens: 256, Model: "gpt-5"}
	if u != want {
		t.Errorf("usage %+v", u)
	}
	u.Agent, u.Iteration = "vibecoder", 2
	// gpt-5: 176 uncached input tokens at $1.25/M, 1024 cached at $0.125/M,
	// 300 output at $10/M.
	u.CostUSD = llm.DefaultPrices().Cost(u)
	data, _ := json.Marshal(u)
	if string(data) != `{"prompt_tokens":1200,"completion_tokens":300,"total_tokens":1500,"cached_tokens":1024,"reasoning_tokens":256,"model":"gpt-5","agent":"vibecoder","iteration":2,"cost_usd":0.003348}` {
		t.Errorf("json %s", data)
	}
	sum := u.Add(llm.Usage{PromptTokens: 1, CompletionTokens: 2, TotalTokens: 3, CachedTokens: 4, ReasoningTokens: 5, Model: "other", CostUSD: 0.5})
	if sum.TotalTokens != 1503 || sum.CachedTokens != 1028 || sum.ReasoningTokens != 261 || sum.Model != "other" || sum.Agent != "vibecoder" || sum.CostUSD != 0.503348 {
		t.Errorf("sum %+v", sum)
	}
	if llm.UsageOf(nil) != (llm.Usage{}) {
		t.Error("nil response")
	}
}
