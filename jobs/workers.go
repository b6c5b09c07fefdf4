package jobs

import (
	"github.com/riverqueue/river"
)

// NewWorkers registers every worker of the service.
func NewWorkers(d *Deps, tests *RunTestWorker, prune *PruneEventsWorker) *river.Workers {
	w := river.NewWorkers()
	prune.Store, prune.Log = d.Store, d.Log
	river.AddWorker(w, prune)
	river.AddWorker(w, &VibecodeWorker{Deps: d})
	river.AddWorker(w, &EvaluateWorker{Deps: d})
	tests.Store, tests.Log = d.Store, d.Log
	river.AddWorker(w, tests)
	return w
}
