package api_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/vibegrapher/vibegrapher/api"
	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/patch"
	"github.com/vibegrapher/vibegrapher/internal/openaitest"
	"github.com/vibegrapher/vibegrapher/internal/sockettest"
)

const addPatch = `@@ -5,2 +5,2 @@
 def add(a, b):
-    return a + b
+    return b + a
`

const greetConflict = `@@ -1,2 +1,2 @@
 def greet(name):
-    return "Hello, " + name
+    return "Hey, " + name
`

// approvedDiff runs a prompt through the loop with a scripted patch that the
// Evaluator approves, and returns the diff.
func (s *stack) approvedDiff(p domain.Project, sess domain.VibecodeSession, diff, message string) domain.Diff {
	s.t.Helper()
	s.AI.Enqueue(submitPatch(diff), verdict(true, "Looks right.", message))
	resp := s.waitResponse(p.ID, s.send(sess.ID, "please: "+message).MessageID)
	if resp["status"] != "diff_created" {
		s.t.Fatalf("vibecode_response = %v", resp)
	}
	var d domain.Diff
	res := s.do("GET", fmt.Sprint("/diffs/", resp["diff_id"]), nil)
	res.json(s.t, &d)
	if res.Status != 200 || d.Status != domain.DiffEvaluatorApproved {
		s.t.Fatalf("diff = %d %s", res.Status, res.Body)
	}
	return d
}

func (s *stack) head(projectID string) domain.Project {
	s.t.Helper()
	var p domain.Project
	s.do("GET", "/projects/"+projectID, nil).json(s.t, &p)
	return p
}

func TestReviewApproveAndCommit(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	d := s.approvedDiff(p, sess, greetPatch, "Say Hi")

	var preview db.DiffPreview
	s.do("GET", "/diffs/"+d.ID+"/preview", nil).json(t, &preview)
	if preview.OriginalCode != baseCode || preview.PatchedCode != greetPatched || preview.DiffContent != d.DiffContent {
		t.Fatalf("preview = %+v", preview)
	}
	var pending []domain.Diff
	s.do("GET", "/sessions/"+sess.ID+"/diffs/pending", nil).json(t, &pending)
	if len(pending) != 1 || pending[0].ID != d.ID {
		t.Fatalf("pending = %+v", pending)
	}

	var rev db.ReviewResult
	res := s.do("POST", "/diffs/"+d.ID+"/review", map[string]any{"approved": true})
	res.json(t, &rev)
	if res.Status != 200 || rev.Diff.Status != domain.DiffHumanApproved || rev.Message != nil {
		t.Fatalf("review = %d %s", res.Status, res.Body)
	}

	var c db.CommitResult
	res = s.do("POST", "/diffs/"+d.ID+"/commit", nil)
	res.json(t, &c)
	if res.Status != 200 || c.Diff.Status != domain.DiffCommitted || c.Diff.CommittedSHA == nil || *c.Diff.CommittedSHA != c.Commit.SHA {
		t.Fatalf("commit = %d %s", res.Status, res.Body)
	}
	if c.Commit.Message != "Say Hi" || len(c.Commit.Parents) != 1 || c.Commit.Parents[0] != p.CurrentCommit {
		t.Fatalf("commit = %+v", c.Commit)
	}
	now := s.head(p.ID)
	if now.CurrentCode != greetPatched || now.CurrentCommit != c.Commit.SHA {
		t.Fatalf("project after commit = %+v", now)
	}
	var log []domain.Commit
	s.do("GET", "/projects/"+p.ID+"/commits", nil).json(t, &log)
	if len(log) != 2 || log[0].SHA != c.Commit.SHA {
		t.Fatalf("log = %+v", log)
	}
	changed := s.waitEvent(p.ID, "code_changed", nil)
	if changed["new_code"] != greetPatched || changed["commit"] != c.Commit.SHA || changed["nodes"] == nil {
		t.Fatalf("code_changed = %v", changed)
	}

	// Committing twice is a conflict; so is committing a rejected diff.
	if res := s.do("POST", "/diffs/"+d.ID+"/commit", nil); res.Status != 409 || !strings.Contains(res.problem(t).Detail, "already committed") {
		t.Fatalf("second commit = %d %s", res.Status, res.Body)
	}
	if res := s.do("POST", "/diffs/"+d.ID+"/review", map[string]any{"approved": false}); res.Status != 409 {
		t.Fatalf("review of a committed diff = %d", res.Status)
	}

	// The next message sees the new code; the Evaluator starts afresh, the
	// VibeCoder keeps its history.
	s.AI.Enqueue(submitPatch(addPatch), verdict(true, "ok", "Swap"))
	resp := s.waitResponse(p.ID, s.send(sess.ID, "swap the operands").MessageID)
	if resp["status"] != "diff_created" {
		t.Fatalf("after commit: %v", resp)
	}
	reqs := s.AI.Requests()
	vibecoder, evaluator := string(reqs[len(reqs)-2].Input), string(reqs[len(reqs)-1].Input)
	if !strings.Contains(vibecoder, `return \"Hi, \" + name`) || !strings.Contains(vibecoder, "please: Say Hi") {
		t.Fatalf("VibeCoder request after commit lacks the new code or its history: %s", vibecoder)
	}
	if strings.Contains(evaluator, "please: Say Hi") || strings.Contains(evaluator, "Looks right.") {
		t.Fatalf("Evaluator kept its memory across a commit: %s", evaluator)
	}
}

func TestRejectWithFeedbackSendsANewMessage(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	d := s.approvedDiff(p, sess, greetPatch, "Say Hi")
	// Approved but not committed: the person may still change their mind.
	if res := s.do("POST", "/diffs/"+d.ID+"/review", map[string]any{"approved": true}); res.Status != 200 {
		t.Fatalf("approve = %d %s", res.Status, res.Body)
	}
	s.AI.Enqueue(openaitest.Text("Understood, I will keep Hello."))
	var rev db.ReviewResult
	res := s.do("POST", "/diffs/"+d.ID+"/review", map[string]any{"approved": false, "feedback": "Keep Hello, add a comma instead"})
	res.json(t, &rev)
	if res.Status != 200 || rev.Diff.Status != domain.DiffHumanRejected || rev.Diff.HumanFeedback == nil || rev.Message == nil || rev.Message.JobID == 0 {
		t.Fatalf("review = %d %s", res.Status, res.Body)
	}
	resp := s.waitResponse(p.ID, rev.Message.MessageID)
	if resp["status"] != "answered" {
		t.Fatalf("feedback message ended %v", resp)
	}
	last := string(s.AI.Requests()[len(s.AI.Requests())-1].Input)
	if !strings.Contains(last, "Keep Hello, add a comma instead") {
		t.Fatalf("the VibeCoder did not get the feedback: %s", last)
	}
	if res := s.do("POST", "/diffs/"+d.ID+"/commit", nil); res.Status != 409 || !strings.Contains(res.problem(t).Detail, "rejected") {
		t.Fatalf("commit of a rejected diff = %d %s", res.Status, res.Body)
	}
	// A rejection is final: its feedback went to the VibeCoder.
	if res := s.do("POST", "/diffs/"+d.ID+"/review", map[string]any{"approved": true}); res.Status != 409 {
		t.Fatalf("review of a rejected diff = %d %s", res.Status, res.Body)
	}
	var rejected []domain.Diff
	s.do("GET", "/projects/"+p.ID+"/diffs?status=human_rejected", nil).json(t, &rejected)
	if len(rejected) != 1 {
		t.Fatalf("rejected diffs = %+v", rejected)
	}
	if res := s.do("GET", "/projects/"+p.ID+"/diffs?status=bogus", nil); res.Status != 400 {
		t.Fatalf("bad status filter = %d", res.Status)
	}
}

func TestCommitAfterTheHeadMoved(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	greet := s.approvedDiff(p, sess, greetPatch, "Say Hi")
	add := s.approvedDiff(p, sess, addPatch, "Swap operands")
	clash := s.approvedDiff(p, sess, greetConflict, "Say Hey")
	if greet.BaseCommit != p.CurrentCommit || add.BaseCommit != p.CurrentCommit || clash.BaseCommit != p.CurrentCommit {
		t.Fatal("diffs do not share the base commit")
	}

	var first, second db.CommitResult
	s.do("POST", "/diffs/"+greet.ID+"/commit", nil).json(t, &first)
	res := s.do("POST", "/diffs/"+add.ID+"/commit", map[string]any{"commit_message": "Swap the operands of add"})
	res.json(t, &second)
	if res.Status != 200 || second.Commit.Parents[0] != first.Commit.SHA || second.Commit.Message != "Swap the operands of add" {
		t.Fatalf("rebased commit = %d %s", res.Status, res.Body)
	}
	want := strings.Replace(greetPatched, "return a + b", "return b + a", 1)
	if got := s.head(p.ID).CurrentCode; got != want {
		t.Fatalf("code after both commits:\n%s", got)
	}

	before := s.head(p.ID)
	res = s.do("POST", "/diffs/"+clash.ID+"/commit", nil)
	if res.Status != 409 {
		t.Fatalf("conflicting commit = %d %s", res.Status, res.Body)
	}
	if detail := res.problem(t).Detail; !strings.Contains(detail, "no longer applies") || !strings.Contains(detail, "hunk 1") {
		t.Fatalf("conflict detail = %q", detail)
	}
	after := s.head(p.ID)
	var still domain.Diff
	s.do("GET", "/diffs/"+clash.ID, nil).json(t, &still)
	if after.CurrentCommit != before.CurrentCommit || after.CurrentCode != before.CurrentCode || still.Status != domain.DiffEvaluatorApproved {
		t.Fatal("a failed commit changed something")
	}
}

func TestConcurrentCommitsKeepBothChanges(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	a := s.approvedDiff(p, sess, greetPatch, "Say Hi")
	b := s.approvedDiff(p, sess, addPatch, "Swap")
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i, d := range []domain.Diff{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = s.do("POST", "/diffs/"+d.ID+"/commit", nil).Status
		}()
	}
	wg.Wait()
	if statuses[0] != 200 || statuses[1] != 200 {
		t.Fatalf("statuses = %v", statuses)
	}
	want := strings.Replace(greetPatched, "return a + b", "return b + a", 1)
	if got := s.head(p.ID).CurrentCode; got != want {
		t.Fatalf("code after concurrent commits:\n%s", got)
	}
	var log []domain.Commit
	s.do("GET", "/projects/"+p.ID+"/commits", nil).json(t, &log)
	if len(log) != 3 || log[0].Parents[0] != log[1].SHA || log[1].Parents[0] != log[2].SHA {
		t.Fatalf("history = %+v", log)
	}
}

func TestRefineCommitMessage(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	d := s.approvedDiff(p, sess, greetPatch, "Say Hi")
	s.AI.Enqueue(openaitest.Text("Greet users with Hi"))
	var out domain.Diff
	res := s.do("POST", "/diffs/"+d.ID+"/refine-message", map[string]any{"prompt": "shorter"})
	res.json(t, &out)
	if res.Status != 200 || out.CommitMessage != "Greet users with Hi" {
		t.Fatalf("refine = %d %s", res.Status, res.Body)
	}
	req := s.AI.Requests()[len(s.AI.Requests())-1]
	if req.Model != "gpt-5-mini" || !strings.Contains(string(req.Input), "shorter") || !strings.Contains(string(req.Input), "Say Hi") {
		t.Fatalf("refine request = %s", req.Body)
	}
	// What models wrap a message in goes; an answer that is only that, or
	// over the limit a person's message has, is not stored (it made blank
	// and 50,000-byte commits).
	for _, c := range []struct {
		answer string
		status int
		stored string
	}{
		{"```text\nGreet with Hi\n```", 200, "Greet with Hi"},
		{"```\n\n```", 503, "Greet with Hi"},
		{"\"  `\"", 503, "Greet with Hi"},
		{strings.Repeat("z", domain.MaxCommitMessageBytes+1), 503, "Greet with Hi"},
	} {
		s.AI.Enqueue(openaitest.Text(c.answer))
		if res := s.do("POST", "/diffs/"+d.ID+"/refine-message", nil); res.Status != c.status {
			t.Fatalf("refine answered %.40q = %d %s", c.answer, res.Status, res.Body)
		}
		var got domain.Diff
		s.do("GET", "/diffs/"+d.ID, nil).json(t, &got)
		if got.CommitMessage != c.stored {
			t.Fatalf("after an answer %.40q the message is %.80q", c.answer, got.CommitMessage)
		}
	}
	// The server's key or model at fault is not the request's: 503, not 400.
	s.AI.Enqueue(openaitest.Status(401, "bad key"))
	if res := s.do("POST", "/diffs/"+d.ID+"/refine-message", nil); res.Status != 503 {
		t.Fatalf("refine with the key refused = %d %s", res.Status, res.Body)
	}
	if res := s.do("POST", "/diffs/"+d.ID+"/refine-message", map[string]any{"current_message": strings.Repeat("x", domain.MaxCommitMessageBytes+1)}); res.Status != 400 {
		t.Fatalf("refine of a too long current_message = %d %s", res.Status, res.Body)
	}
	var c db.CommitResult
	s.do("POST", "/diffs/"+d.ID+"/commit", nil).json(t, &c)
	if c.Commit.Message != "Greet with Hi" {
		t.Fatalf("commit message = %q", c.Commit.Message)
	}
	// Committed: 409 before any model call, so an outage cannot make it 503.
	calls := s.AI.Calls()
	if res := s.do("POST", "/diffs/"+d.ID+"/refine-message", nil); res.Status != 409 || s.AI.Calls() != calls {
		t.Fatalf("refine of a committed diff = %d after %d model calls", res.Status, s.AI.Calls()-calls)
	}
}

const agentsCode = `from agents import Agent

spanish_agent = Agent(
    name="Spanish agent",
    instructions="You only speak Spanish.",
)

triage_agent = Agent(
    name="Triage agent",
    instructions="Route the request.",
    handoffs=[spanish_agent],
)
`

func TestNodesAndNodeSessions(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, _ := s.project(agentsCode)
	var nodes []map[string]any
	res := s.do("GET", "/projects/"+p.ID+"/nodes", nil)
	res.json(t, &nodes)
	if res.Status != 200 || len(nodes) != 2 || nodes[1]["id"] != "triage_agent" || nodes[1]["line_start"] != 8.0 || nodes[1]["line_end"] != 12.0 {
		t.Fatalf("nodes = %d %s", res.Status, res.Body)
	}

	res = s.do("POST", "/projects/"+p.ID+"/sessions", map[string]any{"node_id": "nobody"})
	if res.Status != 400 || !strings.Contains(res.problem(t).Detail, "spanish_agent, triage_agent") {
		t.Fatalf("unknown node = %d %s", res.Status, res.Body)
	}
	var sess domain.VibecodeSession
	res = s.do("POST", "/projects/"+p.ID+"/sessions", map[string]any{"node_id": "spanish_agent"})
	res.json(t, &sess)
	if res.Status != 201 || sess.SessionType != "node" || sess.OpenAISessionKey != "project_"+p.ID+"_node_spanish_agent" {
		t.Fatalf("node session = %d %s", res.Status, res.Body)
	}
	if again := s.do("POST", "/projects/"+p.ID+"/sessions", map[string]any{"node_id": "spanish_agent"}); again.Status != 200 {
		t.Fatalf("same node session again = %d", again.Status)
	}
	// The check reads the agents kept for the commit; code that does not
	// parse has none, and an unknown project is still 404.
	broken, _ := s.project("def broken(:\n")
	if res := s.do("POST", "/projects/"+broken.ID+"/sessions", map[string]any{"node_id": "a"}); res.Status != 400 ||
		!strings.Contains(res.problem(t).Detail, "does not parse (line 1") {
		t.Fatalf("node session on code that does not parse = %d %s", res.Status, res.Body)
	}
	if res := s.do("POST", "/projects/"+uuid.NewString()+"/sessions", map[string]any{"node_id": "a"}); res.Status != 404 {
		t.Fatalf("node session of an unknown project = %d %s", res.Status, res.Body)
	}

	outside := `@@ -9,3 +9,3 @@
     name="Triage agent",
-    instructions="Route the request.",
+    instructions="Route the request politely.",
     handoffs=[spanish_agent],
`
	inside := `@@ -3,4 +3,4 @@
 spanish_agent = Agent(
     name="Spanish agent",
-    instructions="You only speak Spanish.",
+    instructions="You only speak Spanish, politely.",
 )
`
	s.AI.Enqueue(submitPatch(outside), submitPatch(inside), verdict(true, "ok", "Be polite in Spanish"))
	resp := s.waitResponse(p.ID, s.send(sess.ID, "be polite").MessageID)
	if resp["status"] != "diff_created" {
		t.Fatalf("vibecode_response = %v", resp)
	}
	reqs := s.AI.Requests()
	if first := string(reqs[0].Input); !strings.Contains(first, `agent \"Spanish agent\" (variable spanish_agent), lines 3-6`) {
		t.Fatalf("node focus missing: %s", first)
	}
	outputs := reqs[1].FunctionOutputs()
	if len(outputs) != 1 {
		t.Fatalf("the second call carried %d tool outputs, want the refusal", len(outputs))
	}
	for _, out := range outputs {
		if !strings.Contains(out, "outside it") || !strings.Contains(out, "lines 3-6") {
			t.Fatalf("outside patch answer = %q", out)
		}
	}
}

// A frontend loads a project over REST and subscribes with since set to the
// X-Event-Seq of that answer: it gets exactly the events that came after.
func TestEventSeqHeaderClosesTheGapBeforeSubscribing(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{noWorker: true})
	p, sess := s.project(baseCode)
	res := s.do("GET", "/projects/"+p.ID, nil)
	seq, err := strconv.ParseInt(res.Header.Get(api.EventSeqHeader), 10, 64)
	if res.Status != 200 || err != nil || seq == 0 {
		t.Fatalf("GET project: %d, %s = %q", res.Status, api.EventSeqHeader, res.Header.Get(api.EventSeqHeader))
	}
	acc := s.send(sess.ID, "after the load")
	late := sockettest.Dial(t, s.URL)
	late.Subscribe(p.ID, seq)
	ev := late.Next()
	if ev.Name != "conversation_message" || ev.Payload["message_id"] != acc.MessageID || ev.Seq() <= seq {
		t.Fatalf("first event after the load = %s %v", ev.Name, ev.Payload)
	}
}

// Deleting a project while one of its diffs is committed, rejected with
// feedback or tested: each pair was a deadlock PostgreSQL broke, and one of
// the two requests a 500. Whatever the order, each answers as if it ran
// before or after the other.
func TestDeletingAProjectWhileItsDiffIsActedOn(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	// Answers the message a rejection with feedback sends.
	s.AI.Handle(func(openaitest.Request) openaitest.Reply { return openaitest.Text("ok") })
	actions := []struct {
		name string
		act  func(diffID string) response
		ok   []int
	}{
		{"commit", func(id string) response { return s.do("POST", "/diffs/"+id+"/commit", nil) }, []int{200, 404}},
		{"reject", func(id string) response {
			return s.do("POST", "/diffs/"+id+"/review", map[string]any{"approved": false, "feedback": "no"})
		}, []int{200, 404}},
		{"test", func(id string) response { return s.do("POST", "/diffs/"+id+"/test", nil) }, []int{202, 404}},
	}
	for _, a := range actions {
		for range 3 {
			p, sess := s.project(baseCode)
			d := s.approvedDiff(p, sess, greetPatch, "Say Hi")
			s.newTest(p.ID, "t", "pass", 5)
			var acted, deleted response
			var wg sync.WaitGroup
			wg.Go(func() { acted = a.act(d.ID) })
			wg.Go(func() { deleted = s.do("DELETE", "/projects/"+p.ID, nil) })
			wg.Wait()
			if !slices.Contains(a.ok, acted.Status) || deleted.Status != 204 {
				t.Errorf("%s: %d %s; delete: %d %s", a.name, acted.Status, acted.Body, deleted.Status, deleted.Body)
			}
		}
	}
}

// Deleting a project deletes its agents' conversation memory, which holds
// the people's prompts and the models' answers.
func TestDeletingAProjectDeletesItsAgentsMemory(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	s.AI.Enqueue(openaitest.Text("An answer."))
	s.waitResponse(p.ID, s.send(sess.ID, "What does it do?").MessageID)
	if n := s.count("agent_memory"); n == 0 {
		t.Fatal("the answered message left no memory")
	}
	if r := s.do("DELETE", "/projects/"+p.ID, nil); r.Status != 204 {
		t.Fatalf("delete = %d %s", r.Status, r.Body)
	}
	if n := s.count("agent_memory"); n != 0 {
		t.Errorf("%d memory rows of the deleted project remain", n)
	}
}

// A commit clears the Evaluator's memory of the session, so that it reviews
// the next patch afresh, but not the turns of a message still under way:
// its next round's Evaluator would review without knowing what it asked
// for in the last.
func TestACommitKeepsTheEvaluatorsMemoryOfAMessageUnderWay(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	d1 := s.approvedDiff(p, sess, greetPatch, "Say Hi")
	swap := patch.Unified(baseCode, strings.Replace(baseCode, "return a + b", "return b + a", 1), "script.py")
	replies := []openaitest.Reply{submitPatch(swap), verdict(false, "Add a comment REASON1.", ""), submitPatch(swap), verdict(true, "ok", "Swap")}
	round2, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	s.AI.Handle(func(openaitest.Request) openaitest.Reply {
		n := calls.Add(1)
		if n == 3 { // the VibeCoder's second round: hold it while d1 is committed
			close(round2)
			<-release
		}
		return replies[min(int(n), len(replies))-1]
	})
	acc := s.send(sess.ID, "Swap the operands")
	select {
	case <-round2:
	case <-time.After(30 * time.Second):
		t.Fatal("the second round did not start")
	}
	if r := s.do("POST", "/diffs/"+d1.ID+"/commit", map[string]any{}); r.Status != 200 {
		close(release)
		t.Fatalf("commit = %d %s", r.Status, r.Body)
	}
	close(release)
	if resp := s.waitResponse(p.ID, acc.MessageID); resp["status"] != "diff_created" {
		t.Fatalf("vibecode_response = %v", resp)
	}
	requests := s.AI.Requests()
	if last := string(requests[len(requests)-1].Input); !strings.Contains(last, "REASON1") {
		t.Errorf("the second round's Evaluator does not know its first review: %s", last)
	}
}

// Two diffs of one base make the same change: the first commits, and the
// second is refused rather than applied again on the moved head.
func TestTheSameChangeIsNotCommittedTwice(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	sub := patch.Unified(baseCode, baseCode+"\n\ndef sub(a, b):\n    return a - b\n", "script.py")
	a := s.approvedDiff(p, sess, sub, "Add sub")
	b := s.approvedDiff(p, sess, sub, "Add sub again")
	if r := s.do("POST", "/diffs/"+a.ID+"/commit", map[string]any{}); r.Status != 200 {
		t.Fatalf("first commit = %d %s", r.Status, r.Body)
	}
	r := s.do("POST", "/diffs/"+b.ID+"/commit", map[string]any{})
	if r.Status != 409 || !strings.Contains(string(r.Body), "already has its change") {
		t.Fatalf("second commit = %d %s", r.Status, r.Body)
	}
	if code := s.head(p.ID).CurrentCode; strings.Count(code, "def sub(") != 1 {
		t.Fatalf("head code:\n%s", code)
	}
}

// Tests on a diff vouch for what its commit has or would have: the code at
// the commit it made, or the diff on the branch's head, which moved since
// its base; a diff its commit would refuse is refused with the reason.
func TestTestsOnADiffRunWhatItsCommitHas(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	hi := s.approvedDiff(p, sess, greetPatch, "Say Hi")
	swap := s.approvedDiff(p, sess, addPatch, "Swap")
	hey := s.approvedDiff(p, sess, greetConflict, "Say Hey")
	if r := s.do("POST", "/diffs/"+hi.ID+"/commit", map[string]any{}); r.Status != 200 {
		t.Fatalf("commit = %d %s", r.Status, r.Body)
	}
	greets := s.newTest(p.ID, "greets", `assert greet("Bo") == "Hi, Bo", greet("Bo")`, 10)
	// Not committed, its base moved: on the head, where its commit would go.
	head := s.head(p.ID).CurrentCommit
	if run := s.runWait(greets.ID, map[string]any{"diff_id": swap.ID}); run.Status != "passed" || run.Commit != head {
		t.Fatalf("run on the uncommitted diff: %s on %s (head %s, base %s)\n%s", run.Status, run.Commit, head, swap.BaseCommit, run.Stderr)
	}
	// A diff whose commit would be refused: refused with the reason.
	if r := s.do("POST", "/tests/"+greets.ID+"/run", map[string]any{"diff_id": hey.ID}); r.Status != 409 || !strings.Contains(string(r.Body), "no longer applies") {
		t.Fatalf("run on a diff its commit would refuse = %d %s", r.Status, r.Body)
	}
	r := s.do("POST", "/diffs/"+swap.ID+"/commit", map[string]any{})
	var committed struct {
		Diff domain.Diff `json:"diff"`
	}
	r.json(t, &committed)
	if r.Status != 200 || committed.Diff.CommittedSHA == nil {
		t.Fatalf("commit = %d %s", r.Status, r.Body)
	}
	// Committed: on the commit it made, its change not applied again.
	if run := s.runWait(greets.ID, map[string]any{"diff_id": swap.ID}); run.Status != "passed" || run.Commit != *committed.Diff.CommittedSHA {
		t.Fatalf("run on the committed diff: %s on %s (committed %s)\n%s", run.Status, run.Commit, *committed.Diff.CommittedSHA, run.Stderr)
	}
}

// A person's commit message goes into the git log as it is: control
// characters but line breaks and tabs (an escape a terminal would act on)
// are refused, naming the field, and nothing is committed.
func TestACommitMessageHasNoControlCharacters(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	d := s.approvedDiff(p, sess, greetPatch, "Say Hi")
	res := s.do("POST", "/diffs/"+d.ID+"/commit", map[string]any{"commit_message": "Say hi\x1b[2J"})
	if res.Status != 400 || !strings.Contains(string(res.Body), "commit_message") {
		t.Fatalf("commit = %d %s", res.Status, res.Body)
	}
	if res := s.do("POST", "/diffs/"+d.ID+"/commit", map[string]any{"commit_message": "Say hi\r\n\n\tto everyone"}); res.Status != 200 {
		t.Fatalf("commit with line breaks and a tab = %d %s", res.Status, res.Body)
	}
}
