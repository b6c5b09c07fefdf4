package main

import (
	"encoding/json"
	"testing"

	"github.com/vibegrapher/vibegrapher/internal/openaitest"
)

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

// In patch mode the fake proposes a patch for every message, not only a
// session's first: the memory of a second message holds the first one's
// tool call and output.
func TestOnlyAToolOutputOfThisTurnEndsThePatchMode(t *testing.T) {
	call := `{"type":"function_call","call_id":"c1","name":"submit_patch","arguments":"{}"}`
	output := `{"type":"function_call_output","call_id":"c1","output":"accepted"}`
	user := `{"type":"message","role":"user","content":"change it"}`
	for input, want := range map[string]bool{
		`[` + user + `]`: false,
		`[` + user + `,` + call + `,` + output + `,` + user + `]`: false,
		`[` + user + `,` + call + `,` + output + `]`:              true,
		`"a plain prompt"`: false,
	} {
		if got := toolOutputInTurn(openaitest.Request{Input: json.RawMessage(input)}); got != want {
			t.Errorf("toolOutputInTurn(%s) = %v, want %v", input, got, want)
		}
	}
}
