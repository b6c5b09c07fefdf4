-- +goose NO TRANSACTION
-- +goose Up

-- The runs not finished yet, which the workers' sweep (db.EndOrphaned) checks
-- every few seconds for a job that ended without them (cancelled or deleted
-- in River UI, discarded): without it the sweep scanned every run ever made.
CREATE INDEX CONCURRENTLY IF NOT EXISTS test_runs_active ON test_runs (job_id) WHERE status IN ('queued', 'running');

-- +goose Down

DROP INDEX CONCURRENTLY IF EXISTS test_runs_active;
