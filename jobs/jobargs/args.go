// Package jobargs is the insert side of the service's River jobs: their
// arguments, queues and the insert-only client. The api role inserts jobs
// through it without linking the workers (and their sandbox); jobs/ holds the
// workers.
package jobargs

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
)

// Client is the River client type of the service.
type Client = river.Client[pgx.Tx]

// FetchCooldown is River's FetchCooldown for every client of the service. A
// person waits on every job, and with a fast model sends the next message
// within milliseconds of the last answer. River uses the value twice: a
// worker fetches at most once per cooldown, so a job inserted less than that
// after the last fetch waits out the rest of it; and a client sends at most
// one insert notification per queue per cooldown, so a job inserted sooner
// after the last notified one would wait for the next fetch, which may be the
// poll (jobs.NewWorkerClient: a second), were it not announced by InsertTx
// and InsertManyTx. River's default is 100 ms.
const FetchCooldown = 2 * time.Millisecond

// NewInsertOnlyClient returns a client that inserts and reads jobs but works
// none: what the api role needs. Plugins are telemetry's.
func NewInsertOnlyClient(pool *pgxpool.Pool, log *slog.Logger, plugins ...rivertype.Plugin) (*Client, error) {
	c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: Logger(log), Plugins: plugins, FetchCooldown: FetchCooldown})
	if err != nil {
		return nil, fmt.Errorf("create River client: %w", err)
	}
	return c, nil
}

// Queues, each with its own concurrency (see Config).
const (
	QueueVibecode = "vibecode"
	QueueEvaluate = "evaluate"
	QueueTests    = "tests"
	QueueMaint    = "maintenance"
)

// VibecodeArgs asks the VibeCoder to work on a user message. Iteration 1 is
// the person's prompt; later iterations carry the Evaluator's feedback on the
// previous patch.
type VibecodeArgs struct {
	MessageID string `json:"message_id" river:"unique"`
	Iteration int    `json:"iteration" river:"unique"`
}

func (VibecodeArgs) Kind() string { return "vibecode" }

// InsertOpts make each (message, iteration) a unique job while it is to run
// or running: a retried worker that enqueues it again gets the existing job.
// A completed job does not count (River's default would): a message id sent
// again after its session was cleared is a new message, and with the old
// completed job standing in for its job it would never run.
func (VibecodeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueVibecode, MaxAttempts: 6, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: unfinished}}
}

// unfinished are the states of a job that has yet to end (River requires the
// first four in ByState).
var unfinished = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateScheduled,
	rivertype.JobStateRetryable,
}

// EvaluateArgs asks the Evaluator to review the patch of PatchMessageID, the
// VibeCoder's answer to MessageID in Iteration.
type EvaluateArgs struct {
	MessageID      string `json:"message_id" river:"unique"`
	Iteration      int    `json:"iteration" river:"unique"`
	PatchMessageID string `json:"patch_message_id"`
}

func (EvaluateArgs) Kind() string { return "evaluate" }

// InsertOpts make each (message, iteration) a unique job while it is to run
// or running, as VibecodeArgs' do, and for the same reason: with River's
// default states the completed review of a message id sent again after its
// session was cleared stood in for the new patch's, which then never ran.
func (EvaluateArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueEvaluate, MaxAttempts: 6, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: unfinished}}
}

// PruneEventsArgs deletes outbox events older than the retention period.
type PruneEventsArgs struct{}

func (PruneEventsArgs) Kind() string { return "prune_events" }

func (PruneEventsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaint, MaxAttempts: 3}
}

// RunTestArgs runs one test run in the sandbox.
type RunTestArgs struct {
	TestRunID string `json:"test_run_id" river:"unique"`
}

func (RunTestArgs) Kind() string { return "run_test" }

func (RunTestArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueTests, MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}
