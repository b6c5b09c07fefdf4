// Package jobs holds River's job arguments and workers. A worker loads what
// it needs, calls domain logic, stores the result and enqueues the next job in
// the same transaction.
package jobs

import (
	"github.com/riverqueue/river"
)

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

// InsertOpts make each (message, iteration) a unique job: a retried worker
// that enqueues it again gets the existing job.
func (VibecodeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueVibecode, MaxAttempts: 6, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// EvaluateArgs asks the Evaluator to review the patch of PatchMessageID, the
// VibeCoder's answer to MessageID in Iteration.
type EvaluateArgs struct {
	MessageID      string `json:"message_id" river:"unique"`
	Iteration      int    `json:"iteration" river:"unique"`
	PatchMessageID string `json:"patch_message_id"`
}

func (EvaluateArgs) Kind() string { return "evaluate" }

func (EvaluateArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueEvaluate, MaxAttempts: 6, UniqueOpts: river.UniqueOpts{ByArgs: true}}
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
