-- +goose Up

-- The rest of what go-git's storage interface keeps for a repository, so that
-- db.GitStorage passes go-git's own storage test suite: the shallow commits,
-- the index (git's binary index format) and submodules. A submodule is a
-- repository of its own whose parent is the superproject; deleting the parent
-- deletes it with its objects and references.
ALTER TABLE git_repositories
    ADD COLUMN shallow           bytea[],
    ADD COLUMN index_file        bytea,
    ADD COLUMN index_written_at  timestamptz,
    ADD COLUMN parent_id         uuid REFERENCES git_repositories (id) ON DELETE CASCADE,
    ADD COLUMN module_name       text,
    ADD CONSTRAINT git_repositories_module CHECK ((parent_id IS NULL) = (module_name IS NULL)),
    ADD CONSTRAINT git_repositories_module_name UNIQUE (parent_id, module_name);

-- +goose Down
ALTER TABLE git_repositories
    DROP COLUMN module_name,
    DROP COLUMN parent_id,
    DROP COLUMN index_written_at,
    DROP COLUMN index_file,
    DROP COLUMN shallow;
