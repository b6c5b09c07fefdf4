package llm

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/vibecode"
	"github.com/vibegrapher/vibegrapher/internal/openaitest"
)

// An agent's request is what openai-go would encode from its params with the
// same prompt cache key and items as input.
func TestAgentRequestIsWhatOpenAIGoEncodes(t *testing.T) {
	c := New(Config{APIKey: "sk-test"})
	memory, err := MemoryOf(json.RawMessage(`[{"role": "user", "content": "a"}, {"id": "fc_1", "name": "submit_patch", "type": "function_call", "call_id": "call_1", "arguments": "{}"}, {"type": "function_call_output", "output": "ok", "call_id": "call_1"}]`))
	if err != nil {
		t.Fatal(err)
	}
	var turn Items
	turn.AddUser("b <c> \"d\"")
	turn.AddToolOutputs([]vibecode.ToolOutput{{CallID: "call_2", Output: "fine"}})

	for _, agent := range []struct {
		name   string
		a      *agentParams
		params func() responses.ResponseNewParams
	}{{"vibecoder", &c.vibecoder, c.vibecoderParams}, {"evaluator", &c.evaluator, c.evaluatorParams}} {
		for _, tc := range []struct {
			name         string
			key          string
			memory, turn Items
			stream       bool
		}{
			{"memory and turn", "sess_1", memory, turn, true},
			{"turn only", "sess <1>", Items{}, turn, false},
			{"memory only", "sess_1", memory, Items{}, false},
			{"nothing, no key", "", Items{}, Items{}, true},
		} {
			body, err := agent.a.get(agent.params).body(tc.key, tc.memory, tc.turn, tc.stream)
			if err != nil {
				t.Fatal(err)
			}
			m := tc.memory.Marshal()
			tu := tc.turn.Marshal()
			a, err := UnmarshalItems(m)
			if err != nil {
				t.Fatal(err)
			}
			b, err := UnmarshalItems(tu)
			if err != nil {
				t.Fatal(err)
			}
			want := agent.params()
			if tc.key != "" {
				want.PromptCacheKey = openai.String(tc.key)
			}
			want.Input = Input(append(append([]responses.ResponseInputItemUnionParam{}, a...), b...))
			wantBody, err := want.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			var got, exp map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("%s, %s: %v: %s", agent.name, tc.name, err, body)
			}
			if err := json.Unmarshal(wantBody, &exp); err != nil {
				t.Fatal(err)
			}
			if tc.stream {
				exp["stream"] = true
			}
			if !reflect.DeepEqual(got, exp) {
				t.Errorf("%s, %s:\n got %s\nwant %s", agent.name, tc.name, body, wantBody)
			}
		}
	}
}

// The items built here (user messages, tool outputs) are the bytes openai-go
// encodes from UserMessage and ToolOutput, for any text: memory stored
// before and after reads the same.
func TestItemsBuiltHereAreWhatOpenAIGoEncodes(t *testing.T) {
	var controls []byte
	for c := range 0x80 {
		controls = append(controls, byte(c))
	}
	texts := []string{
		"", "hi", "b <c> & \"d\" \\ e\n\tf\r\b\f", string(controls), "\u2028\u2029 é 😀 \u00a0\ufeff",
		"bad \xff\xfe utf-8 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf \xe2\x82", "\xe2\x80\xa8\xe2\x80",
		VibeCoderRequest("Make it polite.", domain.SampleWorkflow, nil),
	}
	for i := range 200 { // every byte value, in short strings
		texts = append(texts, string([]byte{byte(i), 'a', byte(255 - i), byte(i + 56)}))
	}
	for _, text := range texts {
		var it Items
		it.AddUser(text)
		it.AddToolOutputs([]vibecode.ToolOutput{{CallID: "call_<1>\"" + text, Output: text}})
		user, err := UserMessage(text).MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		out, err := ToolOutput("call_<1>\""+text, text).MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		got, want := string(it.raw), string(user)+","+string(out)
		if got != want {
			at := 0
			for at < len(got) && at < len(want) && got[at] == want[at] {
				at++
			}
			t.Errorf("items of %.40q differ at byte %d:\n got …%.80q\nwant …%.80q", text, at, got[at:], want[at:])
		}
	}
}

func TestCleanCommitMessage(t *testing.T) {
	for in, want := range map[string]string{
		"Say Hi":                               "Say Hi",
		"  `Say Hi`\n":                         "Say Hi",
		`"Say Hi"`:                             "Say Hi",
		"```\nSay Hi\n```":                     "Say Hi",
		"```text\nSay Hi\n\nWhy: brevity\n```": "Say Hi\n\nWhy: brevity",
		"```Say Hi```":                         "Say Hi",
		"```\n\n```":                           "",
		"\"  `\"":                              "",
		"Fix the `greet` helper":               "Fix the `greet` helper",
	} {
		if got := cleanCommitMessage(in); got != want {
			t.Errorf("cleanCommitMessage(%q) = %q, want %q", in, got, want)
		}
	}
}

// A small model that does not answer is unavailable after
// commitMessageTimeout, retries included, rather than after the SDK's
// ten-minute header timeout per attempt.
func TestCommitMessageHasADeadline(t *testing.T) {
	defer func(d time.Duration) { commitMessageTimeout = d }(commitMessageTimeout)
	commitMessageTimeout = 200 * time.Millisecond
	s := openaitest.New(t)
	release := make(chan struct{})
	defer close(release)
	s.Handle(func(openaitest.Request) openaitest.Reply {
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		return openaitest.Text("late")
	})
	c := New(Config{APIKey: "k", BaseURL: s.URL(), MaxRetries: 2})
	// Without the deadline the answer comes after 10 s and is taken.
	msg, err := c.CommitMessage(context.Background(), CommitMessageRequest{Request: "r", Diff: "d", Current: "c"})
	if domain.ErrorCodeOf(err) != domain.EUNAVAILABLE {
		t.Fatalf("CommitMessage = %q, %v", msg, err)
	}
}

// A turn sends its user message as made, and memory keeps what AddUserKept
// was given for it; every other item is the same in both, before and after.
func TestItemsKeepTheirRememberedUserMessage(t *testing.T) {
	var it Items
	it.AddToolOutputs([]vibecode.ToolOutput{{CallID: "call_0", Output: "before"}})
	it.AddUserKept("the whole script \"and\" the request", "the request")
	it.AddToolOutputs([]vibecode.ToolOutput{{CallID: "call_1", Output: "after"}})
	var sent, kept Items
	for _, x := range []*Items{&sent, &kept} {
		x.AddToolOutputs([]vibecode.ToolOutput{{CallID: "call_0", Output: "before"}})
	}
	sent.AddUser("the whole script \"and\" the request")
	kept.AddUser("the request")
	for _, x := range []*Items{&sent, &kept} {
		x.AddToolOutputs([]vibecode.ToolOutput{{CallID: "call_1", Output: "after"}})
	}
	if got, want := string(it.Marshal()), string(sent.Marshal()); got != want {
		t.Errorf("sent:\n%s\nwant\n%s", got, want)
	}
	if got, want := string(it.Kept()), string(kept.Marshal()); got != want {
		t.Errorf("kept:\n%s\nwant\n%s", got, want)
	}
	var first Items // a turn that starts with it, as a step's does
	first.AddUserKept("sent", "kept")
	if string(first.Kept()) != `[{"content":"kept","role":"user","type":"message"}]` || string(first.Marshal()) != `[{"content":"sent","role":"user","type":"message"}]` {
		t.Errorf("first: %s / %s", first.Marshal(), first.Kept())
	}
	var plain Items
	plain.AddUser("x")
	if string(plain.Kept()) != string(plain.Marshal()) {
		t.Errorf("without AddUserKept memory keeps %s, sent %s", plain.Kept(), plain.Marshal())
	}
}
