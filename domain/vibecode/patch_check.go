package vibecode

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/patch"
	"github.com/vibegrapher/vibegrapher/domain/pyast"
)

// SubmitPatchTool is the one tool the VibeCoder has.
const SubmitPatchTool = "submit_patch"

// PatchCheck is the verdict on one submit_patch call.
type PatchCheck struct {
	Description string
	Patched     string
	Diff        string // the patch, normalised to a clean unified diff
	Err         string // why it was refused, in words for the model
}

// CheckPatch applies a submit_patch call's arguments to code and accepts the
// result when it changes something, is valid Python and, in a node session,
// changes only the node's lines.
func CheckPatch(code, arguments string, node *pyast.AgentNode) PatchCheck {
	var args struct {
		Patch       string `json:"patch"`
		Description string `json:"description"`
	}
	if err := json.Unmarshal([]byte(arguments), &args); err != nil {
		return PatchCheck{Err: "the arguments must be a JSON object {\"patch\": string, \"description\": string}: " + err.Error()}
	}
	patched, err := patch.Apply(code, args.Patch)
	if err != nil {
		return PatchCheck{Err: "the patch does not apply: " + err.Error()}
	}
	if patched == code {
		return PatchCheck{Err: "the patch changes nothing"}
	}
	if len(patched) > domain.MaxCodeBytes && len(patched) > len(code) {
		// A project's code may not pass it by a commit either.
		return PatchCheck{Err: fmt.Sprintf("the patched code would be %d bytes, over the limit of %d bytes (1 MiB) a project's code may hold; make it smaller", len(patched), domain.MaxCodeBytes)}
	}
	if err := pyast.CheckEdit(code, patched); err != nil {
		return PatchCheck{Err: "the patched code is not valid Python: " + err.Error()}
	}
	if node != nil {
		if msg := OutsideNode(code, patched, node); msg != "" {
			return PatchCheck{Err: msg}
		}
	}
	return PatchCheck{Description: args.Description, Patched: patched, Diff: patch.Unified(code, patched, domain.ScriptPath)}
}

// OutsideNode explains a change outside the node's lines, or returns "".
// Lines before the node must be identical, and so must the lines after it
// (counted from the end, since the node may grow or shrink).
func OutsideNode(code, patched string, node *pyast.AgentNode) string {
	before := strings.SplitAfter(code, "\n")
	after := strings.SplitAfter(patched, "\n")
	head := node.LineStart - 1
	tail := len(before) - min(node.LineEnd, len(before))
	refuse := func(line int) string {
		return fmt.Sprintf("this session is about agent %s (lines %d-%d); the patch changes line %d outside it. Change only lines %d-%d.",
			node.ID, node.LineStart, node.LineEnd, line, node.LineStart, node.LineEnd)
	}
	if len(after) < head+tail {
		return refuse(node.LineEnd + 1)
	}
	for i := 0; i < head; i++ {
		if before[i] != after[i] {
			return refuse(i + 1)
		}
	}
	for i := 1; i <= tail; i++ {
		if before[len(before)-i] != after[len(after)-i] {
			return refuse(len(before) - i + 1)
		}
	}
	return ""
}

// FocusNode finds the agent a node session is about in the code its message
// works on; a global session (nodeID nil) has none.
func FocusNode(code string, nodeID *string) (*pyast.AgentNode, error) {
	if nodeID == nil {
		return nil, nil
	}
	nodes, err := pyast.ParseAgents(code)
	if err != nil {
		return nil, fmt.Errorf("this node session's code does not parse: %v", err)
	}
	for i := range nodes {
		if nodes[i].ID == *nodeID {
			return &nodes[i], nil
		}
	}
	return nil, fmt.Errorf("agent %q, which this session is about, is no longer in the code", *nodeID)
}

// CheckNode accepts a node id for a new session only if it names an agent
// of the code, given the code's agents or the error parsing it gave (a
// commit's agents are kept: db.Store.ProjectNodes).
func CheckNode(nodes []pyast.AgentNode, parseErr error, node string) error {
	if !domain.IsIdentifier(node) {
		return domain.Invalid("node_id", "must be a Python identifier naming an agent, got %q", node)
	}
	if parseErr != nil {
		return domain.Invalid("node_id", "the project's current code does not parse (%v), so it has no nodes to focus on", parseErr)
	}
	var known []string
	for _, n := range nodes {
		if n.ID == node {
			return nil
		}
		known = append(known, n.ID)
	}
	if len(known) == 0 {
		return domain.Invalid("node_id", "%q is not an agent of the current code, which defines no agents", node)
	}
	return domain.Invalid("node_id", "%q is not an agent of the current code; known agents: %s", node, strings.Join(known, ", "))
}
