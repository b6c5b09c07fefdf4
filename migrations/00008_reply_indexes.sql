-- +goose NO TRANSACTION
-- +goose Up

-- Lookups by the message a row belongs to, made on every step of a turn: a
-- turn's token usage sums the replies to its message (messages.reply_to), and
-- StartTurn returns the keys of the model calls already stored for it
-- (model_calls.message_id). Without these each of them scanned its table, and
-- deleting a session or project scanned both for the cascade. Built
-- CONCURRENTLY (outside a transaction), so a deployment keeps writing
-- messages while they build; IF NOT EXISTS lets a build that was interrupted
-- run again (an invalid index left by it would need a DROP first).
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_reply_to ON messages (reply_to) WHERE reply_to IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS model_calls_message ON model_calls (message_id);

-- +goose Down

DROP INDEX CONCURRENTLY IF EXISTS model_calls_message;
DROP INDEX CONCURRENTLY IF EXISTS messages_reply_to;
