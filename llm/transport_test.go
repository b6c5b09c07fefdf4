package llm_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/vibegrapher/vibegrapher/internal/openaitest"
)

// A request reaches the model whole whatever its size: within the first
// write with its headers, or copied through the transport's buffer in
// several pieces.
func TestRequestBodiesArriveWhole(t *testing.T) {
	s := openaitest.New(t)
	c := newClient(s, 0)
	for i, n := range []int{1, 3_000, 40_000, 300_000} {
		text := strings.Repeat(fmt.Sprintf("line %d of the request.\n", i), n/20+1)[:n]
		s.Enqueue(openaitest.Text("ok"))
		if _, err := c.Create(context.Background(), ask(text)); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		got := s.Requests()[i].InputItems()
		if len(got) != 1 || !strings.Contains(fmt.Sprint(got[0]["content"]), text) {
			t.Fatalf("a request of %d bytes of text arrived as %.200v", n, got)
		}
	}
}

// BenchmarkModelCall is one non-streamed call with 10 KB of input against
// the local fake, client and server: -benchmem shows what a call allocates.
func BenchmarkModelCall(b *testing.B) {
	s := openaitest.New(b)
	s.Handle(func(openaitest.Request) openaitest.Reply { return openaitest.Text("ok") })
	c := newClient(s, 0)
	params := ask(strings.Repeat("0123456789", 1000))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Create(context.Background(), params); err != nil {
			b.Fatal(err)
		}
	}
}
