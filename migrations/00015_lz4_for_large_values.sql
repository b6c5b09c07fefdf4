-- +goose Up

-- PostgreSQL compresses a value of more than about 2 KB as it stores it, with
-- pglz unless the column says otherwise. The columns whose values pass that on
-- the service's paths (a model call's raw response, at every call; a commit's
-- files and trees; the agents parsed from a commit) use lz4: a 3 KB response
-- stored in 12 us instead of 29, a 147 KB file in 70-90 us instead of 590
-- (db's BenchmarkLargeValues), for values a fifth larger
-- (docs/benchmarks.md, twenty-fifth round). Only values written from now on;
-- those stored before stay pglz and read alike.
-- A server built without lz4 (or older than PostgreSQL 14) keeps pglz.
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE 'ALTER TABLE model_calls ALTER COLUMN response SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE git_objects ALTER COLUMN content SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE commit_nodes ALTER COLUMN nodes SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'large values stay compressed with pglz: %', SQLERRM;
END
$$;
-- +goose StatementEnd

-- +goose Down

-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE 'ALTER TABLE model_calls ALTER COLUMN response SET COMPRESSION DEFAULT';
    EXECUTE 'ALTER TABLE git_objects ALTER COLUMN content SET COMPRESSION DEFAULT';
    EXECUTE 'ALTER TABLE commit_nodes ALTER COLUMN nodes SET COMPRESSION DEFAULT';
EXCEPTION WHEN syntax_error THEN
    NULL;
END
$$;
-- +goose StatementEnd
