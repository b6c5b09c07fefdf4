-- +goose NO TRANSACTION
-- +goose Up

-- Creating a project looks up the slugs taken under its base name (base,
-- base-2, base-3, …). The unique index on slug serves only the equality in
-- the default collation; this one, in byte order (text_pattern_ops), serves
-- the range of "base-…", which was a scan of every project. Built
-- CONCURRENTLY, as in 00008, and as there an interrupted build leaves an
-- invalid index that IF NOT EXISTS keeps and the planner does not use: DROP
-- it before running this again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS projects_slug_prefix ON projects (slug text_pattern_ops);

-- +goose Down

DROP INDEX CONCURRENTLY IF EXISTS projects_slug_prefix;
