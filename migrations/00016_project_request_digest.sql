-- +goose Up

-- A client may choose a new project's id (POST /projects' project_id), so
-- that the same request sent again, after an answer that was lost, finds the
-- project instead of creating a second one. The digest of what created the
-- project (its name and first code, db.createDigest) tells such a repeat from
-- another request that reuses the id: the first is answered the project, the
-- second 409. NULL for projects created before it.
ALTER TABLE projects ADD COLUMN request_digest bytea;

-- +goose Down

ALTER TABLE projects DROP COLUMN request_digest;
