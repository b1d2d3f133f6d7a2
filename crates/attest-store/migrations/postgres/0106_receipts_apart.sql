-- Receipts move out of device_keys into their own table, as on SQLite (where every assertion's
-- counter UPDATE rewrote the ~5 KB receipt). PostgreSQL keeps an unchanged TOASTed value on
-- UPDATE, so here this mostly keeps the schemas alike and the hot tuples small. Every key has
-- exactly one receipt row (possibly empty), written with the key.
CREATE TABLE device_key_receipts (
    key_id  BYTEA NOT NULL PRIMARY KEY REFERENCES device_keys (key_id) ON DELETE CASCADE,
    receipt BYTEA NOT NULL
);

INSERT INTO device_key_receipts (key_id, receipt) SELECT key_id, receipt FROM device_keys;

ALTER TABLE device_keys DROP COLUMN receipt;
