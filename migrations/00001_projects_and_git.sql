-- +goose Up

-- A bare git repository kept in PostgreSQL: objects are content-addressed per
-- repository, references are rows moved by compare-and-swap.
CREATE TABLE git_repositories (
    id         uuid PRIMARY KEY,
    config     bytea,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE git_objects (
    repository_id uuid     NOT NULL REFERENCES git_repositories (id) ON DELETE CASCADE,
    hash          bytea    NOT NULL,
    type          smallint NOT NULL,
    size          bigint   NOT NULL,
    content       bytea    NOT NULL,
    PRIMARY KEY (repository_id, hash)
);

CREATE TABLE git_references (
    repository_id uuid NOT NULL REFERENCES git_repositories (id) ON DELETE CASCADE,
    name          text NOT NULL,
    -- the target: a hex object hash, or "ref: refs/heads/main" for a symbolic reference
    target        text NOT NULL,
    PRIMARY KEY (repository_id, name)
);

CREATE TABLE projects (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    slug          text NOT NULL UNIQUE,
    repository_id uuid NOT NULL REFERENCES git_repositories (id),
    branch        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The outbox: every event a client sees is a row written in the transaction
-- that caused it; pg_notify carries the seq to the realtime processes.
CREATE TABLE events (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id uuid        NOT NULL,
    name       text        NOT NULL,
    payload    jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_project_seq ON events (project_id, seq);
CREATE INDEX events_created_at ON events (created_at);

-- +goose Down
DROP TABLE events;
DROP TABLE projects;
DROP TABLE git_references;
DROP TABLE git_objects;
DROP TABLE git_repositories;
