-- +goose NO TRANSACTION
-- +goose Up

-- Creating a project looks up the slugs taken under its base name (base,
-- base-2, base-3, …). The unique index on slug serves only the equality in
-- the default collation; this one, in byte order (text_pattern_ops), serves
-- the range of "base-…", which was a scan of every project. Built
-- CONCURRENTLY, as in 00008.
CREATE INDEX CONCURRENTLY IF NOT EXISTS projects_slug_prefix ON projects (slug text_pattern_ops);

-- +goose Down

DROP INDEX CONCURRENTLY IF EXISTS projects_slug_prefix;
