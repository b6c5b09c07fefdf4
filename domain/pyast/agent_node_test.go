package pyast

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/internal/fixtures"
)

// sampleWorkflow is the workflow new projects start with.
const sampleWorkflow = domain.SampleWorkflow

// agent builds an expected AgentNode; children and tools default to empty.
func agent(id, name string, start, end int, children, tools []string) AgentNode {
	if children == nil {
		children = []string{}
	}
	if tools == nil {
		tools = []string{}
	}
	return AgentNode{ID: id, Name: name, LineStart: start, LineEnd: end, Children: children, Tools: tools}
}

func TestParseAgentsSampleWorkflow(t *testing.T) {
	got, err := ParseAgents(sampleWorkflow)
	if err != nil {
		t.Fatal(err)
	}
	want := []AgentNode{
		agent("spanish_agent", "Spanish agent", 4, 7, nil, nil),
		agent("english_agent", "English agent", 9, 12, nil, nil),
		agent("triage_agent", "Triage agent", 14, 18, []string{"spanish_agent", "english_agent"}, nil),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseAgents(sample) =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseAgents(t *testing.T) {
	tests := []struct {
		name string
		code string
		want []AgentNode
	}{
		{
			name: "empty file",
			code: "",
			want: []AgentNode{},
		},
		{
			name: "no agents, comments only",
			code: "# a = Agent(name=\"commented out\")\n\n",
			want: []AgentNode{},
		},
		{
			name: "single line",
			code: "from agents import Agent\na = Agent(name=\"A\", instructions=\"Be brief.\")\n",
			want: []AgentNode{agent("a", "A", 2, 2, nil, nil)},
		},
		{
			name: "last line without newline",
			code: "a = Agent(name='A')",
			want: []AgentNode{agent("a", "A", 1, 1, nil, nil)},
		},
		{
			name: "multiline call with nested calls",
			code: `from agents import Agent, ModelSettings

writer = Agent(
    name="Writer",
    instructions=load_instructions("writer.md"),
    model="gpt-5",
    model_settings=ModelSettings(
        temperature=0.2,
        extra_args={"service_tier": "flex"},
    ),
)
`,
			want: []AgentNode{agent("writer", "Writer", 3, 11, nil, nil)},
		},
		{
			name: "Agent( in strings and comments",
			code: `"""Module docstring: x = Agent(name="not an agent")"""
# y = Agent(name="commented")
doc = """
z = Agent(name="inside a string")
"""
real = Agent(
    name="Real",  # Agent(name="comment in the call")
    instructions="""Say Agent( and handoffs=[x] without meaning it.
fake = Agent(name="fake")""",
)
`,
			want: []AgentNode{agent("real", "Real", 6, 10, nil, nil)},
		},
		{
			name: "decorators and functions around agents",
			code: `from agents import Agent, function_tool

@function_tool
def get_weather(city: str) -> str:
    """Weather for a city; Agent( in a docstring."""
    return f"sunny in {city}"


@dataclass
class Settings:
    verbose: bool = False


weather_agent = Agent(name="Weather", tools=[get_weather])
`,
			want: []AgentNode{agent("weather_agent", "Weather", 14, 14, nil, []string{"get_weather"})},
		},
		{
			name: "handoffs by name, attribute and handoff()",
			code: `from agents import Agent, handoff
import agents

billing = Agent(name="Billing")
refunds = Agent(name="Refunds")
triage = Agent(
    name="Triage",
    handoffs=[
        billing,  # by variable
        team.support,
        handoff(refunds, tool_name_override="refund"),
        handoff(agent=billing),
        agents.handoff(team.sales),
        Agent(name="inline, not a node"),
    ],
)
`,
			want: []AgentNode{
				agent("billing", "Billing", 4, 4, nil, nil),
				agent("refunds", "Refunds", 5, 5, nil, nil),
				agent("triage", "Triage", 6, 16, []string{"billing", "support", "refunds", "billing", "sales"}, nil),
			},
		},
		{
			name: "tools of every shape",
			code: `from agents import Agent, WebSearchTool, FileSearchTool, function_tool

helper = Agent(
    name="Helper",
    tools=[
        WebSearchTool(),
        FileSearchTool(max_num_results=3, vector_store_ids=["vs_1"]),
        get_weather,
        tools.lookup_order,
        function_tool(fetch_page, name_override="fetch"),
        spanish_agent.as_tool(tool_name="translate_to_spanish", tool_description="Spanish"),
        french_agent.as_tool(tool_description="French"),
    ],
)
`,
			want: []AgentNode{agent("helper", "Helper", 3, 14, nil, []string{
				"WebSearchTool", "FileSearchTool", "get_weather", "lookup_order", "fetch_page",
				"translate_to_spanish", "french_agent",
			})},
		},
		{
			name: "agents inside functions, classes and if blocks",
			code: `from agents import Agent


def build(lang):
    if lang == "es":
        agent = Agent(name="Spanish")
    else:
        agent = Agent(
            name="English",
        )
    return agent


class Team:
    def __init__(self):
        self.lead = Agent(name="Lead", handoffs=[self.helper])


try:
    backup = Agent(name="Backup")
except ImportError:
    pass
`,
			want: []AgentNode{
				agent("agent", "Spanish", 6, 6, nil, nil),
				agent("agent", "English", 8, 10, nil, nil),
				agent("lead", "Lead", 16, 16, []string{"helper"}, nil),
				agent("backup", "Backup", 20, 20, nil, nil),
			},
		},
		{
			name: "agents.Agent, generic Agent[Ctx], annotated and chained",
			code: `import agents
from agents import Agent

plain = agents.Agent(name="Module attribute")
typed = Agent[UserContext](name="Generic")
annotated: Agent[UserContext] = agents.Agent[UserContext](
    name="Annotated",
)
first = second = Agent(name="Chained")
not_agent = AgentFactory(name="Other class")
cloned = plain.clone(name="Clone")
runner = Runner.run_sync(plain, "hi")
`,
			want: []AgentNode{
				agent("plain", "Module attribute", 4, 4, nil, nil),
				agent("typed", "Generic", 5, 5, nil, nil),
				agent("annotated", "Annotated", 6, 8, nil, nil),
				agent("first", "Chained", 9, 9, nil, nil),
			},
		},
		{
			name: "name literals",
			code: `a = Agent(name='single')
b = Agent(name="""triple""")
c = Agent(name=r"raw\n")
d = Agent(name="caf\u00e9 \x41\n")
e = Agent(name="con" 'cat' f"enated")
f = Agent(name=f"{prefix} agent")
g = Agent(name=NAME)
h = Agent("Positional", instructions="x")
i = Agent(name=("parenthesized"))
j = Agent(name=f"{{braces}}")
k = Agent(name=b"bytes")
`,
			want: []AgentNode{
				agent("a", "single", 1, 1, nil, nil),
				agent("b", "triple", 2, 2, nil, nil),
				agent("c", `raw\n`, 3, 3, nil, nil),
				agent("d", "café A\n", 4, 4, nil, nil),
				agent("e", "concatenated", 5, 5, nil, nil),
				agent("f", "", 6, 6, nil, nil),
				agent("g", "", 7, 7, nil, nil),
				agent("h", "Positional", 8, 8, nil, nil),
				agent("i", "parenthesized", 9, 9, nil, nil),
				agent("j", "{braces}", 10, 10, nil, nil),
				agent("k", "", 11, 11, nil, nil),
			},
		},
		{
			name: "unicode before and inside agents",
			code: `# Ünïcödé comment: 日本語のコメント 🤖🤖🤖
greeting = "¿Qué tal? Ça va? Привет!"
日本 = Agent(
    name="エージェント 🤖",
    instructions="""Réponds en français.
Antworte auf Deutsch. 答えてください。""",
)
español = Agent(name="Español ñ", handoffs=[日本])
`,
			want: []AgentNode{
				agent("日本", "エージェント 🤖", 3, 7, nil, nil),
				agent("español", "Español ñ", 8, 8, []string{"日本"}, nil),
			},
		},
		{
			name: "CRLF line endings",
			code: "a = Agent(\r\n    name=\"A\",\r\n)\r\n\r\nb = Agent(name=\"B\")\r\n",
			want: []AgentNode{agent("a", "A", 1, 3, nil, nil), agent("b", "B", 5, 5, nil, nil)},
		},
		{
			name: "lone CR line endings",
			code: "a = Agent(\r    name=\"A\",\r)\rb = Agent(name=\"B\")\r",
			want: []AgentNode{agent("a", "A", 1, 3, nil, nil), agent("b", "B", 4, 4, nil, nil)},
		},
		{
			name: "byte order mark",
			code: "\ufeffa = Agent(name=\"A\")\n",
			want: []AgentNode{agent("a", "A", 1, 1, nil, nil)},
		},
		{
			name: "continuation lines indented less than their block",
			code: "def build():\n    a = Agent(name=\"A\",\n  instructions=(\"x\" +\n\"y\"))\n    return a\n",
			want: []AgentNode{agent("a", "A", 2, 4, nil, nil)},
		},
		{
			name: "backslash continuation",
			code: "a = \\\n    Agent(name=\"A\")\n",
			want: []AgentNode{agent("a", "A", 1, 2, nil, nil)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAgents(tt.code)
			if err != nil {
				t.Fatalf("ParseAgents: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseAgents =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseAgentsSyntaxError(t *testing.T) {
	tests := []struct {
		name string
		code string
		line int
	}{
		{"missing comma between arguments", "a = Agent(\n    name=\"A\"\n    instructions=\"x\",\n)\n", 3},
		{"unclosed call", "x = 1\na = Agent(\n    name=\"A\",\n\nb = 2\n", 2},
		{"bad indentation", sampleWorkflow + "  stray = 1\n", 28},
		{"unterminated string", "a = Agent(name=\"A)\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAgents(tt.code)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("ParseAgents error = %v, want a *SyntaxError", err)
			}
			if got != nil {
				t.Errorf("ParseAgents agents = %+v, want nil", got)
			}
			if se.Line != tt.line {
				t.Errorf("SyntaxError line = %d (%v), want %d", se.Line, se, tt.line)
			}
		})
	}
}

func TestAgentNodeJSON(t *testing.T) {
	nodes, err := ParseAgents("a = Agent(name=\"A\")\n")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(nodes)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"id":"a","name":"A","line_start":1,"line_end":1,"children":[],"tools":[]}]`
	if string(b) != want {
		t.Errorf("JSON = %s, want %s", b, want)
	}
	empty, err := ParseAgents("")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(empty); string(b) != "[]" {
		t.Errorf("JSON of no agents = %s, want []", b)
	}
}

// TestConcurrentUse runs the package from many goroutines at once; run it
// with -race.
func TestConcurrentUse(t *testing.T) {
	code := fixtures.AgentsFile(300)
	want, err := ParseAgents(code)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		go func() {
			for j := 0; j < 5; j++ {
				got, err := ParseAgents(code)
				if err == nil && !reflect.DeepEqual(got, want) {
					err = errors.New("different agents")
				}
				if err == nil {
					err = CheckSyntax(code + "\n        bad_indent = 1\n")
					if err == nil || !strings.Contains(err.Error(), "unexpected indent") {
						err = errors.New("bad indentation not reported: " + errString(err))
					} else {
						err = nil
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for i := 0; i < 16; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
