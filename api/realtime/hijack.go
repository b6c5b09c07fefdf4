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
// request and its writer for the connection's whole life (in its
// HttpContext), and net/http's writer holds the connection's 4 KB bufio
// reader and writer, which a hijacked websocket never uses again: about 8 KB
// per connection.
//
// The request engine.io keeps is a copy without a body: the body of a
// server request can hold the writer too (http.MaxBytesReader, which the
// API's middleware wraps every body in, keeps it to report the limit), and an
// upgrade has no body to read.
func releaseAfterHijack(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			h.ServeHTTP(w, r)
			return
		}
		rw := &releasingWriter{}
		rw.w.Store(&w)
		h.ServeHTTP(rw, upgradeRequest(r))
	})
}

// upgradeRequest is what engine.io needs of a websocket upgrade request (the
// method, URL, headers, addresses and context), without its body.
func upgradeRequest(r *http.Request) *http.Request {
	u := &http.Request{
		Method:     r.Method,
		URL:        r.URL,
		Proto:      r.Proto,
		ProtoMajor: r.ProtoMajor,
		ProtoMinor: r.ProtoMinor,
		Header:     r.Header,
		Body:       http.NoBody,
		Host:       r.Host,
		RemoteAddr: r.RemoteAddr,
		RequestURI: r.RequestURI,
		TLS:        r.TLS,
	}
	return u.WithContext(r.Context())
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
