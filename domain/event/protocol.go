package event

import "time"

// The Socket.IO protocol's own messages, besides the outbox's events: what a
// client sends, what the server acknowledges, and the connection-level
// heartbeat and error. The realtime role sends these types, and the AsyncAPI
// document describes them.

// SubscribeRequest is the argument of subscribe and join_project (a bare
// project id string is accepted too).
type SubscribeRequest struct {
	ProjectID string `json:"project_id" description:"The project whose room to join"`
	Since     *int64 `json:"since,omitempty" description:"The last seq the client saw: every later event of the project is replayed, in order, before live delivery starts"`
}

// UnsubscribeRequest is the argument of unsubscribe and leave_project (a
// bare project id string is accepted too).
type UnsubscribeRequest struct {
	ProjectID string `json:"project_id" description:"The project whose room to leave"`
}

// SubscribeAck answers a request that carried an ack callback.
type SubscribeAck struct {
	OK        bool   `json:"ok"`
	ProjectID string `json:"project_id,omitempty"`
	Replayed  *int   `json:"replayed,omitempty" description:"subscribe with since: how many events were replayed"`
	Error     string `json:"error,omitempty" description:"Why the request was refused"`
	// RetryAfterMS comes with a refusal for a passing reason (the database
	// is unreachable): subscribe again after this long.
	RetryAfterMS *int `json:"retry_after_ms,omitempty" description:"A refusal for a passing reason (the database is unreachable): subscribe again after this many milliseconds"`
}

// Heartbeat is sent every HEARTBEAT_INTERVAL, once per room a socket is in
// (with its project_id), or once without project_id to a socket in none.
type Heartbeat struct {
	ServerTime  time.Time `json:"server_time"`
	ProjectID   string    `json:"project_id,omitempty"`
	Status      string    `json:"status" enum:"alive"`
	Connections int       `json:"connections" description:"Sockets connected to this process"`
}

// SocketError tells a client its request was refused.
type SocketError struct {
	Message   string `json:"message"`
	ProjectID string `json:"project_id,omitempty"`
}
