-- imago: compatible
-- imago verifier store, version 2 (PostgreSQL): the fleet. Additive, so a
-- build that knows only version 1 may still run on it (the marker above).
-- Which replica judged each round, and when it took the node's lock.
ALTER TABLE verdicts ADD COLUMN replica TEXT NOT NULL DEFAULT '';
ALTER TABLE verdicts ADD COLUMN started BIGINT NOT NULL DEFAULT 0;
-- Room on each page for a row's next version, so that a round's update
-- of its node (no indexed column changes) is a heap-only tuple update:
-- no index entries, less WAL, less vacuum.
ALTER TABLE nodes SET (fillfactor = 50);
-- The last round's verdict (pass, fail, restart), for lists of nodes.
ALTER TABLE nodes ADD COLUMN verdict TEXT NOT NULL DEFAULT '';
-- Leases on work that must happen once (package lease). Times are the
-- database's clock, so replicas' clocks do not matter.
CREATE TABLE leases (
    name     TEXT PRIMARY KEY,
    owner    TEXT NOT NULL DEFAULT '',
    token    BIGINT NOT NULL DEFAULT 0,      -- fencing token: grows at every change of owner
    expires  TIMESTAMPTZ NOT NULL DEFAULT 'epoch',
    acquired TIMESTAMPTZ NOT NULL DEFAULT 'epoch'
);
-- Replicas: each holds the advisory lock (liveness_class, key) on a session
-- of its own while it lives, so a crashed replica's leases can be taken at
-- once; heartbeat is for people (the page).
CREATE TABLE replicas (
    name      TEXT PRIMARY KEY,
    key       INTEGER NOT NULL,
    build     TEXT NOT NULL,
    addr      TEXT NOT NULL,
    started   TIMESTAMPTZ NOT NULL,
    heartbeat TIMESTAMPTZ NOT NULL
);
