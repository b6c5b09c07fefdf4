-- +goose NO TRANSACTION
-- +goose Up

-- A commit clears the Evaluator's memory of its session (vibecode.ForgetsOnCommit)
-- but for the turns of a message still under way: its next round's Evaluator
-- reads them. Those turns are marked here instead, and go when their message
-- ends (db.EndTurn), so that the session's next message is reviewed afresh
-- since the commit; they used to stay for good.
ALTER TABLE agent_memory ADD COLUMN IF NOT EXISTS forget_when_ended boolean NOT NULL DEFAULT false;
-- Every message's end looks for its marked turns: with this index it reads
-- the few marked rows, not every turn of a long session. Built CONCURRENTLY
-- as in 00012 (an interrupted build leaves an invalid index: DROP it before
-- running this again).
CREATE INDEX CONCURRENTLY IF NOT EXISTS agent_memory_forget ON agent_memory (session_key) WHERE forget_when_ended;

-- +goose Down

DROP INDEX CONCURRENTLY IF EXISTS agent_memory_forget;
ALTER TABLE agent_memory DROP COLUMN IF EXISTS forget_when_ended;
