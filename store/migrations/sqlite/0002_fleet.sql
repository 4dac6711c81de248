-- imago: compatible
-- imago verifier store, version 2 (SQLite): the fleet's columns. Additive,
-- so a build that knows only version 1 may still run on it (the marker
-- above). A SQLite store has one process: its leases are local (package
-- lease), so it has no lease or replica tables.
ALTER TABLE verdicts ADD COLUMN replica TEXT NOT NULL DEFAULT '';
ALTER TABLE verdicts ADD COLUMN started INTEGER NOT NULL DEFAULT 0;
CREATE INDEX nodes_updated ON nodes(updated);
-- The last round's verdict (pass, fail, restart), for lists of nodes.
ALTER TABLE nodes ADD COLUMN verdict TEXT NOT NULL DEFAULT '';
