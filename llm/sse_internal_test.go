package llm

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

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
		if (err == nil) != (wantErr == nil) || len(got) != len(want) {
			t.Fatalf("%q:\nours %d events, %v\nopenai-go's %d, %v", c, len(got), err, len(want), wantErr)
		}
		for i := range want {
			if got[i].Type != want[i].Type || !bytes.Equal(got[i].Data, want[i].Data) {
				t.Fatalf("%q, event %d:\nours %q %q\nopenai-go's %q %q", c, i, got[i].Type, got[i].Data, want[i].Type, want[i].Data)
			}
		}
		if err := ours.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
