package llm

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/openai/openai-go/v3/responses"

	"github.com/vibegrapher/vibegrapher/internal/pgtext"
)

// response is the part of a Responses API response that llm reads, decoded
// with encoding/json. openai-go's responses.Response decodes every field of
// the API (hundreds of types) with its reflective apijson decoder, which was
// most of the CPU the server spent decoding a model's answer; a reply is read
// for its id, status, text, function calls, replayable items and usage only.
//
// raw is the whole response's JSON as it arrived: what model_calls stores and
// StoredReply reads back. A response encoding/json cannot decode (a field of
// an unexpected type, which apijson tolerates) is decoded by openai-go
// instead (decodeResponse), so nothing that decoded before fails now.
type response struct {
	responseFields
	Output []outputItem
	raw    json.RawMessage
}

// responseFields are the fields of a response llm reads, but its output.
type responseFields struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Model  string `json:"model"`
	Error  *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	IncompleteDetails *struct {
		Reason string `json:"reason"`
	} `json:"incomplete_details"`
	Usage struct {
		InputTokens        int64 `json:"input_tokens"`
		OutputTokens       int64 `json:"output_tokens"`
		TotalTokens        int64 `json:"total_tokens"`
		InputTokensDetails struct {
			CachedTokens int64 `json:"cached_tokens"`
		} `json:"input_tokens_details"`
		OutputTokensDetails struct {
			ReasoningTokens int64 `json:"reasoning_tokens"`
		} `json:"output_tokens_details"`
	} `json:"usage"`
}

// outputItem is one item of a response's output: its JSON as it arrived
// (replayed as conversation memory) and the fields llm reads.
type outputItem struct {
	outputItemFields
	raw string
}

type outputItemFields struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Content []struct {
		Type    string `json:"type"`
		Text    string `json:"text"`
		Refusal string `json:"refusal"`
	} `json:"content"`
	// function_call
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
	CallID    string `json:"call_id"`
	// reasoning
	EncryptedContent string `json:"encrypted_content"`
}

// decodeResponse decodes a response's JSON; raw is kept, not copied, unless
// it holds something PostgreSQL cannot store (pgtext.JSON).
func decodeResponse(raw []byte) (*response, error) {
	raw = pgtext.JSON(raw)
	r, ok := decodeFast(raw)
	if !ok {
		// Fall back to openai-go's lenient decoder.
		var sdk responses.Response
		if err := sdk.UnmarshalJSON(raw); err != nil {
			return nil, err
		}
		r = fromSDK(&sdk)
	}
	r.raw = raw
	return r, nil
}

// decodeFast decodes raw with encoding/json, and finds each output item's
// JSON with one scan (eachField): decoding the items as json.RawMessage and
// then each again would validate them twice.
func decodeFast(raw []byte) (*response, bool) {
	var w struct {
		responseFields
		Output []outputItemFields `json:"output"`
	}
	if json.Unmarshal(raw, &w) != nil {
		return nil, false
	}
	var items []string
	okScan := eachField(raw, func(key, value []byte) bool {
		if string(key) != "output" {
			return true
		}
		items = items[:0]
		if value[0] == 'n' { // null
			return true
		}
		return eachElement(value, func(v []byte) { items = append(items, string(v)) })
	})
	if !okScan || len(items) != len(w.Output) {
		return nil, false
	}
	r := &response{responseFields: w.responseFields}
	if len(w.Output) > 0 {
		r.Output = make([]outputItem, len(w.Output))
		for i := range w.Output {
			r.Output[i] = outputItem{outputItemFields: w.Output[i], raw: items[i]}
		}
	}
	return r, true
}

// fromSDK is what llm reads of a response decoded by openai-go.
func fromSDK(s *responses.Response) *response {
	if s == nil {
		return nil
	}
	r := &response{responseFields: responseFields{ID: s.ID, Status: string(s.Status), Model: string(s.Model)}, raw: json.RawMessage(s.RawJSON())}
	if s.JSON.Error.Valid() {
		r.Error = &struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}{string(s.Error.Code), s.Error.Message}
	}
	if s.JSON.IncompleteDetails.Valid() {
		r.IncompleteDetails = &struct {
			Reason string `json:"reason"`
		}{string(s.IncompleteDetails.Reason)}
	}
	u := s.Usage
	r.Usage.InputTokens, r.Usage.OutputTokens, r.Usage.TotalTokens = u.InputTokens, u.OutputTokens, u.TotalTokens
	r.Usage.InputTokensDetails.CachedTokens = u.InputTokensDetails.CachedTokens
	r.Usage.OutputTokensDetails.ReasoningTokens = u.OutputTokensDetails.ReasoningTokens
	for _, it := range s.Output {
		o := outputItem{raw: it.RawJSON()}
		o.Type, o.ID = it.Type, it.ID
		o.Name, o.CallID = it.Name, it.CallID
		switch it.Type {
		case "function_call":
			o.Arguments = it.AsFunctionCall().Arguments
		case "reasoning":
			o.EncryptedContent = it.AsReasoning().EncryptedContent
		}
		for _, c := range it.Content {
			o.Content = append(o.Content, struct {
				Type    string `json:"type"`
				Text    string `json:"text"`
				Refusal string `json:"refusal"`
			}{c.Type, c.Text, c.Refusal})
		}
		r.Output = append(r.Output, o)
	}
	return r
}

// sdkResponse decodes r's JSON with openai-go, for the exported functions
// that return a *responses.Response.
func sdkResponse(r *response) (*responses.Response, error) {
	var s responses.Response
	if err := s.UnmarshalJSON(r.raw); err != nil {
		return nil, fmt.Errorf("decode the final response: %w", err)
	}
	return &s, nil
}

// outputText is the concatenation of all output_text content, as openai-go's
// Response.OutputText.
func (r *response) outputText() string {
	var b strings.Builder
	for _, it := range r.Output {
		for _, c := range it.Content {
			if c.Type == "output_text" {
				b.WriteString(c.Text)
			}
		}
	}
	return b.String()
}

// refusalText is the text of the response's refusals.
func (r *response) refusalText() string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	for _, it := range r.Output {
		if it.Type != "message" {
			continue
		}
		for _, c := range it.Content {
			if c.Type == "refusal" {
				b.WriteString(c.Refusal)
			}
		}
	}
	return b.String()
}

// functionCall is a function call of a response.
type functionCall struct {
	ID, CallID, Name, Arguments string
}

// functionCalls are the response's function calls, in order.
func (r *response) functionCalls() []functionCall {
	if r == nil {
		return nil
	}
	var calls []functionCall
	for _, it := range r.Output {
		if it.Type == "function_call" {
			calls = append(calls, functionCall{ID: it.ID, CallID: it.CallID, Name: it.Name, Arguments: pgtext.JSONString(it.Arguments)})
		}
	}
	return calls
}

// replayable is the JSON of the output items of r that InputItemsOf replays.
func (r *response) replayable() []string {
	if r == nil {
		return nil
	}
	raws := make([]string, 0, len(r.Output))
	for _, it := range r.Output {
		if it.raw == "" {
			continue
		}
		if it.Type == "reasoning" && it.EncryptedContent == "" {
			continue
		}
		raws = append(raws, it.raw)
	}
	return raws
}

// usage is the response's token usage; see UsageOf.
func (r *response) usage() Usage {
	if r == nil {
		return Usage{}
	}
	u := r.Usage
	total := u.TotalTokens
	if total == 0 {
		total = u.InputTokens + u.OutputTokens
	}
	return Usage{
		PromptTokens:     u.InputTokens,
		CompletionTokens: u.OutputTokens,
		TotalTokens:      total,
		CachedTokens:     u.InputTokensDetails.CachedTokens,
		ReasoningTokens:  u.OutputTokensDetails.ReasoningTokens,
		Model:            r.Model,
	}
}

// statusError is the error of a response that did not complete, or nil.
func (r *response) statusError() error {
	switch r.Status {
	case string(responses.ResponseStatusFailed):
		e := &ResponseError{ResponseID: r.ID, Status: "failed"}
		if r.Error != nil {
			e.Code, e.Message = r.Error.Code, r.Error.Message
		}
		return e
	case string(responses.ResponseStatusIncomplete):
		e := &ResponseError{ResponseID: r.ID, Status: "incomplete", Message: "the model stopped before it finished its answer"}
		if r.IncompleteDetails != nil {
			e.Code = r.IncompleteDetails.Reason
		}
		return e
	}
	return nil
}

// decodeOutput is DecodeOutput.
func (r *response) decodeOutput(v any) error {
	if r == nil {
		return fmt.Errorf("no response to decode")
	}
	for _, it := range r.Output {
		if it.Type != "message" {
			continue
		}
		for _, c := range it.Content {
			if c.Type == "refusal" {
				return fmt.Errorf("the model refused to answer: %s", c.Refusal)
			}
		}
	}
	text := strings.TrimSpace(r.outputText())
	if text == "" {
		return fmt.Errorf("the model returned no output text to decode")
	}
	if err := json.Unmarshal([]byte(pgtext.JSONString(text)), v); err != nil {
		return fmt.Errorf("the model's output is not the expected JSON: %w", err)
	}
	return nil
}
