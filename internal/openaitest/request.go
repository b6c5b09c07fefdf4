package openaitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
)

// Request is one POST /v1/responses the fake received.
type Request struct {
	Header             http.Header
	Body               []byte
	Model              string
	Instructions       string
	Input              json.RawMessage // a JSON string or an array of items, as sent
	Stream             bool
	Store              *bool
	Include            []string
	Tools              []Tool
	TextFormat         json.RawMessage // the "text.format" object; nil when not sent
	PreviousResponseID string

	rawTools json.RawMessage // "tools" as sent
}

// Tool is one entry of the request's "tools".
type Tool struct {
	Type        string         `json:"type"`
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Strict      *bool          `json:"strict"`
	Parameters  map[string]any `json:"parameters"`
}

// InputItems decodes Input as a list of items; a plain string input becomes
// one user message.
func (r Request) InputItems() []map[string]any {
	var s string
	if json.Unmarshal(r.Input, &s) == nil {
		return []map[string]any{{"type": "message", "role": "user", "content": s}}
	}
	var items []map[string]any
	_ = json.Unmarshal(r.Input, &items)
	return items
}

// FunctionOutputs returns the function_call_output items of the input, by call_id.
func (r Request) FunctionOutputs() map[string]string {
	out := map[string]string{}
	for _, it := range r.InputItems() {
		if it["type"] != "function_call_output" {
			continue
		}
		id, _ := it["call_id"].(string)
		switch o := it["output"].(type) {
		case string:
			out[id] = o
		default:
			b, _ := json.Marshal(o)
			out[id] = string(b)
		}
	}
	return out
}

// Includes reports whether the request asked to include the given field.
func (r Request) Includes(field string) bool { return slices.Contains(r.Include, field) }

type wireRequest struct {
	Model        string          `json:"model"`
	Instructions *string         `json:"instructions"`
	Input        json.RawMessage `json:"input"`
	Stream       bool            `json:"stream"`
	Store        *bool           `json:"store"`
	Include      []string        `json:"include"`
	Tools        json.RawMessage `json:"tools"`
	Text         *struct {
		Format json.RawMessage `json:"format"`
	} `json:"text"`
	PreviousResponseID *string `json:"previous_response_id"`
}

// apiError is an error the fake answers the way OpenAI would.
type apiError struct {
	status              int
	message, typ, param string
	code                string
}

func invalid(param, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", param: param, message: fmt.Sprintf(format, args...)}
}

func parseRequest(h http.Header, body []byte) (Request, *apiError) {
	req := Request{Header: h, Body: body}
	var w wireRequest
	if err := json.Unmarshal(body, &w); err != nil {
		return req, invalid("", "We could not parse the JSON body of your request. (%v)", err)
	}
	req.Model, req.Input, req.Stream, req.Store, req.Include, req.rawTools = w.Model, w.Input, w.Stream, w.Store, w.Include, w.Tools
	if w.Instructions != nil {
		req.Instructions = *w.Instructions
	}
	if w.PreviousResponseID != nil {
		req.PreviousResponseID = *w.PreviousResponseID
	}
	if w.Text != nil && len(w.Text.Format) > 0 {
		req.TextFormat = w.Text.Format
	}
	if len(w.Tools) > 0 {
		if err := json.Unmarshal(w.Tools, &req.Tools); err != nil {
			return req, invalid("tools", "Invalid 'tools': %v", err)
		}
	}
	if req.Model == "" {
		return req, invalid("model", "Missing required parameter: 'model'.")
	}
	if apiErr := checkInput(req); apiErr != nil {
		return req, apiErr
	}
	for i, t := range req.Tools {
		// In the Responses API a function tool is strict unless it says otherwise.
		if t.Type == "function" && (t.Strict == nil || *t.Strict) {
			if msg := strictSchemaProblem(t.Parameters, "()"); msg != "" {
				return req, invalid(fmt.Sprintf("tools[%d].parameters", i), "Invalid schema for function '%s': %s", t.Name, msg)
			}
		}
	}
	if len(req.TextFormat) > 0 {
		var f struct {
			Type   string         `json:"type"`
			Name   string         `json:"name"`
			Strict *bool          `json:"strict"`
			Schema map[string]any `json:"schema"`
		}
		if err := json.Unmarshal(req.TextFormat, &f); err != nil {
			return req, invalid("text.format", "Invalid 'text.format': %v", err)
		}
		if f.Type == "json_schema" {
			if f.Name == "" || f.Schema == nil {
				return req, invalid("text.format", "Missing required parameter: 'text.format.name' or 'text.format.schema'.")
			}
			if f.Strict != nil && *f.Strict {
				if msg := strictSchemaProblem(f.Schema, "()"); msg != "" {
					return req, invalid("text.format.schema", "Invalid schema for response_format '%s': %s", f.Name, msg)
				}
			}
		}
	}
	return req, nil
}

// checkInput rejects what OpenAI rejects in a stateless conversation: a tool
// output without its call (the usual symptom of sending fc.ID instead of
// fc.CallID), a call without its output, and reasoning items that refer to
// server-side state that store=false never kept.
func checkInput(req Request) *apiError {
	if len(req.Input) == 0 {
		return nil
	}
	if in := bytes.TrimSpace(req.Input); len(in) > 0 && in[0] == '"' {
		return nil // a plain string
	}
	// Only the fields checked here are decoded: the fake reads every
	// request of the load commands, whose inputs carry a whole conversation.
	var items []struct {
		Type             string          `json:"type"`
		Role             json.RawMessage `json:"role"`
		Content          json.RawMessage `json:"content"`
		CallID           string          `json:"call_id"`
		ID               string          `json:"id"`
		EncryptedContent string          `json:"encrypted_content"`
	}
	if err := json.Unmarshal(req.Input, &items); err != nil {
		return invalid("input", "Invalid 'input': expected a string or an array of items.")
	}
	stateless := req.PreviousResponseID == ""
	stored := req.Store == nil || *req.Store
	calls, outputs := map[string]bool{}, map[string]bool{}
	for i, it := range items {
		typ := it.Type
		if typ == "" && it.Role != nil {
			typ = "message"
		}
		switch typ {
		case "message":
			if it.Content == nil {
				return invalid(fmt.Sprintf("input[%d].content", i), "Missing required parameter: 'input[%d].content'.", i)
			}
		case "function_call":
			if it.CallID == "" {
				return invalid(fmt.Sprintf("input[%d].call_id", i), "Missing required parameter: 'input[%d].call_id'.", i)
			}
			calls[it.CallID] = true
		case "function_call_output":
			if it.CallID == "" {
				return invalid(fmt.Sprintf("input[%d].call_id", i), "Missing required parameter: 'input[%d].call_id'.", i)
			}
			if stateless && !calls[it.CallID] {
				return invalid("input", "No tool call found for function call output with call_id %s.", it.CallID)
			}
			outputs[it.CallID] = true
		case "reasoning":
			if !stored && it.EncryptedContent == "" {
				return &apiError{status: http.StatusNotFound, typ: "invalid_request_error", param: "input",
					message: fmt.Sprintf("Item with id '%s' not found. Items are not persisted when `store` is set to false. Try again with `store` set to true, or remove this item from your input.", it.ID)}
			}
		case "":
			return invalid(fmt.Sprintf("input[%d]", i), "Invalid 'input[%d]': an item needs a 'type'.", i)
		}
	}
	if stateless {
		ids := make([]string, 0, len(calls))
		for id := range calls {
			if !outputs[id] {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		if len(ids) > 0 {
			return invalid("input", "No tool output found for function call %s.", ids[0])
		}
	}
	return nil
}

// strictSchemaProblem applies OpenAI's rules for strict schemas: every object
// lists all its properties in "required" and sets additionalProperties false.
func strictSchemaProblem(schema map[string]any, context string) string {
	if schema == nil {
		return ""
	}
	isObject := schema["type"] == "object"
	if types, ok := schema["type"].([]any); ok {
		isObject = slices.Contains(types, any("object"))
	}
	if _, ok := schema["properties"]; ok {
		isObject = true
	}
	if isObject {
		if ap, ok := schema["additionalProperties"].(bool); !ok || ap {
			return fmt.Sprintf("In context=%s, 'additionalProperties' is required to be supplied and to be false.", context)
		}
		props, _ := schema["properties"].(map[string]any)
		required := map[string]bool{}
		if req, ok := schema["required"].([]any); ok {
			for _, r := range req {
				if s, ok := r.(string); ok {
					required[s] = true
				}
			}
		}
		names := make([]string, 0, len(props))
		for name := range props {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if !required[name] {
				return fmt.Sprintf("In context=%s, 'required' is required to be supplied and to be an array including every key in properties. Missing '%s'.", context, name)
			}
		}
		for _, name := range names {
			if sub, ok := props[name].(map[string]any); ok {
				if msg := strictSchemaProblem(sub, contextPath(context, "properties", name)); msg != "" {
					return msg
				}
			}
		}
	}
	if items, ok := schema["items"].(map[string]any); ok {
		if msg := strictSchemaProblem(items, contextPath(context, "items")); msg != "" {
			return msg
		}
	}
	for _, key := range []string{"anyOf", "allOf", "oneOf"} {
		if list, ok := schema[key].([]any); ok {
			for i, s := range list {
				if sub, ok := s.(map[string]any); ok {
					if msg := strictSchemaProblem(sub, contextPath(context, key, fmt.Sprint(i))); msg != "" {
						return msg
					}
				}
			}
		}
	}
	for _, key := range []string{"$defs", "definitions"} {
		if defs, ok := schema[key].(map[string]any); ok {
			for name, s := range defs {
				if sub, ok := s.(map[string]any); ok {
					if msg := strictSchemaProblem(sub, contextPath(context, key, name)); msg != "" {
						return msg
					}
				}
			}
		}
	}
	return ""
}

func contextPath(context string, parts ...string) string {
	inner := strings.TrimSuffix(strings.TrimPrefix(context, "("), ")")
	for _, p := range parts {
		if inner != "" {
			inner += ", "
		}
		inner += "'" + p + "'"
	}
	return "(" + inner + ")"
}
