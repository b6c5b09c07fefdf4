package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// shortListener is a real listener whose first Accepts fail as Go's do when
// the kernel refuses the new socket an epoll watch (the server's uid has
// used up fs.epoll.max_user_watches): the connection is accepted, closed,
// and the error is an *net.OpError around the bare errno.
type shortListener struct {
	net.Listener
	left  atomic.Int32
	errno syscall.Errno
}

func (l *shortListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil || l.left.Add(-1) < 0 {
		return c, err
	}
	c.Close()
	return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: l.errno}
}

// The HTTP server outlives Accept failures for want of a kernel resource:
// it stopped serving at the first ENOSPC (http.Server.Serve returns on an
// error that is not temporary), and answers once the kernel accepts again.
func TestTheServerOutlivesAcceptFailuresForWantOfKernelResources(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.ENOMEM, syscall.ENOBUFS, syscall.EMFILE} {
		t.Run(errno.Error(), func(t *testing.T) {
			tcp, err := net.Listen("tcp", ownLoopback+":0")
			if err != nil {
				t.Fatal(err)
			}
			ln := &shortListener{Listener: tcp, errno: errno}
			const failures = 3
			ln.left.Store(failures)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			e := env{cfg: Config{ShutdownGrace: time.Second}, log: slog.New(slog.DiscardHandler)}
			go func() {
				done <- serveOn(ctx, e, ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
			}()

			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			refused := 0
			for deadline := time.Now().Add(10 * time.Second); ; {
				res, err := client.Get("http://" + tcp.Addr().String() + "/")
				if err == nil {
					body, _ := io.ReadAll(res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusOK || string(body) != "ok" {
						t.Fatalf("answer %d %q", res.StatusCode, body)
					}
					break
				}
				refused++
				select {
				case err := <-done:
					t.Fatalf("the server stopped serving after %d failed connections: %v", refused, err)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("no answer after %d failed connections: %v", refused, err)
				}
			}
			if refused != failures {
				t.Errorf("%d connections failed, want %d (the ones whose Accept failed)", refused, failures)
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("serveOn after the shutdown: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the shutdown did not end")
			}
		})
	}
}
