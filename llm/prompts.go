package llm

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vibegrapher/vibegrapher/domain/pyast"
)

// vibecoderInstructions are the VibeCoder's system instructions.
const vibecoderInstructions = `You are the VibeCoder: you change a Python workflow written with the OpenAI Agents SDK (the "agents" package) as the user asks.

The project is one file, script.py. Each request shows its current code with line numbers ("  12| code"); the numbers are not part of the file.

To change the code, call the submit_patch tool with a unified diff against the current code:
- hunks start with "@@ -start,count +start,count @@";
- every line of a hunk starts with " " (unchanged context), "-" (removed) or "+" (added);
- include about 3 unchanged context lines around each change so the hunk matches exactly one place;
- copy context and removed lines exactly from the current code, without the line-number prefix.
If the tool answers with an error, fix the patch and call submit_patch again. Submit one patch per request that does everything asked.
When a reviewer rejects your patch, you get its feedback: address it and submit a new patch.
If the user asks a question or no code change is needed, answer in plain text without calling the tool.`

// evaluatorInstructions are the Evaluator's system instructions.
const evaluatorInstructions = `You are the Evaluator: you review a patch that the VibeCoder proposed for a Python workflow written with the OpenAI Agents SDK.

Approve the patch when it does what the user asked, keeps the program correct and runnable, and changes nothing that was not asked. Otherwise reject it and say exactly what must change, so the VibeCoder can fix it.
Answer with JSON: approved (boolean), reasoning (why; for a rejection, the concrete changes needed), commit_message (a one-line imperative commit message when approved, empty when rejected).`

// numbered shows code with line numbers, so the model can refer to lines
// without ambiguity.
func numbered(code string) string {
	if code == "" {
		return "(the file is empty)"
	}
	// A byte order mark is no text of line 1 (patch.Apply sets it aside).
	code = strings.TrimSuffix(strings.TrimPrefix(code, "\ufeff"), "\n")
	lines := strings.Count(code, "\n") + 1
	width := len(strconv.Itoa(lines))
	// Each line is "%*d| %s\n"; written by hand, as fmt took a fifth of
	// the service's CPU for a message on a 5,000-line file.
	b := make([]byte, 0, len(code)+lines*(width+3))
	var num [20]byte
	for i := 1; i <= lines; i++ {
		line, rest, _ := strings.Cut(code, "\n")
		n := strconv.AppendInt(num[:0], int64(i), 10)
		for range width - len(n) {
			b = append(b, ' ')
		}
		b = append(b, n...)
		b = append(b, "| "...)
		b = append(b, line...)
		b = append(b, '\n')
		code = rest
	}
	return string(b)
}

// focusText tells the VibeCoder which agent a node session is about.
func focusText(node *pyast.AgentNode, code string) string {
	if node == nil {
		return ""
	}
	lines := strings.Split(code, "\n")
	def := strings.Join(lines[node.LineStart-1:min(node.LineEnd, len(lines))], "\n")
	return fmt.Sprintf("\nThis conversation is about the agent %q (variable %s), lines %d-%d. Change only those lines:\n```python\n%s\n```\n",
		node.Name, node.ID, node.LineStart, node.LineEnd, def)
}

// VibeCoderRequest is the first request of a user message to the VibeCoder:
// the code with line numbers, the node to focus on, and the person's prompt.
func VibeCoderRequest(prompt, code string, node *pyast.AgentNode) string {
	return fmt.Sprintf("Current script.py:\n```\n%s```\n%s\nRequest:\n%s", numbered(code), focusText(node, code), prompt)
}

// VibeCoderFeedback is the request of a later iteration: the Evaluator's
// feedback on the previous patch and the unchanged code.
func VibeCoderFeedback(feedback, code string, node *pyast.AgentNode) string {
	return fmt.Sprintf("The reviewer rejected your patch:\n%s\n\nThe code is unchanged; here it is again:\n```\n%s```\n%s\nSubmit a corrected patch.",
		feedback, numbered(code), focusText(node, code))
}

// The conversation's memory keeps each request without its copy of the
// script (Items.AddUserKept): the current code comes with every request, and
// a memory that kept one per message grew by the script's size with each.
// leftOut says so where the script was.
const leftOut = "(script.py as it was then is left out of the conversation; the latest request has the current code.)"

// VibeCoderRequestKept is what memory keeps of a VibeCoderRequest.
func VibeCoderRequestKept(prompt string) string {
	return fmt.Sprintf("%s\nRequest:\n%s", leftOut, prompt)
}

// VibeCoderFeedbackKept is what memory keeps of a VibeCoderFeedback.
func VibeCoderFeedbackKept(feedback string) string {
	return fmt.Sprintf("The reviewer rejected your patch:\n%s\n\n%s\nSubmit a corrected patch.", feedback, leftOut)
}

// VibeCoderFinalVerdict tells the VibeCoder, in its memory, the review of
// its last patch when no round follows (the message ended max_iterations):
// the person saw it, and may refer to it in the next message.
func VibeCoderFinalVerdict(feedback string) string {
	return fmt.Sprintf("The reviewer rejected your patch again, and no more rounds were allowed; the code is unchanged. The person was shown this review:\n%s", feedback)
}

// EvaluatorRequest asks the Evaluator to review a patch: the patch and the
// script after it (the script before it is the patch undone: sending both
// copies doubled the request, which then passed the model's context at a
// third of the size of code a project may hold).
func EvaluatorRequest(prompt, description, diff, patched string, iteration int) string {
	return fmt.Sprintf("Review round %d.\n\nThe user asked:\n%s\n\nThe VibeCoder says: %s\n\nProposed patch:\n```diff\n%s```\n\nscript.py after the patch:\n```\n%s```",
		iteration, prompt, description, diff, numbered(patched))
}

// EvaluatorRequestKept is what memory keeps of an EvaluatorRequest.
func EvaluatorRequestKept(prompt, description, diff string, iteration int) string {
	return fmt.Sprintf("Review round %d.\n\nThe user asked:\n%s\n\nThe VibeCoder says: %s\n\nProposed patch:\n```diff\n%s```\n\n%s",
		iteration, prompt, description, diff, leftOut)
}

// submitPatchSchema is the strict JSON schema of submit_patch's arguments.
func submitPatchSchema() map[string]any {
	return map[string]any{
		"type": "object",
		"properties": map[string]any{
			"patch":       map[string]any{"type": "string", "description": "a unified diff against the current script.py"},
			"description": map[string]any{"type": "string", "description": "one or two sentences: what the patch changes and why"},
		},
		"required":             []string{"patch", "description"},
		"additionalProperties": false,
	}
}

// commitMessageInstructions are the small model's instructions for
// refine-message.
const commitMessageInstructions = `You write git commit messages. Given a unified diff and the request behind it, answer with one commit message only: an imperative summary line of at most 72 characters, optionally followed by a blank line and a short body. No quotes, no code fences.`

func commitMessageRequest(r CommitMessageRequest) string {
	ask := "Request behind the change:\n" + r.Request + "\n\nDiff:\n```diff\n" + r.Diff + "```\n\nCurrent commit message:\n" + r.Current
	if r.How != "" {
		ask += "\n\nHow to change it: " + r.How
	}
	return ask
}
