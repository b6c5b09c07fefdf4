package db

import (
	"context"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
)

// Worker liveness (see jobs/liveness.go and docs/reliability.md): every
// worker process holds a session-level advisory lock named after its River
// client id for as long as it lives. PostgreSQL releases the lock the moment
// the process's connection ends, so a free lock is the database's own word
// that the worker is gone.

// LivenessLockClass is the first key of every worker's advisory lock; the
// second is hashtext(client id).
const LivenessLockClass int32 = 0x76676c76 // "vglv"

// TryLockWorker takes the liveness lock of clientID on conn, which must be a
// connection of its own: the lock lives as long as the connection. It
// reports false when another session holds it.
func TryLockWorker(ctx context.Context, conn *pgx.Conn, clientID string) (bool, error) {
	var ok bool
	err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, LivenessLockClass, clientID).Scan(&ok)
	return ok, wrap(err, "take worker liveness lock")
}

// UnlockWorker releases the liveness lock of clientID held by conn.
func UnlockWorker(ctx context.Context, conn *pgx.Conn, clientID string) error {
	_, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, LivenessLockClass, clientID)
	return wrap(err, "release worker liveness lock")
}

// UnheldWorkers returns the River client ids that hold a running job but not
// their liveness lock.
func UnheldWorkers(ctx context.Context, q Querier) ([]string, error) {
	rows, err := q.Query(ctx, `
		SELECT DISTINCT j.attempted_by[array_upper(j.attempted_by, 1)]
		FROM river_job j
		WHERE j.state = 'running' AND array_upper(j.attempted_by, 1) IS NOT NULL
		  AND NOT EXISTS (
			SELECT 1 FROM pg_locks l
			WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
			  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			  AND l.classid = $1::int4::oid
			  AND l.objid = hashtext(j.attempted_by[array_upper(j.attempted_by, 1)])::oid)`, LivenessLockClass)
	if err != nil {
		return nil, wrap(err, "find dead workers")
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ids, wrap(err, "find dead workers")
}

// ReapedJob is a running job made available again because its worker died.
type ReapedJob struct {
	ID       int64
	Kind     string
	Queue    string
	ClientID string
	// Cancelled: a cancel was asked for (River UI) while the job was the
	// dead worker's, so it is cancelled rather than run again, as River's
	// own rescuer does.
	Cancelled bool
	// Discarded: the job's workers died in all its attempts, its give-backs
	// used up: it is discarded as River discards a job out of attempts (the
	// orphan sweep then ends its message or run), rather than run again by
	// the next worker it may kill too.
	Discarded bool
}

// ReapJobsOf makes the running jobs of dead workers available at once, the
// way River's own hand-over on shutdown does: the attempt the dead worker
// used is given back (up to maxGiveBack times per job) and the death is
// recorded in the job's errors for River UI. A job past its give-backs on
// its last attempt is discarded instead: a job that kills its workers runs
// out of attempts (River's fetch does not look at them). A job whose lock is held again, or that
// another worker fetched in between, is left alone. The queues of the
// reaped jobs are notified so that idle workers fetch them now rather than at
// their next poll.
func ReapJobsOf(ctx context.Context, pool Beginner, clientIDs []string, maxGiveBack int) ([]ReapedJob, error) {
	var out []ReapedJob
	err := inTx(ctx, pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			UPDATE river_job j SET
				state = CASE WHEN j.metadata ? 'cancel_attempted_at' THEN 'cancelled'::river_job_state
					WHEN `+outOfAttempts+` THEN 'discarded'::river_job_state
					ELSE 'available'::river_job_state END,
				finalized_at = CASE WHEN j.metadata ? 'cancel_attempted_at' OR `+outOfAttempts+` THEN now() END,
				scheduled_at = now(),
				attempt = CASE WHEN coalesce((j.metadata->>'vibegrapher:reaped')::int, 0) < $3 THEN greatest(j.attempt - 1, 0) ELSE j.attempt END,
				errors = array_append(j.errors, jsonb_build_object(
					'at', now(), 'attempt', j.attempt, 'trace', '',
					'error', 'worker ' || j.attempted_by[array_upper(j.attempted_by, 1)] || ' died (its liveness lock is free); ' ||
						CASE WHEN `+outOfAttempts+` THEN 'its workers died in every attempt: discarded'
						ELSE 'the job was made available again' END)),
				metadata = j.metadata || jsonb_build_object('vibegrapher:reaped', coalesce((j.metadata->>'vibegrapher:reaped')::int, 0) + 1)
			WHERE j.state = 'running' AND j.attempted_by[array_upper(j.attempted_by, 1)] = ANY($1)
			  AND NOT EXISTS (
				SELECT 1 FROM pg_locks l
				WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
				  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
				  AND l.classid = $2::int4::oid
				  AND l.objid = hashtext(j.attempted_by[array_upper(j.attempted_by, 1)])::oid)
			RETURNING j.id, j.kind, j.queue, j.attempted_by[array_upper(j.attempted_by, 1)], j.state = 'cancelled', j.state = 'discarded'`,
			clientIDs, LivenessLockClass, maxGiveBack)
		if err != nil {
			return wrap(err, "reap jobs")
		}
		out, err = pgx.CollectRows(rows, pgx.RowToStructByPos[ReapedJob])
		if err != nil {
			return wrap(err, "reap jobs")
		}
		var available []ReapedJob
		for _, j := range out {
			if !j.Cancelled && !j.Discarded {
				available = append(available, j)
			}
		}
		return notifyQueues(ctx, tx, queuesOf(available))
	})
	return out, err
}

// outOfAttempts is, in ReapJobsOf's UPDATE, a job that gets no attempt back
// (its give-backs, $3, used up) and has used its last.
const outOfAttempts = `(coalesce((j.metadata->>'vibegrapher:reaped')::int, 0) >= $3 AND j.attempt >= j.max_attempts)`

// WakeWaitingMessages makes available the snoozed first job of every queued
// user message whose earlier messages have all ended: the safety net behind
// the wake-up EndTurn does, for a message whose job was running (about to
// snooze) at the moment its predecessor ended. It returns how many it woke.
//
// It starts from the scheduled jobs' messages (few; the jobs found by
// River's fetching index), materialized so that the check for earlier
// messages runs for those only: when the planner could choose, on a
// database whose statistics still described empty tables (a new
// deployment's first minute), it started from every queued message and
// checked each against every active one: up to 0.7 s per call, in every
// worker every half second, under a burst of 500 messages.
func WakeWaitingMessages(ctx context.Context, pool Beginner) (int, error) {
	var n int
	err := inTx(ctx, pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			WITH m AS MATERIALIZED (
				SELECT s.id AS job_id, q.session_id, q.position FROM river_job s
				JOIN messages q ON q.id = (s.args->>'message_id')::uuid AND q.role = 'user' AND q.status = 'queued'
				WHERE s.state = 'scheduled' AND s.queue = 'vibecode' AND s.kind = 'vibecode' AND (s.args->>'iteration')::int = 1)
			UPDATE river_job j SET state = 'available', scheduled_at = now()
			FROM m
			WHERE j.id = m.job_id AND j.state = 'scheduled'
			  AND NOT EXISTS (`+earlierBlocking+`)`)
		if err != nil {
			return wrap(err, "wake waiting messages")
		}
		n = int(tag.RowsAffected())
		if n == 0 {
			return nil
		}
		return notifyQueues(ctx, tx, []string{jobargs.QueueVibecode})
	})
	return n, err
}

// earlierBlocking selects the messages of m's session that m must wait for:
// sent before it and not ended, with a job that can still end them (a
// cancelled, discarded or missing job is noticed and failed by
// EarlierMessagePending when m's job runs).
const earlierBlocking = `SELECT 1 FROM messages e JOIN river_job ej ON ej.id = e.job_id
	WHERE e.session_id = m.session_id AND e.role = 'user' AND e.position < m.position
	  AND e.status IN ('queued', 'running') AND ej.state NOT IN ('cancelled', 'discarded')`

// wakeNextMessage makes the snoozed job of the next queued message of the
// session available, in the transaction that ends the message before it, so
// that the session's next message starts as soon as this one has ended. It
// runs after the ending message's final status is written.
func wakeNextMessage(ctx context.Context, tx pgx.Tx, sessionID string, position int64) error {
	// One statement, with River's insert notification when a job was woken
	// (see notifyQueues), so that it can go with the transaction's next one.
	err := later(ctx, tx, `
		WITH woken AS (
			UPDATE river_job j SET state = 'available', scheduled_at = now()
			FROM messages m
			WHERE m.session_id = $1 AND m.role = 'user' AND m.status = 'queued' AND m.position > $2
			  AND j.id = m.job_id AND j.state = 'scheduled'
			  AND NOT EXISTS (`+earlierBlocking+`)
			RETURNING 1)
		SELECT pg_notify(current_schema() || '.river_insert', $3) WHERE EXISTS (SELECT 1 FROM woken)`,
		sessionID, position, jobargs.InsertPayload(jobargs.QueueVibecode))
	return wrap(err, "wake the next message")
}

// queuedJobsOf returns the jobs of the queued user messages that where
// selects (a condition on messages m), to wake with wakeJobsOfDeleted once
// the messages are deleted.
func queuedJobsOf(ctx context.Context, tx pgx.Tx, where string, arg any) ([]int64, error) {
	rows, err := tx.Query(ctx, `SELECT m.job_id FROM messages m
		WHERE `+where+` AND m.role = 'user' AND m.status = 'queued' AND m.job_id IS NOT NULL`, arg)
	if err != nil {
		return nil, wrap(err, "read queued jobs")
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	return ids, wrap(err, "read queued jobs")
}

// wakeJobsOfDeleted makes available the snoozed jobs of messages deleted in
// this transaction (a project deleted, a session cleared): a message waiting
// behind a running one is snoozed for SessionOrderSnooze, and with the one it
// waited for gone nothing else wakes it. It then finds its message gone and
// completes, instead of sitting scheduled in River UI for half a minute. It
// runs after the delete, so that it locks no job before the messages (an
// ending step locks its message, then the next message's job).
func wakeJobsOfDeleted(ctx context.Context, tx pgx.Tx, jobs []int64) error {
	if len(jobs) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `
		WITH woken AS (
			UPDATE river_job SET state = 'available', scheduled_at = now()
			WHERE id = ANY($1) AND state = 'scheduled'
			RETURNING 1)
		SELECT pg_notify(current_schema() || '.river_insert', $2) WHERE EXISTS (SELECT 1 FROM woken)`,
		jobs, jobargs.InsertPayload(jobargs.QueueVibecode))
	return wrap(err, "wake the jobs of deleted messages")
}

// notifyQueues sends River's insert notification for queues, the one its
// producers listen to, so that a job made available by SQL is fetched now.
func notifyQueues(ctx context.Context, tx pgx.Tx, queues []string) error {
	return wrap(jobargs.Announce(ctx, tx, queues), "notify River")
}

func queuesOf(jobs []ReapedJob) []string {
	seen := map[string]bool{}
	var qs []string
	for _, j := range jobs {
		if !seen[j.Queue] {
			seen[j.Queue] = true
			qs = append(qs, j.Queue)
		}
	}
	return qs
}

// Beginner starts transactions: a pool, or a connection.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

func inTx(ctx context.Context, b Beginner, fn func(pgx.Tx) error) error {
	tx, err := b.Begin(ctx)
	if err != nil {
		return wrap(err, "begin transaction")
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	return wrap(tx.Commit(ctx), "commit")
}

// CompleteJob completes River job id in q, a transaction that ends the job's
// work, as river.JobCompleteTx does: the job becomes completed if it is still
// running, and is left as it is otherwise (River's completer then finds it
// finished). In a transaction of InTx it goes with the next statement.
//
// River's own statement (JobSetStateIfRunningMany) takes twelve arrays so
// that one statement can finish many jobs in any state; PostgreSQL plans it
// anew at every call (a generic plan of its unnest()s is costed at 100 rows,
// a custom one at the array's length): under 500 sessions it was the most
// expensive statement (pg_stat_statements, docs/benchmarks.md, sixth round).
// This one is a primary-key update with a cached plan.
func CompleteJob(ctx context.Context, q Querier, id int64) error {
	what := "complete job " + strconv.FormatInt(id, 10)
	return wrap(laterAs(ctx, q, what, `UPDATE river_job SET state = 'completed', finalized_at = statement_timestamp()
		WHERE id = $1 AND state = 'running'`, id), what)
}
