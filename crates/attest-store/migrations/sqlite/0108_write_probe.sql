-- Readiness that reflects the ability to commit (SQLite; mirrored in migrations/postgres).
--
-- `/readyz` used to run `SELECT 1`, which a read-only file, a full disk or an immutable WAL all
-- let through: readiness said 200 while every write failed with 503. It now commits a write:
-- this one row is rewritten (at most about once a second per instance, the server caches the
-- result), through the same single writer connection as every other write.
CREATE TABLE write_probe (
    id        INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    probed_at INTEGER NOT NULL
) STRICT;
