-- attestd schema for SQLite.
--
-- Conventions shared with the PostgreSQL schema (migrations/postgres), so that both backends
-- store exactly the same values:
--   * times are unix seconds (INTEGER);
--   * App Attest key ids are the 32 raw bytes of SHA-256 (BLOB, length checked);
--   * enumerations are lower-case text with a CHECK listing every allowed value.
-- STRICT tables make SQLite reject values of the wrong type instead of coercing them.

-- One-time challenges. `value` is the primary key, so a challenge exists at most once and
-- `DELETE ... RETURNING` can hand it to exactly one caller.
CREATE TABLE challenges (
    value      TEXT    NOT NULL PRIMARY KEY,
    app_id     TEXT    NOT NULL,
    purpose    TEXT    NOT NULL CHECK (purpose IN ('attestation', 'assertion')),
    key_id     BLOB    CHECK (key_id IS NULL OR length(key_id) = 32),
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX challenges_by_expiry ON challenges (expires_at);

-- Attested App Attest keys. The primary key makes a second attestation of the same key id fail
-- instead of overwriting the first one.
CREATE TABLE device_keys (
    key_id              BLOB    NOT NULL PRIMARY KEY CHECK (length(key_id) = 32),
    device_id           TEXT    NOT NULL,
    app_id              TEXT    NOT NULL,
    environment         TEXT    NOT NULL CHECK (environment IN ('development', 'production')),
    public_key_spki     BLOB    NOT NULL,
    -- The authenticator data sign counter is a u32.
    counter             INTEGER NOT NULL CHECK (counter BETWEEN 0 AND 4294967295),
    receipt             BLOB    NOT NULL,
    receipt_risk_metric INTEGER,
    created_at          INTEGER NOT NULL,
    last_seen_at        INTEGER NOT NULL,
    attestation_count   INTEGER NOT NULL CHECK (attestation_count >= 0),
    assertion_count     INTEGER NOT NULL CHECK (assertion_count >= 0),
    revoked_at          INTEGER,
    superseded_by       BLOB    CHECK (superseded_by IS NULL OR length(superseded_by) = 32),
    metadata            TEXT    NOT NULL CHECK (json_valid(metadata))
) STRICT;

CREATE INDEX device_keys_by_creation ON device_keys (created_at, key_id);
CREATE INDEX device_keys_by_app ON device_keys (app_id, created_at, key_id);
CREATE INDEX device_keys_by_device ON device_keys (device_id);

-- Audit log of allow/deny decisions, newest first by id.
CREATE TABLE decisions (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    app_id     TEXT    NOT NULL,
    key_id     BLOB    CHECK (key_id IS NULL OR length(key_id) = 32),
    route      TEXT    NOT NULL,
    outcome    TEXT    NOT NULL CHECK (outcome IN ('allow', 'allow_monitored', 'deny')),
    code       TEXT    NOT NULL,
    risk_score INTEGER CHECK (risk_score IS NULL OR risk_score BETWEEN 0 AND 100)
) STRICT;

CREATE INDEX decisions_by_app ON decisions (app_id, id);
CREATE INDEX decisions_by_key ON decisions (key_id, id);

-- JWT signing keys (attest-token). The private key is stored as PKCS#8 DER.
CREATE TABLE signing_keys (
    kid           TEXT    NOT NULL PRIMARY KEY,
    algorithm     TEXT    NOT NULL,
    private_pkcs8 BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    retired_at    INTEGER
) STRICT;
