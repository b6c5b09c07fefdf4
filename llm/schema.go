package llm

import (
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
)

// JSONSchemaFormat asks the model for JSON that matches schema (Structured
// Outputs). Strict is set, which openai-go's own helper leaves out; a strict
// schema must list every property in "required" and set
// "additionalProperties": false on every object, or OpenAI answers 400.
func JSONSchemaFormat(name string, schema map[string]any) responses.ResponseTextConfigParam {
	return responses.ResponseTextConfigParam{Format: responses.ResponseFormatTextConfigUnionParam{
		OfJSONSchema: &responses.ResponseFormatTextJSONSchemaConfigParam{
			Name:   name,
			Schema: schema,
			Strict: openai.Bool(true),
		},
	}}
}

// FunctionTool is a strict function tool; its parameters follow the same
// rules as a strict JSON schema.
func FunctionTool(name, description string, parameters map[string]any) responses.ToolUnionParam {
	return responses.ToolUnionParam{OfFunction: &responses.FunctionToolParam{
		Name:        name,
		Description: openai.String(description),
		Parameters:  parameters,
		Strict:      openai.Bool(true),
	}}
}

// EvaluatorSchema is the strict JSON schema of vibecode.Verdict. Each call
// returns a new map.
func EvaluatorSchema() map[string]any {
	return map[string]any{
		"type": "object",
		"properties": map[string]any{
			"approved": map[string]any{
				"type":        "boolean",
				"description": "true when the patch does what was asked, is correct and is safe to commit",
			},
			"reasoning": map[string]any{
				"type":        "string",
				"description": "why: what is right or, when rejected, exactly what must change",
			},
			"commit_message": map[string]any{
				"type":        "string",
				"description": "a one-line commit message for the patch (empty when rejected)",
			},
		},
		"required":             []string{"approved", "reasoning", "commit_message"},
		"additionalProperties": false,
	}
}

// DecodeOutput decodes the response's output text, produced under a JSON
// schema format, into v. A refusal or an empty answer is an error.
func DecodeOutput(r *responses.Response, v any) error {
	return fromSDK(r).decodeOutput(v)
}
