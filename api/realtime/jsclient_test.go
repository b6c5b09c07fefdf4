package realtime_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// jsLine is one line the JavaScript client prints.
type jsLine struct {
	Type      string         `json:"type"`
	Transport string         `json:"transport"`
	Ack       map[string]any `json:"ack"`
	Name      string         `json:"name"`
	Payload   map[string]any `json:"payload"`
}

// TestJavaScriptClient runs the official socket.io-client (Node) against the
// server: the frontend's websocket-only setting, the default polling that
// upgrades, and polling alone.
func TestJavaScriptClient(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("testdata", "jsclient")
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not on PATH; the JavaScript client tests need Node.js 18+")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "socket.io-client")); err != nil {
		t.Skip("socket.io-client is not installed: run `make js-deps` (npm ci in api/realtime/testdata/jsclient)")
	}
	for _, transport := range []string{"websocket", "default", "polling"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			p := e.project()
			// Two events of history; the client asks for the second on.
			first := e.emit(p, "conversation_message", map[string]any{"trace_id": "tr-h1", "content": "hello"})
			second := e.emit(p, "conversation_message", map[string]any{"trace_id": "tr-h2", "content": "world"})

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "node", "client.js", e.URL, p, transport, strconv.FormatInt(first, 10))
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "COUNT=2")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := make(chan jsLine)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(stdout)
				sc.Buffer(make([]byte, 1<<20), 1<<20)
				for sc.Scan() {
					var l jsLine
					if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
						t.Errorf("client printed %q: %v", sc.Text(), err)
						continue
					}
					lines <- l
				}
			}()
			read := func() jsLine {
				t.Helper()
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("client ended early: %v\n%s", cmd.Wait(), stderr.String())
					}
					return l
				case <-time.After(wait):
					t.Fatalf("client printed nothing within the wait\n%s", stderr.String())
				}
				return jsLine{}
			}

			// The replayed event may be printed before the ack is.
			var got []jsLine
			ready := jsLine{}
			for ready.Type == "" {
				switch l := read(); l.Type {
				case "ready":
					ready = l
				default:
					got = append(got, l)
				}
			}
			if ready.Ack["ok"] != true || ready.Ack["replayed"] != float64(1) || ready.Ack["project_id"] != p {
				t.Fatalf("ack %v", ready.Ack)
			}
			if want := map[string]string{"websocket": "websocket", "default": "websocket", "polling": "polling"}[transport]; ready.Transport != want {
				t.Fatalf("transport %q, want %q", ready.Transport, want)
			}
			live := e.emit(p, "vibecode_response", map[string]any{"trace_id": "tr-live", "status": "answered", "session_id": "s1"})
			for len(got) < 2 {
				got = append(got, read())
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("client: %v\n%s", err, stderr.String())
			}

			replayed, ev := got[0], got[1]
			if replayed.Name != "conversation_message" || replayed.Payload["seq"] != float64(second) || replayed.Payload["trace_id"] != "tr-h2" || replayed.Payload["project_id"] != p {
				t.Fatalf("replayed event = %+v", replayed)
			}
			if ev.Type != "event" || ev.Name != "vibecode_response" || ev.Payload["seq"] != float64(live) || ev.Payload["project_id"] != p ||
				ev.Payload["trace_id"] != "tr-live" || ev.Payload["status"] != "answered" || ev.Payload["session_id"] != "s1" {
				t.Fatalf("live event = %+v", ev)
			}
		})
	}
}
