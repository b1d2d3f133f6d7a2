-- Refusals counted, not scanned; strangers' failures counted against the stranger (SQLite;
-- mirrored in migrations/postgres).
--
-- Until now every refusal read the decision log: the risk signals counted the failures of the
-- request's key, device *or address* in the window, so each refusal scanned every earlier
-- failure from its address (0.7 ms fresh, 14-20 ms after 33,000 on SQLite), and each one was
-- then logged in full (~2 KB kept 90 days). And a failure that proved nothing (a garbage
-- signature sent with someone else's keyId) counted against that key's device.
--
-- `failure_tallies` holds counts per subject, code and time window (`window_start`, unix
-- seconds, a multiple of the window width the server chose):
--   scope 'sender': every refusal, against the address it came from (`subject`, '' when
--                   unknown) and the app it named; `logged` says how many of them were logged in
--                   full in `decisions` (the first few per window; the rest only count here).
--   scope 'device': refusals that proved possession of a key of the device (`subject`, the
--                   device id): a valid signature over a challenge issued for the key and not
--                   expired. Only these raise the device's `repeated_failures`.
-- A refusal updates one or two rows in place (an upsert of the window's row), and a count
-- reads the few rows of one subject in the window: neither grows with the decision log.
CREATE TABLE failure_tallies (
    app_id       TEXT    NOT NULL,
    scope        TEXT    NOT NULL CHECK (scope IN ('sender', 'device')),
    subject      TEXT    NOT NULL,
    window_start INTEGER NOT NULL,
    code         TEXT    NOT NULL,
    failures     INTEGER NOT NULL CHECK (failures >= 1),
    logged       INTEGER NOT NULL DEFAULT 0 CHECK (logged >= 0 AND logged <= failures),
    PRIMARY KEY (app_id, scope, subject, window_start, code)
) STRICT, WITHOUT ROWID;

-- Purging old windows.
CREATE INDEX failure_tallies_by_window ON failure_tallies (window_start);

-- The failure indexes of 0102 served the per-request counts, which read the tallies now; the
-- decision log keeps the indexes its admin queries use (by app, by app and time).
DROP INDEX decision_failures_by_key;
DROP INDEX decision_failures_by_device;
DROP INDEX decision_failures_by_ip;

-- The instances sharing this database, for rate limits split between them: each instance
-- rewrites its row in the background (never per request) and counts the rows seen recently.
CREATE TABLE instances (
    id      TEXT    NOT NULL PRIMARY KEY,
    seen_at INTEGER NOT NULL
) STRICT;
