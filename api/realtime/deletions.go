package realtime

import (
	"github.com/vibegrapher/vibegrapher/domain/event"
)

// projectDeletedName is the event whose delivery the hub remembers.
var projectDeletedName = event.ProjectDeleted{}.EventName()

// deletionsKept bounds how many deletions the hub remembers. Deleting a
// project is rare: this many cover far longer than a subscribe takes from
// its check to the hub.
const deletionsKept = 4096

// deletions remembers the projects whose project_deleted the hub has
// delivered lately. A subscribe checks its project exists and then queues
// for the hub; a project deleted in between has its project_deleted sent to
// a room the socket is not in yet, and the socket, joining afterwards, would
// wait in the room of a project that sends nothing more. The hub looks the
// project up here when it handles the subscribe, and refuses it as it
// refuses one checked after the delete. Each process reads every event of
// the outbox, so each knows every deletion, whoever made it. Owned by the
// hub's goroutine.
type deletions struct {
	seqs  map[string]int64 // project → its project_deleted
	order []string         // the projects of seqs, oldest first
	limit int
	// floor is the seq up to which deletions may be unknown here: the
	// outbox's end when the hub started (or after the outbox went back),
	// and the newest deletion forgotten since.
	floor int64
}

func newDeletions(limit int) deletions {
	return deletions{seqs: map[string]int64{}, limit: limit}
}

// reset forgets every deletion: the hub follows the outbox from floor.
func (d *deletions) reset(floor int64) {
	clear(d.seqs)
	clear(d.order)
	d.order = d.order[:0]
	d.floor = floor
}

// add records a delivered project_deleted, forgetting the oldest one past
// the limit.
func (d *deletions) add(project string, seq int64) {
	if _, ok := d.seqs[project]; !ok {
		d.order = append(d.order, project)
	}
	d.seqs[project] = seq
	for len(d.order) > max(d.limit, 0) {
		oldest := d.order[0]
		d.floor = max(d.floor, d.seqs[oldest])
		delete(d.seqs, oldest)
		d.order[0] = ""
		d.order = d.order[1:]
	}
}

// after reports the seq of the project's project_deleted when the hub has
// delivered it, 0 when it has not; sure is false when it might have been
// forgotten: a deletion after from, where from is at or below the floor.
func (d *deletions) after(project string, from int64) (seq int64, sure bool) {
	if seq, ok := d.seqs[project]; ok {
		return seq, true
	}
	return 0, from >= d.floor
}
