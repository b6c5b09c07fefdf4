package realtime

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// request is a client's subscribe or unsubscribe, checked.
type request struct {
	project    string // canonical UUID
	rawProject string // what the client sent, shortened, when it was a string
	since      int64  // -1: no replay
}

// maxEcho bounds how much of a bad project id is sent back in an error.
const maxEcho = 64

// parseRequest reads `{project_id, since?}` or a bare project id string, and
// takes the client's ack callback off the end of args when there is one.
// Anything else is an error meant for the client.
func parseRequest(args []any) (req request, ack socket.Ack, err error) {
	req.since = -1
	if n := len(args); n > 0 {
		if a, ok := args[n-1].(socket.Ack); ok {
			ack, args = a, args[:n-1]
		}
	}
	if len(args) == 0 || args[0] == nil {
		return req, ack, errors.New("project_id is required: send {project_id, since?} or the project id as a string")
	}
	var rawID any
	switch v := args[0].(type) {
	case string:
		rawID = v
	case map[string]any:
		rawID = v["project_id"]
		if s, ok := v["since"]; ok && s != nil {
			if req.since, err = parseSince(s); err != nil {
				if str, ok := rawID.(string); ok {
					req.rawProject = shorten(str)
				}
				return req, ack, err
			}
		}
	default:
		return req, ack, fmt.Errorf("the payload must be {project_id, since?} or the project id as a string, got a JSON %s", jsonKind(v))
	}
	str, ok := rawID.(string)
	switch {
	case rawID == nil:
		return req, ack, errors.New("project_id is required")
	case !ok:
		return req, ack, fmt.Errorf("project_id must be a UUID string, got a JSON %s", jsonKind(rawID))
	}
	req.rawProject = shorten(str)
	id, perr := uuid.Parse(strings.TrimSpace(str))
	if perr != nil || len(str) > maxEcho {
		return req, ack, errors.New("project_id is not a valid UUID")
	}
	req.project = id.String()
	req.rawProject = req.project
	return req, ack, nil
}

// parseSince accepts a non-negative integer, as a JSON number or a string
// (query parameters are strings). One past the seqs PostgreSQL can hand out
// (a bigint) is refused as a since from another history is (sinceBeyond):
// it is an integer, just not a seq this server wrote.
func parseSince(v any) (int64, error) {
	bad := errors.New("since must be a non-negative integer: the last seq the client saw")
	switch s := v.(type) {
	case float64:
		switch {
		case s < 0 || s != math.Trunc(s):
			return -1, bad
		case s >= math.MaxInt64: // 2^63: float64 has no MaxInt64 itself
			return -1, errors.New(sinceBeyond(strconv.FormatFloat(s, 'f', -1, 64), -1))
		}
		return int64(s), nil
	case string:
		text := strings.TrimSpace(s)
		n, err := strconv.ParseInt(text, 10, 64)
		if errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(text, "-") {
			return -1, errors.New(sinceBeyond(shorten(text), -1))
		}
		if err != nil || n < 0 {
			return -1, bad
		}
		return n, nil
	}
	return -1, bad
}

// sinceBeyond refuses a since above every seq the outbox handed out
// (issued, or -1 when the since is past any seq there can be). Such a
// since comes from before a reset or a restore of the database; taken as it
// is, every event until the seqs pass it again would look already seen to
// the client.
func sinceBeyond(since string, issued int64) string {
	last := ""
	if issued >= 0 {
		last = fmt.Sprintf(" (%d)", issued)
	}
	return fmt.Sprintf("since %s is beyond the last event this server wrote%s: its history was reset or restored; "+
		"load the project again and subscribe with since from the X-Event-Seq header of GET /projects/{id}", since, last)
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64, int, int64:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("value (%T)", v)
}

func shorten(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	return strings.ToValidUTF8(s[:maxEcho], "") + "…"
}

// queryValue reads one handshake query parameter.
func queryValue(q map[string]any, key string) string {
	switch v := q[key].(type) {
	case string:
		return v
	case []string:
		if len(v) > 0 {
			return v[0]
		}
	case []any:
		if len(v) > 0 {
			s, _ := v[0].(string)
			return s
		}
	}
	return ""
}

// retryAfterMS is what a subscribe refused for a passing reason (the
// database is unreachable) tells the client to wait before it tries again.
const retryAfterMS = 1000

// transient reports whether a refusal is worth retrying as it is: the ones
// that end in "retry shortly" or "subscribe again".
func transient(msg string) bool {
	return strings.HasSuffix(msg, "retry shortly") || strings.HasSuffix(msg, "subscribe again")
}
