package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"

	"github.com/vibegrapher/vibegrapher/api"
	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/internal/openaitest"
)

// burst sends the same request n times at once, as a client on a flaky
// network retrying before its first answer arrived, and returns the answers.
func (s *testServer) burst(n int, method, path string, body any) []response {
	s.t.Helper()
	out := make([]response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range out {
		wg.Go(func() {
			<-start
			out[i] = s.do(method, path, body)
		})
	}
	close(start)
	wg.Wait()
	return out
}

// cut sends a request and drops its connection as soon as the request is
// written, as a client whose network failed: the server may or may not have
// acted on it.
func (s *testServer) cut(method, path string, body any) {
	s.t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { cancel() }})
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, bytes.NewReader(raw))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	if res, err := (&http.Client{Transport: tr}).Do(req); err == nil {
		res.Body.Close()
	}
}

// A DELETE of a test sent several times at once deletes it once: one 204
// and one test_deleted, and the others the 404 a later retry gets.
func TestATestDeletedSeveralTimesAtOnceIsDeletedOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{noWorker: true})
	p, _ := s.project(baseCode)
	for range 5 {
		tc := s.newTest(p.ID, "adds", "assert add(2, 3) == 5", 5)
		var ok, gone int
		for _, r := range s.burst(4, "DELETE", "/tests/"+tc.ID, nil) {
			switch r.Status {
			case 204:
				ok++
			case 404:
				gone++
			default:
				t.Fatalf("DELETE = %d %s", r.Status, r.Body)
			}
		}
		if ok != 1 || gone != 3 {
			t.Errorf("DELETE sent 4 times at once: %d answered 204, %d 404; want 1 and 3", ok, gone)
		}
		if r := s.do("DELETE", "/tests/"+tc.ID, nil); r.Status != 404 {
			t.Errorf("DELETE again = %d %s", r.Status, r.Body)
		}
		deleted := 0
		for _, e := range s.outboxEvents(p.ID) {
			if e.Name == "test_deleted" && e.Payload["test_id"] == tc.ID {
				deleted++
			}
		}
		if deleted != 1 {
			t.Errorf("%d test_deleted events for one test", deleted)
		}
	}
}

// countEvents is the number of the project's events named name whose
// payload has key set to value.
func (s *testServer) countEvents(projectID, name, key, value string) int {
	s.t.Helper()
	n := 0
	for _, e := range s.outboxEvents(projectID) {
		if e.Name == name && (key == "" || e.Payload[key] == value) {
			n++
		}
	}
	return n
}

// splitAnswers checks that one of rs has status first and the others
// status rest, and returns the first's.
func splitAnswers(t *testing.T, what string, rs []response, first, rest int) response {
	t.Helper()
	var got []response
	for _, r := range rs {
		switch r.Status {
		case first:
			got = append(got, r)
		case rest:
		default:
			t.Fatalf("%s = %d %s, want %d or %d", what, r.Status, r.Body, first, rest)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%s sent %d times at once: %d answered %d, want one", what, len(rs), len(got), first)
	}
	return got[0]
}

// A client on a flaky network sends the same request again, in sequence or
// while the first is still being served: what a person acts on happens once
// and the repeats get the documented answer, never a 500.
func TestRetriedStateChangesHappenOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)

	// A session for the same memory key is the same session.
	var p2 domain.Project
	s.do("POST", "/projects", map[string]any{"name": "Sample"}).json(t, &p2)
	for _, body := range []any{nil, map[string]any{"node_id": "triage_agent"}} {
		first := splitAnswers(t, "POST sessions", s.burst(4, "POST", "/projects/"+p2.ID+"/sessions", body), 201, 200)
		var want domain.VibecodeSession
		first.json(t, &want)
		for _, r := range append(s.burst(2, "POST", "/projects/"+p2.ID+"/sessions", body), s.do("POST", "/projects/"+p2.ID+"/sessions", body)) {
			var got domain.VibecodeSession
			r.json(t, &got)
			if r.Status != 200 || got.ID != want.ID {
				t.Fatalf("repeated POST sessions = %d %s, want 200 with %s", r.Status, r.Body, want.ID)
			}
		}
	}
	if n := s.countEvents(p2.ID, "session_created", "", ""); n != 2 {
		t.Fatalf("%d session_created for two sessions", n)
	}

	// Approving again is allowed until the commit; committing happens once,
	// and each repeat names the commit it made.
	d := s.approvedDiff(p, sess, greetPatch, "Say Hi")
	for _, r := range s.burst(3, "POST", "/diffs/"+d.ID+"/review", map[string]any{"approved": true}) {
		if r.Status != 200 {
			t.Fatalf("approve sent at once = %d %s", r.Status, r.Body)
		}
	}
	var c db.CommitResult
	splitAnswers(t, "commit", s.burst(3, "POST", "/diffs/"+d.ID+"/commit", nil), 200, 409).json(t, &c)
	if r := s.do("POST", "/diffs/"+d.ID+"/commit", nil); r.Status != 409 || !strings.Contains(r.problem(t).Detail, "already committed as "+c.Commit.SHA) {
		t.Fatalf("commit again = %d %s", r.Status, r.Body)
	}
	var log []domain.Commit
	s.do("GET", "/projects/"+p.ID+"/commits", nil).json(t, &log)
	if len(log) != 2 || log[0].SHA != c.Commit.SHA {
		t.Fatalf("log after a commit sent three times: %+v", log)
	}
	if n := s.countEvents(p.ID, "code_changed", "", ""); n != 1 {
		t.Fatalf("%d code_changed for one commit", n)
	}

	// A rejection with feedback sends one message to the VibeCoder.
	d2 := s.approvedDiff(p, sess, addPatch, "Swap")
	s.AI.Enqueue(openaitest.Text("Understood."))
	before := len(s.messages(sess.ID))
	var rev db.ReviewResult
	splitAnswers(t, "reject", s.burst(3, "POST", "/diffs/"+d2.ID+"/review", map[string]any{"approved": false, "feedback": "no"}), 200, 409).json(t, &rev)
	if r := s.do("POST", "/diffs/"+d2.ID+"/review", map[string]any{"approved": false, "feedback": "no"}); r.Status != 409 {
		t.Fatalf("reject again = %d %s", r.Status, r.Body)
	}
	s.waitResponse(p.ID, rev.Message.MessageID)
	if after := len(s.messages(sess.ID)); after != before+2 {
		t.Fatalf("messages %d -> %d after one rejection with feedback, want its message and the answer", before, after)
	}

	// A project is deleted once.
	splitAnswers(t, "DELETE project", s.burst(3, "DELETE", "/projects/"+p.ID, nil), 204, 404)
	if r := s.do("DELETE", "/projects/"+p.ID, nil); r.Status != 404 {
		t.Fatalf("DELETE project again = %d %s", r.Status, r.Body)
	}
	if n := s.countEvents(p.ID, "project_deleted", "", ""); n != 1 {
		t.Fatalf("%d project_deleted", n)
	}
}

// A commit whose answer was lost (the connection cut while it was served)
// and is sent again: the diff is committed once, and the repeat is the 200
// of the commit or the 409 naming it, never a diff or a head half moved.
func TestACommitCutAndSentAgain(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	d := s.approvedDiff(p, sess, greetPatch, "Say Hi")
	s.cut("POST", "/diffs/"+d.ID+"/commit", nil)
	r := s.do("POST", "/diffs/"+d.ID+"/commit", nil)
	var got domain.Diff
	s.do("GET", "/diffs/"+d.ID, nil).json(t, &got)
	head := s.head(p.ID)
	if got.Status != domain.DiffCommitted || got.CommittedSHA == nil || *got.CommittedSHA != head.CurrentCommit || head.CurrentCode != greetPatched {
		t.Fatalf("after a cut commit and its repeat (%d %s): diff %+v, head %s", r.Status, r.Body, got, head.CurrentCommit)
	}
	switch {
	case r.Status == 200:
	case r.Status == 409 && strings.Contains(r.problem(t).Detail, "already committed as "+head.CurrentCommit):
	default:
		t.Fatalf("commit sent again = %d %s", r.Status, r.Body)
	}
	var log []domain.Commit
	s.do("GET", "/projects/"+p.ID+"/commits", nil).json(t, &log)
	if len(log) != 2 {
		t.Fatalf("%d commits after one diff's commit", len(log))
	}
}

// A request that finds the state it asks for already there (a repeat, or a
// second tab) answers as the first did, but rewrites nothing and emits
// nothing: a subscribed client sees one event per change, and updated_at
// stays the time of the change.
func TestARequestThatChangesNothingEmitsNothing(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	p, sess := s.project(baseCode)
	session := func() domain.VibecodeSession {
		var got domain.VibecodeSession
		s.do("GET", "/sessions/"+sess.ID, nil).json(t, &got)
		return got
	}
	diff := func(id string) domain.Diff {
		var got domain.Diff
		s.do("GET", "/diffs/"+id, nil).json(t, &got)
		return got
	}
	clear := func() {
		t.Helper()
		if r := s.do("DELETE", "/sessions/"+sess.ID, nil); r.Status != 204 || len(r.Body) != 0 {
			t.Fatalf("DELETE session = %d %s", r.Status, r.Body)
		}
	}

	// A session with no message yet has nothing to clear.
	clear()
	if got := session(); !got.UpdatedAt.Equal(sess.UpdatedAt) {
		t.Errorf("clearing an empty session moved updated_at %v -> %v", sess.UpdatedAt, got.UpdatedAt)
	}

	// Approving an approved diff again.
	d := s.approvedDiff(p, sess, greetPatch, "Say Hi")
	var approved db.ReviewResult
	for i := range 3 {
		res := s.do("POST", "/diffs/"+d.ID+"/review", map[string]any{"approved": true})
		var rev db.ReviewResult
		res.json(t, &rev)
		if res.Status != 200 || rev.Diff.Status != domain.DiffHumanApproved || rev.Message != nil {
			t.Fatalf("approval %d = %d %s", i+1, res.Status, res.Body)
		}
		if i == 0 {
			approved = rev
		} else if !rev.Diff.UpdatedAt.Equal(approved.Diff.UpdatedAt) {
			t.Errorf("approval %d moved updated_at %v -> %v", i+1, approved.Diff.UpdatedAt, rev.Diff.UpdatedAt)
		}
	}

	// A refined commit message the model gave back unchanged, then a new one.
	s.AI.Enqueue(openaitest.Text(d.CommitMessage), openaitest.Text("Greet with Hi"))
	for _, want := range []string{d.CommitMessage, "Greet with Hi"} {
		var refined api.RefinedDiff
		res := s.do("POST", "/diffs/"+d.ID+"/refine-message", map[string]any{})
		res.json(t, &refined)
		if res.Status != 200 || refined.RefinedMessage != want || refined.CommitMessage != want {
			t.Fatalf("refine-message = %d %s, want %q", res.Status, res.Body, want)
		}
		if unchanged := want == d.CommitMessage; unchanged != refined.UpdatedAt.Equal(approved.Diff.UpdatedAt) {
			t.Errorf("refine-message to %q: updated_at %v, approved at %v", want, refined.UpdatedAt, approved.Diff.UpdatedAt)
		}
	}
	if got := diff(d.ID); got.CommitMessage != "Greet with Hi" || got.Status != domain.DiffHumanApproved {
		t.Fatalf("diff after refine-message: %+v", got)
	}

	// A session cleared, then cleared again.
	clear()
	cleared := session()
	clear()
	if got := session(); !got.UpdatedAt.Equal(cleared.UpdatedAt) {
		t.Errorf("clearing a cleared session moved updated_at %v -> %v", cleared.UpdatedAt, got.UpdatedAt)
	}

	// A change after the repeats: once the client has it, it has every
	// event the repeats could have sent.
	tc := s.newTest(p.ID, "adds", "assert add(2, 3) == 5", 5)
	s.waitEvent(p.ID, "test_created", func(e map[string]any) bool { return e["test_id"] == tc.ID })
	count := func(es []event, name string) int {
		n := 0
		for _, e := range es {
			if e.Name == name {
				n++
			}
		}
		return n
	}
	for _, c := range []struct {
		name string
		want int // one per change
	}{
		{"diff_updated", 2}, // the approval and the new commit message
		{"session_cleared", 1},
	} {
		if got := count(s.events(p.ID), c.name); got != c.want {
			t.Errorf("the client received %d %s, want %d; events: %v", got, c.name, c.want, eventNames(s.events(p.ID)))
		}
		if got := count(s.outboxEvents(p.ID), c.name); got != c.want {
			t.Errorf("the outbox holds %d %s, want %d", got, c.name, c.want)
		}
	}
}
