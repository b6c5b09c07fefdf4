package api_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/internal/fixtures"
	"github.com/vibegrapher/vibegrapher/internal/openaitest"
)

// The script every project starts with, the patch the fake model proposes,
// and the script after it.
const (
	baseCode     = fixtures.GreetScript
	greetPatch   = fixtures.GreetPatch
	greetPatched = fixtures.GreetPatched
)

func TestVibecodeTextAnswer(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	s.AI.Enqueue(openaitest.Text("greet() returns a greeting; add() sums two numbers.").WithUsage(120, 30, 100, 10))
	acc := s.send(sess.ID, "What does this code do?")
	if acc.Status != "queued" || acc.JobID == 0 || !strings.HasPrefix(acc.TraceID, "trace_") || acc.SessionID != sess.ID {
		t.Fatalf("accepted = %+v", acc)
	}
	resp := s.waitResponse(p.ID, acc.MessageID)
	if resp["status"] != "answered" || resp["response"] != "greet() returns a greeting; add() sums two numbers." || resp["trace_id"] != acc.TraceID {
		t.Fatalf("vibecode_response = %v", resp)
	}
	usage := resp["token_usage"].(map[string]any)
	if usage["prompt_tokens"] != 120.0 || usage["completion_tokens"] != 30.0 || usage["cached_tokens"] != 100.0 || usage["reasoning_tokens"] != 10.0 {
		t.Fatalf("token_usage = %v", usage)
	}

	msgs := s.messages(sess.ID)
	if len(msgs) != 2 || msgs[0].Role != "user" || msgs[1].Agent != "vibecoder" || msgs[1].Content != resp["response"] {
		t.Fatalf("messages = %+v", msgs)
	}
	if *msgs[0].Status != "answered" || msgs[1].TokenUsage == nil || msgs[1].TokenUsage.Model == "" || msgs[1].TraceID != acc.TraceID {
		t.Fatalf("messages = %+v / %+v", msgs[0], msgs[1].TokenUsage)
	}

	// The request carried instructions, the numbered code, the prompt, and the tool.
	req := s.AI.Requests()[0]
	if !req.Stream || !strings.Contains(string(req.Input), `1| def greet(name):`) || !strings.Contains(string(req.Input), "What does this code do?") {
		t.Fatalf("request input = %s", req.Input)
	}
	if len(req.Tools) != 1 || req.Tools[0].Name != "submit_patch" || req.Instructions == "" {
		t.Fatalf("tools = %+v", req.Tools)
	}
	// A long session's oldest turns are dropped rather than every message failing.
	if !strings.Contains(string(req.Body), `"truncation":"auto"`) {
		t.Fatalf("the request does not let OpenAI truncate the conversation: %.300s", req.Body)
	}

	// The full message keeps the raw OpenAI response.
	var full domain.FullMessage
	s.do("GET", "/messages/"+msgs[1].ID+"/full", nil).json(t, &full)
	if !strings.Contains(string(full.OpenAIResponse), `"object":"response"`) || full.LastResponseID == nil || !strings.HasPrefix(*full.LastResponseID, "resp_") {
		t.Fatalf("full = %s %v", full.OpenAIResponse, full.LastResponseID)
	}

	// Events: the user message, the streamed text, the reply, its usage, the response.
	names := strings.Join(eventNames(s.events(p.ID)), ",")
	for _, want := range []string{"conversation_message", "vibecode_delta", "token_usage", "job_status", "vibecode_response"} {
		if !strings.Contains(names, want) {
			t.Errorf("no %s event in %s", want, names)
		}
	}
	var streamed strings.Builder
	for _, e := range s.events(p.ID) {
		if e.Payload["trace_id"] != acc.TraceID && e.Name != "project_created" && e.Name != "session_created" {
			t.Errorf("event %s lacks the trace id: %v", e.Name, e.Payload)
		}
		if e.Name == "vibecode_delta" {
			streamed.WriteString(e.Payload["delta"].(string))
		}
	}
	if streamed.String() != resp["response"] {
		t.Fatalf("deltas add up to %q", streamed.String())
	}

	// GET /jobs/{id} shows River's record.
	var job domain.Job
	s.do("GET", fmt.Sprint("/jobs/", acc.JobID), nil).json(t, &job)
	if job.Kind != "vibecode" || job.Queue != "vibecode" || job.ID != acc.JobID {
		t.Fatalf("job = %+v", job)
	}
	// Only the id's own spelling names it.
	for _, path := range []string{fmt.Sprint("/jobs/+", acc.JobID), fmt.Sprint("/jobs/0", acc.JobID), "/jobs/0", "/jobs/-1", "/jobs/x"} {
		if res := s.do("GET", path, nil); res.Status != 404 {
			t.Errorf("GET %s = %d %s", path, res.Status, res.Body)
		}
	}
}

func TestVibecodePatchApprovedAtOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	s.AI.Enqueue(submitPatch(greetPatch), verdict(true, "Does what was asked.", "Say Hi instead of Hello"))
	acc := s.send(sess.ID, "Say Hi instead of Hello")
	resp := s.waitResponse(p.ID, acc.MessageID)
	if resp["status"] != "diff_created" || resp["commit_message"] != "Say Hi instead of Hello" || resp["diff_id"] == nil {
		t.Fatalf("vibecode_response = %v", resp)
	}
	var d domain.Diff
	res := s.do("GET", fmt.Sprint("/diffs/", resp["diff_id"]), nil)
	if res.Status != 200 {
		t.Fatalf("GET diff = %d %s", res.Status, res.Body)
	}
	res.json(t, &d)
	created := s.waitEvent(p.ID, "diff_created", nil)
	if created["id"] != d.ID || created["trace_id"] != acc.TraceID {
		t.Fatalf("diff_created = %v", created)
	}
	if d.ID != resp["diff_id"] || d.Status != "evaluator_approved" || d.BaseCommit != p.CurrentCommit || d.VibecoderPrompt != "Say Hi instead of Hello" {
		t.Fatalf("diff = %+v", d)
	}
	if !strings.Contains(d.DiffContent, `+    return "Hi, " + name`) {
		t.Fatalf("diff content = %s", d.DiffContent)
	}
	msgs := s.messages(sess.ID)
	if len(msgs) != 3 || msgs[1].Agent != "vibecoder" || msgs[1].Patch == nil || msgs[2].Agent != "evaluator" || !strings.HasPrefix(msgs[2].Content, "Approved") {
		t.Fatalf("messages = %+v", msgs)
	}
	// The Evaluator saw the patch and the patched code, and answered under a strict schema.
	review := s.AI.Requests()[1]
	if review.TextFormat == nil || !strings.Contains(string(review.Input), `return \"Hi, \" + name`) {
		t.Fatalf("evaluator request = %s", review.Body)
	}
	// The code is unchanged until a person commits.
	var now domain.Project
	s.do("GET", "/projects/"+p.ID, nil).json(t, &now)
	if now.CurrentCode != baseCode {
		t.Fatal("an approved diff changed the code before a commit")
	}
}

func TestVibecodeRejectedThenApproved(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	s.AI.Enqueue(
		submitPatch(greetPatch), verdict(false, "Use an f-string.", ""),
		submitPatch(strings.Replace(greetPatch, `+    return "Hi, " + name`, `+    return f"Hi, {name}"`, 1)), verdict(true, "Good.", "Greet with Hi"),
	)
	acc := s.send(sess.ID, "Say Hi")
	resp := s.waitResponse(p.ID, acc.MessageID)
	if resp["status"] != "diff_created" {
		t.Fatalf("vibecode_response = %v", resp)
	}
	var iterations []string
	for _, m := range s.messages(sess.ID) {
		iterations = append(iterations, fmt.Sprintf("%s:%d", m.Agent, m.Iteration))
	}
	if strings.Join(iterations, ",") != "user:0,vibecoder:1,evaluator:1,vibecoder:2,evaluator:2" {
		t.Fatalf("iterations = %v", iterations)
	}
	// The second VibeCoder call carried the feedback and its own first attempt.
	second := string(s.AI.Requests()[2].Input)
	if !strings.Contains(second, "Use an f-string.") || !strings.Contains(second, "submit_patch") {
		t.Fatalf("second vibecoder request = %s", second)
	}
}

func TestVibecodeMaxIterations(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	for i := 1; i <= 3; i++ {
		s.AI.Enqueue(submitPatch(greetPatch), verdict(false, fmt.Sprintf("Not yet (%d).", i), ""))
	}
	acc := s.send(sess.ID, "Say Hi")
	resp := s.waitResponse(p.ID, acc.MessageID)
	if resp["status"] != "max_iterations" || resp["final_feedback"] != "Not yet (3)." || resp["patch"] == nil {
		t.Fatalf("vibecode_response = %v", resp)
	}
	if n := s.count("diffs"); n != 0 {
		t.Fatalf("%d diffs created", n)
	}
	// The sum of six calls is labelled with the last: the Evaluator's third.
	if u, _ := resp["token_usage"].(map[string]any); u["agent"] != "evaluator" || u["iteration"] != 3.0 {
		t.Errorf("vibecode_response token_usage = %v", u)
	}
	// The person saw the last review as final_feedback and may refer to it
	// in the next message: the VibeCoder knows it too, though no iteration
	// of its own carried it.
	s.AI.Enqueue(openaitest.Text("Done as asked."))
	s.waitResponse(p.ID, s.send(sess.ID, "Do what the reviewer asked last time.").MessageID)
	requests := s.AI.Requests()
	if next := string(requests[len(requests)-1].Input); !strings.Contains(next, "Not yet (3).") {
		t.Errorf("the next request lacks the last review: %s", next)
	}
}

func TestVibecodeBadPatchesGoBackToTheModel(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, bad, wantInOutput string
	}{
		{"does not apply", strings.Replace(greetPatch, `-    return "Hello, " + name`, `-    return "Howdy, " + name`, 1), "does not apply"},
		{"not valid Python", strings.Replace(greetPatch, `+    return "Hi, " + name`, `+    return ("Hi, " + name`, 1), "not valid Python"},
		{"changes nothing", strings.Replace(greetPatch, `+    return "Hi, " + name`, `+    return "Hello, " + name`, 1), "changes nothing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, stackOptions{})
			p, sess := s.project(baseCode)
			s.AI.Enqueue(submitPatch(c.bad), submitPatch(greetPatch), verdict(true, "ok", "Say Hi"))
			acc := s.send(sess.ID, "Say Hi")
			resp := s.waitResponse(p.ID, acc.MessageID)
			if resp["status"] != "diff_created" {
				t.Fatalf("vibecode_response = %v", resp)
			}
			outputs := s.AI.Requests()[1].FunctionOutputs()
			if len(outputs) != 1 {
				t.Fatalf("second call carried %d tool outputs", len(outputs))
			}
			for _, out := range outputs {
				if !strings.Contains(out, c.wantInOutput) {
					t.Fatalf("tool output %q does not say %q", out, c.wantInOutput)
				}
			}
		})
	}
}

func TestVibecodePatchWithWrongLineNumbersApplies(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	wrong := strings.Replace(greetPatch, "@@ -1,2 +1,2 @@", "@@ -40,7 +41,9 @@", 1)
	s.AI.Enqueue(submitPatch(wrong), verdict(true, "ok", "Say Hi"))
	resp := s.waitResponse(p.ID, s.send(sess.ID, "Say Hi").MessageID)
	if resp["status"] != "diff_created" || !strings.Contains(resp["patch"].(string), "@@ -1,") {
		t.Fatalf("vibecode_response = %v", resp)
	}
}

func TestVibecodeTransientErrorsRetryWithoutDuplicates(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	s.AI.Enqueue(openaitest.Status(500, "boom"), openaitest.Status(429, "slow down"), openaitest.Text("Fine."))
	resp := s.waitResponse(p.ID, s.send(sess.ID, "Hi?").MessageID)
	if resp["status"] != "answered" || resp["response"] != "Fine." {
		t.Fatalf("vibecode_response = %v", resp)
	}
	if msgs := s.messages(sess.ID); len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	if n := s.AI.Calls(); n != 3 {
		t.Fatalf("%d model calls, want 3", n)
	}
}

// A retried step streams its answer again, and a tool round streams the text
// of its next reply: the text a client shows for a message is what it
// streamed since the step's latest job_status running or the message's
// latest reply (docs/api.md), not every delta it ever received.
func TestDeltasSinceTheStepStartedAddUpToTheAnswer(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	cut := openaitest.Text("I was going to say something long before the connection broke, word after word after word.")
	cut.Delay, cut.CutAfter = 5*time.Millisecond, 12 // some deltas, then the connection breaks
	bad := openaitest.Text("Trying a patch.").And(submitPatch("not a patch"))
	s.AI.Enqueue(cut, bad, openaitest.Text("I give up: here is the answer."))
	acc := s.send(sess.ID, "Hi?")
	resp := s.waitResponse(p.ID, acc.MessageID)
	if resp["status"] != "answered" {
		t.Fatalf("vibecode_response = %v", resp)
	}
	var all, current strings.Builder
	var retried, replies int
	for _, e := range s.events(p.ID) {
		switch {
		case e.Name == "job_status" && e.Payload["message_id"] == acc.MessageID && e.Payload["state"] == "running":
			current.Reset()
		case e.Name == "job_status" && e.Payload["message_id"] == acc.MessageID && e.Payload["state"] == "retryable":
			retried++
		case e.Name == "conversation_message" && e.Payload["reply_to"] == acc.MessageID:
			replies++
			// A refused patch's note follows the streamed text.
			if content := e.Payload["content"].(string); current.Len() == 0 || !strings.HasPrefix(content, current.String()) {
				t.Errorf("reply %q, streamed since the step started or the last reply %q", content, current.String())
			}
			current.Reset()
		case e.Name == "vibecode_delta" && e.Payload["message_id"] == acc.MessageID:
			all.WriteString(e.Payload["delta"].(string))
			current.WriteString(e.Payload["delta"].(string))
		}
	}
	if retried != 1 || replies != 2 {
		t.Fatalf("%d retries and %d replies, want 1 and 2", retried, replies)
	}
	// The deltas of the broken attempt and of the first round were sent too.
	if !strings.HasPrefix(all.String(), "I was going") || !strings.Contains(all.String(), "Trying a patch.") {
		t.Fatalf("all deltas: %q", all.String())
	}
}

// A response that ended "incomplete" or "failed" was billed: its usage counts
// in the message's token_usage and has its token_usage event, whether the
// message then fails or a retry answers.
func TestAFailedCallsUsageIsCounted(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)

	incomplete := openaitest.Text("A long answer that stops").WithUsage(1000, 4000, 0, 3900)
	incomplete.ResponseStatus, incomplete.IncompleteReason = "incomplete", "max_output_tokens"
	s.AI.Enqueue(incomplete)
	first := s.send(sess.ID, "Explain everything.")
	resp := s.waitResponse(p.ID, first.MessageID)
	usage := resp["token_usage"].(map[string]any)
	if resp["status"] != "failed" || !strings.Contains(resp["error"].(string), "max_output_tokens") ||
		usage["prompt_tokens"] != 1000.0 || usage["completion_tokens"] != 4000.0 || usage["reasoning_tokens"] != 3900.0 {
		t.Fatalf("vibecode_response = %v", resp)
	}

	failed := openaitest.Text("").WithUsage(200, 10, 0, 0)
	failed.ResponseStatus, failed.ErrorCode, failed.ErrorMessage = "failed", "server_error", "try again"
	s.AI.Enqueue(failed, openaitest.Text("Fine.").WithUsage(300, 20, 0, 0))
	second := s.send(sess.ID, "Hi?")
	resp = s.waitResponse(p.ID, second.MessageID)
	usage = resp["token_usage"].(map[string]any)
	if resp["status"] != "answered" || usage["prompt_tokens"] != 500.0 || usage["completion_tokens"] != 30.0 {
		t.Fatalf("vibecode_response = %v", resp)
	}

	var events []map[string]any
	for _, e := range s.events(p.ID) {
		if e.Name == "token_usage" {
			events = append(events, e.Payload)
		}
	}
	if len(events) != 3 {
		t.Fatalf("%d token_usage events, want 3 (two failed calls, one answer): %v", len(events), events)
	}
	for i, want := range []struct {
		about  string
		prompt float64
	}{{first.MessageID, 1000}, {second.MessageID, 200}} {
		e := events[i]
		if e["message_id"] != want.about || e["reply_to"] != want.about || e["usage"].(map[string]any)["prompt_tokens"] != want.prompt {
			t.Errorf("token_usage %d = %v", i, e)
		}
	}
	// No message is made of a failed call; the answer is the only reply.
	if msgs := s.messages(sess.ID); len(msgs) != 3 {
		t.Fatalf("%d messages, want 3", len(msgs))
	}
}

func TestVibecodeFailures(t *testing.T) {
	t.Parallel()
	t.Run("model answers 400", func(t *testing.T) {
		t.Parallel()
		s := newStack(t, stackOptions{})
		p, sess := s.project(baseCode)
		s.AI.Enqueue(openaitest.Status(400, "Unsupported parameter: 'reasoning.effort'"))
		resp := s.waitResponse(p.ID, s.send(sess.ID, "Hi?").MessageID)
		if resp["status"] != "failed" || !strings.Contains(resp["error"].(string), "Unsupported parameter") {
			t.Fatalf("vibecode_response = %v", resp)
		}
	})
	t.Run("no API key", func(t *testing.T) {
		t.Parallel()
		s := newStack(t, stackOptions{apiKey: "-"})
		p, sess := s.project(baseCode)
		resp := s.waitResponse(p.ID, s.send(sess.ID, "Hi?").MessageID)
		if resp["status"] != "failed" || !strings.Contains(resp["error"].(string), "OPENAI_API_KEY") {
			t.Fatalf("vibecode_response = %v", resp)
		}
		if s.AI.Calls() != 0 {
			t.Fatal("a request was sent without an API key")
		}
	})
}

// PostgreSQL stores no NUL, in text or in jsonb: what the model sends of it,
// in its text, in a patch or in a verdict, reaches the person as U+FFFD, as
// a JSON parser shows what it cannot read, instead of failing every attempt.
func TestANULFromTheModelIsReplaced(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)

	s.AI.Enqueue(openaitest.Text("greet\x00 greets."))
	acc := s.send(sess.ID, "What does this code do?")
	resp := s.waitResponse(p.ID, acc.MessageID)
	if resp["status"] != "answered" || resp["response"] != "greet\uFFFD greets." {
		t.Fatalf("vibecode_response = %v", resp)
	}
	var streamed strings.Builder
	for _, e := range s.events(p.ID) {
		if e.Name == "vibecode_delta" && e.Payload["message_id"] == acc.MessageID {
			streamed.WriteString(e.Payload["delta"].(string))
		}
	}
	if streamed.String() != resp["response"] {
		t.Fatalf("deltas add up to %q", streamed.String())
	}

	patch := strings.Replace(greetPatch, `+    return "Hi, " + name`, "+    return \"Hi\x00, \" + name", 1)
	s.AI.Enqueue(submitPatch(patch), verdict(true, "Says Hi\x00.", "Say Hi\x00"))
	acc = s.send(sess.ID, "Say Hi instead of Hello")
	resp = s.waitResponse(p.ID, acc.MessageID)
	if resp["status"] != "diff_created" || resp["commit_message"] != "Say Hi\uFFFD" {
		t.Fatalf("vibecode_response = %v", resp)
	}
	var d domain.Diff
	s.do("GET", fmt.Sprint("/diffs/", resp["diff_id"]), nil).json(t, &d)
	if !strings.Contains(d.DiffContent, "+    return \"Hi\uFFFD, \" + name") {
		t.Fatalf("diff content = %q", d.DiffContent)
	}
	msgs := s.messages(sess.ID)
	if len(msgs) != 5 || msgs[1].Content != "greet\uFFFD greets." || msgs[4].Content != "Approved: Says Hi\uFFFD." {
		t.Fatalf("messages = %+v", msgs)
	}
}

// Replies the model may send that are neither an answer nor a patch end the
// message failed, with what went wrong; an unknown tool call is noted in the
// stored message, as a refused patch is.
func TestVibecodeRepliesWithoutAnAnswer(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		replies []openaitest.Reply
		err     string
	}{
		{"no output", []openaitest.Reply{{}}, "neither text nor a patch"},
		{"reasoning only", []openaitest.Reply{openaitest.Reasoning("thinking")}, "neither text nor a patch"},
		{"a verdict without approved", []openaitest.Reply{submitPatch(greetPatch),
			openaitest.JSON(map[string]any{"reasoning": "Looks right.", "commit_message": "Say Hi"})}, `the verdict has no "approved"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, stackOptions{})
			p, sess := s.project(baseCode)
			s.AI.Enqueue(c.replies...)
			resp := s.waitResponse(p.ID, s.send(sess.ID, "Say Hi").MessageID)
			if resp["status"] != "failed" || !strings.Contains(fmt.Sprint(resp["error"]), c.err) {
				t.Fatalf("vibecode_response = %v", resp)
			}
		})
	}
	t.Run("unknown tool", func(t *testing.T) {
		t.Parallel()
		s := newStack(t, stackOptions{})
		p, sess := s.project(baseCode)
		s.AI.Enqueue(openaitest.FunctionCall("run_python", `{"code":"1"}`), openaitest.Text("Sorry."))
		resp := s.waitResponse(p.ID, s.send(sess.ID, "Hi?").MessageID)
		msgs := s.messages(sess.ID)
		if resp["status"] != "answered" || len(msgs) != 3 || !strings.Contains(msgs[1].Content, `Tool call refused: unknown tool "run_python"`) {
			t.Fatalf("vibecode_response = %v; messages = %+v", resp, msgs)
		}
	})
}

func TestMessageIDIsIdempotent(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{noWorker: true})
	p, sess := s.project(baseCode)
	id := "1f0e3a52-8c7b-4f0e-9a55-5d3e2f9f7a10"
	body := map[string]any{"prompt": "Say Hi", "message_id": id}
	first := s.do("POST", "/sessions/"+sess.ID+"/messages", body)
	second := s.do("POST", "/sessions/"+sess.ID+"/messages", body)
	if first.Status != 202 || second.Status != 202 || string(first.Body) != string(second.Body) {
		t.Fatalf("first %d %s, second %d %s", first.Status, first.Body, second.Status, second.Body)
	}
	if n := len(s.messages(sess.ID)); n != 1 {
		t.Fatalf("%d messages", n)
	}
	var jobs int
	_ = s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job`).Scan(&jobs)
	if jobs != 1 {
		t.Fatalf("%d jobs", jobs)
	}
	other := s.do("POST", "/sessions/"+sess.ID+"/messages", map[string]any{"prompt": "Something else", "message_id": id})
	if other.Status != 409 {
		t.Fatalf("reused id with another prompt = %d %s", other.Status, other.Body)
	}
	// The same new id sent several times at once (a client retrying before
	// its first answer): one message, one job, the same answer for all.
	again := "6a1c0f0e-2b7d-4c55-8e0b-9d4f3a2b1c0d"
	answers := make([]string, 6)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			r := s.do("POST", "/sessions/"+sess.ID+"/messages", map[string]any{"prompt": "Say Hi again", "message_id": again})
			answers[i] = fmt.Sprint(r.Status, " ", string(r.Body))
		})
	}
	wg.Wait()
	for _, a := range answers[1:] {
		if a != answers[0] || !strings.HasPrefix(a, "202 ") {
			t.Fatalf("answers to one id sent at once differ: %q", answers)
		}
	}
	if n := len(s.messages(sess.ID)); n != 2 {
		t.Fatalf("%d messages after the concurrent repeats, want 2", n)
	}
	_ = s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job`).Scan(&jobs)
	if jobs != 2 {
		t.Fatalf("%d jobs after the concurrent repeats, want 2", jobs)
	}
	_ = p
}

func TestMessageBadInput(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{noWorker: true})
	_, sess := s.project(baseCode)
	for _, c := range []struct {
		body   any
		status int
		field  string
	}{
		{map[string]any{}, 400, "prompt"},
		{map[string]any{"prompt": "  "}, 400, "prompt"},
		{map[string]any{"prompt": strings.Repeat("é", domain.MaxPromptLen+1)}, 400, "prompt"},
		{map[string]any{"prompt": "x", "message_id": "nope"}, 400, "message_id"},
		{`{"prompt": 3}`, 400, "prompt"},
	} {
		res := s.do("POST", "/sessions/"+sess.ID+"/messages", c.body)
		if res.Status != c.status {
			t.Errorf("%v: %d %s", c.body, res.Status, res.Body)
			continue
		}
		if p := res.problem(t); len(p.Errors) == 0 || p.Errors[0].Name != c.field {
			t.Errorf("%v: %+v", c.body, p)
		}
	}
	if res := s.do("POST", "/sessions/"+strings.Repeat("0", 8)+"/messages", map[string]any{"prompt": "x"}); res.Status != 404 {
		t.Errorf("unknown session: %d", res.Status)
	}
	if res := s.do("POST", "/sessions/"+sess.ID+"/messages", map[string]any{"prompt": strings.Repeat("é", domain.MaxPromptLen)}); res.Status != 202 {
		t.Errorf("prompt at the limit: %d %s", res.Status, res.Body)
	}
	if n := len(s.messages(sess.ID)); n != 1 {
		t.Fatalf("bad requests stored messages: %d", n)
	}
}

func TestMessagesOfASessionRunInOrder(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	var mu sync.Mutex
	var order []string
	s.AI.Handle(func(r openaitest.Request) openaitest.Reply {
		in := string(r.Input)
		mu.Lock()
		defer mu.Unlock()
		for _, q := range []string{"first question", "second question", "third question"} {
			if strings.Contains(in, q) && !strings.Contains(strings.Join(order, ","), q) {
				order = append(order, q)
				return openaitest.Text("answer to " + q).WithDelay(30 * time.Millisecond)
			}
		}
		return openaitest.Text("?")
	})
	a := s.send(sess.ID, "first question")
	b := s.send(sess.ID, "second question")
	c := s.send(sess.ID, "third question")
	for _, id := range []string{a.MessageID, b.MessageID, c.MessageID} {
		s.waitResponse(p.ID, id)
	}
	if strings.Join(order, ",") != "first question,second question,third question" {
		t.Fatalf("processed in order %v", order)
	}
	// Each request carried the earlier exchanges: memory.
	reqs := s.AI.Requests()
	last := string(reqs[len(reqs)-1].Input)
	if !strings.Contains(last, "answer to first question") || !strings.Contains(last, "answer to second question") {
		t.Fatalf("third request lacks the memory: %s", last)
	}
}

// A message waiting behind a running one is snoozed; when its project is
// deleted or its session cleared, its job finds it gone at once instead of
// sitting scheduled in River UI for SessionOrderSnooze.
func TestAWaitingMessagesJobEndsWhenItsMessageIsDeleted(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		delete func(s *stack, p domain.Project, sess domain.VibecodeSession) string
	}{
		{"project deleted", func(s *stack, p domain.Project, _ domain.VibecodeSession) string { return "/projects/" + p.ID }},
		{"session cleared", func(s *stack, _ domain.Project, sess domain.VibecodeSession) string { return "/sessions/" + sess.ID }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, stackOptions{})
			p, sess := s.project(baseCode)
			release := make(chan struct{})
			s.AI.Handle(func(r openaitest.Request) openaitest.Reply {
				<-release
				return openaitest.Text("late")
			})
			defer func() {
				select {
				case <-release:
				default:
					close(release)
				}
			}()
			s.send(sess.ID, "first")
			second := s.send(sess.ID, "second")
			state := func() string {
				var st string
				if err := s.Pool.QueryRow(context.Background(), `SELECT state FROM river_job WHERE id = $1`, second.JobID).Scan(&st); err != nil {
					t.Fatal(err)
				}
				return st
			}
			waitFor := func(want string) {
				deadline := time.Now().Add(15 * time.Second) // the snooze is 30 s
				for st := state(); st != want; st = state() {
					if time.Now().After(deadline) {
						t.Fatalf("the second message's job is %s, want %s", st, want)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			waitFor("scheduled") // snoozed behind the first
			if res := s.do("DELETE", c.delete(s, p, sess), nil); res.Status != 204 {
				t.Fatalf("delete = %d %s", res.Status, res.Body)
			}
			close(release)
			waitFor("completed")
		})
	}
}

// A message's position is drawn at its insert: one that drew the lower
// position but committed later was not seen by the next message's check for
// earlier ones, and the two ran at once. A trigger stalls the first
// message's insert after its position is drawn.
func TestMessagesOfASessionRunInOrderWhenTheFirstCommitsLate(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	if _, err := s.Pool.Exec(context.Background(), `
		CREATE FUNCTION stall_first() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.content = 'question A' THEN PERFORM pg_sleep(1); END IF; RETURN NEW; END $$;
		CREATE TRIGGER stall_first BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION stall_first()`); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var log []string
	s.AI.Handle(func(r openaitest.Request) openaitest.Reply {
		in := string(r.Input)
		q := in[strings.LastIndex(in, "question ")+len("question "):][:1]
		mu.Lock()
		log = append(log, "start "+q)
		mu.Unlock()
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		log = append(log, "end "+q)
		mu.Unlock()
		return openaitest.Text("answer " + q)
	})
	var a, b domain.MessageAccepted
	var wg sync.WaitGroup
	wg.Go(func() { a = s.send(sess.ID, "question A") })
	time.Sleep(200 * time.Millisecond) // A's position is drawn; its insert stalls
	wg.Go(func() { b = s.send(sess.ID, "question B") })
	wg.Wait()
	s.waitResponse(p.ID, a.MessageID)
	s.waitResponse(p.ID, b.MessageID)
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(log, ",") != "start A,end A,start B,end B" {
		t.Fatalf("model calls: %v", log)
	}
}

func TestWorkerStoppedMidJobFinishesOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	started := make(chan struct{})
	var calls atomic.Int32
	s.AI.Handle(func(r openaitest.Request) openaitest.Reply {
		if calls.Add(1) == 1 {
			close(started)
			// the first attempt hangs until its worker is stopped
			return openaitest.Text("too late").WithDelay(5 * time.Second)
		}
		return openaitest.Text("Done.")
	})
	acc := s.send(sess.ID, "Hi?")
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Worker.StopAndCancel(ctx); err != nil {
		t.Fatal(err)
	}
	s.startWorker(t)
	resp := s.waitResponse(p.ID, acc.MessageID)
	if resp["status"] != "answered" || resp["response"] != "Done." {
		t.Fatalf("vibecode_response = %v", resp)
	}
	var responses int
	for _, e := range s.events(p.ID) {
		if e.Name == "vibecode_response" {
			responses++
		}
	}
	if responses != 1 || len(s.messages(sess.ID)) != 2 {
		t.Fatalf("%d responses, %d messages", responses, len(s.messages(sess.ID)))
	}
}

// A message whose job was cancelled outside the loop (River UI) ends as
// failed instead of holding up the session's later messages.
func TestCancelledJobDoesNotBlockTheSession(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{noWorker: true})
	p, sess := s.project(baseCode)
	first := s.send(sess.ID, "first")
	if _, err := s.Worker.JobCancel(context.Background(), first.JobID); err != nil {
		t.Fatal(err)
	}
	second := s.send(sess.ID, "second")
	s.AI.Enqueue(openaitest.Text("answer to second"))
	s.startWorker(t)
	if resp := s.waitResponse(p.ID, second.MessageID); resp["status"] != "answered" {
		t.Fatalf("second message: %v", resp)
	}
	resp := s.waitResponse(p.ID, first.MessageID)
	if resp["status"] != "failed" || !strings.Contains(resp["error"].(string), "cancelled") {
		t.Fatalf("first message: %v", resp)
	}
}

// A message whose job is cancelled or deleted in River UI, alone in its
// session, ends failed with its vibecode_response: it stayed running (or
// queued) for ever, since only a later message of its session looked.
func TestAMessageWhoseJobEndsOutsideTheLoopEnds(t *testing.T) {
	t.Parallel()
	t.Run("running job cancelled", func(t *testing.T) {
		t.Parallel()
		s := newStack(t, stackOptions{})
		p, sess := s.project(baseCode)
		started := make(chan struct{}, 1)
		s.AI.Handle(func(openaitest.Request) openaitest.Reply {
			started <- struct{}{}
			return openaitest.Text("late").WithDelay(2 * time.Second)
		})
		acc := s.send(sess.ID, "first")
		<-started
		if _, err := s.Worker.JobCancel(context.Background(), acc.JobID); err != nil {
			t.Fatal(err)
		}
		if resp := s.waitResponse(p.ID, acc.MessageID); resp["status"] != "failed" || !strings.Contains(resp["error"].(string), "cancelled") {
			t.Fatalf("vibecode_response = %v", resp)
		}
	})
	t.Run("queued job deleted", func(t *testing.T) {
		t.Parallel()
		s := newStack(t, stackOptions{noWorker: true})
		p, sess := s.project(baseCode)
		acc := s.send(sess.ID, "first")
		if _, err := s.Worker.JobDelete(context.Background(), acc.JobID); err != nil {
			t.Fatal(err)
		}
		s.startWorker(t)
		if resp := s.waitResponse(p.ID, acc.MessageID); resp["status"] != "failed" || !strings.Contains(resp["error"].(string), "missing") {
			t.Fatalf("vibecode_response = %v", resp)
		}
	})
}

// A message id sent again after its session was cleared is a new message:
// it gets a job of its own and an answer, though the first message's job
// still stands completed in River.
func TestMessageIDAfterTheSessionWasCleared(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	id := "2c9d7e41-5b3a-4f6e-8d21-7a0b9c8e6f53"
	s.AI.Enqueue(openaitest.Text("First answer."), openaitest.Text("Second answer."))
	first := s.do("POST", "/sessions/"+sess.ID+"/messages", map[string]any{"prompt": "Say Hi", "message_id": id})
	if first.Status != 202 {
		t.Fatalf("first = %d %s", first.Status, first.Body)
	}
	s.waitResponse(p.ID, id)
	if r := s.do("DELETE", "/sessions/"+sess.ID, nil); r.Status != 204 {
		t.Fatalf("clear = %d %s", r.Status, r.Body)
	}
	again := s.do("POST", "/sessions/"+sess.ID+"/messages", map[string]any{"prompt": "Say Hi again", "message_id": id})
	if again.Status != 202 || string(again.Body) == string(first.Body) {
		t.Fatalf("again = %d %s (first %s)", again.Status, again.Body, first.Body)
	}
	s.waitEvent(p.ID, "vibecode_response", func(e map[string]any) bool {
		return e["message_id"] == id && e["response"] == "Second answer."
	})
}

// The same with a patch: the message sent again is reviewed (the first
// one's completed review job does not stand in for its own) and gets a diff
// of its own, not the first one's, which was committed meanwhile.
func TestMessageIDAfterTheSessionWasClearedMakesItsOwnDiff(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	id := "5d9d7e41-5b3a-4f6e-8d21-7a0b9c8e6f53"
	s.AI.Enqueue(submitPatch(greetPatch), verdict(true, "ok", "Say Hi"))
	s.do("POST", "/sessions/"+sess.ID+"/messages", map[string]any{"prompt": "Say Hi", "message_id": id})
	first := s.waitResponse(p.ID, id)
	if r := s.do("POST", fmt.Sprint("/diffs/", first["diff_id"], "/commit"), map[string]any{}); r.Status != 200 {
		t.Fatalf("commit = %d %s", r.Status, r.Body)
	}
	if r := s.do("DELETE", "/sessions/"+sess.ID, nil); r.Status != 204 {
		t.Fatalf("clear = %d %s", r.Status, r.Body)
	}
	hey := strings.NewReplacer(`-    return "Hello, " + name`, `-    return "Hi, " + name`, `+    return "Hi, " + name`, `+    return "Hey, " + name`).Replace(greetPatch)
	s.AI.Enqueue(submitPatch(hey), verdict(true, "ok again", "Say Hey"))
	if r := s.do("POST", "/sessions/"+sess.ID+"/messages", map[string]any{"prompt": "Say Hey", "message_id": id}); r.Status != 202 {
		t.Fatalf("again = %d %s", r.Status, r.Body)
	}
	second := s.waitEvent(p.ID, "vibecode_response", func(e map[string]any) bool {
		return e["message_id"] == id && e["seq"].(float64) > first["seq"].(float64)
	})
	if second["status"] != "diff_created" || second["diff_id"] == first["diff_id"] {
		t.Fatalf("second vibecode_response = %v (first diff %v)", second, first["diff_id"])
	}
	var d struct {
		DiffContent string `json:"diff_content"`
		Status      string `json:"status"`
	}
	s.do("GET", fmt.Sprint("/diffs/", second["diff_id"]), nil).json(t, &d)
	if d.Status != "evaluator_approved" || !strings.Contains(d.DiffContent, `"Hey, "`) {
		t.Fatalf("the second message's diff: %+v", d)
	}
	// And the session goes on.
	s.AI.Enqueue(openaitest.Text("Later answer."))
	if r := s.waitResponse(p.ID, s.send(sess.ID, "And now?").MessageID); r["status"] != "answered" {
		t.Fatalf("a later message: %v", r)
	}
}

// An Evaluator that refuses fails the message, and its stored message
// carries its words, as a VibeCoder's refusal does.
func TestAnEvaluatorsRefusalIsItsMessage(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	s.AI.Enqueue(submitPatch(greetPatch), openaitest.Refusal("I can't help with reviewing that."))
	acc := s.send(sess.ID, "Say Hi")
	resp := s.waitResponse(p.ID, acc.MessageID)
	if resp["status"] != "failed" || !strings.Contains(fmt.Sprint(resp["error"]), "refused") {
		t.Fatalf("vibecode_response = %v", resp)
	}
	var found bool
	for _, m := range s.messages(sess.ID) {
		if m.Agent == "evaluator" {
			found = true
			if m.Content != "I can't help with reviewing that." {
				t.Errorf("the Evaluator's message: %q", m.Content)
			}
		}
	}
	if !found {
		t.Error("no Evaluator message stored")
	}
}

// A reply with neither text nor a patch fails its message, but was billed:
// its usage is counted and reported like any call's.
func TestAnEmptyReplysUsageIsCounted(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	s.AI.Enqueue(openaitest.Reasoning("thinking").WithUsage(500, 900, 0, 900))
	acc := s.send(sess.ID, "Say Hi")
	resp := s.waitResponse(p.ID, acc.MessageID)
	if resp["status"] != "failed" {
		t.Fatalf("vibecode_response = %v", resp)
	}
	if u, _ := resp["token_usage"].(map[string]any); u["prompt_tokens"] != 500.0 || u["completion_tokens"] != 900.0 {
		t.Errorf("vibecode_response token_usage = %v", u)
	}
	usage := s.waitEvent(p.ID, "token_usage", func(e map[string]any) bool { return true })
	if u, _ := usage["usage"].(map[string]any); u["prompt_tokens"] != 500.0 {
		t.Errorf("token_usage = %v", usage)
	}
}

// A message deleted while its answer streams (its session cleared, its
// project deleted) streams no more: no vibecode_delta of it is written after
// the session_cleared or project_deleted, and the model call is cancelled
// rather than read (and billed) to its end.
func TestAMessageDeletedWhileItStreamsStopsItsCall(t *testing.T) {
	t.Parallel()
	for _, what := range []string{"session", "project"} {
		t.Run(what, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, stackOptions{})
			p, sess := s.project(baseCode)
			s.AI.Enqueue(openaitest.Text(strings.Repeat("lorem ipsum dolor sit amet ", 40)).WithDelay(30 * time.Millisecond))
			acc := s.send(sess.ID, "Explain")
			s.waitEvent(p.ID, "vibecode_delta", nil)
			path, deleted := "/sessions/"+sess.ID, "session_cleared"
			if what == "project" {
				path, deleted = "/projects/"+p.ID, "project_deleted"
			}
			if r := s.do("DELETE", path, nil); r.Status != 204 {
				t.Fatalf("DELETE %s = %d %s", path, r.Status, r.Body)
			}
			ctx := context.Background()
			deadline := time.Now().Add(30 * time.Second)
			for s.AI.CallsLeft() == 0 || s.count(fmt.Sprintf("river_job WHERE id = %d AND state = 'completed'", acc.JobID)) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("after %s: the call was left %d times, the job is not completed", deleted, s.AI.CallsLeft())
				}
				time.Sleep(20 * time.Millisecond)
			}
			rows, err := s.Pool.Query(ctx, `SELECT name FROM events WHERE project_id = $1 AND seq >
				(SELECT max(seq) FROM events WHERE project_id = $1 AND name = $2) ORDER BY seq`, p.ID, deleted)
			if err != nil {
				t.Fatal(err)
			}
			after, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			// The job ends, and says so while its project exists.
			want := []string{"job_status"}
			if what == "project" {
				want = nil
			}
			if !slices.Equal(after, want) {
				t.Fatalf("events after %s: %v, want %v", deleted, after, want)
			}
		})
	}
}

// A session's memory keeps each request without its copy of the script:
// every call carries the current code once, however long the conversation
// (a memory that kept one copy per message grew by the script's size with
// each, and a 150 KB script passed the model's context in five messages).
// The Evaluator gets the patch and the script after it, not also before it.
func TestALongSessionSendsTheScriptOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	const line = "return a + b" // a line of the script the patch and its context leave out
	for i := range 4 {
		s.AI.Enqueue(openaitest.Text(fmt.Sprintf("Answer %d.", i)))
		s.waitResponse(p.ID, s.send(sess.ID, fmt.Sprintf("Question %d?", i)).MessageID)
	}
	s.AI.Enqueue(submitPatch(greetPatch), verdict(true, "ok", "Say Hi"))
	s.waitResponse(p.ID, s.send(sess.ID, "Say Hi").MessageID)
	requests := s.AI.Requests()
	vibecoder, evaluator := string(requests[len(requests)-2].Input), string(requests[len(requests)-1].Input)
	if n := strings.Count(vibecoder, line); n != 1 {
		t.Errorf("the fifth message's request carries the script %d times", n)
	}
	for i := range 4 { // the conversation itself is kept
		if !strings.Contains(vibecoder, fmt.Sprintf("Question %d?", i)) || !strings.Contains(vibecoder, fmt.Sprintf("Answer %d.", i)) {
			t.Errorf("the fifth message's request lacks turn %d", i)
		}
	}
	if n := strings.Count(evaluator, line); n != 1 {
		t.Errorf("the Evaluator's request carries the script %d times", n)
	}
}
