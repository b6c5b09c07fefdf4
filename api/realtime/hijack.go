package realtime

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
)

// releaseAfterHijack serves websocket upgrades with a ResponseWriter that
// lets go of net/http's once the connection is hijacked. engine.io keeps the
// request's writer for the connection's whole life (in its HttpContext), and
// net/http's writer holds the connection's 4 KB bufio reader and writer,
// which a hijacked websocket never uses again: about 8 KB per connection.
func releaseAfterHijack(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			h.ServeHTTP(w, r)
			return
		}
		rw := &releasingWriter{}
		rw.w.Store(&w)
		h.ServeHTTP(rw, r)
	})
}

type releasingWriter struct {
	w atomic.Pointer[http.ResponseWriter] // nil once hijacked
}

func (rw *releasingWriter) Header() http.Header {
	if w := rw.w.Load(); w != nil {
		return (*w).Header()
	}
	return http.Header{}
}

func (rw *releasingWriter) Write(b []byte) (int, error) {
	if w := rw.w.Load(); w != nil {
		return (*w).Write(b)
	}
	return 0, http.ErrHijacked
}

func (rw *releasingWriter) WriteHeader(code int) {
	if w := rw.w.Load(); w != nil {
		(*w).WriteHeader(code)
	}
}

func (rw *releasingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w := rw.w.Load()
	if w == nil {
		return nil, nil, http.ErrHijacked
	}
	conn, brw, err := http.NewResponseController(*w).Hijack()
	if err == nil {
		rw.w.Store(nil)
	}
	return conn, brw, err
}
