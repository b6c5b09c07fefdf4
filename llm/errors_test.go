package llm_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/vibegrapher/vibegrapher/llm"
)

func TestIsTransientAndErrorMessage(t *testing.T) {
	cases := []struct {
		err       error
		transient bool
	}{
		{nil, false},
		{llm.ErrNoAPIKey, false},
		{fmt.Errorf("vibecode: %w", llm.ErrNoAPIKey), false},
		{&openai.Error{StatusCode: 400}, false},
		{&openai.Error{StatusCode: 401}, false},
		{&openai.Error{StatusCode: 403}, false},
		{&openai.Error{StatusCode: 404}, false},
		{&openai.Error{StatusCode: 422}, false},
		{&openai.Error{StatusCode: 408}, true},
		{&openai.Error{StatusCode: 409}, true},
		{&openai.Error{StatusCode: 429}, true},
		{&openai.Error{StatusCode: 429, Code: "insufficient_quota"}, false},
		{fmt.Errorf("call: %w", &openai.Error{StatusCode: 500}), true},
		{&openai.Error{StatusCode: 503}, true},
		{context.DeadlineExceeded, true},
		{context.Canceled, true},
		{llm.ErrStreamEnded, true},
		{&llm.ResponseError{Status: "incomplete", Code: "max_output_tokens"}, false},
		{&llm.ResponseError{Status: "failed", Code: "rate_limit_exceeded"}, true},
		{errors.New("something else"), false},
	}
	for _, tc := range cases {
		if got := llm.IsTransient(tc.err); got != tc.transient {
			t.Errorf("IsTransient(%v) = %v", tc.err, got)
		}
		if tc.err != nil && llm.ErrorMessage(tc.err) == "" {
			t.Errorf("no message for %v", tc.err)
		}
	}

	// A server that does not listen.
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	_, err := llm.New(llm.Config{APIKey: "k", BaseURL: url + "/v1", MaxRetries: -1}).Create(context.Background(), ask("hi"))
	if err == nil || !llm.IsTransient(err) || !strings.Contains(llm.ErrorMessage(err), "could not reach OpenAI") {
		t.Errorf("connection refused: %v, %q", err, llm.ErrorMessage(err))
	}
}
