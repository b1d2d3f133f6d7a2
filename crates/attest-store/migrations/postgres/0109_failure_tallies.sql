-- Refusals counted, not scanned; strangers' failures counted against the stranger (PostgreSQL;
-- mirrored in migrations/sqlite, whose header explains the design).
--
-- `failure_tallies`: counts per subject ('sender': the address a refusal came from, '' when
-- unknown; 'device': a device whose key a refusal proved possession of), app, time window and
-- code. A refusal upserts one or two rows; a count reads the few rows of one subject in the
-- window, whatever the size of the decision log.
CREATE TABLE failure_tallies (
    app_id       TEXT   NOT NULL,
    scope        TEXT   NOT NULL CHECK (scope IN ('sender', 'device')),
    subject      TEXT   NOT NULL,
    window_start BIGINT NOT NULL,
    code         TEXT   NOT NULL,
    failures     BIGINT NOT NULL CHECK (failures >= 1),
    logged       BIGINT NOT NULL DEFAULT 0 CHECK (logged >= 0 AND logged <= failures),
    PRIMARY KEY (app_id, scope, subject, window_start, code)
);

CREATE INDEX failure_tallies_by_window ON failure_tallies (window_start);

DROP INDEX decision_failures_by_key;
DROP INDEX decision_failures_by_device;
DROP INDEX decision_failures_by_ip;

-- The instances sharing this database (rate limits split between them), each rewriting its row
-- in the background.
CREATE TABLE instances (
    id      TEXT   NOT NULL PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
