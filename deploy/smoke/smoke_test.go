//go:build dockersmoke

package smoke

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vibegrapher/vibegrapher/internal/openaitest"
)

// The stack is up (deploy/smoke.sh); these say where.
var (
	baseURL    = env("SMOKE_URL", "http://127.0.0.1:28080")
	token      = os.Getenv("SMOKE_API_TOKEN")
	riverPass  = os.Getenv("SMOKE_RIVER_UI_PASSWORD")
	fakeAddr   = env("SMOKE_FAKE_ADDR", "172.17.0.1:28002") // the stack's OPENAI_BASE_URL host
	jsClient   = env("SMOKE_JSCLIENT", "../../api/realtime/testdata/jsclient/client.js")
	editBefore = `    instructions="You only speak English",`
	editAfter  = `    instructions="You only speak English. Be brief.",`
)

const patch = `--- a/script.py
+++ b/script.py
@@ -9,4 +9,4 @@
 english_agent = Agent(
     name="English agent",
-    instructions="You only speak English",
+    instructions="You only speak English. Be brief.",
 )
`

// The test case runs in the namespace of the project's code, so it imports
// the agents package of the image (the stand-in where PyPI is unreachable).
const testCode = `assert [a.name for a in triage_agent.handoffs] == ["Spanish agent", "English agent"]
print("handoffs ok:", english_agent.instructions)
`

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func TestDockerSmoke(t *testing.T) {
	ai := openaitest.New(t)
	forward(t, fakeAddr, strings.TrimSuffix(strings.TrimPrefix(ai.URL(), "http://"), "/v1"))
	raw, _ := json.Marshal(map[string]string{"patch": patch, "description": "Makes the English agent brief."})
	ai.Enqueue(openaitest.FunctionCall("submit_patch", string(raw)),
		openaitest.JSON(map[string]any{"approved": true, "reasoning": "Does what was asked.", "commit_message": "Make the English agent brief"}))

	// A project (the sample workflow) and a test case, run in the sandbox.
	var p struct {
		ID string `json:"id"`
	}
	call(t, "POST", "/projects", map[string]any{"name": "Docker smoke"}, 201, &p)
	logf("created project %s", p.ID)
	var tc struct {
		ID string `json:"id"`
	}
	call(t, "POST", "/projects/"+p.ID+"/tests", map[string]any{"name": "handoffs", "code": testCode, "timeout_seconds": 20}, 201, &tc)
	run := runTest(t, tc.ID)
	logf("test run on %s: %s (%d ms) stdout=%q", short(run.Commit), run.Status, deref(run.DurationMS), run.Stdout)

	// Vibecode against the fake Responses API, then commit the approved diff
	// while a socket.io-client (the frontend's library) listens.
	var sess struct {
		ID string `json:"id"`
	}
	call(t, "POST", "/projects/"+p.ID+"/sessions", nil, 201, &sess)
	var acc struct {
		MessageID string `json:"message_id"`
		JobID     int64  `json:"job_id"`
	}
	call(t, "POST", "/sessions/"+sess.ID+"/messages", map[string]any{"prompt": "Make the English agent brief."}, 202, &acc)
	logf("vibecode message %s queued (job %d)", acc.MessageID, acc.JobID)
	var diff smokeDiff
	deadline := time.Now().Add(60 * time.Second)
	for {
		var diffs []smokeDiff
		call(t, "GET", "/sessions/"+sess.ID+"/diffs", nil, 200, &diffs)
		if len(diffs) > 0 {
			diff = diffs[0]
			break
		}
		if time.Now().After(deadline) {
			var msgs []map[string]any
			call(t, "GET", "/sessions/"+sess.ID+"/messages", nil, 200, &msgs)
			t.Fatalf("no diff after 60 s; %d OpenAI calls; messages %v", ai.Calls(), msgs)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if diff.Status != "evaluator_approved" || !strings.Contains(diff.DiffContent, "+"+editAfter) {
		t.Fatalf("diff = %+v", diff)
	}
	logf("diff %s %s (%q) after %d calls to the fake Responses API", diff.ID, diff.Status, diff.CommitMessage, ai.Calls())

	events := listen(t, p.ID)
	var committed struct {
		Diff struct {
			Status       string  `json:"status"`
			CommittedSHA *string `json:"committed_sha"`
		} `json:"diff"`
	}
	call(t, "POST", "/diffs/"+diff.ID+"/commit", map[string]any{}, 200, &committed)
	if committed.Diff.Status != "committed" || committed.Diff.CommittedSHA == nil {
		t.Fatalf("commit = %+v", committed)
	}
	sha := *committed.Diff.CommittedSHA
	ev := <-events
	if ev.err != nil {
		t.Fatalf("socket.io-client: %v", ev.err)
	}
	if code, _ := ev.payload["new_code"].(string); !strings.Contains(code, editAfter) || ev.payload["commit"] != sha {
		t.Fatalf("code_changed = %v (commit %s)", ev.payload, sha)
	}
	logf("committed %s; socket.io-client (%s) received code_changed with the new code", short(sha), ev.transport)

	var now struct {
		CurrentCode string `json:"current_code"`
	}
	call(t, "GET", "/projects/"+p.ID, nil, 200, &now)
	if !strings.Contains(now.CurrentCode, editAfter) || strings.Contains(now.CurrentCode, editBefore+"\n") {
		t.Fatalf("current code after the commit:\n%s", now.CurrentCode)
	}
	var commits []map[string]any
	call(t, "GET", "/projects/"+p.ID+"/commits", nil, 200, &commits)
	if len(commits) != 2 {
		t.Fatalf("commits = %v", commits)
	}
	run = runTest(t, tc.ID)
	logf("test run on the new commit %s: %s stdout=%q", short(run.Commit), run.Status, run.Stdout)
	if !strings.Contains(run.Stdout, "Be brief.") {
		t.Fatalf("the second run did not see the committed code: %q", run.Stdout)
	}

	// River UI: behind its password, served.
	res := get(t, "/riverui/", false)
	if res.StatusCode != 401 {
		t.Fatalf("/riverui/ without credentials: %d", res.StatusCode)
	}
	res = get(t, "/riverui/", true)
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !bytes.Contains(bytes.ToLower(body), []byte("<html")) {
		t.Fatalf("/riverui/: %d %.200s", res.StatusCode, body)
	}
	logf("/riverui/: 401 without the password, 200 HTML with it")
	// And the REST API refuses a call without the token.
	if res := get(t, "/projects", false); res.StatusCode != 401 {
		t.Fatalf("/projects without the token: %d", res.StatusCode)
	}
	logf("REST without API_TOKEN: 401")
}

type smokeDiff struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	DiffContent   string `json:"diff_content"`
	CommitMessage string `json:"commit_message"`
}

type testRun struct {
	Status     string  `json:"status"`
	Stdout     string  `json:"stdout"`
	Stderr     string  `json:"stderr"`
	Commit     string  `json:"commit"`
	Error      *string `json:"error"`
	DurationMS *int64  `json:"duration_ms"`
}

func runTest(t *testing.T, id string) testRun {
	t.Helper()
	var run testRun // the answer is the TestRun (SPEC.md)
	call(t, "POST", "/tests/"+id+"/run?wait=true", map[string]any{}, 200, &run)
	if run.Status != "passed" {
		t.Fatalf("test run %s: error=%v stdout=%q stderr=%q", run.Status, deref(run.Error), run.Stdout, run.Stderr)
	}
	return run
}

func call(t *testing.T, method, path string, body any, want int, out any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, baseURL+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: %d %s (want %d)", method, path, res.StatusCode, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

func get(t *testing.T, path string, auth bool) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", baseURL+path, nil)
	if auth {
		req.SetBasicAuth("admin", riverPass)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

type event struct {
	payload   map[string]any
	transport string
	err       error
}

// listen starts the official socket.io-client (node client.js), waits until it
// has subscribed to the project, and delivers its first code_changed event.
func listen(t *testing.T, projectID string) <-chan event {
	t.Helper()
	cmd := exec.Command("node", jsClient, baseURL, projectID, "websocket")
	cmd.Env = append(os.Environ(), "TOKEN="+token, "COUNT=20")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("node socket.io-client (run `make js-deps`): %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(out)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	if !lines.Scan() || !strings.Contains(lines.Text(), `"ready"`) {
		t.Fatalf("socket.io-client did not subscribe: %q", lines.Text())
	}
	ch := make(chan event, 1)
	go func() {
		for lines.Scan() {
			var e struct {
				Name, Transport string
				Payload         map[string]any
			}
			if json.Unmarshal(lines.Bytes(), &e) == nil && e.Name == "code_changed" {
				ch <- event{payload: e.Payload, transport: e.Transport}
				return
			}
		}
		ch <- event{err: fmt.Errorf("exited before code_changed")}
	}()
	return ch
}

// forward relays TCP connections from addr (where the stack's containers
// reach this host) to the fake, which listens on loopback only.
func forward(t *testing.T, addr, to string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on %s for the fake Responses API: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", to)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c) }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	logf("fake Responses API (internal/openaitest) on %s, reached by the stack at http://%s/v1", to, addr)
}

func logf(format string, args ...any) { fmt.Printf("smoke: "+format+"\n", args...) }

func short(s string) string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

func deref[T any](p *T) T {
	var z T
	if p == nil {
		return z
	}
	return *p
}
