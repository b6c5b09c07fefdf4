package pyast_test

import (
	"errors"
	"fmt"

	"github.com/vibegrapher/vibegrapher/domain/pyast"
)

const workflow = `from agents import Agent, WebSearchTool, handoff

researcher = Agent(name="Researcher", tools=[WebSearchTool()])
writer = Agent(name="Writer")
triage = Agent(
    name="Triage",
    handoffs=[researcher, handoff(writer)],
)
`

func ExampleParseAgents() {
	agents, err := pyast.ParseAgents(workflow)
	if err != nil {
		panic(err)
	}
	for _, a := range agents {
		fmt.Printf("%s %q lines %d-%d children %v tools %v\n", a.ID, a.Name, a.LineStart, a.LineEnd, a.Children, a.Tools)
	}
	// Output:
	// researcher "Researcher" lines 3-3 children [] tools [WebSearchTool]
	// writer "Writer" lines 4-4 children [] tools []
	// triage "Triage" lines 5-8 children [researcher writer] tools []
}

func ExampleCheckSyntax() {
	err := pyast.CheckSyntax("def main():\n    print('hi')\n  return 1\n")
	fmt.Println(err)

	var se *pyast.SyntaxError
	if errors.As(err, &se) {
		fmt.Println(se.Line, se.Column)
	}
	// Output:
	// line 3: unindent does not match any outer indentation level
	// 3 3
}

func ExampleReplaceAgent() {
	code, err := pyast.ReplaceAgent(workflow, "writer", `writer = Agent(name="Writer", instructions="Write short paragraphs.")`)
	if err != nil {
		panic(err)
	}
	fmt.Print(code)
	// Output:
	// from agents import Agent, WebSearchTool, handoff
	//
	// researcher = Agent(name="Researcher", tools=[WebSearchTool()])
	// writer = Agent(name="Writer", instructions="Write short paragraphs.")
	// triage = Agent(
	//     name="Triage",
	//     handoffs=[researcher, handoff(writer)],
	// )
}
