package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/responses"
)

// Conversation memory is a list of input items kept by the server, not by
// OpenAI (store=false). Each turn sends the stored items plus the new ones,
// then appends the response's items (InputItemsOf) and the tool outputs.
//
// Items are stored as the exact JSON that is sent. Reading them back wraps
// that JSON with param.Override instead of decoding it into the SDK's union
// type: openai-go's UnmarshalJSON of ResponseInputItemUnionParam rejects a
// message without "type" and turns an assistant output message into an input
// message, dropping its id, status and phase. With Override the JSON is
// re-sent byte for byte; the typed fields (OfMessage, GetType, …) of such an
// item are empty. The agents' Items (agents.go) do not even wrap them: they
// splice the stored JSON into the request body as it is.

// UserMessage is a user message item.
func UserMessage(text string) responses.ResponseInputItemUnionParam {
	return responses.ResponseInputItemUnionParam{OfMessage: &responses.EasyInputMessageParam{
		Type:    responses.EasyInputMessageTypeMessage,
		Role:    responses.EasyInputMessageRoleUser,
		Content: responses.EasyInputMessageContentUnionParam{OfString: openai.String(text)},
	}}
}

// FunctionCalls returns the function calls of a response, in order. Answer
// each with ToolOutput(fc.CallID, …).
func FunctionCalls(r *responses.Response) []responses.ResponseFunctionToolCall {
	if r == nil {
		return nil
	}
	var calls []responses.ResponseFunctionToolCall
	for _, it := range r.Output {
		if it.Type == "function_call" {
			calls = append(calls, it.AsFunctionCall())
		}
	}
	return calls
}

// ToolOutput is the item that answers a function call. callID is the call's
// CallID ("call_…"), not its ID ("fc_…").
func ToolOutput(callID, output string) responses.ResponseInputItemUnionParam {
	return responses.ResponseInputItemUnionParam{OfFunctionCallOutput: &responses.ResponseInputItemFunctionCallOutputParam{
		CallID: openai.String(callID),
		Output: responses.ResponseInputItemFunctionCallOutputOutputUnionParam{OfString: openai.String(output)},
	}}
}

// InputItemsOf turns a response's output (messages, function calls, reasoning
// and any other item) into input items to send in the next request, each as
// the exact JSON OpenAI returned. Reasoning items without encrypted content
// are left out: with store=false OpenAI cannot resolve them by id and rejects
// the request. Ask for that content with Stateless.
func InputItemsOf(r *responses.Response) []responses.ResponseInputItemUnionParam {
	raws := replayable(r)
	items := make([]responses.ResponseInputItemUnionParam, 0, len(raws))
	for _, raw := range raws {
		items = append(items, param.Override[responses.ResponseInputItemUnionParam](json.RawMessage(raw)))
	}
	return items
}

// replayable is the JSON of the output items of r that InputItemsOf replays.
func replayable(r *responses.Response) []string { return fromSDK(r).replayable() }

// Input makes a request's input from a list of items.
func Input(items []responses.ResponseInputItemUnionParam) responses.ResponseNewParamsInputUnion {
	return responses.ResponseNewParamsInputUnion{OfInputItemList: items}
}

// Stateless sets up params for memory kept by the caller: OpenAI stores
// nothing (store=false) and returns the encrypted content of reasoning items,
// so InputItemsOf can replay them. For reasoning models (gpt-5, o-series);
// other models reject the include.
func Stateless(params responses.ResponseNewParams) responses.ResponseNewParams {
	params.Store = openai.Bool(false)
	for _, inc := range params.Include {
		if inc == responses.ResponseIncludableReasoningEncryptedContent {
			return params
		}
	}
	params.Include = append(append([]responses.ResponseIncludable(nil), params.Include...),
		responses.ResponseIncludableReasoningEncryptedContent)
	return params
}

// MarshalItems encodes items as a JSON array, exactly as they are sent.
func MarshalItems(items []responses.ResponseInputItemUnionParam) ([]byte, error) {
	if items == nil {
		items = []responses.ResponseInputItemUnionParam{}
	}
	return json.Marshal(items)
}

// UnmarshalItems reads items written by MarshalItems (or any JSON array of
// Responses API input items) so that they are sent again unchanged. Each item
// wraps its JSON with param.Override, because openai-go's own UnmarshalJSON of
// the union is lossy; the typed fields (OfMessage, GetType, …) of a loaded
// item are therefore empty.
func UnmarshalItems(data []byte) ([]responses.ResponseInputItemUnionParam, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, fmt.Errorf("conversation items: want a JSON array of items: %w", err)
	}
	items := make([]responses.ResponseInputItemUnionParam, 0, len(raws))
	for i, raw := range raws {
		item, err := UnmarshalItem(raw)
		if err != nil {
			return nil, fmt.Errorf("conversation item %d: %w", i, err)
		}
		items = append(items, item)
	}
	return items, nil
}

// UnmarshalItem reads one item, the JSON of json.Marshal(item), so that it is
// sent again unchanged.
func UnmarshalItem(data []byte) (responses.ResponseInputItemUnionParam, error) {
	data = bytes.TrimSpace(data)
	var probe struct {
		Type string          `json:"type"`
		Role json.RawMessage `json:"role"`
	}
	if len(data) == 0 || data[0] != '{' {
		return responses.ResponseInputItemUnionParam{}, errors.New("an input item must be a JSON object")
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return responses.ResponseInputItemUnionParam{}, err
	}
	if probe.Type == "" && probe.Role == nil {
		return responses.ResponseInputItemUnionParam{}, errors.New(`an input item needs a "type" (or a "role" for a message)`)
	}
	return param.Override[responses.ResponseInputItemUnionParam](json.RawMessage(bytes.Clone(data))), nil
}
