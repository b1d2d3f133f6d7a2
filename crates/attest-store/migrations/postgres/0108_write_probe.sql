-- Readiness that reflects the ability to commit (PostgreSQL; mirrored in migrations/sqlite).
--
-- `/readyz` used to run `SELECT 1`, which a read-only database (a standby after a failover, a
-- role set to default_transaction_read_only, a full disk) lets through: readiness said 200
-- while every write failed with 503. It now commits a write: this one row is rewritten (at most
-- about once a second per instance, the server caches the result). Instances sharing the
-- database share the row; the upsert takes its lock for the length of one statement.
CREATE TABLE write_probe (
    id        SMALLINT NOT NULL PRIMARY KEY CHECK (id = 1),
    probed_at BIGINT   NOT NULL
);
