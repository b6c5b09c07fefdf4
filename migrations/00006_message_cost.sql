-- +goose Up

-- What each model call cost in US dollars, from the server's price table
-- (MODEL_PRICES) at the time of the call. The API returns it inside
-- token_usage; this column makes it summable in SQL (cost per session,
-- project or day) without reading the JSON.
ALTER TABLE messages
    ADD COLUMN cost_usd numeric GENERATED ALWAYS AS ((token_usage ->> 'cost_usd')::numeric) STORED;

-- +goose Down

ALTER TABLE messages DROP COLUMN cost_usd;
