package vibecode_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/patch"
	"github.com/vibegrapher/vibegrapher/domain/pyast"
	"github.com/vibegrapher/vibegrapher/domain/vibecode"
)

const code = domain.SampleWorkflow

// submit is a submit_patch call's arguments for the change from code to
// patched.
func submit(t *testing.T, patched string) string {
	t.Helper()
	raw, err := json.Marshal(map[string]string{"patch": patch.Unified(code, patched, "script.py"), "description": "change it"})
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestCheckPatch(t *testing.T) {
	t.Parallel()
	inSpanish := strings.Replace(code, `"You only speak Spanish."`, `"Sólo hablas español."`, 1)
	inMain := strings.Replace(code, `input="Hola, ¿cómo estás?"`, `input="Hi"`, 1)
	broken := strings.Replace(code, "async def main():", "async def main(:", 1)
	spanish, err := vibecode.FocusNode(code, new("spanish_agent"))
	if err != nil || spanish == nil {
		t.Fatalf("FocusNode(spanish_agent) = %v, %v", spanish, err)
	}
	cases := []struct {
		name, args string
		node       bool
		wantErr    string
	}{
		{"valid global patch", submit(t, inMain), false, ""},
		{"valid node patch", submit(t, inSpanish), true, ""},
		{"node patch outside the node", submit(t, inMain), true, "this session is about agent spanish_agent (lines 4-7)"},
		{"arguments not JSON", `{"patch":`, false, "the arguments must be a JSON object"},
		{"does not apply", `{"patch":"@@ -1,1 +1,1 @@\n-nothing like this\n+x\n","description":""}`, false, "the patch does not apply"},
		{"changes nothing", `{"patch":"","description":""}`, false, "the patch does not apply"},
		{"invalid Python", submit(t, broken), false, "the patched code is not valid Python"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var node = spanish
			if !c.node {
				node = nil
			}
			got := vibecode.CheckPatch(code, c.args, node)
			if c.wantErr == "" {
				if got.Err != "" || got.Patched == "" || got.Diff == "" || got.Description != "change it" {
					t.Fatalf("CheckPatch = %+v, want accepted", got)
				}
				return
			}
			if !strings.Contains(got.Err, c.wantErr) {
				t.Fatalf("CheckPatch error %q, want it to contain %q", got.Err, c.wantErr)
			}
		})
	}
}

func TestFocusNodeAndCheckNode(t *testing.T) {
	t.Parallel()
	if n, err := vibecode.FocusNode(code, nil); n != nil || err != nil {
		t.Fatalf("a global session focuses on nothing, got %v, %v", n, err)
	}
	if _, err := vibecode.FocusNode(code, new("gone_agent")); err == nil || !strings.Contains(err.Error(), "no longer in the code") {
		t.Fatalf("FocusNode of a removed agent: %v", err)
	}
	nodes, perr := pyast.ParseAgents(code)
	if err := vibecode.CheckNode(nodes, perr, "triage_agent"); err != nil {
		t.Fatalf("CheckNode(triage_agent) = %v", err)
	}
	err := vibecode.CheckNode(nodes, perr, "billing_agent")
	if domain.ErrorCodeOf(err) != domain.EINVALID || !strings.Contains(err.Error(), "known agents: spanish_agent, english_agent, triage_agent") {
		t.Fatalf("CheckNode(billing_agent) = %v", err)
	}
	if err := vibecode.CheckNode(nodes, perr, "not an id"); domain.ErrorCodeOf(err) != domain.EINVALID {
		t.Fatalf("CheckNode of a non-identifier = %v", err)
	}
	if _, perr := pyast.ParseAgents("def broken(:\n"); !strings.Contains(fmt.Sprint(vibecode.CheckNode(nil, perr, "a")), "does not parse") {
		t.Fatalf("CheckNode on code that does not parse = %v", vibecode.CheckNode(nil, perr, "a"))
	}
}

func TestAfterVibeCoderReply(t *testing.T) {
	t.Parallel()
	good := submit(t, strings.Replace(code, `input="Hola, ¿cómo estás?"`, `input="Hi"`, 1))
	bad := `{"patch":"@@ -1 +1 @@\n-nope\n+x\n","description":"d"}`

	d := vibecode.AfterVibeCoderReply(code, nil, "It is a triage workflow.", nil)
	if !d.Answered || d.Content != "It is a triage workflow." || d.Accepted != nil {
		t.Fatalf("text reply: %+v", d)
	}

	d = vibecode.AfterVibeCoderReply(code, nil, "", []vibecode.ToolCall{
		{CallID: "call_1", Name: "submit_patch", Arguments: bad},
		{CallID: "call_2", Name: "submit_patch", Arguments: good},
		{CallID: "call_3", Name: "submit_patch", Arguments: good},
	})
	if d.Answered || d.Accepted == nil || len(d.Outputs) != 3 {
		t.Fatalf("patch reply: %+v", d)
	}
	if !strings.HasPrefix(d.Outputs[0].Output, "Error: the patch does not apply") ||
		!strings.HasPrefix(d.Outputs[1].Output, "The patch applies cleanly") ||
		!strings.HasPrefix(d.Outputs[2].Output, "Ignored:") || d.Outputs[2].CallID != "call_3" {
		t.Fatalf("tool outputs: %+v", d.Outputs)
	}
	// The message carries the accepted patch's description; the refused
	// draft before it is only in the model's memory (its tool output).
	if d.Content != "change it" {
		t.Fatalf("content: %q", d.Content)
	}

	d = vibecode.AfterVibeCoderReply(code, nil, "", []vibecode.ToolCall{{CallID: "c", Name: "run_python", Arguments: "{}"}})
	if d.Accepted != nil || d.Answered || !strings.Contains(d.Problem, `unknown tool "run_python"`) {
		t.Fatalf("unknown tool: %+v", d)
	}
	if err := vibecode.NoPatchAfterRounds(d.Problem); vibecode.Retryable(err) || !strings.Contains(err.Error(), "after 5 attempts") {
		t.Fatalf("NoPatchAfterRounds = %v", err)
	}
}

func TestAfterVerdict(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		v             vibecode.Verdict
		iteration     int
		want          vibecode.Next
		commitMessage string
	}{
		{"approved with a message", vibecode.Verdict{Approved: true, Reasoning: "ok", CommitMessage: " Greet in English "}, 1, vibecode.Approve, "Greet in English"},
		{"approved without a message takes the proposal's first line", vibecode.Verdict{Approved: true}, 2, vibecode.Approve, "Switch the input"},
		{"rejected before the last iteration", vibecode.Verdict{Reasoning: "wrong agent"}, 2, vibecode.Revise, ""},
		{"rejected at the last iteration", vibecode.Verdict{Reasoning: "still wrong"}, 3, vibecode.GiveUp, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := vibecode.AfterVerdict(c.v, c.iteration, 3, "Switch the input\nand more")
			if d.Next != c.want || d.CommitMessage != c.commitMessage {
				t.Fatalf("AfterVerdict = %+v, want next %d, message %q", d, c.want, c.commitMessage)
			}
		})
	}
	if d := vibecode.AfterVerdict(vibecode.Verdict{Approved: true}, 1, 3, ""); d.CommitMessage != vibecode.DefaultCommitMessage {
		t.Fatalf("no message anywhere: %q", d.CommitMessage)
	}
}

// modelErr stands for a model call error, which knows whether it is worth
// retrying and how to explain itself.
type modelErr struct{ transient bool }

func (e modelErr) Error() string   { return "raw" }
func (e modelErr) Transient() bool { return e.transient }
func (e modelErr) Explain() string { return "OpenAI said no" }

func TestAfterError(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		err      error
		attempt  int
		retry    bool
		reasonIs string
	}{
		{"database error retries", errors.New("connection reset"), 1, true, "connection reset"},
		{"database error on the last attempt fails", errors.New("connection reset"), 6, false, "gave up after 6 attempts: connection reset"},
		{"permanent error fails at once", vibecode.Permanent("the patch does not apply"), 1, false, "the patch does not apply"},
		{"transient model error retries", fmt.Errorf("step: %w", modelErr{true}), 2, true, "OpenAI said no"},
		{"permanent model error fails at once", fmt.Errorf("step: %w", modelErr{false}), 1, false, "OpenAI said no"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := vibecode.AfterError(c.err, c.attempt, 6)
			if f.Retry != c.retry || f.Reason != c.reasonIs {
				t.Fatalf("AfterError = %+v, want retry %v, reason %q", f, c.retry, c.reasonIs)
			}
		})
	}
}

func TestRebaseAndCommitMessage(t *testing.T) {
	t.Parallel()
	patched := strings.Replace(code, `input="Hola, ¿cómo estás?"`, `input="Hi"`, 1)
	diff := patch.Unified(code, patched, "script.py")
	// The head moved elsewhere in the file: the diff still applies.
	head := strings.Replace(code, "import asyncio", "import asyncio\nimport sys", 1)
	got, err := vibecode.Rebase(head, code, diff, "main", "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb")
	if err != nil || !strings.Contains(got, "import sys") || !strings.Contains(got, `input="Hi"`) {
		t.Fatalf("Rebase onto a moved head = %v", err)
	}
	// The head changed the same line: a conflict naming both commits.
	clash := strings.Replace(code, `input="Hola, ¿cómo estás?"`, `input="Bonjour"`, 1)
	_, err = vibecode.Rebase(clash, code, diff, "main", "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb")
	if domain.ErrorCodeOf(err) != domain.ECONFLICT || !strings.Contains(err.Error(), "head of main (aaaaaaaaaa)") || !strings.Contains(err.Error(), "base bbbbbbbbbb") {
		t.Fatalf("Rebase onto a clashing head = %v", err)
	}
	// Another commit made the same change (lines appended at the end, which
	// the diff places after the lines it found once): not applied twice.
	appended := code + "\n\ndef sub(a, b):\n    return a - b\n"
	appendDiff := patch.Unified(code, appended, "script.py")
	if _, err := vibecode.Rebase(appended, code, appendDiff, "main", "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"); domain.ErrorCodeOf(err) != domain.ECONFLICT || !strings.Contains(err.Error(), "already has its change") {
		t.Fatalf("Rebase onto a head that has the change = %v", err)
	}
	// A diff that removes the first or the last lines, on a head that moved
	// elsewhere: applied, not taken for a change the head has (undoing a
	// removal is an addition, which would apply almost anywhere).
	moved := strings.Replace(code, "You only speak English", "You speak English only", 1)
	for _, cut := range []string{strings.SplitAfterN(code, "\n", 2)[1], code[:strings.Index(code, "\n\n\nif __name__")+1]} {
		got, err := vibecode.Rebase(moved, code, patch.Unified(code, cut, "script.py"), "main", "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb")
		if err != nil || !strings.Contains(got, "You speak English only") {
			t.Fatalf("Rebase of a removal at an end of the file onto a moved head = %v", err)
		}
	}
	// The head unmoved: the diff applies as it is.
	if got, err := vibecode.Rebase(code, code, appendDiff, "main", "bbbbbbbbbbbbbbbb", "bbbbbbbbbbbbbbbb"); err != nil || got != appended {
		t.Fatalf("Rebase onto its own base = %v", err)
	}
	for _, c := range [][3]string{{" mine ", "evaluator's", "mine"}, {"", "evaluator's", "evaluator's"}, {"", "", vibecode.DefaultCommitMessage},
		{"", "Say hi\x1b[2J\n\nBody", "Say hi[2J\n\nBody"}, {"", "\x1b\x07", vibecode.DefaultCommitMessage}} {
		if got := vibecode.CommitMessage(c[0], c[1]); got != c[2] {
			t.Errorf("CommitMessage(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
	if p := vibecode.RejectionPrompt("use tabs"); !strings.HasSuffix(p, "My feedback:\nuse tabs") {
		t.Errorf("RejectionPrompt = %q", p)
	}
}

// Code that starts with a byte order mark: a patch of its first lines is
// accepted, and the diff stored for it applies to the same code again (the
// Evaluator's, the preview's and the commit's apply).
func TestAPatchOfCodeWithAByteOrderMark(t *testing.T) {
	t.Parallel()
	base := "\ufeff" + code
	patched := strings.Replace(base, "from agents import", "from agents  import", 1)
	c := vibecode.CheckPatch(base, submit(t, strings.TrimPrefix(patched, "\ufeff")), nil)
	if c.Err != "" {
		t.Fatalf("refused: %s", c.Err)
	}
	if c.Patched != patched {
		t.Fatalf("patched code lost its mark or its change: %q", c.Patched[:40])
	}
	again, err := patch.Apply(base, c.Diff)
	if err != nil || again != patched {
		t.Fatalf("the stored diff applied again: %v\n%s", err, c.Diff)
	}
}

// A patch may not take the code past the size a project's code may hold
// (a commit would have stored it; POST /projects refuses it with 413).
func TestAPatchMayNotPassTheCodeLimit(t *testing.T) {
	t.Parallel()
	big := code + "# " + strings.Repeat("x", domain.MaxCodeBytes-len(code)-10) + "\n"
	bigger := big + "x = 1\n" + "y = 2\n"
	args, err := json.Marshal(map[string]string{"patch": patch.Unified(big, bigger, "script.py"), "description": "grow"})
	if err != nil {
		t.Fatal(err)
	}
	if c := vibecode.CheckPatch(big, string(args), nil); !strings.Contains(c.Err, "over the limit") {
		t.Fatalf("a patch past the limit: %+v", c.Err)
	}
}
