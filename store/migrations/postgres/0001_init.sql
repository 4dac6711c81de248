-- imago verifier store, version 1 (PostgreSQL). Times are Unix milliseconds.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
CREATE TABLE policies (
    id       TEXT PRIMARY KEY,          -- sha256 of body and keyrings
    body     BYTEA NOT NULL,             -- the runtime policy as given
    keyrings BYTEA NOT NULL,             -- JSON list of base64 keys
    options  BYTEA NOT NULL,             -- JSON: the list's PCR, the DSSE policy key
    created  BIGINT NOT NULL
);
CREATE TABLE nodes (
    name           TEXT PRIMARY KEY,
    policy_id      TEXT NOT NULL REFERENCES policies(id),
    allow_no_cert  BIGINT NOT NULL DEFAULT 0,
    state          TEXT NOT NULL,       -- enrolling, pass, fail, stale
    sticky         BIGINT NOT NULL DEFAULT 0,
    failures       TEXT NOT NULL DEFAULT '[]',
    ek_id          TEXT UNIQUE,         -- sha256 of the EK public area, once enrolled
    ek_public      BYTEA,
    ek_cert        BYTEA,
    ak_public      BYTEA,
    pending        TEXT,                -- JSON: the enrollment in progress
    round          BIGINT NOT NULL DEFAULT 0,
    appraisal      TEXT NOT NULL DEFAULT '{}',
    last_seen      BIGINT NOT NULL DEFAULT 0,
    created        BIGINT NOT NULL,
    updated        BIGINT NOT NULL
);
CREATE TABLE verdicts (
    node     TEXT NOT NULL,
    round    BIGINT NOT NULL,
    time     BIGINT NOT NULL,
    verdict  TEXT NOT NULL,
    entries  BIGINT NOT NULL,
    failures TEXT NOT NULL,
    PRIMARY KEY (node, round)
);
CREATE INDEX verdicts_time ON verdicts(time);
