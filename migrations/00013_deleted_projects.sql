-- +goose Up

-- Where a deleted project stood in GET /projects' order: a client paging
-- with ?before=<the last project it was shown> goes on from there after
-- that project is deleted (the frontend's "delete, then scroll"). Pruned
-- with the outbox's events (EVENT_RETENTION), after which such a cursor is a
-- 400, as a `since` older than the retention replays what is left.
CREATE TABLE deleted_projects (
    id uuid PRIMARY KEY,
    created_at timestamptz NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deleted_projects_deleted_at ON deleted_projects (deleted_at);

-- +goose Down

DROP TABLE deleted_projects;
