-- imago verifier store, version 1. Written for SQLite; PostgreSQL reads BLOB as BYTEA and INTEGER as BIGINT
-- (store/migrate.go). Times are Unix milliseconds.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE policies (
    id       TEXT PRIMARY KEY,          -- sha256 of body and keyrings
    body     BLOB NOT NULL,             -- the runtime policy as given
    keyrings BLOB NOT NULL,             -- JSON list of base64 keys
    options  BLOB NOT NULL,             -- JSON: the list's PCR, the DSSE policy key
    created  INTEGER NOT NULL
);
CREATE TABLE nodes (
    name           TEXT PRIMARY KEY,
    policy_id      TEXT NOT NULL REFERENCES policies(id),
    allow_no_cert  INTEGER NOT NULL DEFAULT 0,
    state          TEXT NOT NULL,       -- enrolling, pass, fail, stale
    sticky         INTEGER NOT NULL DEFAULT 0,
    failures       TEXT NOT NULL DEFAULT '[]',
    ek_id          TEXT UNIQUE,         -- sha256 of the EK public area, once enrolled
    ek_public      BLOB,
    ek_cert        BLOB,
    ak_public      BLOB,
    pending        TEXT,                -- JSON: the enrollment in progress
    round          INTEGER NOT NULL DEFAULT 0,
    appraisal      TEXT NOT NULL DEFAULT '{}',
    last_seen      INTEGER NOT NULL DEFAULT 0,
    created        INTEGER NOT NULL,
    updated        INTEGER NOT NULL
);
CREATE TABLE verdicts (
    node     TEXT NOT NULL,
    round    INTEGER NOT NULL,
    time     INTEGER NOT NULL,
    verdict  TEXT NOT NULL,
    entries  INTEGER NOT NULL,
    failures TEXT NOT NULL,
    PRIMARY KEY (node, round)
);
CREATE INDEX verdicts_time ON verdicts(time);
