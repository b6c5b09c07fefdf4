package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/api"
	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// testServer is the real HTTP stack on a fresh database.
type testServer struct {
	t    testing.TB
	URL  string
	Pool *pgxpool.Pool

	// noEventCheck skips checking the outbox against the AsyncAPI document
	// at the end (a test that closes the pool).
	noEventCheck bool
}

// checkEventsAtEnd validates, when the test ends, every event the test
// emitted against the AsyncAPI document.
func (s *testServer) checkEventsAtEnd() {
	s.t.Cleanup(func() {
		if !s.noEventCheck {
			checkEmittedEvents(s.t, s.Pool)
		}
	})
}

func newTestServer(t testing.TB, opts ...func(*api.Options)) *testServer {
	t.Helper()
	pool := dbtest.New(t)
	schema, err := db.NewSchema(pool, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	o := api.Options{Store: &db.Store{Pool: pool}, Schema: schema, Log: slog.New(slog.DiscardHandler), CORSOrigins: []string{"*"}, Version: "test"}
	for _, f := range opts {
		f(&o)
	}
	srv := httptest.NewServer(api.New(o).Handler())
	t.Cleanup(srv.Close)
	s := &testServer{t: t, URL: srv.URL, Pool: pool}
	s.checkEventsAtEnd()
	return s
}

// response is what a client got back.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// problem is an RFC 9457 body.
type problem struct {
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Name   string `json:"name"`
		Reason string `json:"reason"`
	} `json:"errors"`
}

func (r response) problem(t testing.TB) problem {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("Content-Type = %q, want application/problem+json (body %s)", ct, r.Body)
	}
	var p problem
	r.json(t, &p)
	if p.Status != r.Status {
		t.Fatalf("problem status %d differs from HTTP status %d", p.Status, r.Status)
	}
	return p
}

// do sends body (a string is sent as is, anything else as JSON) with a JSON
// content type.
func (s *testServer) do(method, path string, body any, headers ...string) response {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, s.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: raw}
}

// count returns the number of rows of a table.
func (s *testServer) count(table string) int {
	s.t.Helper()
	return dbtest.Count(s.t, s.Pool, "SELECT count(*) FROM "+table)
}

// readPages reads a paged list whole, limit items at a time, each request
// going on with before set to the key of the previous answer's last item,
// until an answer is shorter than limit. It returns the items and the
// number of requests.
func readPages[T any](s *testServer, path string, limit int, key func(T) string) ([]T, int) {
	s.t.Helper()
	var all []T
	before := ""
	for requests := 1; ; requests++ {
		q := fmt.Sprintf("%s?limit=%d", path, limit)
		if before != "" {
			q += "&before=" + before
		}
		res := s.do("GET", q, nil)
		if res.Status != 200 {
			s.t.Fatalf("GET %s = %d %s", q, res.Status, res.Body)
		}
		var page []T
		res.json(s.t, &page)
		if len(page) > limit {
			s.t.Fatalf("GET %s answered %d items, over the limit", q, len(page))
		}
		all = append(all, page...)
		if len(page) < limit {
			return all, requests
		}
		if requests > 100 {
			s.t.Fatalf("GET %s: still not at the end after %d pages", q, requests)
		}
		before = key(page[len(page)-1])
	}
}

// wantBadParam checks that GET path is a 400 naming the query parameter
// field, with detail in its detail.
func (s *testServer) wantBadParam(path, field, detail string) {
	s.t.Helper()
	res := s.do("GET", path, nil)
	if res.Status != 400 {
		s.t.Errorf("GET %s = %d %s, want 400", path, res.Status, res.Body)
		return
	}
	p := res.problem(s.t)
	if len(p.Errors) != 1 || p.Errors[0].Name != field || !strings.Contains(p.Detail, detail) {
		s.t.Errorf("GET %s: %+v, want field %q and %q in the detail", path, p, field, detail)
	}
}

// mapSlice is f of each item of s.
func mapSlice[T, U any](s []T, f func(T) U) []U {
	out := make([]U, 0, len(s))
	for _, v := range s {
		out = append(out, f(v))
	}
	return out
}
