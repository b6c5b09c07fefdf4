package main

import "testing"

func TestCacheKeyIsTheRequestsPromptCacheKey(t *testing.T) {
	for body, want := range map[string]string{
		`{"model":"m","prompt_cache_key":"sess_1","input":[{"role":"user","content":"a \"prompt_cache_key\" in a prompt"}]}`: "sess_1",
		`{"prompt_cache_key" : "sess_2_evaluator","input":[]}`:                                                               "sess_2_evaluator",
		`{"model":"m","input":[]}`:          "",
		`{"prompt_cache_key":null}`:         "",
		`{"prompt_cache_key":"unterminated`: "",
	} {
		if got := cacheKey([]byte(body)); got != want {
			t.Errorf("cacheKey(%s) = %q, want %q", body, got, want)
		}
	}
}
