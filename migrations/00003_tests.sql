-- +goose Up

CREATE TABLE test_cases (
    id              uuid PRIMARY KEY,
    project_id      uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name            text NOT NULL,
    code            text NOT NULL,
    timeout_seconds int  NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX test_cases_project ON test_cases (project_id, created_at);

CREATE TABLE test_runs (
    id          uuid PRIMARY KEY,
    test_id     uuid NOT NULL REFERENCES test_cases (id) ON DELETE CASCADE,
    project_id  uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    diff_id     uuid REFERENCES diffs (id) ON DELETE SET NULL,
    -- runs started together by POST /diffs/{id}/test
    batch_id    uuid,
    commit      text NOT NULL,
    status      text NOT NULL CHECK (status IN ('queued', 'running', 'passed', 'failed', 'timeout', 'error')),
    stdout      text NOT NULL DEFAULT '',
    stderr      text NOT NULL DEFAULT '',
    exit_code   int,
    duration_ms bigint,
    error       text,
    job_id      bigint,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX test_runs_test ON test_runs (test_id, created_at);
CREATE INDEX test_runs_batch ON test_runs (batch_id) WHERE batch_id IS NOT NULL;

-- +goose Down
DROP TABLE test_runs;
DROP TABLE test_cases;
