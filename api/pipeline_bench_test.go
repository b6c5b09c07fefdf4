package api_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/internal/openaitest"
	"github.com/vibegrapher/vibegrapher/internal/sockettest"
)

// BenchmarkVibecodePipeline measures the service's own overhead for one
// message: from POST /sessions/{id}/messages to its vibecode_response on a
// subscribed Socket.IO client, with a scripted model that answers at once
// (streamed text, so the path includes vibecode_delta and token_usage).
// It reports p50 and p99 over every message sent, for 1 session and for 50
// sessions sending at the same time.
//
//	go test -run '^$' -bench VibecodePipeline -benchtime 40x ./api/
func BenchmarkVibecodePipeline(b *testing.B) {
	for _, sessions := range []int{1, 50} {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
			s := newStack(b, stackOptions{})
			s.AI.Handle(func(openaitest.Request) openaitest.Reply { return openaitest.Text("Done.") })
			type target struct {
				session string
				client  *sockettest.Client
			}
			targets := make([]target, sessions)
			for i := range targets {
				p, sess := s.project(baseCode)
				targets[i] = target{sess.ID, s.clients[p.ID]}
			}
			var mu sync.Mutex
			var latencies []time.Duration
			b.ResetTimer()
			for b.Loop() {
				var wg sync.WaitGroup
				for _, tg := range targets {
					wg.Go(func() {
						start := time.Now()
						res := s.do("POST", "/sessions/"+tg.session+"/messages", map[string]any{"prompt": "hi"})
						if res.Status != 202 {
							b.Errorf("send: %d %s", res.Status, res.Body)
							return
						}
						var acc domain.MessageAccepted
						res.json(b, &acc)
						for {
							ev, ok := tg.client.Events.Next()
							if !ok {
								b.Errorf("no vibecode_response for %s", acc.MessageID)
								return
							}
							if ev.Name == "vibecode_response" && ev.Payload["message_id"] == acc.MessageID {
								break
							}
						}
						mu.Lock()
						latencies = append(latencies, time.Since(start))
						mu.Unlock()
					})
				}
				wg.Wait()
			}
			b.StopTimer()
			slices.Sort(latencies)
			if len(latencies) == 0 {
				return
			}
			pct := func(p float64) float64 {
				return float64(latencies[min(len(latencies)-1, int(p*float64(len(latencies))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(len(latencies))/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
