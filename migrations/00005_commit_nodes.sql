-- +goose Up

-- The agents of a commit's script.py, parsed once: a commit never changes, so
-- GET /projects/{id}/nodes is a read after the first request of a commit.
-- parse_error is set (and nodes null) when the code does not parse.
CREATE TABLE commit_nodes (
    repository_id uuid  NOT NULL REFERENCES git_repositories (id) ON DELETE CASCADE,
    commit        text  NOT NULL,
    nodes         jsonb,
    parse_error   text,
    PRIMARY KEY (repository_id, commit)
);

-- +goose Down
DROP TABLE commit_nodes;
