package jobs_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/patch"
	"github.com/vibegrapher/vibegrapher/domain/vibecode"
	"github.com/vibegrapher/vibegrapher/internal/openaitest"
	"github.com/vibegrapher/vibegrapher/jobs"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
	"github.com/vibegrapher/vibegrapher/llm"
	"github.com/vibegrapher/vibegrapher/sandbox"
)

// fixture is one test's world: a transaction that everything runs in (the
// store's own transactions become savepoints, and River's test worker works
// jobs in it), a project with a session, and the fake model.
type fixture struct {
	ctx     context.Context
	tx      pgx.Tx
	store   *db.Store
	deps    *jobs.Deps
	ai      *openaitest.Server
	inserts *jobargs.Client
	session domain.VibecodeSession
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.New(t)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) }) //nolint:errcheck
	f := &fixture{ctx: ctx, tx: tx, store: &db.Store{Pool: tx}, ai: openaitest.New(t)}
	f.deps = &jobs.Deps{
		Store:         f.store,
		LLM:           llm.New(llm.Config{APIKey: "test", BaseURL: f.ai.URL(), ThinkingModel: "gpt-5", SmallModel: "gpt-5-mini"}),
		MaxIterations: 3,
		Log:           slog.New(slog.DiscardHandler),
		DeltaInterval: time.Hour, // one vibecode_delta per call, at its end
	}
	if f.inserts, err = jobargs.NewInsertOnlyClient(pool, nil); err != nil {
		t.Fatal(err)
	}
	p, err := f.store.CreateProject(ctx, domain.NewProject{Name: "workers"})
	if err != nil {
		t.Fatal(err)
	}
	if f.session, _, err = f.store.CreateSession(ctx, p.ID, domain.NewSession{}, vibecode.CheckNode); err != nil {
		t.Fatal(err)
	}
	return f
}

// send stores a user message with its VibecodeJob, as the api does.
func (f *fixture) send(t *testing.T, prompt string) domain.MessageAccepted {
	t.Helper()
	acc, err := f.store.SubmitMessage(f.ctx, f.session.ID, domain.NewMessage{Prompt: prompt}, func(ctx context.Context, tx pgx.Tx, ids []string) ([]int64, error) {
		jobs := make([]int64, len(ids))
		for i, id := range ids {
			res, err := f.inserts.InsertTx(ctx, tx, jobargs.VibecodeArgs{MessageID: id, Iteration: 1}, nil)
			if err != nil {
				return nil, err
			}
			jobs[i] = res.Job.ID
		}
		return jobs, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return acc
}

func (f *fixture) job(t *testing.T, id int64) *rivertype.JobRow {
	t.Helper()
	j, err := f.inserts.JobGetTx(f.ctx, f.tx, id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// jobOf returns the one job of a kind, for a job a worker inserted.
func (f *fixture) jobOf(t *testing.T, kind string) *rivertype.JobRow {
	t.Helper()
	var id int64
	if err := f.tx.QueryRow(f.ctx, `SELECT id FROM river_job WHERE kind = $1`, kind).Scan(&id); err != nil {
		t.Fatalf("the %s job: %v", kind, err)
	}
	return f.job(t, id)
}

func work[T river.JobArgs](t *testing.T, f *fixture, w river.Worker[T], job *rivertype.JobRow) *rivertest.WorkResult {
	t.Helper()
	tw := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, w)
	res, err := tw.WorkJob(f.ctx, t, f.tx, job)
	if err != nil {
		t.Logf("job %d (%s) returned: %v", job.ID, job.Kind, err)
	}
	return res
}

// events returns the names of the outbox events, in order.
func (f *fixture) events(t *testing.T) []string {
	t.Helper()
	rows, err := f.tx.Query(f.ctx, `SELECT name FROM events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func (f *fixture) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := f.tx.QueryRow(f.ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func (f *fixture) outcome(t *testing.T, messageID string) map[string]any {
	t.Helper()
	var raw []byte
	if err := f.tx.QueryRow(f.ctx, `SELECT outcome FROM messages WHERE id = $1`, messageID).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("outcome %s: %v", raw, err)
	}
	return out
}

func TestVibecodeWorkerAnswers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	acc := f.send(t, "What does this workflow do?")
	f.ai.Enqueue(openaitest.Text("It triages by language."))

	res := work(t, f, &jobs.VibecodeWorker{Deps: f.deps}, f.job(t, acc.JobID))
	if res.EventKind != river.EventKindJobCompleted || res.Job.State != rivertype.JobStateCompleted {
		t.Fatalf("job ended %s in state %s, want completed", res.EventKind, res.Job.State)
	}
	out := f.outcome(t, acc.MessageID)
	if out["status"] != domain.StatusAnswered || out["response"] != "It triages by language." {
		t.Fatalf("vibecode_response %v", out)
	}
	want := []string{"session_created", "conversation_message", "job_status", "vibecode_delta", "conversation_message", "token_usage", "vibecode_response", "job_status"}
	if got := f.events(t); !slices.Equal(got[1:], want) {
		t.Fatalf("events %v, want %v after project_created", got, want)
	}
	var state string
	if err := f.tx.QueryRow(f.ctx, `SELECT payload->>'state' FROM events WHERE name = 'job_status' ORDER BY seq DESC LIMIT 1`).Scan(&state); err != nil || state != "completed" {
		t.Fatalf("last job_status %q, %v; want completed, written with the job's completion", state, err)
	}
}

// A step whose ending transaction fails keeps the model's reply (it is stored
// on its own then) and is retried on it: no second model call, nothing
// stored or emitted twice.
func TestVibecodeRetryActsOnTheStoredReply(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// The first write of the agents' memory fails once, in the transaction
	// that stores the reply and ends the step.
	if _, err := f.tx.Exec(f.ctx, `
		CREATE SEQUENCE memory_writes;
		CREATE FUNCTION fail_first_memory_write() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF nextval('memory_writes') = 1 THEN RAISE EXCEPTION 'injected failure after the reply was stored'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER fail_first_memory_write BEFORE INSERT ON agent_memory
			FOR EACH ROW EXECUTE FUNCTION fail_first_memory_write();`); err != nil {
		t.Fatal(err)
	}
	acc := f.send(t, "What does this workflow do?")
	f.ai.Enqueue(openaitest.Text("It triages by language."))
	w := &jobs.VibecodeWorker{Deps: f.deps}

	res := work(t, f, w, f.job(t, acc.JobID))
	if res.EventKind != river.EventKindJobFailed || len(res.Job.Errors) != 1 || !strings.Contains(res.Job.Errors[0].Error, "injected failure") {
		t.Fatalf("first attempt ended %s in state %s with errors %v, want one failure to retry", res.EventKind, res.Job.State, res.Job.Errors)
	}
	if n := f.count(t, `SELECT count(*) FROM messages WHERE id = $1 AND status = 'running'`, acc.MessageID); n != 1 {
		t.Fatal("the message is no longer running after a failure that retries")
	}
	if n := f.count(t, `SELECT count(*) FROM model_calls`); n != 1 || f.ai.Calls() != 1 {
		t.Fatalf("after the failed attempt: %d stored replies, %d model calls; want 1 and 1", n, f.ai.Calls())
	}

	res = work(t, f, w, f.job(t, acc.JobID))
	if res.Job.State != rivertype.JobStateCompleted {
		t.Fatalf("retry ended in state %s, want completed", res.Job.State)
	}
	if f.ai.Calls() != 1 {
		t.Fatalf("the retry called the model again: %d calls", f.ai.Calls())
	}
	if out := f.outcome(t, acc.MessageID); out["status"] != domain.StatusAnswered || out["response"] != "It triages by language." {
		t.Fatalf("vibecode_response %v", out)
	}
	for _, c := range []struct {
		what, sql string
	}{
		{"assistant messages", `SELECT count(*) FROM messages WHERE role = 'assistant'`},
		{"model calls", `SELECT count(*) FROM model_calls`},
		{"memory turns", `SELECT count(*) FROM agent_memory`},
		{"assistant conversation_message events", `SELECT count(*) FROM events WHERE name = 'conversation_message' AND payload->>'role' = 'assistant'`},
		{"token_usage events", `SELECT count(*) FROM events WHERE name = 'token_usage'`},
		{"vibecode_response events", `SELECT count(*) FROM events WHERE name = 'vibecode_response'`},
	} {
		if n := f.count(t, c.sql); n != 1 {
			t.Errorf("%d %s, want 1", n, c.what)
		}
	}
}

func TestVibecodeAndEvaluateWorkersMakeADiff(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	acc := f.send(t, "Greet in English")
	patched := strings.Replace(domain.SampleWorkflow, `input="Hola, ¿cómo estás?"`, `input="Hello"`, 1)
	args, _ := json.Marshal(map[string]string{"patch": patch.Unified(domain.SampleWorkflow, patched, "script.py"), "description": "Greet in English"})
	f.ai.Enqueue(openaitest.FunctionCall("submit_patch", string(args)))
	f.ai.Enqueue(openaitest.JSON(vibecode.Verdict{Approved: true, Reasoning: "does what was asked", CommitMessage: "Greet in English"}))

	res := work(t, f, &jobs.VibecodeWorker{Deps: f.deps}, f.job(t, acc.JobID))
	if res.Job.State != rivertype.JobStateCompleted {
		t.Fatalf("vibecode job ended in state %s", res.Job.State)
	}
	res = work(t, f, &jobs.EvaluateWorker{Deps: f.deps}, f.jobOf(t, "evaluate"))
	if res.Job.State != rivertype.JobStateCompleted {
		t.Fatalf("evaluate job ended in state %s", res.Job.State)
	}
	out := f.outcome(t, acc.MessageID)
	if out["status"] != domain.StatusDiffCreated || out["commit_message"] != "Greet in English" || out["diff_id"] == nil {
		t.Fatalf("vibecode_response %v", out)
	}
	if n := f.count(t, `SELECT count(*) FROM diffs WHERE status = 'evaluator_approved' AND id = $1`, out["diff_id"]); n != 1 {
		t.Fatalf("%d approved diffs with the response's id", n)
	}
	if n := f.count(t, `SELECT count(*) FROM events WHERE name = 'diff_created' AND payload->>'diff_id' = $1`, out["diff_id"]); n != 1 {
		t.Fatalf("%d diff_created events carrying diff_id", n)
	}
}

func TestPruneEventsWorker(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	project := f.session.ProjectID
	for _, age := range []time.Duration{10 * 24 * time.Hour, 8 * 24 * time.Hour} {
		if _, err := f.tx.Exec(f.ctx, `INSERT INTO events (project_id, name, payload, created_at) VALUES ($1, 'old', '{}', now() - $2::interval)`,
			project, age.String()); err != nil {
			t.Fatal(err)
		}
	}
	before := f.count(t, `SELECT count(*) FROM events`)
	res, err := f.inserts.InsertTx(f.ctx, f.tx, jobargs.PruneEventsArgs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &jobs.PruneEventsWorker{Store: f.store, Retention: 7 * 24 * time.Hour, Log: slog.New(slog.DiscardHandler)}
	if r := work(t, f, w, res.Job); r.Job.State != rivertype.JobStateCompleted {
		t.Fatalf("prune job ended in state %s", r.Job.State)
	}
	if left := f.count(t, `SELECT count(*) FROM events`); left != before-2 {
		t.Fatalf("%d events left of %d, want the 2 older than a week gone", left, before)
	}
}

func TestRunTestWorker(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	box, err := sandbox.New(sandbox.Config{ScratchRoot: t.TempDir(), Timeout: 30 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	code := "def add(a, b):\n    return a + b\n"
	p, err := f.store.CreateProject(f.ctx, domain.NewProject{Name: "adder", Code: &code})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := f.store.CreateTest(f.ctx, p.ID, domain.NewTestCase{Name: "add", Code: "assert add(2, 3) == 5"}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := f.store.StartRun(f.ctx, uuid.New(), tc.ID, nil, func(tx pgx.Tx, id string) (int64, error) {
		res, err := f.inserts.InsertTx(f.ctx, tx, jobargs.RunTestArgs{TestRunID: id}, nil)
		if err != nil {
			return 0, err
		}
		return res.Job.ID, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	w := &jobs.RunTestWorker{Store: f.store, Sandbox: box, MaxTimeout: 30 * time.Second}
	if res := work(t, f, w, f.job(t, acc.JobID)); res.Job.State != rivertype.JobStateCompleted {
		t.Fatalf("run_test job ended in state %s", res.Job.State)
	}
	run, err := f.store.GetRun(f.ctx, acc.TestRunID)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != domain.RunPassed {
		t.Fatalf("run %s: %s %s %v", run.Status, run.Stdout, run.Stderr, deref(run.Error))
	}
	if n := f.count(t, `SELECT count(*) FROM events WHERE name = 'test_completed' AND payload->>'test_run_id' = $1`, run.ID); n != 1 {
		t.Fatalf("%d test_completed events for the run", n)
	}
	if n := f.count(t, `SELECT count(*) FROM events WHERE name = 'job_status' AND payload->>'state' = 'completed' AND payload->>'test_run_id' = $1`, run.ID); n != 1 {
		t.Fatalf("%d job_status completed events for the run", n)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// A message's first step waits while an earlier message of its session is
// queued or running, without starting; an earlier message whose job was
// cancelled outside the loop is failed and the later one runs.
func TestVibecodeWaitsForTheEarlierMessage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first := f.send(t, "First question")
	second := f.send(t, "Second question")
	w := &jobs.VibecodeWorker{Deps: f.deps}

	res := work(t, f, w, f.job(t, second.JobID))
	if res.EventKind != river.EventKindJobSnoozed {
		t.Fatalf("the second message's job ended %s, want snoozed", res.EventKind)
	}
	if n := f.count(t, `SELECT count(*) FROM messages WHERE id = $1 AND status = 'queued' AND base_commit IS NULL`, second.MessageID); n != 1 {
		t.Fatal("the second message started while the first was queued")
	}
	if n := f.count(t, `SELECT count(*) FROM events WHERE name = 'job_status'`); n != 0 {
		t.Fatalf("%d job_status events for a step that did not start", n)
	}

	if _, err := f.tx.Exec(f.ctx, `UPDATE river_job SET state = 'cancelled', finalized_at = now() WHERE id = $1`, first.JobID); err != nil {
		t.Fatal(err)
	}
	f.ai.Enqueue(openaitest.Text("The second answer."))
	res = work(t, f, w, f.job(t, second.JobID))
	if res.Job.State != rivertype.JobStateCompleted {
		t.Fatalf("the second message's job ended in state %s, want completed", res.Job.State)
	}
	if out := f.outcome(t, first.MessageID); out["status"] != domain.StatusFailed {
		t.Fatalf("the first message (job cancelled) ended %v, want failed", out)
	}
	if out := f.outcome(t, second.MessageID); out["status"] != domain.StatusAnswered {
		t.Fatalf("the second message ended %v, want answered", out)
	}
}

// The liveness sweep's safety net wakes a snoozed message whose earlier
// messages have all ended, and no other.
func TestWakeWaitingMessagesWakesOnlyTheNextInLine(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first, second, third := f.send(t, "First"), f.send(t, "Second"), f.send(t, "Third")
	// A later step's job of the second message is not the sweep's to wake
	// (only a message's first job waits for the messages before it).
	later, err := f.inserts.InsertTx(f.ctx, f.tx, jobargs.VibecodeArgs{MessageID: second.MessageID, Iteration: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.tx.Exec(f.ctx, `UPDATE river_job SET state = 'scheduled', scheduled_at = now() + interval '1 hour' WHERE id = ANY($1)`,
		[]int64{second.JobID, third.JobID, later.Job.ID}); err != nil {
		t.Fatal(err)
	}
	state := func(id int64) rivertype.JobState { return f.job(t, id).State }
	if n, err := db.WakeWaitingMessages(f.ctx, f.tx); err != nil || n != 0 {
		t.Fatalf("woke %d (%v) while the first message is queued, want 0", n, err)
	}
	if _, err := f.tx.Exec(f.ctx, `UPDATE messages SET status = 'answered' WHERE id = $1`, first.MessageID); err != nil {
		t.Fatal(err)
	}
	if n, err := db.WakeWaitingMessages(f.ctx, f.tx); err != nil || n != 1 {
		t.Fatalf("woke %d (%v) after the first message ended, want 1", n, err)
	}
	if state(second.JobID) != rivertype.JobStateAvailable || state(third.JobID) != rivertype.JobStateScheduled || state(later.Job.ID) != rivertype.JobStateScheduled {
		t.Fatalf("second job %s, third %s, second's later step %s; want available, scheduled, scheduled",
			state(second.JobID), state(third.JobID), state(later.Job.ID))
	}
}

// vibecode_delta batches a stream by the time since its first text, not
// since the call: a model that answers after a pause, all at once, has its
// text emitted with the reply in one event (it was the first word alone, in
// a transaction of its own, then the rest); one that streams slowly still
// shows its text as it comes, in several events that add up to it.
func TestDeltasCountTheirIntervalFromTheFirstText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		reply     openaitest.Reply
		pause     time.Duration
		minDeltas int
		maxDeltas int
	}{
		{"a pause, then all at once", openaitest.Text("It triages requests by their language."), 600 * time.Millisecond, 1, 1},
		{"streamed slowly", openaitest.Text("It triages requests by their language.").WithDelay(100 * time.Millisecond), 0, 2, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			deps := jobs.Deps{Store: f.deps.Store, LLM: f.deps.LLM, MaxIterations: f.deps.MaxIterations, Log: f.deps.Log,
				DeltaInterval: 250 * time.Millisecond}
			f.ai.Handle(func(openaitest.Request) openaitest.Reply {
				time.Sleep(tc.pause)
				return tc.reply
			})
			acc := f.send(t, "What does this workflow do?")
			work(t, f, &jobs.VibecodeWorker{Deps: &deps}, f.job(t, acc.JobID))
			if out := f.outcome(t, acc.MessageID); out["status"] != domain.StatusAnswered {
				t.Fatalf("vibecode_response %v", out)
			}
			rows, err := f.tx.Query(f.ctx, `SELECT payload->>'delta' FROM events WHERE name = 'vibecode_delta' ORDER BY seq`)
			if err != nil {
				t.Fatal(err)
			}
			deltas, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			if n := len(deltas); n < tc.minDeltas || n > tc.maxDeltas || strings.Join(deltas, "") != "It triages requests by their language." {
				t.Fatalf("vibecode_delta events %q; want %d to %d adding up to the reply", deltas, tc.minDeltas, tc.maxDeltas)
			}
		})
	}
}

// A step whose project is deleted while the model answers ends quietly: its
// job completes, and nothing of the project (no vibecode_delta, no
// job_status) is written after project_deleted.
func TestAStepWhoseProjectWasDeletedReportsNothingAfterIt(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	acc := f.send(t, "What does this workflow do?")
	f.ai.Handle(func(openaitest.Request) openaitest.Reply {
		// The worker waits for this answer, so the fixture's transaction
		// is free meanwhile.
		if err := f.store.DeleteProject(f.ctx, f.session.ProjectID); err != nil {
			t.Errorf("delete the project: %v", err)
		}
		return openaitest.Text("It triages by language.")
	})

	res := work(t, f, &jobs.VibecodeWorker{Deps: f.deps}, f.job(t, acc.JobID))
	if res.Job.State != rivertype.JobStateCompleted {
		t.Fatalf("job ended in state %s, want completed", res.Job.State)
	}
	got := f.events(t)
	if i := slices.Index(got, "project_deleted"); i != len(got)-1 {
		t.Fatalf("events %v, want project_deleted last", got)
	}
}

// submitPatch is the VibeCoder's call of submit_patch with the patch from
// code to patched.
func submitPatch(code, patched string) openaitest.Reply {
	args, _ := json.Marshal(map[string]string{"patch": patch.Unified(code, patched, "script.py"), "description": "change the greeting"})
	return openaitest.FunctionCall("submit_patch", string(args))
}

// available returns the one available job of a kind: the next step a worker
// inserted.
func (f *fixture) available(t *testing.T, kind string) *rivertype.JobRow {
	t.Helper()
	var id int64
	if err := f.tx.QueryRow(f.ctx, `SELECT id FROM river_job WHERE kind = $1 AND state = 'available'`, kind).Scan(&id); err != nil {
		t.Fatalf("the available %s job: %v", kind, err)
	}
	return f.job(t, id)
}

// A commit clears the session's Evaluator memory but for the turns of a
// message still in its patch and review rounds, which its next round's
// Evaluator reads; those go when that message ends, so the session's next
// message's Evaluator is asked with no review from before the commit.
func TestTheEvaluatorForgetsWhatACommitKeptOnceItsMessageEnds(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	vibecoder, evaluator := &jobs.VibecodeWorker{Deps: f.deps}, &jobs.EvaluateWorker{Deps: f.deps}
	english := strings.Replace(domain.SampleWorkflow, `input="Hola, ¿cómo estás?"`, `input="Hello"`, 1)
	verdict := func(approved bool, reasoning string) openaitest.Reply {
		return openaitest.JSON(vibecode.Verdict{Approved: approved, Reasoning: reasoning, CommitMessage: "Greet"})
	}
	// step works job and checks that it completed.
	step := func(job *rivertype.JobRow) {
		t.Helper()
		var res *rivertest.WorkResult
		if job.Kind == "evaluate" {
			res = work(t, f, evaluator, job)
		} else {
			res = work(t, f, vibecoder, job)
		}
		if res.Job.State != rivertype.JobStateCompleted {
			t.Fatalf("%s job ended in state %s", job.Kind, res.Job.State)
		}
	}
	lastRequest := func() string {
		reqs := f.ai.Requests()
		return string(reqs[len(reqs)-1].Body)
	}

	// A diff to commit, reviewed by the Evaluator.
	alpha := f.send(t, "Greet in English")
	f.ai.Enqueue(submitPatch(domain.SampleWorkflow, english), verdict(true, "ALPHA-REVIEW"))
	step(f.job(t, alpha.JobID))
	step(f.available(t, "evaluate"))
	diffID, _ := f.outcome(t, alpha.MessageID)["diff_id"].(string)

	// A message in its rounds: its first patch rejected, its second round
	// queued, when the diff is committed.
	mu := f.send(t, "Say hello")
	f.ai.Enqueue(submitPatch(domain.SampleWorkflow, english), verdict(false, "MU-FIRST-REVIEW"))
	step(f.job(t, mu.JobID))
	step(f.available(t, "evaluate"))
	if _, err := f.store.CommitDiff(f.ctx, diffID, ""); err != nil {
		t.Fatal(err)
	}
	f.ai.Enqueue(submitPatch(domain.SampleWorkflow, english), verdict(true, "MU-SECOND-REVIEW"))
	step(f.available(t, "vibecode"))
	step(f.available(t, "evaluate"))
	if req := lastRequest(); !strings.Contains(req, "MU-FIRST-REVIEW") || strings.Contains(req, "ALPHA-REVIEW") {
		t.Fatalf("the second round's Evaluator request should hold its first round's review and not the committed diff's: %s", req)
	}
	if out := f.outcome(t, mu.MessageID); out["status"] != domain.StatusDiffCreated {
		t.Fatalf("the message in its rounds ended %v", out)
	}

	// The next message, on the committed code.
	nu := f.send(t, "Say hi")
	f.ai.Enqueue(submitPatch(english, strings.Replace(english, `input="Hello"`, `input="Hi"`, 1)), verdict(true, "NU-REVIEW"))
	step(f.job(t, nu.JobID))
	step(f.available(t, "evaluate"))
	req := lastRequest()
	for _, before := range []string{"ALPHA-REVIEW", "MU-FIRST-REVIEW"} {
		if strings.Contains(req, before) {
			t.Errorf("the next message's Evaluator request holds %s, a review from before the commit", before)
		}
	}
	if !strings.Contains(req, "MU-SECOND-REVIEW") {
		t.Errorf("the next message's Evaluator request lacks MU-SECOND-REVIEW, made after the commit: %s", req)
	}
}
