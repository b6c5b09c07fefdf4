package pyast

import (
	"errors"
	"strings"
	"testing"

	"github.com/vibegrapher/vibegrapher/internal/fixtures"
)

// checkOtherLinesKept fails unless out is code with lines [start, end] (1-based)
// replaced by exactly the lines of replacement.
func checkOtherLinesKept(t *testing.T, code, out string, start, end int, replacement []string) {
	t.Helper()
	before, after := lineTexts(code), lineTexts(out)
	want := append(append(append([]string{}, before[:start-1]...), replacement...), before[end:]...)
	if len(after) != len(want) {
		t.Fatalf("result has %d lines, want %d:\n%s", len(after), len(want), out)
	}
	for i := range want {
		if after[i] != want[i] {
			t.Errorf("line %d = %q, want %q", i+1, after[i], want[i])
		}
	}
}

// lineTexts splits code into lines, each with its line ending.
func lineTexts(code string) []string {
	var out []string
	for _, l := range splitLines(code) {
		if l.next > l.start {
			out = append(out, code[l.start:l.next])
		}
	}
	return out
}

func TestReplaceAgent(t *testing.T) {
	tests := []struct {
		name        string
		code        string
		id          string
		definition  string
		start, end  int
		replacement []string // the lines expected in place of start..end
	}{
		{
			name:        "multi-line agent of the sample, with a final newline",
			code:        sampleWorkflow,
			id:          "english_agent",
			definition:  "english_agent = Agent(\n    name=\"English agent\",\n    instructions=\"You only speak English. Be brief.\",\n    tools=[WebSearchTool()],\n)\n",
			start:       9,
			end:         12,
			replacement: []string{"english_agent = Agent(\n", "    name=\"English agent\",\n", "    instructions=\"You only speak English. Be brief.\",\n", "    tools=[WebSearchTool()],\n", ")\n"},
		},
		{
			name:        "without a final newline",
			code:        sampleWorkflow,
			id:          "triage_agent",
			definition:  "triage_agent = Agent(name=\"Triage agent\", handoffs=[spanish_agent])",
			start:       14,
			end:         18,
			replacement: []string{"triage_agent = Agent(name=\"Triage agent\", handoffs=[spanish_agent])\n"},
		},
		{
			name:        "last line of a file without a final newline",
			code:        "from agents import Agent\na = Agent(\n    name=\"A\",\n)",
			id:          "a",
			definition:  "a = Agent(name=\"B\")\n",
			start:       2,
			end:         4,
			replacement: []string{"a = Agent(name=\"B\")"},
		},
		{
			name:        "CRLF file keeps its line ending",
			code:        "x = 1\r\na = Agent(\r\n    name=\"A\",\r\n)\r\ny = 2\r\n",
			id:          "a",
			definition:  "a = Agent(name=\"B\")",
			start:       2,
			end:         4,
			replacement: []string{"a = Agent(name=\"B\")\r\n"},
		},
		{
			name:        "indented agent inside a function",
			code:        "def build():\n    a = Agent(name=\"A\")\n    return a\n",
			id:          "a",
			definition:  "    a = Agent(\n        name=\"A2\",\n    )\n",
			start:       2,
			end:         2,
			replacement: []string{"    a = Agent(\n", "        name=\"A2\",\n", "    )\n"},
		},
		{
			name:        "unicode around the agent",
			code:        "# 日本語 🤖\nb = \"ñ\"\na = Agent(name=\"エージェント\")\nc = \"ü\"\n",
			id:          "a",
			definition:  "a = Agent(name=\"Agente 🤖\")\n",
			start:       3,
			end:         3,
			replacement: []string{"a = Agent(name=\"Agente 🤖\")\n"},
		},
		{
			name:       "empty definition deletes the agent",
			code:       sampleWorkflow,
			id:         "spanish_agent",
			definition: "",
			start:      4,
			end:        7,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := ReplaceAgent(tt.code, tt.id, tt.definition)
			if err != nil {
				t.Fatal(err)
			}
			checkOtherLinesKept(t, tt.code, out, tt.start, tt.end, tt.replacement)
		})
	}
}

func TestReplaceAgentRoundTrip(t *testing.T) {
	code := fixtures.AgentsFile(500)
	agents, err := ParseAgents(code)
	if err != nil {
		t.Fatal(err)
	}
	lines := lineTexts(code)
	for _, a := range agents {
		own := strings.Join(lines[a.LineStart-1:a.LineEnd], "")
		out, err := ReplaceAgent(code, a.ID, own)
		if err != nil {
			t.Fatalf("ReplaceAgent(%s): %v", a.ID, err)
		}
		if out != code {
			t.Fatalf("replacing %s with its own text changed the file", a.ID)
		}
	}
}

func TestReplaceAgentErrors(t *testing.T) {
	var se *SyntaxError

	_, err := ReplaceAgent(sampleWorkflow, "french_agent", "french_agent = Agent(name=\"French\")\n")
	if !errors.Is(err, ErrUnknownAgent) {
		t.Errorf("unknown id: error %v, want ErrUnknownAgent", err)
	} else if msg := err.Error(); !strings.Contains(msg, "french_agent") || !strings.Contains(msg, "spanish_agent, english_agent, triage_agent") {
		t.Errorf("unknown id: error %q should name the id and the known ids", msg)
	}

	if _, err := ReplaceAgent("x = 1\n", "a", "a = Agent()\n"); !errors.Is(err, ErrUnknownAgent) {
		t.Errorf("no agents: error %v, want ErrUnknownAgent", err)
	}

	twice := "if x:\n    a = Agent(name=\"A\")\nelse:\n    a = Agent(name=\"B\")\n"
	if _, err := ReplaceAgent(twice, "a", "    a = Agent(name=\"C\")\n"); !errors.Is(err, ErrAmbiguousAgent) {
		t.Errorf("id assigned twice: error %v, want ErrAmbiguousAgent", err)
	}

	_, err = ReplaceAgent(sampleWorkflow, "english_agent", "english_agent = Agent(\n    name=\"English agent\"\n")
	if !errors.As(err, &se) {
		t.Fatalf("invalid result: error %v, want a *SyntaxError", err)
	}
	if se.Line != 9 {
		t.Errorf("invalid result: %v, want line 9", se)
	}

	if _, err := ReplaceAgent(sampleWorkflow+"\n  oops\n", "english_agent", "english_agent = Agent()\n"); !errors.As(err, &se) {
		t.Errorf("invalid current code: error %v, want one wrapping a *SyntaxError", err)
	}
}
