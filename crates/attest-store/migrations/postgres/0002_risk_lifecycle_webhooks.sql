-- Device intelligence, the key lifecycle, explained decisions and the webhook outbox
-- (PostgreSQL). Same conventions as 0001; mirrored for SQLite in migrations/sqlite.

-- Who a key was attested for and from where, its counter anomalies, and why it stopped being
-- accepted. `revocation_reason` is NULL for keys revoked before this migration (read as an
-- administrative revocation).
ALTER TABLE device_keys ADD COLUMN user_id TEXT;
ALTER TABLE device_keys ADD COLUMN client_ip TEXT;
ALTER TABLE device_keys ADD COLUMN counter_regressions BIGINT NOT NULL DEFAULT 0
    CHECK (counter_regressions >= 0);
ALTER TABLE device_keys ADD COLUMN replays BIGINT NOT NULL DEFAULT 0 CHECK (replays >= 0);
ALTER TABLE device_keys ADD COLUMN revocation_reason TEXT
    CHECK (revocation_reason IS NULL OR revocation_reason IN ('revoked', 'superseded', 'expired'));

CREATE INDEX device_keys_by_app_device ON device_keys (app_id, device_id, created_at);
CREATE INDEX device_keys_by_app_user ON device_keys (app_id, user_id, created_at);
CREATE INDEX device_keys_by_app_ip ON device_keys (app_id, client_ip, created_at);
CREATE INDEX device_keys_by_last_seen ON device_keys (last_seen_at) WHERE revoked_at IS NULL;

-- What the policy made of each request: the mode, every failed rule, what enforcing would do,
-- and the risk factors with their evidence.
ALTER TABLE decisions ADD COLUMN kind TEXT CHECK (kind IS NULL OR kind IN ('attestation', 'assertion'));
ALTER TABLE decisions ADD COLUMN device_id TEXT;
ALTER TABLE decisions ADD COLUMN user_id TEXT;
ALTER TABLE decisions ADD COLUMN client_ip TEXT;
ALTER TABLE decisions ADD COLUMN environment TEXT
    CHECK (environment IS NULL OR environment IN ('development', 'production'));
ALTER TABLE decisions ADD COLUMN mode TEXT CHECK (mode IS NULL OR mode IN ('off', 'monitor', 'enforce'));
ALTER TABLE decisions ADD COLUMN would_deny BIGINT NOT NULL DEFAULT 0 CHECK (would_deny IN (0, 1));
-- JSON text written by serde_json (TEXT, not JSONB, to keep it byte-identical to SQLite).
ALTER TABLE decisions ADD COLUMN reasons TEXT NOT NULL DEFAULT '[]';
ALTER TABLE decisions ADD COLUMN factors TEXT NOT NULL DEFAULT '[]';

CREATE INDEX decisions_by_app_time ON decisions (app_id, at);
CREATE INDEX decisions_by_device ON decisions (device_id, at);
CREATE INDEX decisions_by_ip ON decisions (client_ip, at);

-- One row per failed rule of a decision, so that decisions can be counted by reason in SQL.
CREATE TABLE decision_reasons (
    decision_id BIGINT NOT NULL REFERENCES decisions (id),
    code        TEXT   NOT NULL,
    PRIMARY KEY (decision_id, code)
);

CREATE INDEX decision_reasons_by_code ON decision_reasons (code, decision_id);

-- The webhook outbox: one row per event and endpoint, kept as the delivery log.
CREATE TABLE webhook_deliveries (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         TEXT   NOT NULL,
    event            TEXT   NOT NULL,
    endpoint         TEXT   NOT NULL,
    payload          TEXT   NOT NULL,
    status           TEXT   NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         BIGINT NOT NULL CHECK (attempts >= 0),
    next_attempt_at  BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    last_attempt_at  BIGINT,
    last_http_status BIGINT CHECK (last_http_status IS NULL OR last_http_status BETWEEN 100 AND 599),
    last_error       TEXT,
    delivered_at     BIGINT,
    UNIQUE (event_id, endpoint)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at, id);
