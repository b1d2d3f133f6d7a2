-- Google's Android attestation status list (revocation), the latest one accepted (PostgreSQL;
-- mirrored in migrations/sqlite, whose header explains the design): one row, replaced only by
-- a list fetched later than the stored one.
CREATE TABLE android_revocation_list (
    id              SMALLINT NOT NULL PRIMARY KEY CHECK (id = 1),
    body            BYTEA,
    fetched_at      BIGINT,
    etag            TEXT,
    last_modified   TEXT,
    last_attempt_at BIGINT,
    last_status     TEXT,
    CHECK ((body IS NULL) = (fetched_at IS NULL)),
    CHECK ((last_attempt_at IS NULL) = (last_status IS NULL))
);
