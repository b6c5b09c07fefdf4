package llm

import (
	"cmp"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
)

// newTransport is the HTTP transport of a Client's model calls.
func newTransport(concurrency int) http.RoundTripper {
	t, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return http.DefaultTransport
	}
	t = t.Clone()
	t.ResponseHeaderTimeout = responseHeaderTimeout
	// Hundreds of calls run at once (Concurrency). Over HTTP/1.1 (a
	// plain-HTTP OPENAI_BASE_URL, a gateway that speaks no HTTP/2) each has
	// a connection of its own: keep it for the next call, so a call does not
	// pay a new TCP (and TLS) handshake. Not only the default two per host:
	// the default 100 in all (MaxIdleConns) would also close most of them
	// after a burst of calls. Idle ones close after IdleConnTimeout. (HTTP/2
	// multiplexes calls on few connections, in a pool these limits do not
	// govern.)
	t.MaxIdleConns = 0
	t.MaxIdleConnsPerHost = cmp.Or(max(concurrency, 0), DefaultConcurrency)
	if dial := t.DialContext; dial != nil {
		t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return bodyCopyConn{c}, nil
		}
	}
	return t
}

// bodyCopyConn is a connection of the transport. Over HTTP/1.1, net/http
// copies a request body of known length into the connection through an
// io.LimitedReader, which *net.TCPConn's ReadFrom copies with a buffer it
// allocates for each request, as large as the body up to 32 KB: the
// largest allocation of a model call, for a body that is already in memory.
// Its ReadFrom copies through a pooled buffer instead. (Over TLS the
// connection is under tls.Conn, which has no ReadFrom: a TLS server that
// speaks HTTP/2, as OpenAI's does, gets bodies copied through the HTTP/2
// transport's own buffers, but one that speaks only HTTP/1.1 still costs a
// buffer a request.)
type bodyCopyConn struct{ net.Conn }

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (c bodyCopyConn) ReadFrom(r io.Reader) (int64, error) {
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	// The writer hides the connection's own ReadFrom, which CopyBuffer
	// would call instead of using buf.
	return io.CopyBuffer(struct{ io.Writer }{c.Conn}, r, *buf)
}
