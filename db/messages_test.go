package db_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
)

// GetMessage returns the raw response of an assistant message from its model
// call, and for a row written before replies were stored once, from the copy
// the row holds.
func TestGetMessageReturnsTheRawResponse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	p, err := store.CreateProject(ctx, domain.NewProject{Name: "raw responses"})
	if err != nil {
		t.Fatal(err)
	}
	sess, _, err := store.CreateSession(ctx, p.ID, domain.NewSession{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	user, stored, copied := uuid.New(), uuid.New(), uuid.New()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO messages (id, session_id, project_id, role, agent, content, trace_id, status) VALUES ($1, $2, $3, 'user', 'user', 'hi', 't', 'answered')`,
			[]any{user, sess.ID, p.ID}},
		{`INSERT INTO messages (id, session_id, project_id, role, agent, content, trace_id, reply_to, step_key) VALUES ($1, $2, $3, 'assistant', 'vibecoder', 'a', 't', $4, 'call/1')`,
			[]any{stored, sess.ID, p.ID, user}},
		{`INSERT INTO model_calls (call_key, message_id, response) VALUES ('call/1', $1, '{"id": "resp_1", "object": "response"}')`,
			[]any{user}},
		{`INSERT INTO messages (id, session_id, project_id, role, agent, content, trace_id, reply_to, step_key, openai_response) VALUES ($1, $2, $3, 'assistant', 'vibecoder', 'b', 't', $4, 'call/old', '[{"id": "resp_0", "object": "response"}]')`,
			[]any{copied, sess.ID, p.ID, user}},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[uuid.UUID]string{
		stored: `[{"id":"resp_1","object":"response"}]`,
		copied: `[{"id":"resp_0","object":"response"}]`,
		user:   `[]`,
	} {
		m, err := store.GetMessage(ctx, id.String())
		if err != nil {
			t.Fatal(err)
		}
		var got any // compacted, and its keys in order, as want's
		if err := json.Unmarshal(m.OpenAIResponse, &got); err != nil {
			t.Fatalf("%s: %s: %v", m.Content, m.OpenAIResponse, err)
		}
		if g, _ := json.Marshal(got); string(g) != want {
			t.Errorf("message %q: openai_response %s, want %s", m.Content, m.OpenAIResponse, want)
		}
	}
}
