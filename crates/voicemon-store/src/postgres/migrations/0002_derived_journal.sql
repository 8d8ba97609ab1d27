-- Derived data off the commit path (voicemon_store::derived): each group commit journals
-- what it adds to the rollups, provider minutes, call totals and workers; the instance that
-- wrote a row folds it into those tables and deletes it. `owner` names that instance, which
-- holds an advisory lock on it while it lives, so the rows of an instance that died are
-- folded by another one.
CREATE TABLE derived_journal (
    seq   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner text NOT NULL,
    body  bytea NOT NULL
);
CREATE INDEX derived_journal_by_owner ON derived_journal (owner, seq);
