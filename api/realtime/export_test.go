package realtime

import "github.com/zishang520/socket.io/servers/socket/v3"

// AfterLookup makes s call f in each subscribe between the check of its
// project and the hand-over to the hub, the window a delete can fall into.
// Call it before s serves anyone.
func AfterLookup(s *Server, f func(project string)) { s.afterLookup = f }

// KeepDeletions sets how many deletions s's hub remembers. Call it before
// Run.
func KeepDeletions(s *Server, n int) { s.hub.deleted.limit = n }

// PendingBytes is what waits in the server's websocket connections for
// the kernel to take it (their clients to read).
func (s *Server) PendingBytes() int {
	n := 0
	s.io.Sockets().Sockets().Range(func(_ socket.SocketId, sock *socket.Socket) bool {
		if t, ok := sock.Conn().Transport().(*websocketTransport); ok {
			t.mu.Lock()
			n += len(t.pending) + t.writing
			t.mu.Unlock()
		}
		return true
	})
	return n
}
