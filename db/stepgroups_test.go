package db_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/event"
	"github.com/vibegrapher/vibegrapher/domain/pyast"
)

// steps is a fixture for the groups of steps' starts and ends: a store on a
// pool whose round trips are counted, and messages queued in sessions of
// their own.
type steps struct {
	t       *testing.T
	pool    *pgxpool.Pool
	counted *roundTrips
	store   *db.Store
}

func newSteps(t *testing.T, configure ...func(*pgxpool.Config)) *steps {
	pool, counted := countedPool(t, configure...)
	return &steps{t: t, pool: pool, counted: counted, store: &db.Store{Pool: pool}}
}

// queued submits a message to a new session named name (or to session, when
// given) and returns it.
func (s *steps) queued(name string, session *domain.VibecodeSession) (domain.VibecodeSession, domain.MessageAccepted) {
	s.t.Helper()
	var sess domain.VibecodeSession
	if session != nil {
		sess = *session
	} else {
		_, sess = newSession(s.t, s.store, name)
	}
	accepted, err := s.store.SubmitMessage(context.Background(), sess.ID, domain.NewMessage{Prompt: "prompt of " + name},
		func(_ context.Context, _ pgx.Tx, ids []string) ([]int64, error) { return make([]int64, len(ids)), nil })
	if err != nil {
		s.t.Fatal(err)
	}
	return sess, accepted
}

// queuedIDs queues a message in each of n new sessions, named name a, b, …,
// and returns the messages' ids.
func (s *steps) queuedIDs(name string, n int) []string {
	s.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		_, m := s.queued(name+" "+string(rune('a'+i)), nil)
		ids[i] = m.MessageID
	}
	return ids
}

// startingGroup starts the steps of ids while both places for starts are
// held, each in a goroutine of its own and waiting in the order of ids (the
// first leads their group), with also in each start's transaction; then it
// lets the group run and returns each start's error, the panic it ended in
// (recovered), and its message's status.
func (s *steps) startingGroup(ids []string, also func(pgx.Tx, *db.Turn) error) (errs []error, panics []any, statuses []string) {
	s.t.Helper()
	ctx := context.Background()
	release := s.holdStarts()
	errs, panics, statuses = make([]error, len(ids)), make([]any, len(ids)), make([]string, len(ids))
	done := make(chan error, len(ids))
	for i, id := range ids {
		s.waitFor(func() bool { return db.PoolStarts(s.pool).Waiting == i }, "the starts before it to wait")
		go func() {
			defer func() { panics[i] = recover(); done <- nil }()
			_, errs[i] = s.store.StartTurn(ctx, id, true, also)
		}()
	}
	release(len(ids))
	for range ids {
		wait(s.t, done)
	}
	for i, id := range ids {
		if err := s.pool.QueryRow(ctx, `SELECT status FROM messages WHERE id = $1`, id).Scan(&statuses[i]); err != nil {
			s.t.Fatal(err)
		}
	}
	return errs, panics, statuses
}

// holdTwo runs two transactions of one kind (run, which must call hold
// inside its transaction) that hold both places a pool gives that kind at
// once, until release: what comes meanwhile waits. release lets the first
// end, so that the next group goes in its place, and returns its error; then,
// once waiting (the pool's count of those waiting) says the group has taken
// its members, it lets the second end: before, the second's end could hand a
// second waiting member a transaction of its own.
func (s *steps) holdTwo(run func(i int, hold func()) error) (release func(waiting func() int) (first, second error)) {
	s.t.Helper()
	var entered sync.WaitGroup
	gates := []chan struct{}{make(chan struct{}), make(chan struct{})}
	done := []chan error{make(chan error, 1), make(chan error, 1)}
	for i := range 2 {
		entered.Add(1)
		go func() {
			done[i] <- run(i, func() { entered.Done(); <-gates[i] })
		}()
	}
	entered.Wait()
	var once sync.Once
	free := func() {
		once.Do(func() {
			for _, g := range gates {
				select {
				case <-g:
				default:
					close(g)
				}
			}
		})
	}
	s.t.Cleanup(free)
	return func(waiting func() int) (error, error) {
		n := waiting()
		close(gates[0])
		first := wait(s.t, done[0])
		// The first's end takes the first waiting, whose group then takes
		// others (up to the group's size): then fewer than n-1 wait.
		s.waitFor(func() bool { w := waiting(); return w == 0 || w < n-1 }, "the next group to take its members")
		close(gates[1])
		return first, wait(s.t, done[1])
	}
}

// holdStarts takes both places for starts with two steps of its own until
// release(n): once n starts wait, it lets the held two end (the first, so
// that the waiting go as a group in its place, then the second).
func (s *steps) holdStarts() (release func(n int)) {
	s.t.Helper()
	ctx := context.Background()
	_, a := s.queued("held a", nil)
	_, b := s.queued("held b", nil)
	held := s.holdTwo(func(i int, hold func()) error {
		_, err := s.store.StartTurn(ctx, []string{a.MessageID, b.MessageID}[i], true, func(pgx.Tx, *db.Turn) error { hold(); return nil })
		return err
	})
	return func(n int) {
		s.t.Helper()
		s.waitFor(func() bool { return db.PoolStarts(s.pool).Waiting == n }, "the starts to wait")
		if errA, errB := held(func() int { return db.PoolStarts(s.pool).Waiting }); errA != nil || errB != nil {
			s.t.Fatalf("the held starts: %v, %v", errA, errB)
		}
	}
}

// holdEnds is holdStarts for ends: held are the two steps it ends.
func (s *steps) holdEnds() (held []*running, release func(n int)) {
	s.t.Helper()
	held = []*running{s.started("held a"), s.started("held b")}
	ended := s.holdTwo(func(i int, hold func()) error { return s.answer(held[i], hold) })
	return held, func(n int) {
		s.t.Helper()
		s.waitFor(func() bool { return db.PoolEnds(s.pool).Waiting == n }, "the ends to wait")
		if errA, errB := ended(func() int { return db.PoolEnds(s.pool).Waiting }); errA != nil || errB != nil {
			s.t.Fatalf("the held ends: %v, %v", errA, errB)
		}
	}
}

func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("timed out")
		return nil
	}
}

func (s *steps) waitFor(cond func() bool, what string) {
	s.t.Helper()
	waitUntil(s.t, cond, what)
}

// waitUntil returns once cond holds, checking it every millisecond, and
// fails t after 30 s.
func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// sameTransaction reports whether the rows of ids in messages were last
// written by one transaction.
func (s *steps) sameTransaction(ids []string) bool {
	s.t.Helper()
	return dbtest.Count(s.t, s.pool, `SELECT count(DISTINCT xmin::text) FROM messages WHERE id = ANY($1::uuid[])`, ids) == 1
}

// Steps that start while both places for starts are taken wait, and start
// in one transaction of two round trips: each with its own turn, its
// job_status (what also queues), its memory read; a message whose session
// has an earlier one queued, and a message deleted before its step began,
// are answered in the group as they would be alone.
func TestStepsThatWaitAreStartedTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSteps(t)
	release := s.holdStarts()

	type started struct {
		id, session string
		inOrder     bool
		turn        db.Turn
		err         error
		memory      *db.PendingMemory
	}
	var all []*started
	for _, name := range []string{"a", "b", "c", "d"} {
		sess, m := s.queued("together "+name, nil)
		all = append(all, &started{id: m.MessageID, session: sess.ID, inOrder: true})
	}
	earlierSess, _ := s.queued("an earlier message queued", nil)
	_, later := s.queued("", &earlierSess)
	goneSess, gone := s.queued("gone", nil)
	if err := s.store.ClearSession(ctx, goneSess.ID); err != nil {
		t.Fatal(err)
	}
	all = append(all, &started{id: later.MessageID, session: earlierSess.ID, inOrder: true}, &started{id: gone.MessageID, session: goneSess.ID})

	var mu sync.Mutex
	alsoRan := map[string]int{}
	done := make(chan error, len(all))
	for _, st := range all {
		go func() {
			st.turn, st.err = s.store.StartTurn(ctx, st.id, st.inOrder, func(tx pgx.Tx, turn *db.Turn) error {
				mu.Lock()
				alsoRan[turn.Message.ID]++
				mu.Unlock()
				st.memory = db.ReadMemoryLater(ctx, tx, turn.Session.OpenAISessionKey, domain.AgentVibeCoder, nil)
				return db.QueueEvent(ctx, tx, turn.Session.ProjectID, dbtest.Event{Name: "started", Payload: map[string]any{"message_id": turn.Message.ID}})
			})
			done <- nil
		}()
	}
	before := s.counted.count()
	release(len(all))
	for range all {
		wait(t, done)
	}

	starts := s.counted.containing(before, "UPDATE messages m SET")
	if len(starts) != 1 || strings.Count(starts[0], "UPDATE messages m SET") != len(all) || !strings.HasPrefix(starts[0], "batch of") {
		t.Errorf("the waiting starts' UPDATEs went in %d round trips, want one batch of all %d: %q", len(starts), len(all), starts)
	}
	if st := db.PoolStarts(s.pool); st != (db.GroupStats{Alone: 2, Grouped: int64(len(all))}) {
		t.Errorf("starts counted %+v, want the held two alone and the %d waiting grouped", st, len(all))
	}
	var ids []string
	for _, st := range all[:4] {
		if st.err != nil {
			t.Fatalf("message %s: %v", st.id, st.err)
		}
		if st.turn.Message.ID != st.id || st.turn.Session.ID != st.session || *st.turn.Message.Status != domain.StatusRunning || st.turn.BaseCommit == "" {
			t.Errorf("message %s of session %s started as %+v", st.id, st.session, st.turn)
		}
		if raw, err := st.memory.Result(); err != nil || string(raw) != "[]" {
			t.Errorf("message %s: its memory read gave %q, %v; want an empty memory", st.id, raw, err)
		}
		if alsoRan[st.id] != 1 {
			t.Errorf("message %s: what its start queues ran %d times, want once", st.id, alsoRan[st.id])
		}
		if n := dbtest.Count(t, s.pool, `SELECT count(*) FROM events WHERE name = 'started' AND payload->>'message_id' = $1`, st.id); n != 1 {
			t.Errorf("message %s: %d started events, want 1", st.id, n)
		}
		var status string
		if err := s.pool.QueryRow(ctx, `SELECT status FROM messages WHERE id = $1 AND base_commit IS NOT NULL`, st.id).Scan(&status); err != nil || status != domain.StatusRunning {
			t.Errorf("message %s stored as %q (%v), want running with its base commit", st.id, status, err)
		}
		ids = append(ids, st.id)
	}
	if !s.sameTransaction(ids) {
		t.Error("the waiting messages were started by more than one transaction")
	}
	if err := all[4].err; !errors.Is(err, db.ErrEarlierMessage) || alsoRan[all[4].id] != 0 {
		t.Errorf("a message whose session has an earlier one queued: %v (what its start queues ran %d times); want ErrEarlierMessage and nothing run",
			err, alsoRan[all[4].id])
	}
	if err := all[5].err; !errors.Is(err, db.ErrTurnGone) {
		t.Errorf("a message deleted before its step: %v, want ErrTurnGone", err)
	}
	if n := dbtest.Count(t, s.pool, `SELECT count(*) FROM messages WHERE id = $1 AND status = 'queued'`, later.MessageID); n != 1 {
		t.Error("the message behind an earlier one was started")
	}
}

// When a statement of a group of starts fails, the group commits nothing
// and each of its steps starts alone: the others start, the failing one
// fails as it would alone.
func TestAGroupOfStartsThatFailsStartsEachAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSteps(t)
	ids := s.queuedIDs("fails", 3)
	failing := ids[1]
	errs, _, statuses := s.startingGroup(ids, func(tx pgx.Tx, turn *db.Turn) error {
		if turn.Message.ID == failing {
			// A statement that fails in PostgreSQL, in the middle of the
			// group's transaction.
			_, err := tx.Exec(ctx, `SELECT 1 / 0`)
			return err
		}
		return db.QueueEvent(ctx, tx, turn.Session.ProjectID, dbtest.Event{Name: "started", Payload: map[string]any{"message_id": turn.Message.ID}})
	})
	for i, id := range ids {
		status := statuses[i]
		events := dbtest.Count(t, s.pool, `SELECT count(*) FROM events WHERE name = 'started' AND payload->>'message_id' = $1`, id)
		switch {
		case id == failing && (errs[i] == nil || !strings.Contains(errs[i].Error(), "division by zero") || status != domain.StatusQueued):
			t.Errorf("the failing start: %v, message %s; want its own failure and the message queued", errs[i], status)
		case id != failing && (errs[i] != nil || status != domain.StatusRunning || events != 1):
			t.Errorf("message %s after its group failed: %v, %s, %d started events; want it started alone", id, errs[i], status, events)
		}
	}
	if st := db.PoolStarts(s.pool); st != (db.GroupStats{Alone: 2, Fallback: int64(len(ids))}) {
		t.Errorf("starts counted %+v, want the held two alone and the %d of the failed group alone after it", st, len(ids))
	}
}

// running is a started step and the River job it completes.
type running struct {
	session domain.VibecodeSession
	m       domain.MessageAccepted
	turn    db.Turn
	job     int64
}

// started queues a message in a new session, starts its step and inserts a
// running job for it.
func (s *steps) started(name string) *running {
	s.t.Helper()
	sess, m := s.queued(name, nil)
	return s.startedAs(sess, m)
}

// startedAs starts the step of m, a message queued in sess, and inserts a
// running job for it.
func (s *steps) startedAs(sess domain.VibecodeSession, m domain.MessageAccepted) *running {
	s.t.Helper()
	ctx := context.Background()
	r := &running{session: sess, m: m}
	var err error
	if r.turn, err = s.store.StartTurn(ctx, r.m.MessageID, true); err != nil {
		s.t.Fatal(err)
	}
	if err := s.pool.QueryRow(ctx, `INSERT INTO river_job (kind, args, state, attempt, max_attempts, attempted_at)
		VALUES ('vibecode', '{}', 'running', 1, 25, now()) RETURNING id`).Scan(&r.job); err != nil {
		s.t.Fatal(err)
	}
	return r
}

// answer ends r's step with a text answer; held, when set, runs in the
// end's transaction, before its batch is sent.
func (s *steps) answer(r *running, held func()) error {
	ctx := context.Background()
	text := "answer to " + r.m.MessageID
	return s.store.EndTurn(ctx, &r.turn, db.TurnEnd{
		Reply: &db.AssistantMessage{Turn: &r.turn, CallKey: r.m.MessageID + "/vibecoder/1/1", Response: json.RawMessage(`{"id":"resp"}`),
			ResponseID: "resp", Agent: domain.AgentVibeCoder, Iteration: 1, Content: text, Usage: domain.TokenUsage{PromptTokens: 3, CompletionTokens: 2, TotalTokens: 5}},
		Agent: domain.AgentVibeCoder, TurnKey: r.m.MessageID + "/1", Items: json.RawMessage(`[{"role":"user","content":"hi"}]`),
		Status: domain.StatusAnswered, Outcome: event.VibecodeResponse{Response: &text},
		Complete: &db.Completion{
			Job: func(tx pgx.Tx) error {
				if held != nil {
					held()
				}
				return db.CompleteJob(ctx, tx, r.job)
			},
			Event: func(tx pgx.Tx) error {
				return db.QueueEvent(ctx, tx, r.turn.Session.ProjectID, dbtest.Event{Name: "job_done", Payload: map[string]any{"message_id": r.m.MessageID}})
			},
		},
	})
}

// startedSteps starts a step in each of n new sessions, named name a, b, ….
func (s *steps) startedSteps(name string, n int) []*running {
	s.t.Helper()
	rs := make([]*running, n)
	for i := range rs {
		rs[i] = s.started(name + " " + string(rune('a'+i)))
	}
	return rs
}

// answering ends each of rs with a text answer, each in a goroutine of its
// own; ended(i) waits for the end of rs[i] and returns its error.
func (s *steps) answering(rs []*running) (ended func(i int) error) {
	done := make([]chan error, len(rs))
	for i, r := range rs {
		done[i] = make(chan error, 1)
		go func() { done[i] <- s.answer(r, nil) }()
	}
	return func(i int) error { return wait(s.t, done[i]) }
}

// endTogether ends each of rs with end, each in a goroutine of its own,
// lets the held ends go (release) once all wait for a group, and fails at
// the first end that failed.
func (s *steps) endTogether(release func(n int), rs []*running, end func(i int, r *running) error) {
	s.t.Helper()
	done := make([]chan error, len(rs))
	for i, r := range rs {
		done[i] = make(chan error, 1)
		go func() { done[i] <- end(i, r) }()
	}
	release(len(rs))
	for i, r := range rs {
		if err := wait(s.t, done[i]); err != nil {
			s.t.Fatalf("the end of %s: %v", r.m.MessageID, err)
		}
	}
}

// wantDiffAnnounced fails unless r's message ended with its diff (approve's)
// stored, linked and announced, and its job completed.
func (s *steps) wantDiffAnnounced(r *running) {
	s.t.Helper()
	if n := dbtest.Count(s.t, s.pool, `SELECT count(*) FROM messages m
		JOIN diffs d ON d.id = m.diff_id AND d.diff_content = 'diff of ' || m.id::text
		JOIN river_job j ON j.id = $2 AND j.state = 'completed'
		WHERE m.id = $1 AND m.status = 'diff_created'
			AND EXISTS (SELECT FROM events WHERE name = 'diff_created' AND payload->>'diff_id' = d.id::text)
			AND EXISTS (SELECT FROM events WHERE name = 'vibecode_response' AND payload->>'diff_id' = d.id::text)`,
		r.m.MessageID, r.job); n != 1 {
		s.t.Errorf("message %s: its diff is not stored, linked and announced, or its job not completed", r.m.MessageID)
	}
}

// answered reports what a person would see of r's end: the message's status,
// its reply, its vibecode_response and job_status, its memory turn and its
// job's state, as one line to compare.
func (s *steps) answered(r *running) string {
	s.t.Helper()
	ctx := context.Background()
	var status, reply, job string
	if err := s.pool.QueryRow(ctx, `SELECT m.status, coalesce((SELECT content FROM messages WHERE reply_to = m.id), ''), j.state
		FROM messages m, river_job j WHERE m.id = $1 AND j.id = $2`, r.m.MessageID, r.job).Scan(&status, &reply, &job); err != nil {
		return err.Error()
	}
	responses := dbtest.Count(s.t, s.pool, `SELECT count(*) FROM events WHERE name = 'vibecode_response' AND payload->>'message_id' = $1
		AND payload->>'status' = 'answered' AND payload->>'response' = $2`, r.m.MessageID, "answer to "+r.m.MessageID)
	done := dbtest.Count(s.t, s.pool, `SELECT count(*) FROM events WHERE name = 'job_done' AND payload->>'message_id' = $1`, r.m.MessageID)
	memory := dbtest.Count(s.t, s.pool, `SELECT count(*) FROM agent_memory WHERE turn_key = $1`, r.m.MessageID+"/1")
	var b strings.Builder
	b.WriteString(status + " | " + reply + " | " + job)
	for _, n := range []int{responses, done, memory} {
		b.WriteString(" | ")
		b.WriteByte(byte('0' + n))
	}
	return b.String()
}

func (s *steps) wantAnswered(r *running) {
	s.t.Helper()
	if got, want := s.answered(r), "answered | answer to "+r.m.MessageID+" | completed | 1 | 1 | 1"; got != want {
		s.t.Errorf("message %s: %q, want %q (status | reply | job | vibecode_response | job_status | memory)", r.m.MessageID, got, want)
	}
}

// Steps that end while both places for ends are taken wait, and end in one
// transaction of two round trips, each as it would alone: its reply, its
// status, its events, its memory, its job completed.
func TestStepsThatWaitAreEndedTogether(t *testing.T) {
	t.Parallel()
	s := newSteps(t)
	held, release := s.holdEnds()
	waiting := s.startedSteps("together", 4)
	ended := s.answering(waiting)
	before := s.counted.count()
	release(len(waiting))
	errs := make([]error, len(waiting))
	for i := range waiting {
		errs[i] = ended(i)
	}

	// The held ends' batches go once they are released, each with its
	// reply; the waiting ends' replies in one batch.
	var sizes []int
	for _, b := range s.counted.containing(before, "INSERT INTO model_calls") {
		sizes = append(sizes, strings.Count(b, "INSERT INTO model_calls"))
	}
	slices.Sort(sizes)
	if !slices.Equal(sizes, []int{1, 1, len(waiting)}) {
		t.Errorf("the ends' replies went %v at a time, want the held two alone and the %d waiting in one batch", sizes, len(waiting))
	}
	if st := db.PoolEnds(s.pool); st != (db.GroupStats{Alone: 2, Grouped: int64(len(waiting))}) {
		t.Errorf("ends counted %+v, want the held two alone and the %d waiting grouped", st, len(waiting))
	}
	var ids []string
	for i, r := range waiting {
		if errs[i] != nil {
			t.Fatalf("message %s: %v", r.m.MessageID, errs[i])
		}
		s.wantAnswered(r)
		ids = append(ids, r.m.MessageID)
	}
	for _, r := range held {
		s.wantAnswered(r)
	}
	if !s.sameTransaction(ids) {
		t.Error("the waiting messages were ended by more than one transaction")
	}
	if ends := db.PoolMessageEnds(s.pool); ends[domain.StatusAnswered] != int64(len(waiting)+len(held)) {
		t.Errorf("messages ended counted %v, want %d answered", ends, len(waiting)+len(held))
	}
}

// A group of ends that holds a message deleted since its step began (its
// session cleared) is rolled back, and each of its steps ends alone: the
// others are answered, the gone one ends quietly.
func TestAGroupOfEndsWithAGoneMessageEndsEachAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSteps(t)
	_, release := s.holdEnds()
	waiting := s.startedSteps("gone", 3)
	gone := waiting[1]
	if err := s.store.ClearSession(ctx, gone.session.ID); err != nil {
		t.Fatal(err)
	}
	ended := s.answering(waiting)
	release(len(waiting))
	for i, r := range waiting {
		err := ended(i)
		if r == gone {
			if !errors.Is(err, db.ErrTurnGone) {
				t.Errorf("the gone message's end: %v, want ErrTurnGone", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("message %s: %v", r.m.MessageID, err)
		}
		s.wantAnswered(r)
	}
	if st := db.PoolEnds(s.pool); st != (db.GroupStats{Alone: 2, Fallback: int64(len(waiting))}) {
		t.Errorf("ends counted %+v, want the held two alone and the %d of the rolled back group alone after it", st, len(waiting))
	}
}

// approve ends r's step as the Evaluator's approval does: its diff stored,
// linked and announced, the message diff_created, the job completed.
func (s *steps) approve(r *running) error {
	ctx := context.Background()
	return s.store.EndTurn(ctx, &r.turn, db.TurnEnd{
		Status: domain.StatusDiffCreated, Outcome: event.VibecodeResponse{Response: new(string)},
		Diff: &domain.Diff{ProjectID: r.turn.Session.ProjectID, SessionID: &r.turn.Session.ID, MessageID: &r.turn.Message.ID,
			BaseCommit: r.turn.BaseCommit, TargetBranch: r.turn.Branch, DiffContent: "diff of " + r.m.MessageID,
			Status: domain.DiffEvaluatorApproved, VibecoderPrompt: r.turn.Message.Content, CommitMessage: "Change it"},
		DiffStep: r.m.MessageID + "/diff",
		Complete: &db.Completion{Job: func(tx pgx.Tx) error { return db.CompleteJob(ctx, tx, r.job) }},
	})
}

// evaluateArgs are the Evaluator's job args, as far as these tests need.
type evaluateArgs struct{ PatchMessageID string }

func (evaluateArgs) Kind() string { return "evaluate" }

// enqueueNext ends r's step as the VibeCoder's end with a patch does: its
// reply stored, and the Evaluator's job made of it inserted (by hand here)
// in the end's transaction; next is the first job its Enqueue inserted (its
// own, when it ends alone or is the group's only such end), inserts (when given)
// counts the inserts, rolled back or not, and result (when given) may
// change what the insert returns.
func (s *steps) enqueueNext(r *running, next *int64, inserts *atomic.Int32, result func([]int64, error) ([]int64, error)) error {
	ctx := context.Background()
	return s.store.EndTurn(ctx, &r.turn, db.TurnEnd{
		Reply: &db.AssistantMessage{Turn: &r.turn, CallKey: r.m.MessageID + "/vibecoder/1/1",
			Response: json.RawMessage(`{"id":"resp"}`), ResponseID: "resp", Agent: domain.AgentVibeCoder, Iteration: 1,
			Content: "a patch", Patch: new("--- a\n+++ b\n")},
		Next: func(reply *domain.ConversationMessage) db.JobArgs {
			if reply == nil || reply.Content != "a patch" {
				return evaluateArgs{} // no patch message: the check below fails
			}
			return evaluateArgs{PatchMessageID: reply.ID}
		},
		Enqueue: func(tx pgx.Tx, jobs []db.JobArgs) ([]int64, error) {
			ids := make([]int64, len(jobs))
			for i, j := range jobs {
				if inserts != nil {
					inserts.Add(1)
				}
				if err := tx.QueryRow(ctx, `INSERT INTO river_job (kind, args, state, max_attempts)
					VALUES ($1, jsonb_build_object('patch_message_id', $2::text), 'available', 25) RETURNING id`,
					j.Kind(), j.(evaluateArgs).PatchMessageID).Scan(&ids[i]); err != nil {
					return nil, err
				}
			}
			*next = ids[0]
			if result != nil {
				return result(ids, nil)
			}
			return ids, nil
		},
		Complete: &db.Completion{Job: func(tx pgx.Tx) error { return db.CompleteJob(ctx, tx, r.job) }},
	})
}

// Ends that enqueue the next job or create a diff (the two ends of a
// message that makes a patch) wait for a group too, and end in one
// transaction: each stores its reply and records the next job made of it
// (inserted there, after every end's writes), or stores, links and
// announces its diff, as it would alone.
func TestEndsThatEnqueueOrCreateADiffEndTogether(t *testing.T) {
	t.Parallel()
	s := newSteps(t)
	_, release := s.holdEnds()
	rs := s.startedSteps("patch", 3)
	enqueues, approves := rs[0], rs[1:]
	var next int64 // the job the VibeCoder's end enqueues, inserted in the group's transaction
	s.endTogether(release, rs, func(i int, r *running) error {
		if r == enqueues {
			return s.enqueueNext(r, &next, nil, nil)
		}
		return s.approve(r)
	})
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.m.MessageID
	}
	if !s.sameTransaction(ids) {
		t.Error("the ends that enqueue or create a diff were not ended in one transaction")
	}
	if st := db.PoolEnds(s.pool); st != (db.GroupStats{Alone: 2, Grouped: int64(len(rs))}) {
		t.Errorf("ends counted %+v, want the held two alone and %d in a group", st, len(rs))
	}
	if n := dbtest.Count(t, s.pool, `SELECT count(*) FROM messages m
		JOIN river_job j ON j.id = $3 AND j.state = 'completed'
		JOIN messages r ON r.reply_to = m.id AND r.content = 'a patch'
		JOIN river_job n ON n.id = m.job_id AND n.args->>'patch_message_id' = r.id::text
		WHERE m.id = $1 AND m.job_id = $2 AND m.status = 'running'`,
		enqueues.m.MessageID, next, enqueues.job); n != 1 {
		t.Error("the end that enqueues did not store its reply, record the next job made of it and complete its own")
	}
	for _, r := range approves {
		s.wantDiffAnnounced(r)
	}
}

// An end whose next job comes out nil fails, and writes nothing: the
// message would otherwise go on with no job to take it further.
func TestAnEndWhoseNextJobIsNoneFails(t *testing.T) {
	t.Parallel()
	s := newSteps(t)
	r := s.started("none")
	err := s.store.EndTurn(context.Background(), &r.turn, db.TurnEnd{
		Next:    func(*domain.ConversationMessage) db.JobArgs { return nil },
		Enqueue: func(pgx.Tx, []db.JobArgs) ([]int64, error) { return nil, errors.New("not called") },
	})
	if err == nil || !strings.Contains(err.Error(), "made none") {
		t.Fatalf("EndTurn: %v, want the missing next job's error", err)
	}
	if n := dbtest.Count(t, s.pool, `SELECT count(*) FROM messages WHERE id = $1 AND status = 'running'
		AND NOT EXISTS (SELECT FROM messages r WHERE r.reply_to = $1)`, r.m.MessageID); n != 1 {
		t.Error("the message is no longer running, or has a reply")
	}
}

// The ends of a group that enqueue the next job insert theirs together, in
// one insert, each message then following its own.
func TestAGroupInsertsItsNextJobsTogether(t *testing.T) {
	t.Parallel()
	s := newSteps(t)
	_, release := s.holdEnds()
	rs := s.startedSteps("next", 3)
	var calls atomic.Int32
	count := func(ids []int64, err error) ([]int64, error) {
		calls.Add(1)
		return ids, err
	}
	next := make([]int64, len(rs))
	s.endTogether(release, rs, func(i int, r *running) error { return s.enqueueNext(r, &next[i], nil, count) })
	if st := db.PoolEnds(s.pool); st != (db.GroupStats{Alone: 2, Grouped: int64(len(rs))}) {
		t.Fatalf("ends counted %+v, want the held two alone and %d in a group", st, len(rs))
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the group's next jobs were inserted in %d inserts, want 1", n)
	}
	for _, r := range rs {
		if n := dbtest.Count(t, s.pool, `SELECT count(*) FROM messages m
			JOIN messages r ON r.reply_to = m.id AND r.content = 'a patch'
			JOIN river_job n ON n.id = m.job_id AND n.args->>'patch_message_id' = r.id::text
			WHERE m.id = $1`, r.m.MessageID); n != 1 {
			t.Errorf("message %s does not follow the next job made of its reply", r.m.MessageID)
		}
	}
}

// The ends of a group that create a diff send their inserts together, in
// one batch, and each writes the rest of its end (its message linked, its
// diff_created and vibecode_response) with the diff's row.
func TestAGroupSendsItsDiffsTogether(t *testing.T) {
	t.Parallel()
	s := newSteps(t)
	_, release := s.holdEnds()
	rs := s.startedSteps("diffs", 3)
	before := s.counted.count()
	s.endTogether(release, rs, func(_ int, r *running) error { return s.approve(r) })
	if st := db.PoolEnds(s.pool); st != (db.GroupStats{Alone: 2, Grouped: int64(len(rs))}) {
		t.Fatalf("ends counted %+v, want the held two alone and %d in a group", st, len(rs))
	}
	var sizes []int
	for _, b := range s.counted.containing(before, "INSERT INTO diffs") {
		sizes = append(sizes, strings.Count(b, "INSERT INTO diffs"))
	}
	if !slices.Equal(sizes, []int{len(rs)}) {
		t.Errorf("the group's diffs went %v at a time, want %d in one batch", sizes, len(rs))
	}
	for _, r := range rs {
		s.wantDiffAnnounced(r)
	}
}

// A group whose ends enqueue the next job and create diffs, and whose insert
// of the next jobs fails after it wrote them, is rolled back, the jobs and
// the diffs with it, and each of its ends ends alone: one next job and one
// diff each, as if there had been no group.
func TestAGroupOfEndsThatEnqueueOrCreateADiffFallsBackWhole(t *testing.T) {
	t.Parallel()
	s := newSteps(t)
	_, release := s.holdEnds()
	rs := s.startedSteps("mixed", 3)
	enqueues, approves := rs[0], rs[1:]
	var next int64
	var inserts atomic.Int32
	failFirst := func(ids []int64, err error) ([]int64, error) {
		if err == nil && inserts.Load() == 1 {
			return nil, errors.New("injected: River's insert failed")
		}
		return ids, err
	}
	s.endTogether(release, rs, func(_ int, r *running) error {
		if r == enqueues {
			return s.enqueueNext(r, &next, &inserts, failFirst)
		}
		return s.approve(r)
	})
	if n := inserts.Load(); n != 2 {
		t.Fatalf("%d inserts of the next job, want the group's (rolled back) and the end's alone", n)
	}
	if st := db.PoolEnds(s.pool); st != (db.GroupStats{Alone: 2, Fallback: int64(len(rs))}) {
		t.Errorf("ends counted %+v, want the held two alone and the %d of the rolled back group alone after it", st, len(rs))
	}
	if n := dbtest.Count(t, s.pool, `SELECT count(*) FROM river_job n JOIN messages r ON n.args->>'patch_message_id' = r.id::text
		WHERE r.reply_to = $1`, enqueues.m.MessageID); n != 1 {
		t.Errorf("%d next jobs of the message that enqueues, want 1", n)
	}
	if n := dbtest.Count(t, s.pool, `SELECT count(*) FROM messages WHERE id = $1 AND job_id = $2 AND status = 'running'`,
		enqueues.m.MessageID, next); n != 1 {
		t.Error("the message that enqueues does not follow its next job")
	}
	for _, r := range approves {
		if n := dbtest.Count(t, s.pool, `SELECT count(*) FROM diffs d JOIN messages m ON m.diff_id = d.id
			WHERE d.message_id = $1 AND m.status = 'diff_created'`, r.m.MessageID); n != 1 {
			t.Errorf("message %s: %d linked diffs, want 1", r.m.MessageID, n)
		}
		if n := dbtest.Count(t, s.pool, `SELECT count(*) FROM diffs WHERE message_id = $1`, r.m.MessageID); n != 1 {
			t.Errorf("message %s: %d diffs stored, want 1", r.m.MessageID, n)
		}
	}
}

// A group of ends holds the projects of its diffs before any session, as a
// project's delete takes the project before its sessions (docs/reliability.md,
// "Lock order"): a group that held one of a project's sessions for an end
// without a diff, and then waited for the project for another end's diff,
// made a cycle with a delete that held the project and waited for that
// session. The interleaving is forced: a third transaction holds the first
// end's message, so the group waits there until the delete waits too; and
// deadlocks are looked for after 10 ms, before the group's lock timeout
// (100 ms) would end its wait first. Should that timeout come before the
// delete waits (a loaded machine), the two end alone and nothing was
// tested: the test tries again, up to five times.
func TestAGroupOfEndsHoldsItsDiffsProjectsFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSteps(t, func(cfg *pgxpool.Config) { cfg.ConnConfig.RuntimeParams["deadlock_timeout"] = "10ms" })
	// Watched on a connection of its own: when the members end alone, each
	// on a connection of the pool, they, the delete and the held message
	// can take every one.
	watcher, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watcher.Close(context.Background()) })

	for try := 1; ; try++ {
		before := db.PoolEnds(s.pool)
		s.endBesideADelete(watcher)
		if n := s.counted.failures("40P01"); n != 0 {
			t.Fatalf("%d statements failed in a deadlock of the group with the delete, want none", n)
		}
		after := db.PoolEnds(s.pool)
		if after.Grouped-before.Grouped == 2 {
			return
		}
		if try == 5 {
			t.Fatalf("the two ends never ended in a group before the delete waited (%+v): the interleaving was not forced", after)
		}
	}
}

// twoSessions creates a project named name with two sessions, its global
// one and one of a node, in the order of their ids.
func (s *steps) twoSessions(name string) (domain.Project, []domain.VibecodeSession) {
	s.t.Helper()
	p, global := newSession(s.t, s.store, name)
	node := "helper"
	other, _, err := s.store.CreateSession(context.Background(), p.ID, domain.NewSession{NodeID: &node},
		func([]pyast.AgentNode, error, string) error { return nil })
	if err != nil {
		s.t.Fatal(err)
	}
	sessions := []domain.VibecodeSession{global, other}
	slices.SortFunc(sessions, func(a, b domain.VibecodeSession) int { return strings.Compare(a.ID, b.ID) })
	return p, sessions
}

// endBesideADelete ends two steps of one project, the first session's with
// an answer and the second's with a diff, in a group whose first member's
// message a third transaction holds until the project's delete waits too;
// it fails t unless the delete deletes the project and each end ends or
// finds its message gone.
func (s *steps) endBesideADelete(watcher *pgx.Conn) {
	t := s.t
	t.Helper()
	ctx := context.Background()
	_, release := s.holdEnds()
	p, sessions := s.twoSessions("ordered")
	answers := s.startedAs(s.queued("answers", &sessions[0]))
	approves := s.startedAs(s.queued("approves", &sessions[1]))

	unlock := holdLocks(t, s.pool, `SELECT 1 FROM messages WHERE id = $1 FOR UPDATE`, answers.m.MessageID)
	answered, approved := make(chan error, 1), make(chan error, 1)
	go func() { answered <- s.answer(answers, nil) }()
	go func() { approved <- s.approve(approves) }()
	release(2)
	s.waitFor(func() bool { return lockWaiters(t, watcher) >= 1 }, "the group to wait for the held message")
	deleted := make(chan error, 1)
	go func() { deleted <- s.store.DeleteProject(ctx, p.ID) }()
	s.waitFor(func() bool { return lockWaiters(t, watcher) >= 2 }, "the delete to wait")
	unlock()

	if err := wait(t, deleted); err != nil {
		t.Fatalf("the delete: %v", err)
	}
	for name, done := range map[string]chan error{"answer": answered, "approval": approved} {
		if err := wait(t, done); err != nil && !errors.Is(err, db.ErrTurnGone) {
			t.Errorf("the %s: %v, want it ended or gone", name, err)
		}
	}
	if n := dbtest.Count(t, s.pool, `SELECT count(*) FROM projects WHERE id = $1`, p.ID); n != 0 {
		t.Errorf("the project is still there after its delete")
	}
}

// A member of a group whose row another transaction holds makes the group
// give up after a short wait: the others end at once, each alone, and the
// one whose row is held ends when it is free.
func TestAGroupWaitsBrieflyForALockedRow(t *testing.T) {
	t.Parallel()
	s := newSteps(t)
	_, release := s.holdEnds()
	waiting := s.startedSteps("locked", 3)
	locked := waiting[1]
	unlock := holdLocks(t, s.pool, `SELECT 1 FROM messages WHERE id = $1 FOR UPDATE`, locked.m.MessageID)
	ended := s.answering(waiting)
	release(len(waiting))
	for i, r := range waiting {
		if r == locked {
			continue
		}
		if err := ended(i); err != nil { // while the locked one's row is still held
			t.Fatalf("message %s: %v", r.m.MessageID, err)
		}
		s.wantAnswered(r)
	}
	unlock()
	if err := ended(1); err != nil {
		t.Fatalf("the locked message: %v", err)
	}
	s.wantAnswered(locked)
	if st := db.PoolEnds(s.pool); st != (db.GroupStats{Alone: 2, Fallback: int64(len(waiting))}) {
		t.Errorf("ends counted %+v, want the held two alone and the %d of the group that gave up alone after it", st, len(waiting))
	}
}

// A group of ends takes its sessions in their order, as a project's delete
// does (docs/reliability.md, "Lock order"), not in its messages' order: a
// group that held one of the project's sessions while waiting for another
// that the delete had locked made a cycle with the delete, which PostgreSQL
// broke by failing one of them. The interleaving is forced: a third
// transaction holds the later session from the delete (not from the group's
// key share) until the group waits; the later session's message is the
// earlier of the two; and deadlocks are looked for after 10 ms, before the
// group's lock timeout would end the wait first (deadlock_timeout, which
// only a superuser may set: the tests' user is one).
func TestAGroupOfEndsTakesItsSessionsInTheOrderADeleteDoes(t *testing.T) {
	t.Parallel()
	s := newSteps(t, func(cfg *pgxpool.Config) { cfg.ConnConfig.RuntimeParams["deadlock_timeout"] = "10ms" })
	// Should the group's lock timeout end its wait before the delete goes
	// on (a loaded machine: a statement fails with 55P03), no cycle could
	// form and nothing was tested: the test tries again, up to five times.
	for try := 1; ; try++ {
		timeouts := s.counted.failures("55P03")
		s.endInADeletesWay()
		if n := s.counted.failures("40P01"); n != 0 {
			t.Fatalf("%d statements failed in a deadlock of the group with the delete, want none", n)
		}
		if s.counted.failures("55P03") == timeouts {
			return
		}
		if try == 5 {
			t.Fatal("the group's lock timeout ended its wait before the delete went on, five times: the interleaving was not forced")
		}
	}
}

// endInADeletesWay ends, in a group, the steps of two sessions of one
// project, the later session's message being the earlier, while the
// project's delete holds the first session and a third transaction holds
// the second from the delete until the group waits; it fails t unless the
// delete deletes the project and each end ends or finds its message gone.
func (s *steps) endInADeletesWay() {
	t := s.t
	t.Helper()
	ctx := context.Background()
	_, release := s.holdEnds()
	p, sessions := s.twoSessions("ordered")
	ids := []string{uuid.NewString(), uuid.NewString()}
	slices.Sort(ids)
	// The later session's message first in the messages' order.
	steps := make([]*running, 2)
	for i, sess := range sessions {
		id := ids[1-i]
		m, err := s.store.SubmitMessage(ctx, sess.ID, domain.NewMessage{Prompt: "prompt " + id, MessageID: &id},
			func(_ context.Context, _ pgx.Tx, ids []string) ([]int64, error) { return make([]int64, len(ids)), nil })
		if err != nil {
			t.Fatal(err)
		}
		steps[i] = s.startedAs(sess, m)
	}

	unlock := holdLocks(t, s.pool, `SELECT 1 FROM sessions WHERE id = $1 FOR SHARE`, sessions[1].ID)
	deleted := make(chan error, 1)
	go func() { deleted <- s.store.DeleteProject(ctx, p.ID) }()
	waitForLockWaiters(t, s.pool, 1) // the delete, having locked the first session
	ended := s.answering(steps)
	release(len(steps))
	// The group waits too: let the delete go on at once, well within the
	// group's lock timeout (100 ms), which would otherwise end the wait
	// before the cycle forms.
	s.waitFor(func() bool { return lockWaiters(t, s.pool) >= 2 }, "the group to wait")
	unlock()

	if err := wait(t, deleted); err != nil {
		t.Fatalf("the delete: %v", err)
	}
	for i, r := range steps {
		if err := ended(i); err != nil && !errors.Is(err, db.ErrTurnGone) {
			t.Errorf("the end of %s: %v, want it answered or gone", r.m.MessageID, err)
		}
	}
	if n := dbtest.Count(t, s.pool, `SELECT count(*) FROM projects WHERE id = $1`, p.ID); n != 0 {
		t.Errorf("the project is still there after its delete")
	}
}

// A member's callback that panics in a group's transaction panics in its
// own step only: the group is rolled back, the others start alone, and the
// one at fault panics when it runs alone.
func TestAPanicInAGroupIsItsMembers(t *testing.T) {
	t.Parallel()
	s := newSteps(t)
	ids := s.queuedIDs("panics", 3)
	faulty := ids[2] // waits last: the group is led by another member
	errs, panics, statuses := s.startingGroup(ids, func(_ pgx.Tx, turn *db.Turn) error {
		if turn.Message.ID == faulty {
			panic("also of " + faulty)
		}
		return nil
	})
	for i, id := range ids {
		status := statuses[i]
		switch {
		case id == faulty && (panics[i] != "also of "+faulty || status != domain.StatusQueued):
			t.Errorf("the faulty start: panic %v, message %s; want its own panic and the message queued", panics[i], status)
		case id != faulty && (panics[i] != nil || errs[i] != nil || status != domain.StatusRunning):
			t.Errorf("message %s beside a panicking member: panic %v, error %v, %s; want it started", id, panics[i], errs[i], status)
		}
	}
}
