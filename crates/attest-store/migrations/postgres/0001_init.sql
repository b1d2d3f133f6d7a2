-- attestd schema for PostgreSQL.
--
-- Conventions shared with the SQLite schema (migrations/sqlite), so that both backends store
-- exactly the same values:
--   * times are unix seconds (BIGINT);
--   * App Attest key ids are the 32 raw bytes of SHA-256 (BYTEA, length checked);
--   * enumerations are lower-case text with a CHECK listing every allowed value;
--   * every integer is BIGINT, the type the store binds and decodes (i64).

-- One-time challenges. `value` is the primary key, so a challenge exists at most once and
-- `DELETE ... RETURNING` can hand it to exactly one caller.
CREATE TABLE challenges (
    value      TEXT   NOT NULL PRIMARY KEY,
    app_id     TEXT   NOT NULL,
    purpose    TEXT   NOT NULL CHECK (purpose IN ('attestation', 'assertion')),
    key_id     BYTEA  CHECK (key_id IS NULL OR octet_length(key_id) = 32),
    expires_at BIGINT NOT NULL
);

CREATE INDEX challenges_by_expiry ON challenges (expires_at);

-- Attested App Attest keys. The primary key makes a second attestation of the same key id fail
-- instead of overwriting the first one.
CREATE TABLE device_keys (
    key_id              BYTEA  NOT NULL PRIMARY KEY CHECK (octet_length(key_id) = 32),
    device_id           TEXT   NOT NULL,
    app_id              TEXT   NOT NULL,
    environment         TEXT   NOT NULL CHECK (environment IN ('development', 'production')),
    public_key_spki     BYTEA  NOT NULL,
    -- The authenticator data sign counter is a u32.
    counter             BIGINT NOT NULL CHECK (counter BETWEEN 0 AND 4294967295),
    receipt             BYTEA  NOT NULL,
    receipt_risk_metric BIGINT,
    created_at          BIGINT NOT NULL,
    last_seen_at        BIGINT NOT NULL,
    attestation_count   BIGINT NOT NULL CHECK (attestation_count >= 0),
    assertion_count     BIGINT NOT NULL CHECK (assertion_count >= 0),
    revoked_at          BIGINT,
    superseded_by       BYTEA  CHECK (superseded_by IS NULL OR octet_length(superseded_by) = 32),
    -- JSON text written by serde_json (TEXT, not JSONB, to keep it byte-identical to SQLite).
    metadata            TEXT   NOT NULL
);

CREATE INDEX device_keys_by_creation ON device_keys (created_at, key_id);
CREATE INDEX device_keys_by_app ON device_keys (app_id, created_at, key_id);
CREATE INDEX device_keys_by_device ON device_keys (device_id);

-- Audit log of allow/deny decisions, newest first by id.
CREATE TABLE decisions (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT NOT NULL,
    app_id     TEXT   NOT NULL,
    key_id     BYTEA  CHECK (key_id IS NULL OR octet_length(key_id) = 32),
    route      TEXT   NOT NULL,
    outcome    TEXT   NOT NULL CHECK (outcome IN ('allow', 'allow_monitored', 'deny')),
    code       TEXT   NOT NULL,
    risk_score BIGINT CHECK (risk_score IS NULL OR risk_score BETWEEN 0 AND 100)
);

CREATE INDEX decisions_by_app ON decisions (app_id, id);
CREATE INDEX decisions_by_key ON decisions (key_id, id);

-- JWT signing keys (attest-token). The private key is stored as PKCS#8 DER.
CREATE TABLE signing_keys (
    kid           TEXT   NOT NULL PRIMARY KEY,
    algorithm     TEXT   NOT NULL,
    private_pkcs8 BYTEA  NOT NULL,
    created_at    BIGINT NOT NULL,
    retired_at    BIGINT
);
