package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptrace"
	"sync"
	"testing"
)

// burst sends the same request n times at once, as a client on a flaky
// network retrying before its first answer arrived, and returns the answers.
func (s *testServer) burst(n int, method, path string, body any) []response {
	s.t.Helper()
	out := make([]response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range out {
		wg.Go(func() {
			<-start
			out[i] = s.do(method, path, body)
		})
	}
	close(start)
	wg.Wait()
	return out
}

// cut sends a request and drops its connection as soon as the request is
// written, as a client whose network failed: the server may or may not have
// acted on it.
func (s *testServer) cut(method, path string, body any) {
	s.t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { cancel() }})
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, bytes.NewReader(raw))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	if res, err := (&http.Client{Transport: tr}).Do(req); err == nil {
		res.Body.Close()
	}
}

// A DELETE of a test sent several times at once deletes it once: one 204
// and one test_deleted, and the others the 404 a later retry gets.
func TestATestDeletedSeveralTimesAtOnceIsDeletedOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{noWorker: true})
	p, _ := s.project(baseCode)
	for range 5 {
		tc := s.newTest(p.ID, "adds", "assert add(2, 3) == 5", 5)
		var ok, gone int
		for _, r := range s.burst(4, "DELETE", "/tests/"+tc.ID, nil) {
			switch r.Status {
			case 204:
				ok++
			case 404:
				gone++
			default:
				t.Fatalf("DELETE = %d %s", r.Status, r.Body)
			}
		}
		if ok != 1 || gone != 3 {
			t.Errorf("DELETE sent 4 times at once: %d answered 204, %d 404; want 1 and 3", ok, gone)
		}
		if r := s.do("DELETE", "/tests/"+tc.ID, nil); r.Status != 404 {
			t.Errorf("DELETE again = %d %s", r.Status, r.Body)
		}
		deleted := 0
		for _, e := range s.outboxEvents(p.ID) {
			if e.Name == "test_deleted" && e.Payload["test_id"] == tc.ID {
				deleted++
			}
		}
		if deleted != 1 {
			t.Errorf("%d test_deleted events for one test", deleted)
		}
	}
}
