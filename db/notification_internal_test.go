package db

import (
	"strings"
	"testing"
)

// A notification carries the highest seq and the events that fit, and a
// reader gets back exactly what was written; anything else is refused, so
// the hub reads the outbox instead of sending a half-parsed event.
func TestNotificationRoundTrip(t *testing.T) {
	project := "0b9f6f7e-3c1a-4d2e-9f00-3a7d1c2b4e5f"
	events := []Event{
		{Seq: 41, ProjectID: project, Name: "job_status", Payload: []byte(`{"status":"running"}`)},
		{Seq: 42, ProjectID: project, Name: "vibecode_delta", Payload: []byte(`{"delta":"a\nb"}`)},
		{Seq: 43, ProjectID: project, Name: "big", Payload: []byte(`{"pad":"` + strings.Repeat("x", maxNotification) + `"}`)},
		{Seq: 44, ProjectID: project, Name: "after_big", Payload: []byte(`{}`)},
	}
	payload := string(appendNotification(nil, 44, events))
	if len(payload) > maxNotification {
		t.Fatalf("notification of %d bytes, PostgreSQL takes at most %d", len(payload), maxNotification)
	}
	seq, err := NotificationSeq(payload)
	if err != nil || seq != 44 {
		t.Fatalf("NotificationSeq = %d, %v; want 44", seq, err)
	}
	got, err := NotificationEvents(payload)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d events carried, want the 2 before the one that does not fit", len(got))
	}
	for i, e := range got {
		w := events[i]
		if e.Seq != w.Seq || e.ProjectID != w.ProjectID || e.Name != w.Name || string(e.Payload) != string(w.Payload) {
			t.Fatalf("event %d = %+v, want %+v", i, e, w)
		}
	}
	if got, err := NotificationEvents("17"); err != nil || got != nil {
		t.Fatalf("a seq alone carries no events, got %v, %v", got, err)
	}
}

func TestNotificationEventsRefusesMalformed(t *testing.T) {
	for name, payload := range map[string]string{
		"no payload line":     "5\n5 p e 2",
		"short payload":       "5\n5 p e 10\n{}",
		"three fields":        "5\n5 p 2\n{}",
		"bad seq":             "5\nx p e 2\n{}",
		"negative length":     "5\n5 p e -1\n{}",
		"no newline after":    "5\n5 p e 1\n{}",
		"trailing newline":    "5\n5 p e 2\n{}\n",
		"out of order":        "6\n6 p e 2\n{}\n5 p e 2\n{}",
		"length past the end": "5\n5 p e 3\n{}",
	} {
		if got, err := NotificationEvents(payload); err == nil {
			t.Errorf("%s: %q parsed as %v", name, payload, got)
		}
	}
	if _, err := NotificationSeq("not a seq"); err == nil {
		t.Error("NotificationSeq accepted a payload that is not a seq")
	}
}
