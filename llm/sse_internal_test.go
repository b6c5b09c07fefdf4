package llm

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/openai/openai-go/v3/packages/ssestream"
)

// sseEvents reads every event of body with dec, copying each one's data.
func sseEvents(dec ssestream.Decoder) (events []ssestream.Event, err error) {
	for dec.Next() {
		e := dec.Event()
		events = append(events, ssestream.Event{Type: e.Type, Data: bytes.Clone(e.Data)})
	}
	return events, dec.Err()
}

func openaiDecoder(body string) ssestream.Decoder {
	return ssestream.NewDecoder(&http.Response{
		Header: http.Header{"Content-Type": []string{"text/event-stream"}},
		Body:   io.NopCloser(strings.NewReader(body)),
	})
}

// sseReader reads the same events as openai-go's decoder from the same
// bytes: written cases, then random streams made of the pieces that matter
// (line ends, comments, other fields, events without data, lines longer than
// the read buffer, a last event without its empty line).
func TestSSEReaderReadsWhatOpenAIsDecoderReads(t *testing.T) {
	long := strings.Repeat("x", 9<<10)
	cases := []string{
		"",
		"event: response.created\ndata: {\"a\":1}\n\n",
		"event: a\r\ndata: one\r\ndata: two\r\n\r\n",
		": a comment\nid: 7\nretry: 100\ndata:no space\n\n",
		"event: empty\n\nevent: x\ndata: y\n\n",
		"\n\n\ndata: after blank lines\n\n",
		"data: " + long + "\n\ndata: short\n\n",
		"data: the last event has no empty line\n",
		"data: a\n\ndata: b",
		"event:colon:in:value\ndata::leading colon\n\n",
		"data: [DONE]\n\n",
	}
	pieces := []string{"event: response.output_text.delta", "data: {\"delta\":\"hi\"}", "data: " + long, ": ping", "id: 1",
		"", "", "", "data:", "event:", "data: \xff\xfe", "data: x\r"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
			if rng.IntN(4) == 0 {
				b.WriteString("\r\n")
			} else {
				b.WriteString("\n")
			}
		}
		cases = append(cases, b.String())
	}
	for _, c := range cases {
		want, wantErr := sseEvents(openaiDecoder(c))
		ours := newSSEReader(io.NopCloser(strings.NewReader(c)))
		got, err := sseEvents(ours)
		if (err == nil) != (wantErr == nil) || len(got) != len(want) || errors.Is(err, bufio.ErrTooLong) != errors.Is(wantErr, bufio.ErrTooLong) {
			t.Fatalf("%.200q (%d bytes):\nours %d events, %v\nopenai-go's %d, %v", c, len(c), len(got), err, len(want), wantErr)
		}
		for i := range want {
			if got[i].Type != want[i].Type || !bytes.Equal(got[i].Data, want[i].Data) {
				t.Fatalf("%.200q, event %d:\nours %.200q %.200q\nopenai-go's %.200q %.200q", c, i, got[i].Type, got[i].Data, want[i].Type, want[i].Data)
			}
		}
		if err := ours.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A body that fails in the middle of an event ends the stream with its error
// and without the event, as openai-go's decoder does.
func TestSSEReaderStopsOnABrokenBody(t *testing.T) {
	broken := errors.New("connection reset")
	body := func() io.ReadCloser {
		return io.NopCloser(io.MultiReader(strings.NewReader("data: one\n\ndata: tw"), iotest.ErrReader(broken)))
	}
	want, wantErr := sseEvents(ssestream.NewDecoder(&http.Response{
		Header: http.Header{"Content-Type": []string{"text/event-stream"}}, Body: body()}))
	got, err := sseEvents(newSSEReader(body()))
	if !errors.Is(err, broken) || !errors.Is(wantErr, broken) || len(got) != 1 || len(want) != 1 || string(got[0].Data) != "one\n" {
		t.Fatalf("ours %q, %v; openai-go's %q, %v", got, err, want, wantErr)
	}
}

// Lines at the length limit end the stream with bufio.ErrTooLong exactly when
// bufio.Scanner, which openai-go's decoder reads lines with, does: the limit
// lowered to 16 KB for both.
func TestSSEReaderLineLimitIsTheScanners(t *testing.T) {
	defer func(n int) { maxSSELine = n }(maxSSELine)
	maxSSELine = 16 << 10
	for _, n := range []int{maxSSELine - 2, maxSSELine - 1, maxSSELine, maxSSELine + 1, maxSSELine + 4096} {
		line := "data: " + strings.Repeat("y", n-len("data: ")-1)
		for _, c := range []string{line + "\n\n", line + "\r\n\r\n", line + "y", line, line + "y\n\n"} {
			scanner := bufio.NewScanner(strings.NewReader(c))
			scanner.Buffer(nil, maxSSELine)
			for scanner.Scan() {
			}
			_, err := sseEvents(newSSEReader(io.NopCloser(strings.NewReader(c))))
			if errors.Is(err, bufio.ErrTooLong) != errors.Is(scanner.Err(), bufio.ErrTooLong) {
				t.Errorf("a line of %d bytes (%q at its end): ours %v, the scanner's %v", len(c), c[len(c)-min(len(c), 4):], err, scanner.Err())
			}
		}
	}
}
