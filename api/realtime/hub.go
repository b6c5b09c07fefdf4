package realtime

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain/event"
)

// pageSize is how many events one read of the outbox takes.
const pageSize = 500

// The hub is the one goroutine that writes to clients (zishang520/socket.io#52:
// concurrent emits to one client garbled frames). Live delivery, replays,
// joins, leaves, acks, errors and heartbeats all happen on it, which is also
// what makes the switch from replay to live exact: a socket joins its
// project's room in the same step that finishes its replay, so no live
// delivery can fall between the two.
type hub struct {
	io             *socket.Server
	pool           *pgxpool.Pool
	log            *slog.Logger
	pollEvery      time.Duration
	heartbeatEvery time.Duration

	cmds     chan command
	wake     chan struct{} // a notification came in
	bare     atomic.Int64  // highest seq announced without its events: read up to it
	force    atomic.Bool   // read the outbox on the next wake whatever was announced
	stopped  <-chan struct{}
	halted   chan struct{} // closed when run returns
	haltOnce sync.Once

	writtenMu sync.Mutex
	written   []*replay     // parked replays whose socket took what they sent
	resume    chan struct{} // written has some

	announcedMu sync.Mutex
	announced   []db.Event // committed events handed over since the last wake, to send without a read

	metrics   *metrics      // nil: none (metrics.go)
	queues    *engineQueues // engine.io's buffers of polling connections (enginequeue.go)
	delivered atomic.Int64  // last, for the outbox lag metric

	// Owned by run's goroutine.
	last    int64                                         // every event up to here went to the rooms
	live    map[string]map[socket.SocketId]*socket.Socket // project → sockets in its room
	rooms   map[socket.SocketId]map[string]bool           // socket → projects it receives live
	replays []*replay                                     // round robin, one page per turn
	deleted deletions                                     // projects whose project_deleted went out lately
	parked  []*replay                                     // replays waiting for their socket to take what they sent
	failing bool                                          // the last outbox read failed (log once)
	scratch encoded                                       // reused by encode
	packet  []byte                                        // reused by encode
	payload []byte                                        // reused by encode
	spare   []db.Event                                    // the next announced, swapped with it on a wake
	held    []db.Event                                    // announced after a seq not announced yet, in seq order
	gap     *time.Timer                                   // armed while held waits: then read the outbox
	gapC    <-chan time.Time                              // gap's channel while armed, else nil
	gapWait time.Duration                                 // how long the next wait for a gap is
	gapFrom int64                                         // last when it was armed
}
type cmdKind int

const (
	cmdSubscribe cmdKind = iota
	cmdUnsubscribe
	cmdReject
	cmdGone
)

// command is a socket's request, checked, on its way to the hub.
type command struct {
	kind    cmdKind
	sock    *socket.Socket
	ack     socket.Ack // nil when the client did not ask for one
	project string
	since   int64 // -1: no replay
	deleted int64 // the project's project_deleted, when it was deleted
	// from is what the hub had delivered before the project was found to
	// exist: a project_deleted at or below it would have been seen.
	from int64
	err  string
}

// replay is a subscription catching up from the outbox before it goes live,
// or, for a deleted project, before it is refused.
type replay struct {
	sock     *socket.Socket
	project  string
	cursor   int64 // last seq sent
	replayed int
	ack      socket.Ack
	deleted  int64 // the project's project_deleted: replay up to it, then refuse
	// resumed: its socket took what it had sent when it parked; the next
	// page goes now, behind whatever was written to the socket since.
	resumed bool
}

func newHub(io *socket.Server, pool *pgxpool.Pool, log *slog.Logger, pollEvery, heartbeatEvery time.Duration, stopped <-chan struct{}) *hub {
	return &hub{
		io: io, pool: pool, log: log, pollEvery: pollEvery, heartbeatEvery: heartbeatEvery,
		cmds:    make(chan command, 1024),
		wake:    make(chan struct{}, 1),
		resume:  make(chan struct{}, 1),
		stopped: stopped,
		halted:  make(chan struct{}),
		live:    map[string]map[socket.SocketId]*socket.Socket{},
		rooms:   map[socket.SocketId]map[string]bool{},
		deleted: newDeletions(deletionsKept),
	}
}

// send hands a socket's request to the hub, in order.
func (h *hub) send(c command) {
	select {
	case h.cmds <- c:
	case <-h.stopped:
	case <-h.halted:
	}
}

// maxAnnounced bounds the events kept to send without a read; more are read
// from the outbox.
const maxAnnounced = 4 * pageSize

// firstGapWait is how long announced events wait for a seq before them that
// no one has announced yet, before the hub reads the outbox to settle it.
// Concurrent writers commit out of seq order, so the missing one is usually
// being announced by its writer at that moment (in this process, or in a
// NOTIFY right behind); it never is when its transaction rolled back. The
// wait doubles while a gap stays (a writer still in its transaction), up to
// a second (or the poll interval), and starts again at 20 ms once delivery
// gets past it. A seq announced alone that a read could not reach (its
// gap not settled yet) is read again on the same schedule.
const firstGapWait = 20 * time.Millisecond

// maxGapWait bounds the doubling of firstGapWait.
const maxGapWait = time.Second

// notify tells the hub that the events up to seq are committed, and hands it
// some of them (a run in seq order; the hub keeps none of the slice), or
// with force that something may have been committed: read the outbox.
func (h *hub) notify(seq int64, force bool, events []db.Event) {
	if force {
		h.force.Store(true)
	}
	carried := int64(0) // the highest seq handed over with its event
	if len(events) > 0 && events[len(events)-1].Seq > h.delivered.Load() {
		h.announcedMu.Lock()
		n := max(min(len(events), maxAnnounced-len(h.announced)), 0)
		h.announced = append(h.announced, events[:n]...)
		h.announcedMu.Unlock()
		if n > 0 && n == len(events) {
			carried = events[n-1].Seq
		}
	}
	for seq > carried {
		old := h.bare.Load()
		if seq <= old || h.bare.CompareAndSwap(old, seq) {
			break
		}
	}
	select {
	case h.wake <- struct{}{}:
	default: // a wake is pending; it reads everything
	}
}

// notification is the listener's: a NOTIFY came in (db.NotificationSeq).
func (h *hub) notification(payload string) {
	seq, err := db.NotificationSeq(payload)
	if err != nil {
		h.notify(0, true, nil) // not ours to parse: read whatever it announced
		return
	}
	var events []db.Event
	if seq > h.delivered.Load() {
		events, _ = db.NotificationEvents(payload) // a malformed one carries none: read them
	}
	h.notify(seq, false, events)
}

// always is a ready channel, to make a select case permanently eligible.
var always = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (h *hub) run(ctx context.Context) {
	defer h.haltOnce.Do(func() { close(h.halted) })
	// Start at the current end of the outbox: clients ask for history with
	// `since`.
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		last, err := db.LatestSeq(ctx, h.pool)
		if err == nil {
			h.last = last
			h.delivered.Store(last)
			h.deleted.reset(last)
			// Read once now: it delivers what committed meanwhile, and
			// prepares the read on the hub's connection, which the
			// first event would otherwise wait for.
			_ = h.deliver(ctx, readAtStart)
			break
		}
		h.log.Warn("realtime: read the end of the outbox", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
	poll := time.NewTicker(h.pollEvery)
	defer poll.Stop()
	heartbeat := time.NewTicker(h.heartbeatEvery)
	defer heartbeat.Stop()
	for {
		var replayTurn <-chan struct{}
		if len(h.replays) > 0 {
			replayTurn = always
		}
		select {
		case <-ctx.Done():
			return
		case c := <-h.cmds:
			h.handle(ctx, c)
		case <-h.wake:
			h.deliverAnnounced()
			if h.force.Swap(false) || h.bare.Load() > h.last {
				_ = h.deliver(ctx, readForNotification)
			}
			h.watchGap(false)
		case <-h.gapC:
			h.gapC = nil
			_ = h.deliver(ctx, readForGap)
			h.watchGap(true)
		case <-poll.C:
			h.checkHistory(ctx)
			_ = h.deliver(ctx, readForPoll)
		case <-heartbeat.C:
			h.heartbeat()
		case <-replayTurn:
			h.replayPage(ctx)
		case <-h.resume:
			h.unpark()
		}
	}
}

// checkHistory notices an outbox that went back below what the hub has
// delivered: the database was reset (reset-db) or restored from a backup,
// and its seqs start again. The hub, waiting for seqs past h.last, would
// drop every new event until they passed it. It starts again from the
// outbox's end and closes every client's connection: each reconnects and
// subscribes again, and one whose since is from the old history is told to
// reload (fromAnotherHistory).
func (h *hub) checkHistory(ctx context.Context) {
	issued, err := db.SeqIssued(ctx, h.pool)
	if err != nil || issued >= h.last {
		return
	}
	last, err := db.LatestSeq(ctx, h.pool)
	if err != nil {
		return // the next poll tries again
	}
	h.log.Warn("realtime: the outbox went back (the database was reset or restored): delivering from its end, disconnecting every client",
		"delivered_up_to", h.last, "outbox_end", last)
	h.last = last
	h.delivered.Store(last)
	h.deleted.reset(last)
	h.bare.Store(0)
	h.held = h.held[:0]
	h.announcedMu.Lock()
	h.announced = h.announced[:0]
	h.announcedMu.Unlock()
	h.replays, h.parked = nil, nil
	socks := map[socket.SocketId]*socket.Socket{}
	for _, room := range h.live {
		for id, sock := range room {
			socks[id] = sock
		}
	}
	clear(h.live)
	clear(h.rooms)
	// The connections close as a dropped one would, without Socket.IO's
	// DISCONNECT, which clients take for a kick and do not reconnect after:
	// they reconnect by themselves and subscribe again on connect. Not on
	// this goroutine: a close reports back to the hub.
	go func() {
		for _, sock := range socks {
			sock.Conn().Close(true)
		}
	}()
}

// deliverAnnounced sends the events handed over that follow h.last with no
// seq missing: they are committed, and so is every event before them, which
// is all a read of the outbox would have found out. Those after a seq no one
// has announced yet are held for it (watchGap).
func (h *hub) deliverAnnounced() {
	h.announcedMu.Lock()
	events := h.announced
	h.announced, h.spare = h.spare, nil
	h.announcedMu.Unlock()
	h.held = append(h.held, events...)
	clear(events)
	h.spare = events[:0]
	slices.SortFunc(h.held, func(a, b db.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	h.held = slices.CompactFunc(h.held, func(a, b db.Event) bool { return a.Seq == b.Seq })
	h.sendHeld()
}

// sendHeld sends the held events that now follow h.last, drops those at or
// below it, and keeps the rest, if the hub may hold that many.
func (h *hub) sendHeld() {
	i := 0
	for i < len(h.held) && h.held[i].Seq <= h.last {
		i++
	}
	j := i
	for j < len(h.held) && h.held[j].Seq == h.last+int64(j-i)+1 {
		j++
	}
	h.toRooms(h.held[i:j])
	n := copy(h.held, h.held[j:])
	clear(h.held[n:])
	if n > maxAnnounced {
		clear(h.held)
		n = 0
		h.force.Store(true) // read them instead, at once
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
	h.held = h.held[:n]
}

// watchGap arms a read of the outbox while something announced has not
// been sent: events held for a missing seq, or a seq announced alone that
// the last read could not reach (a gap not settled yet). It disarms when
// nothing waits; fired says the last one went off.
func (h *hub) watchGap(fired bool) {
	if len(h.held) == 0 && h.bare.Load() <= h.last {
		if h.gapC != nil {
			h.gap.Stop()
			h.gapC = nil
		}
		h.gapWait = 0
		return
	}
	switch {
	case h.gapWait == 0 || h.last > h.gapFrom: // a new gap, or delivery got past one since
		h.gapWait = firstGapWait
	case h.gapC != nil:
		return // armed, and nothing moved
	case fired:
		h.gapWait = min(2*h.gapWait, maxGapWait, h.pollEvery)
	}
	h.gapFrom = h.last
	if h.gap == nil {
		h.gap = time.NewTimer(h.gapWait)
	} else {
		h.gap.Reset(h.gapWait)
	}
	h.gapC = h.gap.C
}

// Why the hub reads the outbox (socketio.outbox.reads): at start; for a
// notification that did not carry its events (or a forced read, after the
// LISTEN connection came back); after a gap that was not filled in time;
// the poll; a subscribe catching up.
const (
	readAtStart         = "start"
	readForNotification = "notification"
	readForGap          = "gap"
	readForPoll         = "poll"
	readForSubscribe    = "subscribe"
)

// deliver sends every event after h.last to its project's room. After an
// error the next wake or poll tries again from the same place.
func (h *hub) deliver(ctx context.Context, why string) error {
	for {
		h.metrics.read(why)
		events, err := db.EventsAfter(ctx, h.pool, h.last, pageSize)
		if err != nil {
			if ctx.Err() == nil && !h.failing {
				h.log.Warn("realtime: read the outbox; retrying", "after_seq", h.last, "error", err)
			}
			h.failing = true
			return err
		}
		if h.failing {
			h.log.Info("realtime: reading the outbox again", "after_seq", h.last)
			h.failing = false
		}
		h.toRooms(events)
		if len(events) < pageSize {
			h.sendHeld()
			return nil
		}
	}
}

// toRooms sends events, the next ones after h.last in seq order, to their
// projects' rooms.
func (h *hub) toRooms(events []db.Event) {
	if len(events) == 0 {
		return
	}
	// Each run of one project's events goes to its room together.
	for i := 0; i < len(events); {
		j := i + 1
		for j < len(events) && events[j].ProjectID == events[i].ProjectID {
			j++
		}
		if room := h.live[events[i].ProjectID]; len(room) > 0 {
			h.fanOut(room, events[i:j])
			for _, ev := range events[i:j] {
				h.metrics.emit(ev.Name)
			}
		}
		for _, ev := range events[i:j] {
			if ev.Name == projectDeletedName {
				h.deleted.add(ev.ProjectID, ev.Seq)
				h.closeRoom(ev.ProjectID)
			}
		}
		h.last = events[j-1].Seq
		i = j
	}
	h.delivered.Store(h.last)
}

func (h *hub) handle(ctx context.Context, c command) {
	switch c.kind {
	case cmdReject:
		h.reject(c.sock, c.ack, c.project, c.err)
	case cmdSubscribe:
		if !c.sock.Connected() {
			return // gone while its request was checked
		}
		h.dropReplay(c.sock, c.project, "superseded by a newer subscribe")
		// Catch up first: "live" starts with what commits after this
		// request, and a since the client got from the database is covered.
		if err := h.deliver(ctx, readForSubscribe); err != nil {
			h.reject(c.sock, c.ack, c.project, "could not read the outbox; retry shortly")
			return
		}
		if c.since > h.last && h.fromAnotherHistory(ctx, c) {
			return
		}
		if c.deleted == 0 {
			// Deleted after its check: refused as if checked after.
			seq, err := h.deletedAfter(ctx, c.project, c.from)
			if err != nil {
				h.log.Warn("realtime: look up the project's deletion", "project_id", c.project, "error", err)
				h.reject(c.sock, c.ack, c.project, "could not look up the project; retry shortly")
				return
			}
			c.deleted = seq
		}
		if c.deleted > 0 {
			h.subscribeDeleted(c)
			return
		}
		if c.since >= 0 {
			h.leave(c.sock, c.project) // start again from since
		}
		if c.since < 0 || c.since >= h.last {
			h.join(c.sock, c.project)
			h.subscribed(c.ack, c.project, 0)
			return
		}
		h.replays = append(h.replays, &replay{sock: c.sock, project: c.project, cursor: c.since, ack: c.ack})
	case cmdUnsubscribe:
		h.dropReplay(c.sock, c.project, "unsubscribed")
		h.leave(c.sock, c.project)
		if c.ack != nil {
			c.ack([]any{event.SubscribeAck{OK: true, ProjectID: c.project}}, nil)
		}
	case cmdGone:
		id := c.sock.Id()
		for p := range h.rooms[id] {
			delete(h.live[p], id)
			if len(h.live[p]) == 0 {
				delete(h.live, p)
			}
		}
		delete(h.rooms, id)
		kept := h.replays[:0]
		for _, r := range h.replays {
			if r.sock != c.sock {
				kept = append(kept, r)
			}
		}
		clear(h.replays[len(kept):])
		h.replays = kept
		h.parked = slices.DeleteFunc(h.parked, func(r *replay) bool { return r.sock == c.sock })
	}
}

// deletion is the index of the project_deleted among events, -1 if none.
func deletion(events []db.Event) int {
	return slices.IndexFunc(events, func(ev db.Event) bool { return ev.Name == projectDeletedName })
}

// closeRoom ends every subscription to a project whose project_deleted the
// room was just sent: nothing of the project follows it, and a subscribe
// now would be refused. Its sockets stay connected, in their other rooms.
// Before, the room stayed until each of its sockets left or disconnected (a
// browser tab: days), and their heartbeats went on naming the project.
func (h *hub) closeRoom(project string) {
	for _, sock := range h.live[project] {
		h.leave(sock, project)
	}
}

// fromAnotherHistory refuses a since above every seq the outbox handed out
// (sinceBeyond), and reports whether it did. A since above h.last but
// handed out is a commit the hub has not read yet: fine.
func (h *hub) fromAnotherHistory(ctx context.Context, c command) bool {
	issued, err := db.SeqIssued(ctx, h.pool)
	if err != nil || c.since <= issued {
		return false // on a failed read, as before: live from since
	}
	h.reject(c.sock, c.ack, c.project, sinceBeyond(strconv.FormatInt(c.since, 10), issued))
	return true
}

// deletedAfter returns the seq of the project's project_deleted when it has
// been delivered (or committed) since from, a position the hub had
// delivered up to, 0 when it has not. The hub's memory answers, unless it
// may have forgotten it (or from is from before the outbox went back): then
// the outbox does.
func (h *hub) deletedAfter(ctx context.Context, project string, from int64) (int64, error) {
	if seq, sure := h.deleted.after(project, from); sure && from <= h.last {
		return seq, nil
	}
	return db.ProjectDeletedSeq(ctx, h.pool, project)
}

// subscribeDeleted answers a subscribe to a deleted project. It has no room
// to join; a client that was away when it was deleted (its since before the
// project_deleted) first gets what it missed, project_deleted last, so that
// it learns of the deletion as a client that was there did. Then, or at
// once, the refusal.
func (h *hub) subscribeDeleted(c command) {
	h.leave(c.sock, c.project)
	if c.since < 0 || c.since >= c.deleted {
		h.refuse(c.sock, c.ack, c.project, projectDeleted(c.deleted), nil)
		return
	}
	h.replays = append(h.replays, &replay{sock: c.sock, project: c.project, cursor: c.since, ack: c.ack, deleted: c.deleted})
}

// projectDeleted is the refusal of a subscribe to a deleted project.
func projectDeleted(seq int64) string {
	return "project deleted: its project_deleted event is seq " + strconv.FormatInt(seq, 10)
}

// replayPage sends the next page of the first waiting replay. A replay that
// reaches h.last joins the room right away; until then live events for the
// project do not reach this socket, and the replay itself will carry them.
// A deleted project's replay goes up to its project_deleted, past h.last if
// need be (nothing live follows it, and every event of the project before
// it is committed: the delete waited for the transactions that held the
// project's rows), and is then refused.
func (h *hub) replayPage(ctx context.Context) {
	r := h.replays[0]
	h.replays[0] = nil
	h.replays = h.replays[1:]
	if !r.sock.Connected() {
		return
	}
	if !r.resumed && h.whenWritten(r.sock, func() { h.written1(r) }) {
		// The client has not taken the last page yet: the next waits for
		// it, so that a client that reads slowly (or stopped) holds one
		// page here, not the whole history it asked for. It waits for
		// what is queued now only: live events of the socket's other rooms
		// written meanwhile do not hold it up (with a steady stream of
		// them the queue may never be empty).
		h.parked = append(h.parked, r)
		return
	}
	r.resumed = false
	events, err := db.ProjectEventsAfter(ctx, h.pool, r.project, r.cursor, pageSize)
	if err != nil {
		if ctx.Err() == nil {
			h.log.Warn("realtime: replay", "project_id", r.project, "after_seq", r.cursor, "error", err)
			h.reject(r.sock, r.ack, r.project, "could not read the project's history; subscribe again")
		}
		return
	}
	end := h.last // later ones: live delivery will bring them
	if r.deleted > 0 {
		end = r.deleted
	}
	n := 0
	for n < len(events) && events[n].Seq <= end {
		n++
	}
	if r.deleted == 0 {
		// Deleted while the replay ran (after its subscribe was handled):
		// it ends at the project_deleted, refused, as for a project deleted
		// before, rather than join a room that was closed.
		if k := deletion(events[:n]); k >= 0 {
			r.deleted, end, n = events[k].Seq, events[k].Seq, k+1
		}
	}
	// A page of large events goes in writes of maxReplayBytes: the rest is
	// read again on the replay's next turn.
	full := n == pageSize
	cut := fitReplayWrite(events[:n])
	if cut < n {
		n, full = cut, true
	}
	if n > 0 {
		h.write(r.sock, h.encode(events[:n]))
		h.release()
		r.cursor = events[n-1].Seq
		r.replayed += n
		for _, ev := range events[:n] {
			h.metrics.replay(ev.Name)
		}
	}
	// More to replay only when the whole page was at or below end (and
	// written): a page that reached past it has sent all that live delivery
	// will not bring, and reading it again would only fetch the same events
	// above end.
	if full && r.cursor < end {
		h.replays = append(h.replays, r)
		return
	}
	if r.deleted > 0 {
		h.refuse(r.sock, r.ack, r.project, projectDeleted(r.deleted), &r.replayed)
		return
	}
	h.join(r.sock, r.project)
	h.subscribed(r.ack, r.project, r.replayed)
}

// maxReplayBytes bounds one write of a replay, a quarter of what a client
// may be behind (MaxQueuedBytes): a page of 500 large events (up to 1 MiB
// of code each) would otherwise be more than that in one write, and the
// live events of the client's other projects behind it would drop it.
const maxReplayBytes = MaxQueuedBytes / 4

// fitReplayWrite is how many of events (at least one) fit in one replay
// write of maxReplayBytes, as sent (outgoing, framed).
func fitReplayWrite(events []db.Event) int {
	size := 0
	for i, ev := range events {
		size += len(ev.Payload) + len(ev.Name) + len(ev.ProjectID) + 64
		if size > maxReplayBytes && i > 0 {
			return i
		}
	}
	return len(events)
}

// whenWritten reports whether what was written to sock still waits for
// its client: in its websocket's buffer for the kernel, or in engine.io's
// for a polling client's next GET. If so, fn is called (once, on another
// goroutine) when it has left.
func (h *hub) whenWritten(sock *socket.Socket, fn func()) bool {
	conn := sock.Conn()
	if t, ok := conn.Transport().(*websocketTransport); ok && t.whenWritten(fn) {
		return true
	}
	return h.queues != nil && h.queues.whenWritten(conn, fn)
}

// written1 hands a parked replay back to the hub: its socket took what it
// sent (drain's goroutine).
func (h *hub) written1(r *replay) {
	h.writtenMu.Lock()
	h.written = append(h.written, r)
	h.writtenMu.Unlock()
	select {
	case h.resume <- struct{}{}:
	default:
	}
}

// unpark puts the parked replays whose socket took their page back in turn;
// those dropped meanwhile (gone, superseded, unsubscribed) are not parked
// any more and stay dropped.
func (h *hub) unpark() {
	h.writtenMu.Lock()
	written := h.written
	h.written = nil
	h.writtenMu.Unlock()
	for _, r := range written {
		if i := slices.Index(h.parked, r); i >= 0 {
			h.parked = slices.Delete(h.parked, i, i+1)
			r.resumed = true
			h.replays = append(h.replays, r)
		}
	}
}

func (h *hub) dropReplay(sock *socket.Socket, project, why string) {
	if i := slices.IndexFunc(h.parked, func(r *replay) bool { return r.sock == sock && r.project == project }); i >= 0 {
		r := h.parked[i]
		h.parked = slices.Delete(h.parked, i, i+1)
		if r.ack != nil {
			r.ack([]any{event.SubscribeAck{ProjectID: project, Error: why}}, nil)
		}
		return
	}
	for i, r := range h.replays {
		if r.sock == sock && r.project == project {
			h.replays = append(h.replays[:i], h.replays[i+1:]...)
			if r.ack != nil {
				r.ack([]any{event.SubscribeAck{ProjectID: project, Error: why}}, nil)
			}
			return
		}
	}
}

func (h *hub) join(sock *socket.Socket, project string) {
	id := sock.Id()
	if h.rooms[id][project] {
		return
	}
	sock.Join(room(project))
	if h.live[project] == nil {
		h.live[project] = map[socket.SocketId]*socket.Socket{}
	}
	h.live[project][id] = sock
	if h.rooms[id] == nil {
		h.rooms[id] = map[string]bool{}
	}
	h.rooms[id][project] = true
}

func (h *hub) leave(sock *socket.Socket, project string) {
	id := sock.Id()
	if !h.rooms[id][project] {
		return
	}
	sock.Leave(room(project))
	delete(h.rooms[id], project)
	if len(h.rooms[id]) == 0 {
		delete(h.rooms, id)
	}
	delete(h.live[project], id)
	if len(h.live[project]) == 0 {
		delete(h.live, project)
	}
}

func (h *hub) subscribed(ack socket.Ack, project string, replayed int) {
	if ack != nil {
		ack([]any{event.SubscribeAck{OK: true, ProjectID: project, Replayed: &replayed}}, nil)
	}
}

// reject answers a request that failed: an `error` event, and the ack when
// the client asked for one.
func (h *hub) reject(sock *socket.Socket, ack socket.Ack, project, msg string) {
	h.refuse(sock, ack, project, msg, nil)
}

// refuse is reject, after a replay of replayed events when there was one.
func (h *hub) refuse(sock *socket.Socket, ack socket.Ack, project, msg string, replayed *int) {
	_ = sock.Emit("error", event.SocketError{Message: msg, ProjectID: project})
	if ack != nil {
		res := event.SubscribeAck{ProjectID: project, Error: msg, Replayed: replayed}
		if transient(msg) {
			// The database is unreachable: the client subscribes again
			// after this long (docs/reliability.md).
			after := retryAfterMS
			res.RetryAfterMS = &after
		}
		ack([]any{res}, nil)
	}
}

// heartbeat tells every socket the server is alive: once per project room it
// is in (with that project_id), or once without project_id when it is in
// none.
func (h *hub) heartbeat() {
	sockets := h.io.Sockets().Sockets()
	hb := event.Heartbeat{ServerTime: time.Now().UTC().Truncate(time.Second), Status: "alive", Connections: sockets.Len()}
	for p := range h.live {
		beat := hb
		beat.ProjectID = p
		_ = h.io.To(room(p)).Emit("heartbeat", beat)
	}
	sockets.Range(func(id socket.SocketId, sock *socket.Socket) bool {
		if len(h.rooms[id]) == 0 {
			_ = sock.Emit("heartbeat", hb)
		}
		return true
	})
}

// encoded is a run of events ready to send: as websocket frames for sockets
// on the websocket transport (frames), and as arguments for the others
// (emitted), made when the first of those needs them.
type encoded struct {
	events   []db.Event
	payloads []json.RawMessage
	frames   []byte
}

func (h *hub) encode(events []db.Event) *encoded {
	e := &h.scratch
	e.events, e.payloads, e.frames = events, e.payloads[:0], e.frames[:0]
	for _, ev := range events {
		h.payload = appendOutgoing(h.payload[:0], ev)
		h.packet = appendEventPacket(h.packet[:0], ev.Name, h.payload)
		e.frames = appendTextFrame(e.frames, h.packet)
	}
	return e
}

// emitted are the events' payloads as Socket.IO's Emit takes them: each of
// its own, since the engine may hold it in a socket's queue.
func (e *encoded) emitted() []json.RawMessage {
	if len(e.payloads) < len(e.events) {
		e.payloads = e.payloads[:0]
		for _, ev := range e.events {
			e.payloads = append(e.payloads, outgoing(ev))
		}
	}
	return e.payloads
}

// fanOut sends a run of one project's events to the sockets in its room:
// the same bytes to each, one write per socket.
func (h *hub) fanOut(room map[socket.SocketId]*socket.Socket, events []db.Event) {
	e := h.encode(events)
	for _, sock := range room {
		h.write(sock, e)
	}
	h.release()
}

// maxScratchBytes is the largest buffer encode keeps for the next run.
const maxScratchBytes = 1 << 20

// release lets go of what the last encode holds once it is written: its
// events and payloads, and its buffers when that run made them larger than
// maxScratchBytes. Kept, they pinned the largest page the hub ever sent (a
// replay of 500 events of up to 1 MiB of code each) for the process's life:
// the next, smaller runs overwrote only their first payloads and reused the
// buffers' capacity.
func (h *hub) release() {
	e := &h.scratch
	clear(e.payloads)
	e.events, e.payloads = nil, e.payloads[:0]
	if cap(e.frames) > maxScratchBytes {
		e.frames = nil
	}
	if cap(h.packet) > maxScratchBytes {
		h.packet = nil
	}
	if cap(h.payload) > maxScratchBytes {
		h.payload = nil
	}
}

// write sends the events to one socket: straight to its connection when it
// is on the websocket transport with nothing queued, otherwise through the
// engine, behind what the engine holds for it.
func (h *hub) write(sock *socket.Socket, e *encoded) {
	if !sock.Connected() {
		return
	}
	if t, ok := sock.Conn().Transport().(*websocketTransport); ok && t.writeDirect(e.frames) {
		return
	}
	payloads := e.emitted()
	for i, ev := range e.events {
		if err := sock.Emit(ev.Name, payloads[i]); err != nil {
			h.log.Error("realtime: emit event", "seq", ev.Seq, "name", ev.Name, "error", err)
		}
	}
}

func room(project string) socket.Room { return socket.Room("project_" + project) }

// outgoing is an event as clients get it: its stored payload with seq and
// project_id added. The payload's bytes are passed through: the two fields
// are appended before its closing brace (db.Emit stores only objects), and
// since a JSON parser keeps the last of repeated keys, they win over any seq
// or project_id the payload itself carries.
func outgoing(ev db.Event) json.RawMessage {
	return appendOutgoing(make([]byte, 0, len(ev.Payload)+len(ev.ProjectID)+48), ev)
}

// appendOutgoing appends outgoing(ev) to out.
func appendOutgoing(out []byte, ev db.Event) []byte {
	body := bytes.TrimSpace(ev.Payload)
	if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
		body = []byte("{}")
	}
	body = bytes.TrimRightFunc(body[:len(body)-1], unicode.IsSpace) // up to the closing brace
	out = append(out, body...)
	if len(body) > 1 { // not an empty object
		out = append(out, ',')
	}
	out = append(out, `"seq":`...)
	out = strconv.AppendInt(out, ev.Seq, 10)
	out = append(out, `,"project_id":`...)
	out = strconv.AppendQuote(out, ev.ProjectID) // a UUID: nothing to escape
	return append(out, '}')
}
