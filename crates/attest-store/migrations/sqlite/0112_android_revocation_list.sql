-- Google's Android attestation status list (revocation), the latest one accepted (SQLite;
-- mirrored in migrations/postgres).
--
-- One row (`id` = 1), shared by every instance of the database, so that a restarted or new
-- instance verifies Android chains at once, without the network. `body` is the exact JSON
-- Google served (the server parses it before storing it and again when loading it: a list that
-- does not parse is never stored); `fetched_at` is when it was fetched (or last confirmed by a
-- 304), unix seconds. A save replaces the list only if its `fetched_at` is later than the stored
-- one's, in the upsert's WHERE: of instances fetching concurrently, the newest fetch wins and
-- an older one never overwrites it. `etag` / `last_modified` are the validators of that answer
-- (the next fetch sends If-None-Match). `last_attempt_at` / `last_status` describe the last
-- fetch attempt of any instance (`fetched`, `not_modified` or an error code); they may exist
-- before any list does (the first fetch failed), hence the nullable list columns.
CREATE TABLE android_revocation_list (
    id              INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    body            BLOB,
    fetched_at      INTEGER,
    etag            TEXT,
    last_modified   TEXT,
    last_attempt_at INTEGER,
    last_status     TEXT,
    CHECK ((body IS NULL) = (fetched_at IS NULL)),
    CHECK ((last_attempt_at IS NULL) = (last_status IS NULL))
) STRICT;
