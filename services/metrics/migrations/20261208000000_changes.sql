-- The change feed's transactional outbox (WatchChanges; qi_platform::changes): a row per
-- change, written in the change's own transaction, so a change rolled back is never
-- published and one committed always is.
--
-- `pos` orders the feed: the writing transaction's id (xid8), raised to the position of the
-- resource's previous change when that is later (a writer that waited on the resource's
-- lock commits after the change it waited for, whatever its own id). A reader hands out only
-- positions below the oldest transaction still in flight (`pg_snapshot_xmin`), so no change
-- can ever commit behind a cursor already handed out, and writers are never serialised.
CREATE TABLE metrics.changes (
    pos xid8 NOT NULL,
    id bigint GENERATED ALWAYS AS IDENTITY,
    -- The collection id in the resource's name (`projects`, `pdsaCycles`, ...).
    collection text NOT NULL,
    name text NOT NULL,
    -- created | updated | deleted | state_changed | hidden
    kind text NOT NULL,
    -- A state change's verb (`start`, `accept`, ...); empty otherwise.
    verb text NOT NULL DEFAULT '',
    -- Whose callers see it: a caller holding any of these sites; NULL for every caller.
    sites text[],
    -- For `hidden` (the resource left `sites`' view): the sites that still see it, whose
    -- callers get no such change.
    kept text[] NOT NULL DEFAULT '{}',
    -- The resource after the change, encoded as its protobuf message; NULL for a delete.
    payload bytea,
    commit_time timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (pos, id)
);

-- A resource's latest change, for the next change's position.
CREATE INDEX changes_by_name ON metrics.changes (name, pos);

-- Where the purge of changes older than QI_CHANGES_RETENTION_DAYS has reached: a cursor at
-- or before it is OUT_OF_RANGE.
CREATE TABLE metrics.changes_purged (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    pos xid8 NOT NULL,
    id bigint NOT NULL
);
