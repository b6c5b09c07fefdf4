-- +goose Up

CREATE TABLE sessions (
    id                 uuid PRIMARY KEY,
    project_id         uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    openai_session_key text NOT NULL UNIQUE,
    session_type       text NOT NULL CHECK (session_type IN ('global', 'node')),
    node_id            text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_project ON sessions (project_id, created_at);

-- Conversation messages. A user message is also the unit of work of the
-- vibecode loop: status, job_id and the final outcome live on it.
CREATE TABLE messages (
    id               uuid PRIMARY KEY,
    position         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    session_id       uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    project_id       uuid NOT NULL,
    role             text NOT NULL CHECK (role IN ('user', 'assistant')),
    agent            text NOT NULL CHECK (agent IN ('user', 'vibecoder', 'evaluator')),
    iteration        int  NOT NULL DEFAULT 0,
    content          text NOT NULL DEFAULT '',
    patch            text,
    diff_id          uuid,
    token_usage      jsonb,
    trace_id         text NOT NULL,
    -- user messages: where the loop is (queued, running, answered, diff_created, max_iterations, failed)
    status           text,
    job_id           bigint,
    base_commit      text,
    outcome          jsonb,
    -- assistant messages: the user message they answer, and the raw OpenAI responses
    reply_to         uuid REFERENCES messages (id) ON DELETE CASCADE,
    openai_response  jsonb,
    last_response_id text,
    -- makes worker writes idempotent across job retries: one row per step
    step_key         text UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_session ON messages (session_id, position);
CREATE INDEX messages_active ON messages (session_id, position) WHERE role = 'user' AND status IN ('queued', 'running');

-- What the Python SDK's SQLiteSession keeps: the input items each turn adds,
-- per session key and agent, in order.
CREATE TABLE agent_memory (
    session_key text   NOT NULL,
    agent       text   NOT NULL,
    position    bigint GENERATED ALWAYS AS IDENTITY,
    turn_key    text   NOT NULL,
    items       jsonb  NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_key, agent, position),
    UNIQUE (session_key, agent, turn_key)
);

-- Every model call, stored before it is acted on: a retried job reuses the
-- stored reply instead of calling the model again.
CREATE TABLE model_calls (
    call_key    text PRIMARY KEY,
    message_id  uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    response    jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE diffs (
    id                  uuid PRIMARY KEY,
    project_id          uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    session_id          uuid REFERENCES sessions (id) ON DELETE SET NULL,
    message_id          uuid,
    base_commit         text NOT NULL,
    target_branch       text NOT NULL,
    diff_content        text NOT NULL,
    status              text NOT NULL CHECK (status IN ('evaluator_approved', 'human_approved', 'human_rejected', 'committed')),
    vibecoder_prompt    text NOT NULL DEFAULT '',
    evaluator_reasoning text NOT NULL DEFAULT '',
    commit_message      text NOT NULL DEFAULT '',
    human_feedback      text,
    committed_sha       text,
    test_results        jsonb,
    tests_run_at        timestamptz,
    step_key            text UNIQUE,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX diffs_project ON diffs (project_id, created_at);
CREATE INDEX diffs_session ON diffs (session_id, created_at);

-- +goose Down
DROP TABLE diffs;
DROP TABLE model_calls;
DROP TABLE agent_memory;
DROP TABLE messages;
DROP TABLE sessions;
