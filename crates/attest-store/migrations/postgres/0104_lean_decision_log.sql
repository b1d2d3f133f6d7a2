-- Every attestation and assertion appends a decision, so every index on `decisions` is paid on
-- the hot path. These two were random-access (a key id, a device id per row) and served no
-- query: failure counts use the partial failure indexes of 0102, and the admin listing filters
-- in a scan of the newest rows. Dropping them made assertions ~20 % faster under load
-- (bench/load.sh, SQLite). `decisions_by_app` and `decisions_by_app_time` stay: they grow at
-- their right edge, which costs little.
DROP INDEX decisions_by_key;
DROP INDEX decisions_by_device;
