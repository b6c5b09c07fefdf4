package pyast

import (
	sitter "github.com/tree-sitter/go-tree-sitter"
)

// AgentNode is one agent of a project's workflow: an `Agent(...)` call
// assigned to a variable. The UI draws agents as nodes and handoffs as edges.
type AgentNode struct {
	// ID is the variable the agent is assigned to (for `self.triage =
	// Agent(...)`, the attribute name, triage).
	ID string `json:"id"`
	// Name is the `name=` argument (or the first positional argument) when
	// it is a string literal, and empty otherwise.
	Name string `json:"name"`
	// LineStart and LineEnd are the 1-based, inclusive lines of the whole
	// assignment statement.
	LineStart int `json:"line_start"`
	LineEnd   int `json:"line_end"`
	// Children are the agents in `handoffs=[...]`, in order, by the name the
	// code uses: a variable, the last name of an attribute (`team.billing` is
	// billing), or the agent of a `handoff(agent, ...)` or
	// `handoff(agent=..., ...)` call. They may name agents that are not in
	// the file (imported ones). Never nil.
	Children []string `json:"children"`
	// Tools are the tools in `tools=[...]`, in order: a variable or the last
	// name of an attribute (a @function_tool function), the function of
	// `function_tool(fn)`, the tool_name of `agent.as_tool(tool_name="x")`
	// (else the agent), and otherwise the callee of a call (`WebSearchTool()`
	// is WebSearchTool). Never nil.
	Tools []string `json:"tools"`
}

// ParseAgents returns the agents defined in code, in source order: every
// assignment statement, at any depth (in functions, classes, if blocks),
// whose value is a call of `Agent`, of an attribute named Agent
// (`agents.Agent`) or of either subscripted (`Agent[UserContext]`). The
// assignment may be annotated (`x: Agent = Agent(...)`) or chained (`a = b =
// Agent(...)`, whose ID is a). `Agent(` in strings and comments does not
// count. An ID may repeat when a variable is assigned an agent twice.
//
// Code that is not valid Python (see CheckSyntax) yields (nil, *SyntaxError):
// line numbers of a file that does not parse cannot be trusted. Code without
// agents, like an empty file, yields an empty slice and nil.
func ParseAgents(code string) ([]AgentNode, error) {
	// Its parse and agents are kept: the code whose agents are asked for is
	// a project's head, which the next patches are edits of (CheckEdit),
	// and whose agents a node session's every message asks for again.
	return editBases.agents(code)
}

// agentFinder walks a checked tree's statements; it never descends into
// expressions, where no assignment statement can be.
type agentFinder struct {
	g      *grammar
	p      *parsed
	src    []byte
	cursor *sitter.TreeCursor // for reading argument lists
	agents []AgentNode
}

func findAgents(p *parsed) []AgentNode {
	f := &agentFinder{g: loadGrammar(), p: p, src: p.src, agents: []AgentNode{}}
	root := p.tree.RootNode()
	f.cursor = root.Walk()
	defer f.cursor.Close()

	walk := root.Walk()
	defer walk.Close()
	for {
		n := walk.Node()
		kind := n.KindId()
		descend := false
		switch {
		case kind == f.g.expressionStatement:
			f.statement(n)
		case int(kind) < len(f.g.statementContainer) && f.g.statementContainer[kind]:
			descend = true
		}
		if descend && walk.GotoFirstChild() {
			continue
		}
		for !walk.GotoNextSibling() {
			if !walk.GotoParent() {
				return f.agents
			}
		}
	}
}

// statement adds the agent that the expression statement n assigns, if any.
func (f *agentFinder) statement(n *sitter.Node) {
	a := n.NamedChild(0)
	if a == nil || a.KindId() != f.g.assignment {
		return
	}
	id := f.targetName(a.ChildByFieldId(f.g.fieldLeft))
	value := a.ChildByFieldId(f.g.fieldRight)
	for value != nil && value.KindId() == f.g.assignment { // a = b = Agent(...)
		value = value.ChildByFieldId(f.g.fieldRight)
	}
	if id == "" || value == nil || value.KindId() != f.g.call || !f.isAgentClass(value.ChildByFieldId(f.g.fieldFunction)) {
		return
	}
	agent := AgentNode{
		ID:        id,
		LineStart: f.p.line(int(n.StartByte())),
		LineEnd:   f.p.line(max(int(n.EndByte())-1, int(n.StartByte()))),
		Children:  []string{},
		Tools:     []string{},
	}
	args := value.ChildByFieldId(f.g.fieldArguments)
	if args == nil || args.KindId() != f.g.argumentList {
		f.agents = append(f.agents, agent)
		return
	}
	for i, arg := range f.namedChildren(args) {
		if arg.KindId() != f.g.keywordArgument {
			if i == 0 { // Agent is a dataclass whose first field is name
				agent.Name, _ = f.stringValue(&arg)
			}
			continue
		}
		value := arg.ChildByFieldId(f.g.fieldValue)
		if value == nil {
			continue
		}
		switch f.text(arg.ChildByFieldId(f.g.fieldName)) {
		case "name":
			agent.Name, _ = f.stringValue(value)
		case "handoffs":
			agent.Children = f.elements(value, f.handoffTarget)
		case "tools":
			agent.Tools = f.elements(value, f.toolName)
		}
	}
	f.agents = append(f.agents, agent)
}

// targetName is the ID of an assignment target: a name, or the last name of
// an attribute; "" for anything else (tuples, subscripts).
func (f *agentFinder) targetName(n *sitter.Node) string {
	switch {
	case n == nil:
		return ""
	case n.KindId() == f.g.identifier:
		return f.text(n)
	case n.KindId() == f.g.attribute:
		return f.text(n.ChildByFieldId(f.g.fieldAttribute))
	}
	return ""
}

// isAgentClass reports whether a call's function is Agent, x.Agent, or one
// of them subscripted with a context type.
func (f *agentFinder) isAgentClass(fn *sitter.Node) bool {
	if fn != nil && fn.KindId() == f.g.subscript {
		fn = fn.ChildByFieldId(f.g.fieldValue)
	}
	return f.targetName(fn) == "Agent"
}

// elements applies name to each element of a list or tuple literal and keeps
// the non-empty results.
func (f *agentFinder) elements(n *sitter.Node, name func(*sitter.Node) string) []string {
	out := []string{}
	if k := n.KindId(); k != f.g.list && k != f.g.tuple {
		return out
	}
	for _, el := range f.namedChildren(n) {
		if s := name(&el); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// handoffTarget names the agent of a handoffs element: a name, an attribute,
// or handoff(agent, ...) / handoff(agent=..., ...).
func (f *agentFinder) handoffTarget(n *sitter.Node) string {
	if n.KindId() != f.g.call {
		return f.targetName(n)
	}
	if f.targetName(n.ChildByFieldId(f.g.fieldFunction)) != "handoff" {
		return ""
	}
	arg := f.argument(n, "agent")
	if arg == nil {
		return ""
	}
	return f.targetName(arg)
}

// toolName names a tools element; see AgentNode.Tools.
func (f *agentFinder) toolName(n *sitter.Node) string {
	if n.KindId() != f.g.call {
		return f.targetName(n)
	}
	fn := n.ChildByFieldId(f.g.fieldFunction)
	if fn != nil && fn.KindId() == f.g.subscript {
		fn = fn.ChildByFieldId(f.g.fieldValue)
	}
	switch callee := f.targetName(fn); callee {
	case "function_tool":
		if arg := f.argument(n, "func"); arg != nil {
			return f.targetName(arg)
		}
		return ""
	case "as_tool":
		if name := f.keywordArgument(n, "tool_name"); name != nil {
			if s, ok := f.stringValue(name); ok && s != "" {
				return s
			}
		}
		if fn.KindId() == f.g.attribute {
			return f.targetName(fn.ChildByFieldId(f.g.fieldObject))
		}
		return ""
	default:
		return callee
	}
}

// argument returns a call's first positional argument, or else its keyword
// argument named keyword.
func (f *agentFinder) argument(call *sitter.Node, keyword string) *sitter.Node {
	args := call.ChildByFieldId(f.g.fieldArguments)
	if args == nil || args.KindId() != f.g.argumentList {
		return nil
	}
	children := f.namedChildren(args)
	if len(children) > 0 && children[0].KindId() != f.g.keywordArgument {
		return &children[0]
	}
	return f.keywordArgument(call, keyword)
}

func (f *agentFinder) keywordArgument(call *sitter.Node, keyword string) *sitter.Node {
	args := call.ChildByFieldId(f.g.fieldArguments)
	if args == nil || args.KindId() != f.g.argumentList {
		return nil
	}
	for _, arg := range f.namedChildren(args) {
		if arg.KindId() == f.g.keywordArgument && f.text(arg.ChildByFieldId(f.g.fieldName)) == keyword {
			return arg.ChildByFieldId(f.g.fieldValue)
		}
	}
	return nil
}

// namedChildren returns n's named children without comments.
func (f *agentFinder) namedChildren(n *sitter.Node) []sitter.Node {
	children := n.NamedChildren(f.cursor)
	out := children[:0]
	for _, c := range children {
		if c.KindId() != f.g.comment {
			out = append(out, c)
		}
	}
	return out
}

// stringValue is the value of a string literal, of adjacent literals
// ("a" "b") and of either in parentheses.
func (f *agentFinder) stringValue(n *sitter.Node) (string, bool) {
	switch n.KindId() {
	case f.g.str:
		return stringLiteralValue(f.text(n))
	case f.g.concatenatedString:
		var s string
		for _, part := range f.namedChildren(n) {
			v, ok := f.stringValue(&part)
			if !ok {
				return "", false
			}
			s += v
		}
		return s, true
	case f.g.parenthesizedExpression:
		if inner := n.NamedChild(0); inner != nil && n.NamedChildCount() == 1 {
			return f.stringValue(inner)
		}
	}
	return "", false
}

func (f *agentFinder) text(n *sitter.Node) string {
	if n == nil {
		return ""
	}
	return string(f.src[n.StartByte():n.EndByte()])
}
