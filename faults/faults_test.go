package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/api/realtime"
	"github.com/vibegrapher/vibegrapher/domain"
)

var full = flag.Bool("faults.full", false, "run the full fault-injection suite (20 kills, a 40 s model call, a 10 s database stop)")

// plan sizes the suite: the short one runs in make test, the full one in
// make faults.
type plan struct {
	kills         int
	killModel     time.Duration // how long the model takes to answer in the kill runs
	grace         time.Duration // SHUTDOWN_GRACE of the workers
	longCall      time.Duration // the model call running when SIGTERM comes
	stopFor       time.Duration // how long the database is stopped, after its restart
	listenerKills int
	realtimeKills int
}

func thePlan() plan {
	if *full {
		return plan{kills: 20, killModel: 4 * time.Second, grace: 20 * time.Second, longCall: 40 * time.Second,
			stopFor: 10 * time.Second, listenerKills: 9, realtimeKills: 2}
	}
	return plan{kills: 2, killModel: time.Second, grace: 2 * time.Second, longCall: 10 * time.Second,
		stopFor: 2 * time.Second, listenerKills: 1, realtimeKills: 1}
}

// stack is the service as separate processes on a cluster of its own.
type stack struct {
	t        *testing.T
	db       *cluster
	ai       *model
	env      []string
	apiURL   string
	rtPort   int
	api, rt  *role
	workers  []*role
	started  int
	http     *http.Client
	accepted []accepted
	mu       sync.Mutex
}

// accepted is a message the api answered 202 to.
type accepted struct {
	domain.MessageAccepted
	name string
}

func newStack(t *testing.T, p plan) *stack {
	c := newCluster(t)
	ai := newModel(t)
	s := &stack{t: t, db: c, ai: ai, http: &http.Client{Timeout: 5 * time.Second}}
	s.env = []string{
		"DATABASE_URL=" + c.url("vibegrapher"), "OPENAI_API_KEY=test", "OPENAI_BASE_URL=" + ai.URL(),
		"HOST=127.0.0.1", "SANDBOX_ALLOW_UNISOLATED=true", "SHUTDOWN_GRACE=" + p.grace.String(),
	}
	cmd := exec.Command(binary(t), "migrate")
	cmd.Env = append(cmd.Environ(), s.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v: %s", err, out)
	}
	pool, err := pgxpool.New(context.Background(), c.url("vibegrapher"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	c.pool = pool
	apiPort := freePort(t)
	s.apiURL = "http://127.0.0.1:" + strconv.Itoa(apiPort)
	s.api = startRole(t, "api", append(s.env, "PORT="+strconv.Itoa(apiPort)), "api")
	s.rtPort = freePort(t)
	s.startRealtime(t)
	s.startWorker(t)
	s.startWorker(t)
	if !s.api.waitLog(`"serving"`, 60*time.Second) {
		t.Fatalf("api did not start:\n%s", s.api.tail(20))
	}
	return s
}

func (s *stack) startRealtime(t *testing.T) {
	s.rt = startRole(s.t, "realtime", append(s.env, "PORT="+strconv.Itoa(s.rtPort)), "realtime")
	if !s.rt.waitLog(`"serving"`, 60*time.Second) {
		t.Fatalf("realtime did not start:\n%s", s.rt.tail(20))
	}
}

// startWorker starts a worker and waits until it works.
func (s *stack) startWorker(t *testing.T) *role {
	s.started++
	w := startRole(s.t, fmt.Sprintf("worker-%d", s.started), s.env, "worker")
	if !w.waitLog("worker started", 60*time.Second) {
		t.Fatalf("worker did not start:\n%s", w.tail(20))
	}
	s.workers = append(s.workers, w)
	return w
}

// replace swaps a stopped worker for a new one, as a supervisor would.
func (s *stack) replace(t *testing.T, old *role) *role {
	s.workers = slices.DeleteFunc(s.workers, func(r *role) bool { return r == old })
	return s.startWorker(t)
}

type response struct {
	status int
	body   []byte
	err    error
}

func (s *stack) do(method, path string, body any) response {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.apiURL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	res, err := s.http.Do(req)
	if err != nil {
		return response{err: err}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, body: b}
}

func (s *stack) mustDo(t *testing.T, method, path string, body any, want int, into any) {
	t.Helper()
	r := s.do(method, path, body)
	if r.err != nil || (r.status != want && !(want == 201 && r.status == 200)) {
		t.Fatalf("%s %s: %v %d %s", method, path, r.err, r.status, r.body)
	}
	if into != nil {
		if err := json.Unmarshal(r.body, into); err != nil {
			t.Fatal(err)
		}
	}
}

func (s *stack) project(t *testing.T) string {
	var p domain.Project
	s.mustDo(t, "POST", "/projects", map[string]any{"name": "Faults", "code": baseCode}, 201, &p)
	return p.ID
}

// session returns the project's global session (created the first time).
func (s *stack) session(t *testing.T, project string) string {
	var sess domain.VibecodeSession
	s.mustDo(t, "POST", "/projects/"+project+"/sessions", nil, 201, &sess)
	return sess.ID
}

// send posts a prompt tagged with name; the answer is the api's.
func (s *stack) send(session, name string) (accepted, response) {
	r := s.do("POST", "/sessions/"+session+"/messages", map[string]any{"prompt": "[m:" + name + "] Please look at greet()."})
	var a accepted
	if r.err == nil && r.status == http.StatusAccepted {
		_ = json.Unmarshal(r.body, &a.MessageAccepted)
		a.name = name
		s.mu.Lock()
		s.accepted = append(s.accepted, a)
		s.mu.Unlock()
	}
	return a, r
}

// holder is the worker whose River client runs a job of the message now.
func (s *stack) holder(messageID string) *role {
	var client string
	err := s.db.pool.QueryRow(context.Background(), `SELECT attempted_by[array_upper(attempted_by, 1)] FROM river_job
		WHERE state = 'running' AND args->>'message_id' = $1`, messageID).Scan(&client)
	if err != nil {
		return nil
	}
	return s.workerByClient(client)
}

func (s *stack) workerByClient(client string) *role {
	for _, w := range s.workers {
		if strings.Contains(client, "_"+strconv.Itoa(w.pid())+"_") {
			return w
		}
	}
	return nil
}

// TestFaults runs every fault against one stack and checks, at the end, that
// every accepted message ended exactly once and that the Socket.IO client
// got every event of the outbox, once and in order.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("faults: -short")
	}
	p := thePlan()
	s := newStack(t, p)
	project := s.project(t)
	w := watch(t, "http://127.0.0.1:"+strconv.Itoa(s.rtPort), project)
	var report []string
	var late *watcher
	root := t // the late client outlives the subtest that starts it

	t.Run("kill -9 of the worker holding a running message", func(t *testing.T) {
		s.ai.setDelay(func(string, string, int) time.Duration { return p.killModel })
		var recoveries []time.Duration
		for i := 0; i < p.kills; i++ {
			name := fmt.Sprintf("kill%d", i)
			a, r := s.send(s.session(t, project), name)
			if r.status != http.StatusAccepted {
				t.Fatalf("send: %v %d %s", r.err, r.status, r.body)
			}
			if !s.ai.waitStarted(name, 1, 30*time.Second) {
				t.Fatalf("%s: the model was never called", name)
			}
			// A random point of the model call.
			time.Sleep(time.Duration(rand.Int64N(int64(p.killModel * 8 / 10))))
			victim := s.holder(a.MessageID)
			if victim == nil {
				t.Fatalf("%s: no worker holds the message's job", name)
			}
			killed := time.Now()
			victim.kill9()
			s.replace(t, victim)
			end, ok := w.waitEnd(a.MessageID, 120*time.Second)
			if !ok {
				t.Fatalf("%s: the message did not end after its worker was killed", name)
			}
			recoveries = append(recoveries, end.Sub(killed))
		}
		report = append(report, fmt.Sprintf("kill -9 (%d kills, model %s): kill → message ended: %s", p.kills, p.killModel, stats(recoveries)))
	})

	t.Run("SIGTERM during a long model call", func(t *testing.T) {
		s.ai.setDelay(func(name, _ string, n int) time.Duration {
			if name == "term" && n == 1 {
				return p.longCall
			}
			return time.Second
		})
		a, r := s.send(s.session(t, project), "term")
		if r.status != http.StatusAccepted {
			t.Fatalf("send: %v %d %s", r.err, r.status, r.body)
		}
		if !s.ai.waitStarted("term", 1, 30*time.Second) {
			t.Fatal("the model was never called")
		}
		victim := s.holder(a.MessageID)
		if victim == nil {
			t.Fatal("no worker holds the message's job")
		}
		termAt := time.Now()
		victim.term()
		cancelled, ok := s.ai.waitAbandoned("term", p.grace+30*time.Second)
		if !ok {
			t.Fatalf("the stopping worker never cancelled its model call:\n%s", victim.tail(10))
		}
		end, ok := w.waitEnd(a.MessageID, 60*time.Second)
		if !ok {
			t.Fatal("the message did not end after its worker stopped")
		}
		if !victim.wait(60 * time.Second) {
			t.Fatal("the stopping worker did not exit")
		}
		exited := time.Now()
		s.replace(t, victim)
		report = append(report, fmt.Sprintf("SIGTERM (grace %s, model call %s): cancel at +%s, message ended %s after the cancel on the other worker; the process exited %s after SIGTERM",
			p.grace, p.longCall, cancelled.Sub(termAt).Round(10*time.Millisecond), end.Sub(cancelled).Round(10*time.Millisecond), exited.Sub(termAt).Round(10*time.Millisecond)))
	})

	t.Run("database restart and stop under load", func(t *testing.T) {
		s.ai.setDelay(func(string, string, int) time.Duration { return 300 * time.Millisecond })
		sessions := []string{s.session(t, project)}
		statuses := map[int]int{}
		var failures []string
		var mu sync.Mutex
		stop := make(chan struct{})
		var load sync.WaitGroup
		load.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(150 * time.Millisecond):
				}
				name := fmt.Sprintf("load%d", i)
				if i%2 == 0 {
					name = fmt.Sprintf("patchload%d", i)
				}
				_, r := s.send(sessions[i%len(sessions)], name)
				mu.Lock()
				switch {
				case r.err != nil:
					failures = append(failures, "no answer: "+r.err.Error())
				case r.status != http.StatusAccepted && r.status != http.StatusServiceUnavailable:
					failures = append(failures, fmt.Sprintf("%d %s", r.status, r.body))
				}
				statuses[r.status]++
				mu.Unlock()
			}
		})
		time.Sleep(2 * time.Second)
		var outages []string
		outage := func(what string, fn func()) {
			from := time.Now()
			fn()
			back := time.Now()
			time.Sleep(5 * time.Second)
			outages = append(outages, fmt.Sprintf("%s (%s): %s", what, back.Sub(from).Round(100*time.Millisecond), s.logCounts(from, back.Add(5*time.Second))))
		}
		outage("restart", func() { s.db.ctl("restart") })
		outage("stop "+p.stopFor.String(), func() {
			s.db.ctl("stop")
			// A client that subscribes now is refused with retry_after_ms
			// and gets in, with the whole history, once the database is back.
			late = watch(root, "http://127.0.0.1:"+strconv.Itoa(s.rtPort), project)
			time.Sleep(p.stopFor)
			s.db.ctl("start")
		})
		close(stop)
		load.Wait()
		if len(failures) > 0 {
			t.Errorf("answers other than 202 and 503 while the database was away: %v", failures)
		}
		s.waitAllEnded(t, w, 180*time.Second)
		report = append(report, fmt.Sprintf("database outages under load: answers %v, no other; log lines (WARN+ERROR/all) per role: %s",
			statuses, strings.Join(outages, "; ")))
	})

	t.Run("listener connection killed", func(t *testing.T) {
		s.ai.setDelay(func(string, string, int) time.Duration { return 200 * time.Millisecond })
		sess := s.session(t, project)
		for i := 0; i < p.listenerKills; i++ {
			s.send(sess, fmt.Sprintf("listen%d", i))
			if _, err := s.db.pool.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`,
				realtime.ListenApplicationName); err != nil {
				t.Fatal(err)
			}
			s.send(sess, fmt.Sprintf("listenafter%d", i))
			time.Sleep(500 * time.Millisecond)
		}
		s.waitAllEnded(t, w, 60*time.Second)
		report = append(report, fmt.Sprintf("listener connection killed %d times: every event delivered (checked below)", p.listenerKills))
	})

	t.Run("realtime process killed", func(t *testing.T) {
		sess := s.session(t, project)
		for i := 0; i < p.realtimeKills; i++ {
			s.send(sess, fmt.Sprintf("rt%d", i))
			s.rt.kill9()
			s.send(sess, fmt.Sprintf("rtafter%d", i))
			w.mu.Lock()
			before := w.resubscribe
			w.mu.Unlock()
			s.startRealtime(t)
			// The client is back before the next kill.
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				w.mu.Lock()
				back := w.resubscribe > before
				w.mu.Unlock()
				if back {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the client did not resubscribe to the new realtime process")
				}
			}
		}
		s.waitAllEnded(t, w, 60*time.Second)
		w.mu.Lock()
		report = append(report, fmt.Sprintf("realtime killed %d times: the client resubscribed %d times in all (with since), %d refusals followed by retry_after_ms",
			p.realtimeKills, w.resubscribe, w.retryAfter))
		w.mu.Unlock()
	})

	s.checkExactlyOnce(t, w, project)
	if late != nil {
		s.checkSameEvents(t, w, late)
	}
	t.Logf("fault-injection report:\n  %s", strings.Join(report, "\n  "))
}

// waitAllEnded waits until every accepted message has its vibecode_response.
func (s *stack) waitAllEnded(t *testing.T, w *watcher, d time.Duration) {
	t.Helper()
	s.mu.Lock()
	all := append([]accepted(nil), s.accepted...)
	s.mu.Unlock()
	deadline := time.Now().Add(d)
	for _, a := range all {
		if _, ok := w.waitEnd(a.MessageID, time.Until(deadline)); !ok {
			t.Fatalf("message %s (%s) did not end:\n%s", a.name, a.MessageID, s.tails())
		}
	}
}

func (s *stack) tails() string {
	var b strings.Builder
	for _, r := range append([]*role{s.api, s.rt}, s.workers...) {
		b.WriteString(r.tail(15))
	}
	return b.String()
}

// logCounts counts, per role still running, the lines it wrote in [from, to].
func (s *stack) logCounts(from, to time.Time) string {
	var parts []string
	for _, r := range append([]*role{s.api, s.rt}, s.workers...) {
		lines := r.linesBetween(from, to)
		loud := 0
		var msgs []string
		for _, l := range lines {
			if l.level == "WARN" || l.level == "ERROR" {
				loud++
			}
			msgs = append(msgs, l.level+" "+l.msg)
		}
		parts = append(parts, fmt.Sprintf("%s %d/%d %q", r.name, loud, len(lines), msgs))
		if loud > 6 {
			s.t.Errorf("%s wrote %d warnings and errors during one outage:\n%s", r.name, loud, r.tail(len(lines)))
		}
	}
	return strings.Join(parts, ", ")
}

// checkExactlyOnce checks what a user sees: every accepted message ended once
// (one vibecode_response, the replies it should have, one diff for a patch),
// and the client received the project's whole outbox once and in order.
func (s *stack) checkExactlyOnce(t *testing.T, w *watcher, project string) {
	s.waitAllEnded(t, w, 120*time.Second)
	time.Sleep(time.Second) // let stragglers, if any, arrive
	events := w.snapshot()
	ends := map[string]int{}
	diffs := map[string]int{}
	for _, ev := range events {
		switch ev.Name {
		case "vibecode_response":
			ends[stringOf(ev.Payload["message_id"])]++
		case "diff_created":
			diffs[stringOf(ev.Payload["message_id"])]++
		}
	}
	for _, a := range s.accepted {
		patch := strings.HasPrefix(a.name, "patch")
		wantDiffs, wantReplies := 0, 1
		if patch {
			wantDiffs, wantReplies = 1, 2
		}
		if ends[a.MessageID] != 1 || diffs[a.MessageID] != wantDiffs {
			t.Errorf("message %s: %d vibecode_response and %d diff_created events, want 1 and %d", a.name, ends[a.MessageID], diffs[a.MessageID], wantDiffs)
		}
		var msgs []domain.ConversationMessage
		s.mustDo(t, "GET", "/sessions/"+a.SessionID+"/messages", nil, 200, &msgs)
		replies, status := 0, ""
		for _, m := range msgs {
			if m.ID == a.MessageID && m.Status != nil {
				status = *m.Status
			}
			if m.ReplyTo != nil && *m.ReplyTo == a.MessageID {
				replies++
			}
		}
		want := domain.StatusAnswered
		if patch {
			want = domain.StatusDiffCreated
		}
		if status != want || replies != wantReplies {
			t.Errorf("message %s: status %q with %d replies, want %q with %d", a.name, status, replies, want, wantReplies)
		}
	}
	// The outbox is the truth the client must have seen, whole.
	rows, err := s.db.pool.Query(context.Background(), `SELECT seq FROM events WHERE project_id = $1 ORDER BY seq`, project)
	if err != nil {
		t.Fatal(err)
	}
	var outbox []int64
	for rows.Next() {
		var seq int64
		_ = rows.Scan(&seq)
		outbox = append(outbox, seq)
	}
	rows.Close()
	var got []int64
	for _, ev := range events {
		got = append(got, ev.Seq())
	}
	w.mu.Lock()
	repeated := w.repeated
	w.mu.Unlock()
	if !slices.Equal(got, outbox) || repeated > 0 {
		t.Errorf("the client received %d events (%d repeated), the outbox holds %d", len(got), repeated, len(outbox))
	}
	t.Logf("%d accepted messages ended exactly once; the client received all %d events of the outbox once, in order", len(s.accepted), len(outbox))
}

// stats summarises durations: median, p99 (the largest below 100 samples)
// and max.
func stats(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	p99 := s[min(len(s)-1, int(float64(len(s))*0.99))]
	return fmt.Sprintf("median %s, p99 %s, max %s (n=%d)", s[len(s)/2].Round(10*time.Millisecond), p99.Round(10*time.Millisecond),
		s[len(s)-1].Round(10*time.Millisecond), len(s))
}

// checkSameEvents checks that the client that subscribed during the outage
// got the same events as the one that was there all along, after following
// retry_after_ms.
func (s *stack) checkSameEvents(t *testing.T, w, late *watcher) {
	late.mu.Lock()
	retries := late.retryAfter
	late.mu.Unlock()
	a, b := w.snapshot(), late.snapshot()
	for deadline := time.Now().Add(10 * time.Second); len(b) < len(a) && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b = late.snapshot()
	}
	if retries == 0 || len(a) != len(b) {
		have := map[int64]bool{}
		for _, ev := range b {
			have[ev.Seq()] = true
		}
		var missing []int64
		for _, ev := range a {
			if !have[ev.Seq()] && len(missing) < 20 {
				missing = append(missing, ev.Seq())
			}
		}
		late.mu.Lock()
		t.Errorf("the client that subscribed during the outage was refused with retry_after_ms %d times and received %d events (%d repeated, refusals %q), the first client %d; missing seqs %v",
			retries, len(b), late.repeated, late.refusedFor, len(a), missing)
		late.mu.Unlock()
		return
	}
	t.Logf("the client that subscribed during the outage followed retry_after_ms %d times, then received all %d events", retries, len(b))
}
