-- Receipts move out of device_keys into their own table.
--
-- Every accepted assertion updates its key's row (counter, last seen, count). SQLite rewrites a
-- whole record on UPDATE, and a real receipt is ~5 KB, so each assertion rewrote the receipt's
-- overflow pages into the WAL: ~5 KB of write amplification per assertion for a blob that only
-- the receipt refresh changes. Apart, the hot row is ~300 bytes. Every key has exactly one
-- receipt row (possibly empty), written with the key.
CREATE TABLE device_key_receipts (
    key_id  BLOB NOT NULL PRIMARY KEY REFERENCES device_keys (key_id) ON DELETE CASCADE,
    receipt BLOB NOT NULL
) STRICT;

INSERT INTO device_key_receipts (key_id, receipt) SELECT key_id, receipt FROM device_keys;

ALTER TABLE device_keys DROP COLUMN receipt;
