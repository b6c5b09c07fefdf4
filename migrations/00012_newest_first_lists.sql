-- +goose NO TRANSACTION
-- +goose Up

-- GET /projects and GET /tests/{id}/runs read their rows newest first
-- (created_at DESC, then id) and page through them by keyset (?before= and
-- ?limit=, db.Page). These indexes hold the rows in that order, so a page is
-- read from where it starts and stops at its limit; projects had no index on
-- created_at (a page was a scan and sort of every project), and
-- test_runs_test (test_id, created_at), which this one replaces, left the
-- rows after the page's start to be sorted whole before the limit applied.
-- Built CONCURRENTLY, as in 00008, and as there an interrupted build leaves
-- an invalid index that IF NOT EXISTS keeps and the planner does not use:
-- DROP it before running this again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS projects_newest ON projects (created_at DESC, id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS test_runs_test_newest ON test_runs (test_id, created_at DESC, id);
DROP INDEX CONCURRENTLY IF EXISTS test_runs_test;

-- +goose Down

CREATE INDEX CONCURRENTLY IF NOT EXISTS test_runs_test ON test_runs (test_id, created_at);
DROP INDEX CONCURRENTLY IF EXISTS test_runs_test_newest;
DROP INDEX CONCURRENTLY IF EXISTS projects_newest;
