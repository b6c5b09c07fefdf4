package llm

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/openai/openai-go/v3/packages/ssestream"
)

// sseReader reads a Responses stream's server-sent events as openai-go's
// ssestream decoder does: lines end in "\n" or "\r\n"; an event ends at an
// empty line; its data lines are joined, each followed by "\n"; a line
// starting with ":" and fields other than event and data are skipped; an
// event without data, or one still open when the stream ends, is dropped.
//
// It reuses a pooled read buffer and one data buffer for all of a stream's
// events, where the decoder grew a scanner buffer per response and allocated
// every event's data: about an eighth of the bytes a text message allocated
// under the pipeline load. An event's Data is valid until the next Next.
type sseReader struct {
	rc   io.ReadCloser
	br   *bufio.Reader
	line []byte // a line longer than the read buffer, gathered
	data []byte
	evt  ssestream.Event
	err  error
}

// maxSSELine is the longest line read, as openai-go's decoder allows (a
// variable for the tests).
var maxSSELine = bufio.MaxScanTokenSize << 9

// sseBuffers are the read buffers of finished streams.
var sseBuffers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

func newSSEReader(rc io.ReadCloser) *sseReader {
	br := sseBuffers.Get().(*bufio.Reader)
	br.Reset(rc)
	return &sseReader{rc: rc, br: br}
}

var _ ssestream.Decoder = (*sseReader)(nil)

func (s *sseReader) Next() bool {
	if s.err != nil || s.br == nil {
		return false
	}
	event := ""
	s.data = s.data[:0]
	for {
		line, err := s.readLine()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.err = err
			}
			return false
		}
		if len(line) == 0 {
			if len(s.data) == 0 {
				event = ""
				continue
			}
			s.evt = ssestream.Event{Type: event, Data: s.data}
			return true
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(name) {
		case "event":
			event = eventType(value)
		case "data":
			s.data = append(s.data, value...)
			s.data = append(s.data, '\n')
		}
	}
}

// readLine returns the next line without its end, valid until the next
// call. A last line without an end is returned as a line, as bufio.Scanner
// does.
func (s *sseReader) readLine() ([]byte, error) {
	line, err := s.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		s.line = append(s.line[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(s.line) > maxSSELine {
				return nil, bufio.ErrTooLong
			}
			line, err = s.br.ReadSlice('\n')
			s.line = append(s.line, line...)
		}
		line = s.line
		// bufio.Scanner's limit: a line and its end fit in maxSSELine
		// bytes, a last line without an end in one byte less.
		if len(line) > maxSSELine || len(line) == maxSSELine && line[len(line)-1] != '\n' {
			return nil, bufio.ErrTooLong
		}
	}
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), nil
}

func (s *sseReader) Event() ssestream.Event { return s.evt }

func (s *sseReader) Err() error { return s.err }

// Close closes the stream and gives the read buffer back.
func (s *sseReader) Close() error {
	if s.br != nil {
		s.br.Reset(nil)
		sseBuffers.Put(s.br)
		s.br = nil
	}
	if s.rc == nil {
		return nil
	}
	return s.rc.Close()
}

// finish ends a stream whose final event has been read: the rest of its
// body is read to its end in the background, then closed, and done called
// (Close does nothing more than give the buffer back).
//
// Over HTTP/1.1 the body's end (its last chunk) comes after the final
// event, often in a later read, and net/http closes the connection of a
// body closed before its end instead of keeping it for the next call: a
// third of the pipeline load's calls opened a new connection, and across a
// network each is a TCP and TLS handshake. Reading the end before returning
// would make the caller wait for it. (Over HTTP/2 a body closed early
// resets its stream; read to its end, it does not.)
func (s *sseReader) finish(done func()) {
	rc := s.rc
	s.rc = nil
	go func() {
		drainBody(rc)
		done()
	}()
}

// drainMax and drainWait bound what finish reads after a final event: a
// body's end is a few bytes (and "data: [DONE]" from some gateways), sent
// at once.
const (
	drainMax  = 4 << 10
	drainWait = 5 * time.Second
)

// drainBody reads rc to its end, for up to drainMax bytes and drainWait,
// and closes it.
func drainBody(rc io.ReadCloser) {
	t := time.AfterFunc(drainWait, func() { _ = rc.Close() })
	_, _ = io.CopyN(io.Discard, rc, drainMax)
	t.Stop()
	_ = rc.Close()
}

// eventTypes are the Responses stream's event names, kept as strings so that
// naming an event allocates nothing (a reply is dozens of events).
var eventTypes = func() map[string]string {
	m := map[string]string{}
	for _, t := range []string{
		"response.created", "response.in_progress", "response.completed", "response.incomplete", "response.failed",
		"response.output_item.added", "response.output_item.done", "response.content_part.added", "response.content_part.done",
		"response.output_text.delta", "response.output_text.done", "response.refusal.delta", "response.refusal.done",
		"response.function_call_arguments.delta", "response.function_call_arguments.done",
		"response.reasoning_summary_part.added", "response.reasoning_summary_part.done",
		"response.reasoning_summary_text.delta", "response.reasoning_summary_text.done", "error",
	} {
		m[t] = t
	}
	return m
}()

func eventType(name []byte) string {
	if t, ok := eventTypes[string(name)]; ok {
		return t
	}
	return string(name)
}
