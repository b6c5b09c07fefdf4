package llm

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"testing"
)

// A body copied into a connection of the transport, as net/http copies one
// of known length (through an io.LimitedReader), allocates no buffer for
// it: *net.TCPConn's ReadFrom allocates one as large as the body.
func TestBodiesAreCopiedThroughThePooledBuffer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	body := bytes.Repeat([]byte("x"), 20_000)
	perCopy := func(conn io.ReaderFrom) uint64 {
		const copies = 50
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range copies {
			if _, err := conn.ReadFrom(io.LimitReader(bytes.NewReader(body), int64(len(body)))); err != nil {
				t.Fatal(err)
			}
		}
		runtime.ReadMemStats(&after)
		return (after.TotalAlloc - before.TotalAlloc) / copies
	}
	perCopy(bodyCopyConn{raw}) // the pool's first buffer
	pooled, plain := perCopy(bodyCopyConn{raw}), perCopy(raw.(*net.TCPConn))
	if pooled > 1024 {
		t.Errorf("a 20 KB body copied through bodyCopyConn allocated %d bytes (*net.TCPConn: %d), want at most 1 KB", pooled, plain)
	}
	t.Logf("allocated per 20 KB body: %d bytes through bodyCopyConn, %d through *net.TCPConn", pooled, plain)
}
