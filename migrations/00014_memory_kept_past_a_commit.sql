-- +goose Up

-- A commit clears the Evaluator's memory of its session (vibecode.ForgetsOnCommit)
-- but for the turns of a message still under way: its next round's Evaluator
-- reads them. Those turns are marked here instead, and go when their message
-- ends (db.EndTurn), so that the session's next message is reviewed afresh
-- since the commit; they used to stay for good.
ALTER TABLE agent_memory ADD COLUMN forget_when_ended boolean NOT NULL DEFAULT false;

-- +goose Down

ALTER TABLE agent_memory DROP COLUMN forget_when_ended;
