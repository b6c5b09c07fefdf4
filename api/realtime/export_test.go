package realtime

import "github.com/zishang520/socket.io/servers/socket/v3"

// AfterLookup makes s call f in each subscribe between the check of its
// project and the hand-over to the hub, the window a delete can fall into.
// Call it before s serves anyone.
func AfterLookup(s *Server, f func(project string)) { s.afterLookup = f }

// KeepDeletions sets how many deletions s's hub remembers. Call it before
// Run.
func KeepDeletions(s *Server, n int) { s.hub.deleted.limit = n }

// MaxReplayBytes is the most one write of a replay sends.
const MaxReplayBytes = maxReplayBytes

// PendingBytes is what waits in the server's connections for their
// clients: in websocket connections for the kernel to take it, in
// engine.io's buffer for a polling client's next GET.
func (s *Server) PendingBytes() int {
	n := 0
	s.io.Sockets().Sockets().Range(func(_ socket.SocketId, sock *socket.Socket) bool {
		n += s.queues.queued(sock.Conn())
		if t, ok := sock.Conn().Transport().(*websocketTransport); ok {
			t.mu.Lock()
			n += len(t.pending) + t.writing
			t.mu.Unlock()
		}
		return true
	})
	return n
}
