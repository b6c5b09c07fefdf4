package db_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/trace"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
)

// submitting sends messages through SubmitMessage with River's insert, as
// the api does, and can hold the transactions of submissions at their jobs'
// insert so that the next ones wait and are stored together.
type submitting struct {
	t       *testing.T
	pool    *pgxpool.Pool
	store   *db.Store
	mu      sync.Mutex
	inserts [][]string               // the ids of each insert, in order
	holding map[string]chan struct{} // ids whose insert waits until the channel closes
}

// newSubmitting returns a fixture on a database of its own, with enqueue
// inserting the jobs with River as the api does.
func newSubmitting(t *testing.T) (*submitting, db.Enqueue) {
	pool := dbtest.New(t)
	s := &submitting{t: t, pool: pool, store: &db.Store{Pool: pool}, holding: map[string]chan struct{}{}}
	client, err := jobargs.NewInsertOnlyClient(pool, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s, s.enqueue(client)
}

func (s *submitting) enqueue(client *jobargs.Client) db.Enqueue {
	return func(ctx context.Context, tx pgx.Tx, ids []string) ([]int64, error) {
		s.mu.Lock()
		s.inserts = append(s.inserts, ids)
		var held chan struct{}
		if len(ids) == 1 {
			held = s.holding[ids[0]]
		}
		s.mu.Unlock()
		if held != nil {
			<-held
		}
		params := make([]river.InsertManyParams, len(ids))
		for i, id := range ids {
			params[i] = river.InsertManyParams{Args: jobargs.VibecodeArgs{MessageID: id, Iteration: 1}}
		}
		res, err := client.InsertManyTx(ctx, tx, params)
		if err != nil {
			return nil, err
		}
		out := make([]int64, len(res))
		for i, r := range res {
			out[i] = r.Job.ID
		}
		return out, nil
	}
}

type sent struct {
	in  domain.NewMessage
	sid string
	out domain.MessageAccepted
	err error
}

// hold starts two submissions that hold both groups a pool stores at once
// until they are released, one by one, so that what is sent next waits.
func (s *submitting) hold(sessionID string, enqueue db.Enqueue) (release func() error) {
	s.t.Helper()
	s.mu.Lock()
	before := len(s.inserts)
	s.mu.Unlock()
	done := make(chan error, 2)
	for range 2 {
		id := uuid.NewString()
		s.mu.Lock()
		s.holding[id] = make(chan struct{})
		s.mu.Unlock()
		go func() {
			_, err := s.store.SubmitMessage(context.Background(), sessionID, domain.NewMessage{Prompt: "held", MessageID: &id}, enqueue)
			done <- err
		}()
	}
	s.waitFor(func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.inserts) == before+2 }, "the two held submissions to insert their jobs")
	var once sync.Once
	s.t.Cleanup(s.releaseAll)
	return func() error {
		var err error
		once.Do(func() {
			s.mu.Lock()
			held := s.inserts[before : before+2]
			s.mu.Unlock()
			// The first: the next group goes in its place and takes every
			// submission waiting. Then the second.
			close(s.holding[held[0][0]])
			if err = s.wait(done); err != nil {
				return
			}
			s.waitFor(func() bool { return db.PoolSubmissions(s.pool).Waiting == 0 }, "the next group to start")
			close(s.holding[held[1][0]])
			err = s.wait(done)
		})
		return err
	}
}

func (s *submitting) releaseAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ch := range s.holding {
		select {
		case <-ch:
		default:
			close(ch)
		}
		delete(s.holding, id)
	}
}

func (s *submitting) wait(done chan error) error {
	s.t.Helper()
	return wait(s.t, done)
}

// sendWaiting sends each message at once and returns when all of them wait
// for a group; wait returns their answers.
func (s *submitting) sendWaiting(msgs []sent, enqueue db.Enqueue) (wait func() []sent) {
	s.t.Helper()
	done := make(chan error, len(msgs))
	for i := range msgs {
		go func() {
			m := &msgs[i]
			m.out, m.err = s.store.SubmitMessage(context.Background(), m.sid, m.in, enqueue)
			done <- nil
		}()
	}
	s.waitFor(func() bool { return db.PoolSubmissions(s.pool).Waiting == len(msgs) }, "the submissions to wait")
	return func() []sent {
		for range msgs {
			_ = s.wait(done)
		}
		return msgs
	}
}

func (s *submitting) waitFor(cond func() bool, what string) {
	s.t.Helper()
	waitUntil(s.t, cond, what)
}

// Messages sent while the transactions of submissions are busy are stored in
// one transaction, with one insert of all their jobs; each gets its own
// answer, row, job and conversation_message, as alone.
func TestSubmissionsThatWaitAreStoredTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, enqueue := newSubmitting(t)
	var sessions []domain.VibecodeSession
	for _, name := range []string{"together a", "together b", "together c"} {
		_, sess := newSession(t, s.store, name)
		sessions = append(sessions, sess)
	}
	release := s.hold(sessions[0].ID, enqueue)
	msgs := make([]sent, 9)
	for i := range msgs {
		id := uuid.NewString()
		msgs[i] = sent{in: domain.NewMessage{Prompt: "prompt " + id, MessageID: &id}, sid: sessions[i%3].ID}
	}
	wait := s.sendWaiting(msgs, enqueue)
	if err := release(); err != nil {
		t.Fatalf("a held submission: %v", err)
	}
	wait()

	var sizes []int
	for _, ids := range s.inserts {
		sizes = append(sizes, len(ids))
	}
	if !slices.Equal(sizes, []int{1, 1, 9}) {
		t.Errorf("jobs inserted %v at a time, want the held two alone and then the nine waiting in one insert", sizes)
	}
	for _, m := range msgs {
		if m.err != nil {
			t.Fatalf("message %s: %v", *m.in.MessageID, m.err)
		}
		if m.out.MessageID != *m.in.MessageID || m.out.SessionID != m.sid || m.out.Status != domain.StatusQueued || m.out.JobID == 0 {
			t.Errorf("message %s to session %s answered %+v", *m.in.MessageID, m.sid, m.out)
		}
		var session, job, jobMessage, content string
		if err := s.pool.QueryRow(ctx, `SELECT m.session_id::text, m.job_id::text, m.content, j.args->>'message_id' FROM messages m JOIN river_job j ON j.id = m.job_id WHERE m.id = $1`,
			*m.in.MessageID).Scan(&session, &job, &content, &jobMessage); err != nil {
			t.Fatalf("message %s: %v", *m.in.MessageID, err)
		}
		if session != m.sid || job != strconv.FormatInt(m.out.JobID, 10) || jobMessage != *m.in.MessageID || content != m.in.Prompt {
			t.Errorf("message %s stored in session %s with job %s (of message %s) and %q; want %s, %d, itself, %q",
				*m.in.MessageID, session, job, jobMessage, content, m.sid, m.out.JobID, m.in.Prompt)
		}
		if n := dbtest.Count(t, s.pool, `SELECT count(*) FROM events WHERE name = 'conversation_message' AND payload->>'message_id' = $1`, *m.in.MessageID); n != 1 {
			t.Errorf("message %s: %d conversation_message events, want 1", *m.in.MessageID, n)
		}
	}
	if n := dbtest.Count(t, s.pool, `SELECT count(*) FROM river_job`); n != 11 {
		t.Errorf("%d jobs, want one per message (11)", n)
	}
	if st := db.PoolSubmissions(s.pool); st != (db.SubmissionStats{Alone: 2, Grouped: 9}) {
		t.Errorf("submissions counted %+v, want the held two alone and nine grouped", st)
	}
}

// A group that holds a repeat or a message to a missing session is stored
// message by message, and each is answered as alone: the new ones stored,
// the repeat with the first answer, the missing session not found, and an
// id sent twice in the group stored once.
func TestAGroupWithARepeatOrAMissingSessionIsStoredAlone(t *testing.T) {
	t.Parallel()
	s, enqueue := newSubmitting(t)
	_, sess := newSession(t, s.store, "alone")
	firstID := uuid.NewString()
	first, err := s.store.SubmitMessage(context.Background(), sess.ID, domain.NewMessage{Prompt: "first", MessageID: &firstID}, enqueue)
	if err != nil {
		t.Fatal(err)
	}
	release := s.hold(sess.ID, enqueue)
	newID, twiceID := uuid.NewString(), uuid.NewString()
	msgs := []sent{
		{in: domain.NewMessage{Prompt: "new", MessageID: &newID}, sid: sess.ID},
		{in: domain.NewMessage{Prompt: "first", MessageID: &firstID}, sid: sess.ID},
		{in: domain.NewMessage{Prompt: "nowhere"}, sid: uuid.NewString()},
		{in: domain.NewMessage{Prompt: "twice", MessageID: &twiceID}, sid: sess.ID},
		{in: domain.NewMessage{Prompt: "twice", MessageID: &twiceID}, sid: sess.ID},
	}
	wait := s.sendWaiting(msgs, enqueue)
	if err := release(); err != nil {
		t.Fatalf("a held submission: %v", err)
	}
	wait()

	// The group of the four ids (twice once) is rolled back; the new and
	// twice are tried again together, the repeat and the missing session
	// go alone.
	var sizes []int
	for _, ids := range s.inserts[3:] {
		sizes = append(sizes, len(ids))
	}
	if slices.Sort(sizes); !slices.Equal(sizes, []int{1, 1, 1, 2, 4}) {
		t.Errorf("after the held two, jobs inserted %v at a time; want a group of four, again of two, three alone (the repeat, the missing session, twice's second)", sizes)
	}
	if m := msgs[0]; m.err != nil || m.out.MessageID != newID || m.out.JobID == 0 {
		t.Errorf("a new message: %+v, %v", m.out, m.err)
	}
	if m := msgs[1]; m.err != nil || m.out != first {
		t.Errorf("a repeat: %+v, %v; want the first answer %+v", m.out, m.err, first)
	}
	if m := msgs[2]; domain.ErrorCodeOf(m.err) != domain.ENOTFOUND {
		t.Errorf("a message to a missing session: %+v, %v; want not found", m.out, m.err)
	}
	if a, b := msgs[3], msgs[4]; a.err != nil || b.err != nil || a.out != b.out || a.out.MessageID != twiceID || a.out.JobID == 0 {
		t.Errorf("one id sent twice: %+v, %v and %+v, %v; want one answer", a.out, a.err, b.out, b.err)
	}
	// first, the two held, new and twice.
	if n := dbtest.Count(t, s.pool, `SELECT count(*) FROM messages`); n != 5 {
		t.Errorf("%d messages, want 5", n)
	}
	if n := dbtest.Count(t, s.pool, `SELECT count(*) FROM river_job`); n != 5 {
		t.Errorf("%d jobs, want one per message (5)", n)
	}
	if n := dbtest.Count(t, s.pool, `SELECT count(*) FROM events WHERE name = 'conversation_message'`); n != 5 {
		t.Errorf("%d conversation_message events, want one per message (5)", n)
	}
	// first and the held two alone; new and twice grouped; the repeat, the
	// missing session and twice's second after their group.
	if st := db.PoolSubmissions(s.pool); st != (db.SubmissionStats{Alone: 3, Grouped: 2, Fallback: 3}) {
		t.Errorf("submissions counted %+v, want 3 alone, 2 grouped, 3 after their group", st)
	}
}

// A traced request's message is stored alone, not in a group: its job must
// belong to its own trace. It does not wait for the groups under way.
func TestATracedSubmissionIsStoredAlone(t *testing.T) {
	t.Parallel()
	s, enqueue := newSubmitting(t)
	_, sess := newSession(t, s.store, "traced")
	release := s.hold(sess.ID, enqueue)
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	var out domain.MessageAccepted
	done := make(chan error, 1)
	go func() {
		var err error
		out, err = s.store.SubmitMessage(ctx, sess.ID, domain.NewMessage{Prompt: "traced"}, enqueue)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a traced message waited for the groups under way")
	}
	if out.TraceID != "trace_"+sc.TraceID().String() || out.JobID == 0 {
		t.Errorf("a traced message answered %+v", out)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
}

// A group of submissions waits for its sessions' locks as long as a
// submission alone does: they are held only by other submissions, the other
// group's among them, and a group that gave up after a lock timeout (as the
// groups of steps do for row locks) stored a whole burst alone.
func TestAGroupWaitsForItsSessionsLocks(t *testing.T) {
	t.Parallel()
	s, enqueue := newSubmitting(t)
	_, heldIn := newSession(t, s.store, "held places")
	_, locked := newSession(t, s.store, "locked")
	_, other := newSession(t, s.store, "other")
	release := s.hold(heldIn.ID, enqueue)
	msgs := make([]sent, 3)
	for i, sid := range []string{locked.ID, other.ID, locked.ID} {
		id := uuid.NewString()
		msgs[i] = sent{in: domain.NewMessage{Prompt: "prompt " + id, MessageID: &id}, sid: sid}
	}
	wait := s.sendWaiting(msgs, enqueue)
	unlock := holdLocks(t, s.pool, `SELECT pg_advisory_xact_lock($1)`, db.SessionLockKey(locked.ID))
	if err := release(); err != nil {
		t.Fatalf("a held submission: %v", err)
	}
	s.waitFor(func() bool { return lockWaiters(t, s.pool) == 1 }, "the group to wait for the session's lock")
	time.Sleep(300 * time.Millisecond) // three times a group of steps' lock timeout
	unlock()
	wait()
	for _, m := range msgs {
		if m.err != nil || m.out.MessageID != *m.in.MessageID || m.out.JobID == 0 {
			t.Errorf("message %s: %+v, %v; want it stored", *m.in.MessageID, m.out, m.err)
		}
	}
	if st := db.PoolSubmissions(s.pool); st.Grouped != int64(len(msgs)) || st.Fallback != 0 {
		t.Errorf("submissions counted %+v, want the %d waiting stored as one group", st, len(msgs))
	}
}

// A submission whose request ends while it waits for a group leaves the
// queue and answers the request's error; a group whose River insert panics
// is rolled back and each of its submissions stored alone, where only the
// one whose insert panics alone panics, in its own request; and the pool
// stores new submissions after both.
func TestASubmissionThatStopsWaitingOrAPanickingGroupBlocksNothing(t *testing.T) {
	t.Parallel()
	s, enqueue := newSubmitting(t)
	_, sess := newSession(t, s.store, "stops")
	release := s.hold(sess.ID, enqueue)

	ctx, cancel := context.WithCancel(context.Background())
	left := make(chan error, 1)
	go func() {
		_, err := s.store.SubmitMessage(ctx, sess.ID, domain.NewMessage{Prompt: "gone"}, enqueue)
		left <- err
	}()
	s.waitFor(func() bool { return db.PoolSubmissions(s.pool).Waiting == 1 }, "the submission to wait")
	cancel()
	if err := s.wait(left); !errors.Is(err, context.Canceled) {
		t.Errorf("a submission whose request ended while it waited: %v, want context.Canceled", err)
	}
	if n := db.PoolSubmissions(s.pool).Waiting; n != 0 {
		t.Errorf("%d submissions wait after it left, want 0", n)
	}

	// The next group holds a submission whose insert panics (with its
	// id, in a group and alone). It comes last, so that another leads the
	// group: the panic is not the leader's, nor the others'.
	faulty := uuid.NewString()
	panicking := func(ctx context.Context, tx pgx.Tx, ids []string) ([]int64, error) {
		if slices.Contains(ids, faulty) {
			panic("enqueue of " + faulty)
		}
		return enqueue(ctx, tx, ids)
	}
	msgs := make([]sent, 3)
	for i := range msgs {
		msgs[i] = sent{in: domain.NewMessage{Prompt: "after " + strconv.Itoa(i)}, sid: sess.ID}
	}
	msgs[2].in.MessageID = &faulty
	panics := make([]any, len(msgs))
	done := make(chan error, len(msgs))
	for i := range msgs {
		go func() {
			defer func() { panics[i] = recover(); done <- nil }()
			m := &msgs[i]
			m.out, m.err = s.store.SubmitMessage(context.Background(), m.sid, m.in, panicking)
		}()
		s.waitFor(func() bool { return db.PoolSubmissions(s.pool).Waiting == i+1 }, "the submission to wait")
	}
	before := db.PoolSubmissions(s.pool)
	if err := release(); err != nil {
		t.Fatalf("a held submission: %v", err)
	}
	for range msgs {
		_ = s.wait(done)
	}
	for i, m := range msgs {
		stored := m.err == nil && m.out.MessageID != ""
		switch {
		case i == 2 && (panics[i] != "enqueue of "+faulty || stored):
			t.Errorf("the submission whose insert panics: panic %v, stored %v; want its own panic and nothing stored", panics[i], stored)
		case i != 2 && (panics[i] != nil || !stored):
			t.Errorf("submission %d beside one whose insert panics: panic %v, %+v, %v; want it stored", i, panics[i], m.out, m.err)
		}
	}
	var status string
	err := s.pool.QueryRow(context.Background(), `SELECT count(*)::text FROM messages WHERE id = $1`, faulty).Scan(&status)
	if err != nil || status != "0" {
		t.Errorf("the faulty submission's message: %s rows, %v; want none", status, err)
	}
	if after := db.PoolSubmissions(s.pool); after.Fallback-before.Fallback != int64(len(msgs)) {
		t.Errorf("%d submissions stored alone after their group, want %d", after.Fallback-before.Fallback, len(msgs))
	}
	out, err := s.store.SubmitMessage(context.Background(), sess.ID, domain.NewMessage{Prompt: "later"}, enqueue)
	if err != nil || out.JobID == 0 {
		t.Errorf("a submission after both: %+v, %v", out, err)
	}
}
