-- no-transaction
-- Keys carry their platform, and a sign counter only when their platform has one: App Attest
-- keys count their signatures, Android Key Attestation keys do not (a spent challenge is their
-- replay defence). Keys stored before this migration are App Attest keys.
--
-- SQLite cannot drop a NOT NULL constraint in place, so the table is rebuilt as its
-- documentation prescribes (https://www.sqlite.org/lang_altertable.html#otheralter): outside
-- sqlx's transaction (first line) so that foreign keys can be turned off, since dropping the
-- old table must not cascade into device_key_receipts and receipt_refresh; inside one
-- transaction of its own, so that the rebuild happens whole or not at all. Rowids are copied:
-- they order keys for settle_lineage (migration 0103).
PRAGMA foreign_keys = OFF;

BEGIN IMMEDIATE;

CREATE TABLE device_keys_0110 (
    key_id              BLOB    NOT NULL PRIMARY KEY CHECK (length(key_id) = 32),
    device_id           TEXT    NOT NULL,
    app_id              TEXT    NOT NULL,
    environment         TEXT    NOT NULL CHECK (environment IN ('development', 'production')),
    public_key_spki     BLOB    NOT NULL,
    -- App Attest's authenticator data sign counter, a u32; NULL on platforms without one.
    counter             INTEGER CHECK (counter BETWEEN 0 AND 4294967295),
    receipt_risk_metric INTEGER,
    created_at          INTEGER NOT NULL,
    last_seen_at        INTEGER NOT NULL,
    attestation_count   INTEGER NOT NULL CHECK (attestation_count >= 0),
    assertion_count     INTEGER NOT NULL CHECK (assertion_count >= 0),
    revoked_at          INTEGER,
    superseded_by       BLOB    CHECK (superseded_by IS NULL OR length(superseded_by) = 32),
    -- The platform's typed evidence (attest_types::Evidence) as JSON.
    metadata            TEXT    NOT NULL CHECK (json_valid(metadata)),
    user_id             TEXT,
    client_ip           TEXT,
    counter_regressions INTEGER NOT NULL DEFAULT 0 CHECK (counter_regressions >= 0),
    replays             INTEGER NOT NULL DEFAULT 0 CHECK (replays >= 0),
    revocation_reason   TEXT
        CHECK (revocation_reason IS NULL OR revocation_reason IN ('revoked', 'superseded', 'expired')),
    platform            TEXT    NOT NULL CHECK (platform IN ('ios', 'android')),
    CHECK ((counter IS NOT NULL) = (platform = 'ios'))
) STRICT;

INSERT INTO device_keys_0110 (rowid, key_id, device_id, app_id, environment, public_key_spki,
    counter, receipt_risk_metric, created_at, last_seen_at, attestation_count, assertion_count,
    revoked_at, superseded_by, metadata, user_id, client_ip, counter_regressions, replays,
    revocation_reason, platform)
SELECT rowid, key_id, device_id, app_id, environment, public_key_spki, counter,
    receipt_risk_metric, created_at, last_seen_at, attestation_count, assertion_count,
    revoked_at, superseded_by, metadata, user_id, client_ip, counter_regressions, replays,
    revocation_reason, 'ios'
FROM device_keys ORDER BY rowid;

DROP TABLE device_keys;

ALTER TABLE device_keys_0110 RENAME TO device_keys;

CREATE INDEX device_keys_by_creation ON device_keys (created_at, key_id);
CREATE INDEX device_keys_by_app ON device_keys (app_id, created_at, key_id);
CREATE INDEX device_keys_by_device ON device_keys (device_id);
CREATE INDEX device_keys_by_app_device ON device_keys (app_id, device_id, created_at);
CREATE INDEX device_keys_by_app_user ON device_keys (app_id, user_id, created_at);
CREATE INDEX device_keys_by_app_ip ON device_keys (app_id, client_ip, created_at);
CREATE INDEX device_keys_by_last_seen ON device_keys (last_seen_at) WHERE revoked_at IS NULL;
CREATE INDEX device_keys_active_lineage ON device_keys (app_id, device_id, environment)
    WHERE revoked_at IS NULL;

COMMIT;

PRAGMA foreign_keys = ON;
