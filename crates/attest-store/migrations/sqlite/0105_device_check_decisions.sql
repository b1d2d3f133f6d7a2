-- DeviceCheck decisions: `POST /v1/device-checks` (the fallback for devices without App Attest)
-- logs its verdicts with kind 'device_check'.
--
-- SQLite cannot alter a CHECK constraint, so `decisions` is rebuilt with the new list, and
-- `decision_reasons`, whose foreign key names it, with it. Column order, types, constraints and
-- indexes are the ones 0001 + 0002 + 0102 + 0104 left. Runs in the migration's transaction:
-- with foreign keys on, the reasons are dropped before the decisions they reference.
CREATE TABLE decisions_v2 (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    app_id      TEXT    NOT NULL,
    key_id      BLOB    CHECK (key_id IS NULL OR length(key_id) = 32),
    route       TEXT    NOT NULL,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('allow', 'allow_monitored', 'deny')),
    code        TEXT    NOT NULL,
    risk_score  INTEGER CHECK (risk_score IS NULL OR risk_score BETWEEN 0 AND 100),
    kind        TEXT    CHECK (kind IS NULL OR kind IN ('attestation', 'assertion', 'device_check')),
    device_id   TEXT,
    user_id     TEXT,
    client_ip   TEXT,
    environment TEXT    CHECK (environment IS NULL OR environment IN ('development', 'production')),
    mode        TEXT    CHECK (mode IS NULL OR mode IN ('off', 'monitor', 'enforce')),
    would_deny  INTEGER NOT NULL DEFAULT 0 CHECK (would_deny IN (0, 1)),
    reasons     TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(reasons)),
    factors     TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(factors))
) STRICT;

INSERT INTO decisions_v2 (id, at, app_id, key_id, route, outcome, code, risk_score, kind,
                          device_id, user_id, client_ip, environment, mode, would_deny, reasons,
                          factors)
SELECT id, at, app_id, key_id, route, outcome, code, risk_score, kind, device_id, user_id,
       client_ip, environment, mode, would_deny, reasons, factors
FROM decisions;

CREATE TABLE decision_reasons_v2 (
    decision_id INTEGER NOT NULL REFERENCES decisions_v2 (id),
    code        TEXT    NOT NULL,
    PRIMARY KEY (decision_id, code)
) STRICT;

INSERT INTO decision_reasons_v2 (decision_id, code)
SELECT decision_id, code FROM decision_reasons;

DROP TABLE decision_reasons;
DROP TABLE decisions;
-- Renaming a table rewrites the foreign keys that name it: decision_reasons references
-- decisions again.
ALTER TABLE decisions_v2 RENAME TO decisions;
ALTER TABLE decision_reasons_v2 RENAME TO decision_reasons;

CREATE INDEX decisions_by_app ON decisions (app_id, id);
CREATE INDEX decisions_by_app_time ON decisions (app_id, at);
CREATE INDEX decision_failures_by_key ON decisions (key_id, at) WHERE code <> 'ok';
CREATE INDEX decision_failures_by_device ON decisions (device_id, at) WHERE code <> 'ok';
CREATE INDEX decision_failures_by_ip ON decisions (client_ip, at) WHERE code <> 'ok';
CREATE INDEX decision_failures_by_app ON decisions (app_id, at) WHERE code <> 'ok';
CREATE INDEX decision_reasons_by_code ON decision_reasons (code, decision_id);
