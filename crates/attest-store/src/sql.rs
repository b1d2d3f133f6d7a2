//! The SQL both backends run, written once.
//!
//! Placeholders are `$1`, `$2`, ...: PostgreSQL's syntax, which sqlx's SQLite driver also binds
//! by number. Every statement below is plain SQL that SQLite (3.35 or later, for `RETURNING`)
//! and PostgreSQL both accept, so the two backends cannot drift apart. Statements that carry a
//! point of the security contract say so.

/// The columns of a device key as selected from `device_keys k`, in [`crate::rows::DeviceKeyRow`]
/// order. The receipt is not among them: it lives apart in `device_key_receipts` (migration
/// 0106: the hot row stays small), one row per App Attest key, read only by
/// [`DEVICE_KEY_RECEIPT`] (receipt refresh), never on the assertion path.
macro_rules! device_key_columns {
    () => {
        "k.key_id, k.device_id, k.app_id, k.environment, k.public_key_spki, k.counter, \
         k.receipt_risk_metric, k.created_at, k.last_seen_at, k.attestation_count, \
         k.assertion_count, k.revoked_at, k.superseded_by, k.metadata, k.user_id, k.client_ip, \
         k.counter_regressions, k.replays, k.revocation_reason, k.platform"
    };
}

pub(crate) const PING: &str = "SELECT 1";

/// Contract point 2: the primary key lets exactly one INSERT of a nonce through.
pub(crate) const SPEND_CHALLENGE: &str = "INSERT INTO spent_challenges (nonce, expires_at) \
     VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING";

pub(crate) const PURGE_SPENT_CHALLENGES: &str =
    "DELETE FROM spent_challenges WHERE expires_at < $1";

/// The first instance's secret wins; the others read it back with [`SERVER_SECRET`].
pub(crate) const INSERT_SERVER_SECRET: &str = "INSERT INTO server_secrets \
     (name, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING";

pub(crate) const SERVER_SECRET: &str = "SELECT secret FROM server_secrets WHERE name = $1";

/// Contract point 1: a plain INSERT (no upsert); the primary key turns a second attestation of
/// the same key id into a unique violation. Followed, in the same transaction, by
/// [`INSERT_DEVICE_KEY_RECEIPT`].
pub(crate) const INSERT_DEVICE_KEY: &str = "INSERT INTO device_keys (key_id, device_id, app_id, \
     environment, public_key_spki, counter, receipt_risk_metric, created_at, last_seen_at, \
     attestation_count, assertion_count, revoked_at, superseded_by, metadata, user_id, client_ip, \
     counter_regressions, replays, revocation_reason, platform) VALUES ($1, $2, $3, $4, $5, $6, \
     $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)";

pub(crate) const INSERT_DEVICE_KEY_RECEIPT: &str =
    "INSERT INTO device_key_receipts (key_id, receipt) VALUES ($1, $2)";

pub(crate) const DEVICE_KEY_RECEIPT: &str =
    "SELECT receipt FROM device_key_receipts WHERE key_id = $1";

pub(crate) const DEVICE_KEY: &str = concat!(
    "SELECT ",
    device_key_columns!(),
    " FROM device_keys k WHERE k.key_id = $1"
);

/// `Store::key_context`: the key, its device history and the request's risk counts in one
/// query, with the backend's JSON aggregate for the failures by code (`$failures`, over rows
/// `code`, `n`). `$1` key id, `$2` failure windows starting from, `$3` client address, `$4`
/// keys since, `$5` / `$6` whether to count keys from the address / for the user (0 or 1). The
/// failure count is [`TALLIED_FAILURES`] of the key's device (refusals that proved possession,
/// migration 0109): the address's failures are the sender's, never the device's.
macro_rules! key_context {
    ($failures:literal) => {
        concat!(
            "SELECT ",
            device_key_columns!(),
            ", (SELECT COUNT(*) FROM device_keys h WHERE h.app_id = k.app_id \
                AND h.device_id = k.device_id) AS history_keys, \
             (SELECT MIN(h.created_at) FROM device_keys h WHERE h.app_id = k.app_id \
                AND h.device_id = k.device_id) AS history_first_seen, \
             CASE WHEN $5 = 1 AND $3 IS NOT NULL THEN (SELECT COUNT(*) FROM device_keys c \
                WHERE c.app_id = k.app_id AND c.client_ip = $3 AND c.created_at >= $4) END \
                AS keys_from_ip, \
             CASE WHEN $6 = 1 AND k.user_id IS NOT NULL THEN (SELECT COUNT(*) FROM device_keys u \
                WHERE u.app_id = k.app_id AND u.user_id = k.user_id AND u.created_at >= $4) END \
                AS keys_for_user, \
             (SELECT ",
            $failures,
            " FROM (SELECT t.code AS code, CAST(SUM(t.failures) AS BIGINT) AS n \
                FROM failure_tallies t WHERE t.app_id = k.app_id AND t.scope = 'device' \
                AND t.subject = k.device_id AND t.window_start >= $2 \
                GROUP BY t.code) f) AS failures \
             FROM device_keys k WHERE k.key_id = $1"
        )
    };
}

pub(crate) const KEY_CONTEXT_SQLITE: &str =
    key_context!("json_group_array(json_array(f.code, f.n))");
pub(crate) const KEY_CONTEXT_POSTGRES: &str =
    key_context!("COALESCE(json_agg(json_build_array(f.code, f.n))::text, '[]')");

/// Contract points 3 and 4: the comparison with the stored counter and the revocation check
/// happen inside the UPDATE, under the row lock, not in the application.
pub(crate) const ADVANCE_COUNTER: &str = "UPDATE device_keys \
     SET counter = $2, last_seen_at = $3, assertion_count = assertion_count + 1 \
     WHERE key_id = $1 AND counter < $2 AND revoked_at IS NULL";

/// Only explains why [`ADVANCE_COUNTER`] changed nothing; it decides nothing.
pub(crate) const COUNTER_STATE: &str =
    "SELECT counter, revoked_at FROM device_keys WHERE key_id = $1";

/// Contract point 4: SET expressions see the row as it was, so the reason is written only by the
/// statement that also writes the first revocation time.
pub(crate) const REVOKE_DEVICE_KEY: &str = "UPDATE device_keys \
     SET revoked_at = COALESCE(revoked_at, $2), \
     revocation_reason = CASE WHEN revoked_at IS NULL THEN 'revoked' ELSE revocation_reason END \
     WHERE key_id = $1";

/// Contract point 4: the first successor and the first revocation are kept.
pub(crate) const SUPERSEDE_DEVICE_KEY: &str = "UPDATE device_keys \
     SET superseded_by = COALESCE(superseded_by, $2), revoked_at = COALESCE(revoked_at, $3), \
     revocation_reason = CASE WHEN revoked_at IS NULL THEN 'superseded' ELSE revocation_reason END \
     WHERE key_id = $1 AND EXISTS (SELECT 1 FROM device_keys WHERE key_id = $2)";

/// `Store::link_device_key`. Contract point 4: only an active key moves.
pub(crate) const LINK_DEVICE_KEY: &str = "UPDATE device_keys \
     SET device_id = $2, user_id = COALESCE($3, user_id) \
     WHERE key_id = $1 AND revoked_at IS NULL";

/// `Store::settle_lineage`, written once for both backends with the column that orders keys by
/// storage: `rowid` on SQLite, `seq` on PostgreSQL (migration 0103). Contract point 4: only
/// active keys are touched, and a successor is the lineage's newest active key. On PostgreSQL a
/// row updated concurrently is re-checked (`revoked_at IS NULL`) on its latest version.
/// (SQLite's RETURNING cannot name `w`; an active key has no successor yet, so `superseded_by`
/// is the new link.)
macro_rules! settle_lineage {
    ($order:literal) => {
        concat!(
            "UPDATE device_keys SET superseded_by = COALESCE(superseded_by, w.key_id), \
             revoked_at = COALESCE(revoked_at, $4), \
             revocation_reason = CASE WHEN revoked_at IS NULL THEN 'superseded' \
             ELSE revocation_reason END \
             FROM (SELECT key_id FROM device_keys WHERE app_id = $1 AND device_id = $2 \
             AND environment = $3 AND revoked_at IS NULL ORDER BY ",
            $order,
            " DESC LIMIT 1) AS w \
             WHERE device_keys.app_id = $1 AND device_keys.device_id = $2 \
             AND device_keys.environment = $3 AND device_keys.revoked_at IS NULL \
             AND device_keys.key_id <> w.key_id \
             RETURNING device_keys.key_id, device_keys.superseded_by"
        )
    };
}

pub(crate) const SETTLE_LINEAGE_SQLITE: &str = settle_lineage!("rowid");
pub(crate) const SETTLE_LINEAGE_POSTGRES: &str = settle_lineage!("seq");

/// Followed by ` AND column = value` per set filter, then the order and limit
/// (`backend_ext::push_key_filter`).
pub(crate) const FIND_DEVICE_KEYS: &str = concat!(
    "SELECT ",
    device_key_columns!(),
    " FROM device_keys k WHERE 1 = 1"
);

/// Followed by ` AND column = value` per set filter.
pub(crate) const COUNT_DEVICE_KEYS: &str = "SELECT COUNT(*) FROM device_keys WHERE 1 = 1";

/// Increments in the UPDATE itself, so concurrent anomalies are all counted.
pub(crate) const RECORD_COUNTER_REGRESSION: &str =
    "UPDATE device_keys SET counter_regressions = counter_regressions + 1 WHERE key_id = $1";

pub(crate) const RECORD_REPLAY: &str =
    "UPDATE device_keys SET replays = replays + 1 WHERE key_id = $1";

/// Contract point 4: only an active key expires, and only if still idle under the row lock.
pub(crate) const EXPIRE_DEVICE_KEY: &str = "UPDATE device_keys \
     SET revoked_at = $3, revocation_reason = 'expired' \
     WHERE key_id = $1 AND revoked_at IS NULL AND last_seen_at < $2";

pub(crate) const EXPIRE_IDLE_KEYS: &str = "UPDATE device_keys \
     SET revoked_at = $2, revocation_reason = 'expired' \
     WHERE revoked_at IS NULL AND last_seen_at < $1";

pub(crate) const LIST_DEVICE_KEYS: &str = concat!(
    "SELECT ",
    device_key_columns!(),
    " FROM device_keys k WHERE ($1 IS NULL OR app_id = $1) \
     ORDER BY created_at, key_id LIMIT $2 OFFSET $3"
);

pub(crate) const INSERT_DECISION: &str = "INSERT INTO decisions \
     (at, app_id, key_id, route, outcome, code, risk_score, kind, device_id, user_id, client_ip, \
     environment, mode, would_deny, reasons, factors) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id";

/// Contract points 2 and 3 and the decision log for PostgreSQL, as one statement (so one
/// transaction; SQLite's is in `sqlite_commit`): data-modifying CTEs, each
/// conditioned on the one before. All of them see the snapshot taken before the statement, so
/// the key's state for the error detail is read afterwards when the counter did not advance.
/// `$22` is the array of reason codes. A key without a counter (its platform has none) is
/// committed with `$4` NULL: the spent challenge alone is its replay defence.
pub(crate) const POSTGRES_COMMIT_ASSERTION: &str = "WITH spent AS (
    INSERT INTO spent_challenges (nonce, expires_at) VALUES ($1, $2)
    ON CONFLICT (nonce) DO NOTHING RETURNING 1
), advanced AS (
    UPDATE device_keys SET counter = $4, last_seen_at = $5, assertion_count = assertion_count + 1
    WHERE key_id = $3 AND (counter < $4 OR (counter IS NULL AND $4 IS NULL))
        AND revoked_at IS NULL AND EXISTS (SELECT 1 FROM spent)
    RETURNING 1
), logged AS (
    INSERT INTO decisions (at, app_id, key_id, route, outcome, code, risk_score, kind, device_id,
        user_id, client_ip, environment, mode, would_deny, reasons, factors)
    SELECT $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21
    WHERE EXISTS (SELECT 1 FROM advanced)
    RETURNING id
), reasons AS (
    INSERT INTO decision_reasons (decision_id, code)
    SELECT logged.id, codes.code FROM logged, unnest($22::text[]) AS codes (code)
)
SELECT EXISTS (SELECT 1 FROM spent), EXISTS (SELECT 1 FROM advanced), (SELECT id FROM logged)";

/// The oldest decisions first: ids grow with time, so the scan stops at the first recent one.
pub(crate) const PURGE_DECISION_REASONS: &str = "DELETE FROM decision_reasons WHERE decision_id IN \
     (SELECT id FROM decisions WHERE at < $1 ORDER BY id LIMIT $2)";

pub(crate) const PURGE_DECISIONS: &str = "DELETE FROM decisions WHERE id IN \
     (SELECT id FROM decisions WHERE at < $1 ORDER BY id LIMIT $2)";

pub(crate) const INSERT_DECISION_REASON: &str =
    "INSERT INTO decision_reasons (decision_id, code) VALUES ($1, $2)";

/// Followed by ` AND column = value` per set filter (`backend_ext`'s `list_decisions_impl`),
/// then the order and limit: with an App ID, `decisions_by_app (app_id, id)` yields the newest
/// rows first and the scan stops at the limit.
pub(crate) const LIST_DECISIONS: &str = "SELECT \
     id, at, app_id, key_id, route, outcome, code, risk_score, kind, device_id, user_id, \
     client_ip, environment, mode, would_deny, reasons, factors FROM decisions WHERE 1 = 1";

/// `$4`-`$6`: any of key, device and address; all three unset means the whole app.
/// Followed by the bound time, then ` AND ...` per set scope filter and the grouping
/// (`backend_ext`'s `failure_counts_impl`).
pub(crate) const FAILURE_COUNTS: &str =
    "SELECT code, COUNT(*) AS count FROM decisions WHERE code <> 'ok' AND at >= ";

/// The summary statements, each followed by ` AND ...` per set filter (`decisions_by_app_time
/// (app_id, at)` serves an App ID with a start time) and then its `_GROUP` tail.
pub(crate) const SUMMARY_BY_OUTCOME: &str = "SELECT d.outcome AS outcome, d.would_deny AS would_deny, COUNT(*) AS count \
     FROM decisions d WHERE 1 = 1";
pub(crate) const SUMMARY_BY_OUTCOME_GROUP: &str =
    " GROUP BY d.outcome, d.would_deny ORDER BY d.outcome, d.would_deny";

pub(crate) const SUMMARY_BY_REASON: &str = "SELECT d.outcome AS outcome, r.code AS reason, \
     COUNT(*) AS count FROM decisions d JOIN decision_reasons r ON r.decision_id = d.id \
     WHERE 1 = 1";
pub(crate) const SUMMARY_BY_REASON_GROUP: &str =
    " GROUP BY d.outcome, r.code ORDER BY d.outcome, r.code";

pub(crate) const SUMMARY_WOULD_DENY_DEVICES: &str =
    "SELECT COUNT(DISTINCT d.device_id) FROM decisions d WHERE d.would_deny = 1";

/// The columns of `webhook_deliveries`, in [`crate::rows::DeliveryRow`] order.
macro_rules! delivery_columns {
    () => {
        "id, event_id, event, endpoint, payload, status, attempts, next_attempt_at, created_at, \
         last_attempt_at, last_http_status, last_error, delivered_at"
    };
}

pub(crate) const ENQUEUE_WEBHOOK: &str = "INSERT INTO webhook_deliveries \
     (event_id, event, endpoint, payload, status, attempts, next_attempt_at, created_at) \
     VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5) RETURNING id";

/// Contract point 6: the outer WHERE is re-checked under each row lock, so a row another
/// caller claimed in the meantime (its `next_attempt_at` moved to the future) is skipped.
pub(crate) const CLAIM_DUE_WEBHOOKS: &str = concat!(
    "UPDATE webhook_deliveries SET next_attempt_at = $2 \
     WHERE id IN (SELECT id FROM webhook_deliveries \
                  WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT $3) \
     AND status = 'pending' AND next_attempt_at <= $1 RETURNING ",
    delivery_columns!()
);

/// Contract point 6: only a pending delivery is changed.
pub(crate) const RECORD_WEBHOOK_ATTEMPT: &str = "UPDATE webhook_deliveries \
     SET attempts = attempts + 1, last_attempt_at = $2, last_http_status = $3, last_error = $4, \
     status = $5, next_attempt_at = COALESCE($6, next_attempt_at), delivered_at = $7 \
     WHERE id = $1 AND status = 'pending'";

pub(crate) const LIST_WEBHOOK_DELIVERIES: &str = concat!(
    "SELECT ",
    delivery_columns!(),
    " FROM webhook_deliveries WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR event = $2) \
     AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
);

pub(crate) const INSERT_SIGNING_KEY: &str = "INSERT INTO signing_keys \
     (kid, algorithm, private_pkcs8, created_at, retired_at) VALUES ($1, $2, $3, $4, $5)";

pub(crate) const SIGNING_KEYS: &str = "SELECT kid, algorithm, private_pkcs8, created_at, \
     retired_at FROM signing_keys ORDER BY created_at, kid";

pub(crate) const RETIRE_SIGNING_KEY: &str =
    "UPDATE signing_keys SET retired_at = COALESCE(retired_at, $2) WHERE kid = $1";

/// Every stored signing key's secret, sealed or not (`sealing::impl_sealing_for`).
pub(crate) const STORED_SIGNING_KEYS: &str = "SELECT kid, private_pkcs8 FROM signing_keys";

pub(crate) const STORED_SIGNING_KEY: &str = "SELECT private_pkcs8 FROM signing_keys WHERE kid = $1";

/// Seals one plaintext signing key in place: a compare-and-swap on the plaintext read, so of
/// instances sealing the same row at once exactly one changes it.
pub(crate) const SEAL_SIGNING_KEY: &str =
    "UPDATE signing_keys SET private_pkcs8 = $3 WHERE kid = $1 AND private_pkcs8 = $2";

pub(crate) const STORED_SERVER_SECRETS: &str = "SELECT name, secret FROM server_secrets";

/// As [`SEAL_SIGNING_KEY`], for a server secret.
pub(crate) const SEAL_SERVER_SECRET: &str =
    "UPDATE server_secrets SET secret = $3 WHERE name = $1 AND secret = $2";

/// `Store::probe_write`: one row, rewritten (migration 0108).
pub(crate) const PROBE_WRITE: &str = "INSERT INTO write_probe (id, probed_at) VALUES (1, $1) \
     ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at";

/// Only retired keys, retired before `$1`: an unretired key is never deleted.
pub(crate) const DELETE_RETIRED_SIGNING_KEYS: &str =
    "DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1";

/// `Store::record_refusal`, contract point 9: the sender's tally of the refusal's window and
/// code gains one in one upsert (concurrent refusals are all counted), and `logged` gains one
/// while the count before it is below the sample size `$5` (so exactly the first `$5` of the
/// window are logged in full). Returns the new count: the refusal is logged in full iff it is
/// at most `$5`. (Within `DO UPDATE`, `failure_tallies.failures` is the count before.)
pub(crate) const TALLY_SENDER_REFUSAL: &str = "INSERT INTO failure_tallies \
     (app_id, scope, subject, window_start, code, failures, logged) \
     VALUES ($1, 'sender', $2, $3, $4, 1, CASE WHEN $5 >= 1 THEN 1 ELSE 0 END) \
     ON CONFLICT (app_id, scope, subject, window_start, code) DO UPDATE SET \
     failures = failure_tallies.failures + 1, \
     logged = failure_tallies.logged \
         + CASE WHEN failure_tallies.failures < $5 THEN 1 ELSE 0 END \
     RETURNING failures";

/// `Store::record_refusal` of a refusal that proved possession: the device's tally gains one.
pub(crate) const TALLY_DEVICE_REFUSAL: &str = "INSERT INTO failure_tallies \
     (app_id, scope, subject, window_start, code, failures, logged) \
     VALUES ($1, 'device', $2, $3, $4, 1, 0) \
     ON CONFLICT (app_id, scope, subject, window_start, code) DO UPDATE SET \
     failures = failure_tallies.failures + 1";

/// `Store::tallied_failures`: the primary key's prefix `(app_id, scope, subject)` and a range
/// of `window_start`, so a count reads the subject's rows of the window and nothing else.
pub(crate) const TALLIED_FAILURES: &str = "SELECT code, CAST(SUM(failures) AS BIGINT) AS count \
     FROM failure_tallies WHERE app_id = $1 AND scope = $2 AND subject = $3 \
     AND window_start >= $4 GROUP BY code ORDER BY code";

/// `Store::sender_failures`: followed by the App ID, ` AND window_start >= ` and the time,
/// ` AND subject = ...` for one address, then [`SENDER_FAILURES_GROUP`] and the limit.
pub(crate) const SENDER_FAILURES: &str = "SELECT app_id, subject, code, \
     CAST(SUM(failures) AS BIGINT) AS failures, CAST(SUM(logged) AS BIGINT) AS logged \
     FROM failure_tallies WHERE scope = 'sender' AND app_id = ";
pub(crate) const SENDER_FAILURES_GROUP: &str =
    " GROUP BY app_id, subject, code ORDER BY failures DESC, subject, code LIMIT ";

/// Refusals counted but not logged in full (`DecisionSummary::unlogged_refusals`), followed by
/// ` AND ...` per set summary filter.
pub(crate) const UNLOGGED_REFUSALS: &str = "SELECT \
     CAST(COALESCE(SUM(failures - logged), 0) AS BIGINT) FROM failure_tallies \
     WHERE scope = 'sender'";

pub(crate) const PURGE_FAILURE_TALLIES: &str =
    "DELETE FROM failure_tallies WHERE window_start < $1";

/// `Store::heartbeat`: this instance's row, then the stale rows go, then the live ones count.
pub(crate) const HEARTBEAT: &str = "INSERT INTO instances (id, seen_at) VALUES ($1, $2) \
     ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at";
pub(crate) const FORGET_STALE_INSTANCES: &str = "DELETE FROM instances WHERE seen_at < $1";
pub(crate) const LIVE_INSTANCES: &str = "SELECT COUNT(*) FROM instances WHERE seen_at >= $1";
pub(crate) const LEAVE: &str = "DELETE FROM instances WHERE id = $1";
