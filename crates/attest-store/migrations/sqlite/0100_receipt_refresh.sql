-- Receipt refresh (Apple's fraud risk metric) for SQLite; mirrored in migrations/postgres.
-- Same conventions as 0001: unix seconds, 32-byte key ids, STRICT tables.
--
-- One row per device key whose receipt attestd refreshes. The receipt itself and its risk
-- metric stay in device_keys (receipt, receipt_risk_metric): this table only holds the
-- schedule, the outcome of the last exchange with Apple and the lease of the instance working
-- on the key. Rows go with their key (ON DELETE CASCADE).
CREATE TABLE receipt_refresh (
    key_id             BLOB    NOT NULL PRIMARY KEY
                               REFERENCES device_keys (key_id) ON DELETE CASCADE,
    -- When the key is next due; NULL once refreshing stopped for good (revoked key, receipt
    -- that cannot be sent).
    next_refresh_at    INTEGER,
    -- Failed exchanges since the last one Apple answered with a receipt or 304.
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_attempt_at    INTEGER,
    -- `refreshed`, `not_modified`, or the error code of the last attempt (`apple_no_data`, ...).
    last_status        TEXT,
    -- Receipts obtained so far, and when the last one arrived.
    refreshes          INTEGER NOT NULL DEFAULT 0 CHECK (refreshes >= 0),
    last_refreshed_at  INTEGER,
    -- Fields 12, 19 and 21 of the receipt now in device_keys.receipt: a receipt is never
    -- replaced by one created earlier.
    receipt_created_at INTEGER,
    receipt_not_before INTEGER,
    receipt_expires_at INTEGER,
    -- The risk metric of that receipt and when it was received (device_keys.receipt_risk_metric
    -- holds the same value).
    risk_metric        INTEGER CHECK (risk_metric IS NULL OR risk_metric >= 0),
    risk_metric_at     INTEGER,
    -- The instance that claimed the key last, and until when its claim holds.
    lease_owner        TEXT,
    lease_until        INTEGER,
    enrolled_at        INTEGER NOT NULL
) STRICT;

CREATE INDEX receipt_refresh_due ON receipt_refresh (next_refresh_at, key_id)
    WHERE next_refresh_at IS NOT NULL;
CREATE INDEX receipt_refresh_leases ON receipt_refresh (lease_owner)
    WHERE lease_until IS NOT NULL;
