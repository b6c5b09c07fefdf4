-- +goose Up

-- Lookups by the message a row belongs to, made on every step of a turn: a
-- turn's token usage sums the replies to its message (messages.reply_to), and
-- StartTurn returns the keys of the model calls already stored for it
-- (model_calls.message_id). Without these each of them scanned its table, and
-- deleting a session or project scanned both for the cascade.
CREATE INDEX messages_reply_to ON messages (reply_to) WHERE reply_to IS NOT NULL;
CREATE INDEX model_calls_message ON model_calls (message_id);

-- +goose Down

DROP INDEX model_calls_message;
DROP INDEX messages_reply_to;
