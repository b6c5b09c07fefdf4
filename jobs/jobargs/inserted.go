package jobargs

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// LoopArgs are the args of a job of the vibecode loop: each works on one
// user message.
type LoopArgs interface {
	Kind() string
	Message() string
}

// Message is the user message the job works on.
func (a VibecodeArgs) Message() string { return a.MessageID }

// Message is the user message the job works on.
func (a EvaluateArgs) Message() string { return a.MessageID }

// InsertedIDs returns the ids of the jobs that one InsertManyTx of jobs
// inserted (or found, for a unique job), in the order of jobs. River does
// not promise its rows' order, so they are matched by kind and message: a
// batch holds at most one job of a kind per message.
func InsertedIDs(jobs []LoopArgs, res []*rivertype.JobInsertResult) ([]int64, error) {
	type key struct{ kind, message string }
	index := make(map[key]int, len(jobs))
	for i, j := range jobs {
		index[key{j.Kind(), j.Message()}] = i
	}
	ids := make([]int64, len(jobs))
	for _, r := range res {
		var a struct {
			MessageID string `json:"message_id"`
		}
		if err := json.Unmarshal(r.Job.EncodedArgs, &a); err != nil {
			return nil, fmt.Errorf("read the args of job %d: %w", r.Job.ID, err)
		}
		if i, ok := index[key{r.Job.Kind, a.MessageID}]; ok {
			ids[i] = r.Job.ID
		}
	}
	if i := slices.Index(ids, 0); i >= 0 {
		return nil, fmt.Errorf("no %s job inserted for message %s", jobs[i].Kind(), jobs[i].Message())
	}
	return ids, nil
}

// InsertTx inserts a job with c in tx, as c.InsertTx does, and announces
// its queue at COMMIT when River did not (announceInserted).
func InsertTx(ctx context.Context, c *Client, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	rt := &riverTx{Tx: tx}
	res, err := c.InsertTx(ctx, rt, args, opts)
	if err != nil {
		return nil, err
	}
	return res, rt.announceInserted(ctx, []*rivertype.JobInsertResult{res})
}

// InsertManyTx inserts jobs with c in tx, as c.InsertManyTx does, and
// announces their queues at COMMIT where River did not (announceInserted).
func InsertManyTx(ctx context.Context, c *Client, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
	rt := &riverTx{Tx: tx}
	res, err := c.InsertManyTx(ctx, rt, params)
	if err != nil {
		return nil, err
	}
	return res, rt.announceInserted(ctx, res)
}

// RiverNotifySQL begins River's statement that sends its insert
// notifications (riverpgxv5's PGNotifyMany: schema, topic, payloads).
const RiverNotifySQL = "-- name: PGNotifyMany :exec"

// riverTx is a transaction as River's insert sees it: it notes the insert
// notifications River sends in it.
type riverTx struct {
	pgx.Tx
	announced []string // payloads of River's insert notifications
}

func (t *riverTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if strings.HasPrefix(sql, RiverNotifySQL) && len(args) == 3 {
		if topic, _ := args[1].(string); topic == "river_insert" {
			payloads, _ := args[2].([]string)
			t.announced = append(t.announced, payloads...)
		}
	}
	return t.Tx.Exec(ctx, sql, args...)
}

// announceInserted announces at COMMIT (Announce) the queue of each job of
// res that River's insert did not. River sends at most one insert
// notification per queue per FetchCooldown from each client, keyed by the
// time of the insert, not of the COMMIT: a job inserted within 2 ms of
// another of its queue in the same process (two groups of POSTs stored at
// once, a step's next job beside a new message) went unannounced, and when
// the workers' fetch for the first had already run it waited for their next
// poll (jobs.NewWorkerClient's FetchPollInterval). Only those are announced
// here: a NOTIFY makes PostgreSQL serialize the COMMITs that carry one.
// Within db.InTx the statement is queued with the transaction's other
// writes (db/txqueue.go): no round trip of its own.
func (t *riverTx) announceInserted(ctx context.Context, res []*rivertype.JobInsertResult) error {
	var queues []string
	for _, r := range res {
		if r == nil || r.Job == nil || slices.Contains(queues, r.Job.Queue) || slices.Contains(t.announced, InsertPayload(r.Job.Queue)) {
			continue
		}
		queues = append(queues, r.Job.Queue)
	}
	return Announce(ctx, t.Tx, queues)
}

// InsertPayload is the payload of River's insert notification for queue,
// as River words it: its producers fetch on a notification whose payload
// names their queue.
func InsertPayload(queue string) string { return fmt.Sprintf(`{"queue": %q}`, queue) }

// Announce sends River's insert notification for each of queues, delivered
// at tx's COMMIT: the one River's producers listen to, on River's channel
// with River's payload (riverpgxv5's PGNotifyMany, with no Config.Schema), so
// that the workers fetch the jobs of those queues that tx made available.
func Announce(ctx context.Context, tx pgx.Tx, queues []string) error {
	if len(queues) == 0 {
		return nil
	}
	payloads := make([]string, len(queues))
	for i, q := range queues {
		payloads[i] = InsertPayload(q)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify(current_schema() || '.river_insert', p) FROM unnest($1::text[]) p`, payloads); err != nil {
		return fmt.Errorf("announce jobs to River's workers: %w", err)
	}
	return nil
}
