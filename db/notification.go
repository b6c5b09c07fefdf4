package db

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"
)

// A notification on EventsChannel announces committed events to the
// realtime processes. Its payload starts with the highest seq committed, and
// may carry events themselves, so that a reader which has delivered every
// event before them sends them without reading the outbox:
//
//	<highest seq>
//	<seq> <project_id> <name> <length of payload>
//	<payload>
//	...
//
// The first line alone is a whole notification (what every writer sent
// before, and still sends for events that do not fit). The events carried
// are a run of the announced ones in seq order, as many as fit in
// PostgreSQL's limit on a payload; a reader reads the outbox for the others.

// maxNotification is the longest payload sent: PostgreSQL refuses 8,000 bytes
// and more.
const maxNotification = 7999

// notificationSize is how many bytes e takes in a notification.
func notificationSize(e Event) int {
	return len(e.ProjectID) + len(e.Name) + len(e.Payload) + 2*20 + 5
}

// appendNotification encodes a notification of last with as many of events
// (in seq order, all above nothing delivered yet) as fit, from the first.
func appendNotification(buf []byte, last int64, events []Event) []byte {
	buf = strconv.AppendInt(buf, last, 10)
	for _, e := range events {
		if len(buf)+notificationSize(e) > maxNotification {
			break
		}
		buf = append(buf, '\n')
		buf = strconv.AppendInt(buf, e.Seq, 10)
		buf = append(buf, ' ')
		buf = append(buf, e.ProjectID...)
		buf = append(buf, ' ')
		buf = append(buf, e.Name...)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, int64(len(e.Payload)), 10)
		buf = append(buf, '\n')
		buf = append(buf, e.Payload...)
	}
	return buf
}

// NotificationSeq is the highest seq a notification announces.
func NotificationSeq(payload string) (int64, error) {
	head, _, _ := strings.Cut(payload, "\n")
	return strconv.ParseInt(head, 10, 64)
}

var errNotification = errors.New("malformed event notification")

// NotificationEvents returns the events a notification carries, in seq order.
// Their payloads share one copy of the notification's bytes.
func NotificationEvents(payload string) ([]Event, error) {
	_, rest, more := strings.Cut(payload, "\n")
	if !more {
		return nil, nil
	}
	buf := []byte(rest)
	var events []Event
	for len(buf) > 0 {
		nl := slices.Index(buf, '\n')
		if nl < 0 {
			return nil, errNotification
		}
		fields := strings.Fields(string(buf[:nl]))
		if len(fields) != 4 {
			return nil, errNotification
		}
		seq, err1 := strconv.ParseInt(fields[0], 10, 64)
		n, err2 := strconv.Atoi(fields[3])
		buf = buf[nl+1:]
		if err1 != nil || err2 != nil || n < 0 || n > len(buf) || (n < len(buf) && buf[n] != '\n') {
			return nil, errNotification
		}
		events = append(events, Event{Seq: seq, ProjectID: fields[1], Name: fields[2], Payload: buf[:n:n]})
		buf = buf[n:]
		if len(buf) > 0 {
			buf = buf[1:]
			if len(buf) == 0 {
				return nil, errNotification // a newline with no event after it
			}
		}
	}
	if !slices.IsSortedFunc(events, func(a, b Event) int { return cmp.Compare(a.Seq, b.Seq) }) {
		return nil, errNotification
	}
	return events, nil
}
