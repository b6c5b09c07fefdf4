-- +goose Up

-- The ids of deleted test cases. A create sent again after an answer that
-- was lost (POST /tests' test_id) finds the test it created; once that test
-- is deleted, the same request must not bring it back: its clients were told
-- test_deleted. Pruned with the outbox's events (EVENT_RETENTION), as
-- deleted_projects.
CREATE TABLE deleted_tests (
    id uuid PRIMARY KEY,
    deleted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deleted_tests_deleted_at ON deleted_tests (deleted_at);

-- +goose Down

DROP TABLE deleted_tests;
