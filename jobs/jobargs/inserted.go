package jobargs

import (
	"encoding/json"
	"fmt"
	"slices"

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
