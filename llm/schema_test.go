package llm_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3/responses"

	"github.com/vibegrapher/vibegrapher/domain/vibecode"
	"github.com/vibegrapher/vibegrapher/internal/openaitest"
	"github.com/vibegrapher/vibegrapher/llm"
)

func TestStructuredOutput(t *testing.T) {
	s := openaitest.New(t)
	s.Enqueue(openaitest.JSON(map[string]any{"approved": true, "reasoning": "correct and minimal", "commit_message": "Add Spanish agent"}))
	c := newClient(s, 0)
	p := ask("review this patch")
	p.Text = llm.JSONSchemaFormat("evaluator_verdict", llm.EvaluatorSchema())
	resp, err := c.Stream(context.Background(), p, nil)
	if err != nil {
		t.Fatal(err) // the fake rejects a schema that breaks the strict rules
	}
	var v vibecode.Verdict
	if err := llm.DecodeOutput(resp, &v); err != nil {
		t.Fatal(err)
	}
	if v != (vibecode.Verdict{Approved: true, Reasoning: "correct and minimal", CommitMessage: "Add Spanish agent"}) {
		t.Errorf("verdict %+v", v)
	}
	var format struct {
		Type   string         `json:"type"`
		Name   string         `json:"name"`
		Strict bool           `json:"strict"`
		Schema map[string]any `json:"schema"`
	}
	if err := json.Unmarshal(s.Requests()[0].TextFormat, &format); err != nil {
		t.Fatal(err)
	}
	if format.Type != "json_schema" || format.Name != "evaluator_verdict" || !format.Strict || format.Schema["additionalProperties"] != false {
		t.Errorf("format %s", s.Requests()[0].TextFormat)
	}
}

func TestLooseSchemaIsRejected(t *testing.T) {
	s := openaitest.New(t)
	c := newClient(s, 0)
	schema := llm.EvaluatorSchema()
	schema["required"] = []string{"approved", "reasoning"}
	p := ask("review")
	p.Text = llm.JSONSchemaFormat("evaluator_verdict", schema)
	_, err := c.Create(context.Background(), p)
	if err == nil || llm.IsTransient(err) || !strings.Contains(llm.ErrorMessage(err), "Missing 'commit_message'") {
		t.Errorf("err %v: %s", err, llm.ErrorMessage(err))
	}
}

func TestDecodeOutputErrors(t *testing.T) {
	var refusal, empty, notJSON responses.Response
	_ = json.Unmarshal([]byte(`{"id":"resp_1","output":[{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"refusal","refusal":"I can't help with that."}]}]}`), &refusal)
	_ = json.Unmarshal([]byte(`{"id":"resp_2","output":[]}`), &empty)
	_ = json.Unmarshal([]byte(`{"id":"resp_3","output":[{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"sure!","annotations":[]}]}]}`), &notJSON)
	var v vibecode.Verdict
	for _, tc := range []struct {
		r    *responses.Response
		want string
	}{{&refusal, "refused"}, {&empty, "no output"}, {&notJSON, "not the expected JSON"}, {nil, "no response"}} {
		if err := llm.DecodeOutput(tc.r, &v); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err %v, want %q", err, tc.want)
		}
	}
}
