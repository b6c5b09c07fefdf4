-- +goose Up

-- A model call that failed after the model worked on it (a response that
-- ended "incomplete" or "failed") is billed but makes no message: its
-- response and usage are kept here, under a key of its own
-- (<call key>/failed/<attempt>/<response id>, which no retry reads back), so that the
-- message's token_usage counts it. Null for a call whose reply is a message
-- (messages.token_usage holds that one).
ALTER TABLE model_calls
    ADD COLUMN token_usage jsonb,
    ADD COLUMN cost_usd numeric GENERATED ALWAYS AS ((token_usage ->> 'cost_usd')::numeric) STORED;

-- +goose Down

ALTER TABLE model_calls DROP COLUMN cost_usd, DROP COLUMN token_usage;
