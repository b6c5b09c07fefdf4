package llm

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
)

// recordingConn is a connection that notes how it is written to.
type recordingConn struct {
	net.Conn
	readFrom bool  // its own ReadFrom was called
	writes   []int // the sizes of its writes
}

func (c *recordingConn) ReadFrom(r io.Reader) (int64, error) {
	c.readFrom = true
	return io.Copy(struct{ io.Writer }{c}, r)
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, len(p))
	return len(p), nil
}

// A body copied into a connection of the transport, as net/http copies one
// of known length (through an io.LimitedReader), goes through the pooled
// 32 KB buffer, not through the connection's own ReadFrom: *net.TCPConn's
// allocates a buffer as large as the body for every request.
// (BenchmarkModelCall shows the bytes.)
func TestBodiesAreCopiedThroughThePooledBuffer(t *testing.T) {
	under := &recordingConn{}
	body := bytes.Repeat([]byte("x"), 70_000)
	n, err := bodyCopyConn{under}.ReadFrom(io.LimitReader(bytes.NewReader(body), int64(len(body))))
	if err != nil || n != int64(len(body)) {
		t.Fatalf("copied %d of %d bytes: %v", n, len(body), err)
	}
	if under.readFrom {
		t.Error("the body went through the connection's own ReadFrom")
	}
	if want := []int{32 << 10, 32 << 10, 70_000 - 64<<10}; !slices.Equal(under.writes, want) {
		t.Errorf("the body was written in pieces of %v, want %v (the pooled buffer's size)", under.writes, want)
	}
}

// The transport's connections are bodyCopyConns.
func TestTheTransportDialsBodyCopyConns(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tr, ok := newTransport(1).(*http.Transport)
	if !ok {
		t.Fatalf("the transport is a %T", newTransport(1))
	}
	c, err := tr.DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(bodyCopyConn); !ok {
		t.Errorf("the transport dials a %T, want a bodyCopyConn", c)
	}
}
