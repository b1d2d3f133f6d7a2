//! Rows as the database returns them, and their checked conversion into records.
//!
//! Rows hold only types both backends decode the same way (`i64`, `String`, `Vec<u8>` and their
//! `Option`s); everything else is converted here, once, for both backends.

use time::OffsetDateTime;

use serde_json::{Value, json};

use crate::StoreError;
use crate::queries::{FailureCount, KeyContext, OutcomeCount, ReasonCount};
use crate::records::{
    AndroidEvidence, AppleEvidence, Decision, DecisionFactor, DecisionReason, DeviceHistory,
    DeviceKey, Evidence, KeyId, LoggedDecision, MAX_PAGE_SIZE, Platform, SigningKey,
};
use crate::webhook::WebhookDelivery;

#[derive(sqlx::FromRow)]
pub(crate) struct KeyContextRow {
    #[sqlx(flatten)]
    key: DeviceKeyRow,
    history_keys: i64,
    history_first_seen: Option<i64>,
    keys_from_ip: Option<i64>,
    keys_for_user: Option<i64>,
    failures: String,
}

impl TryFrom<KeyContextRow> for KeyContext {
    type Error = StoreError;
    fn try_from(row: KeyContextRow) -> Result<Self, StoreError> {
        let history = DeviceHistory {
            keys: count_from_db(row.history_keys)?,
            first_seen: row.history_first_seen.map(time_from_unix).transpose()?,
        };
        let pairs: Vec<(String, i64)> = serde_json::from_str(&row.failures)
            .map_err(|error| StoreError::Corrupt(format!("failure counts: {error}")))?;
        let mut failures = pairs
            .into_iter()
            .map(|(code, count)| {
                Ok(FailureCount {
                    code,
                    count: count_from_db(count)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        failures.sort_unstable_by(|a, b| a.code.cmp(&b.code));
        Ok(Self {
            key: DeviceKey::try_from(row.key)?,
            history,
            failures,
            keys_from_ip: row.keys_from_ip.map(count_from_db).transpose()?,
            keys_for_user: row.keys_for_user.map(count_from_db).transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeviceKeyRow {
    key_id: Vec<u8>,
    device_id: String,
    app_id: String,
    environment: String,
    public_key_spki: Vec<u8>,
    counter: Option<i64>,
    receipt_risk_metric: Option<i64>,
    created_at: i64,
    last_seen_at: i64,
    attestation_count: i64,
    assertion_count: i64,
    revoked_at: Option<i64>,
    superseded_by: Option<Vec<u8>>,
    metadata: String,
    user_id: Option<String>,
    client_ip: Option<String>,
    counter_regressions: i64,
    replays: i64,
    revocation_reason: Option<String>,
    platform: String,
}

impl TryFrom<DeviceKeyRow> for DeviceKey {
    type Error = StoreError;
    fn try_from(row: DeviceKeyRow) -> Result<Self, StoreError> {
        let platform: Platform = parse(&row.platform)?;
        let counter = row.counter.map(counter_from_db).transpose()?;
        if counter.is_some() != platform.has_counter() {
            return Err(StoreError::Corrupt(format!(
                "a {platform} key {} a counter",
                if counter.is_some() { "with" } else { "without" }
            )));
        }
        Ok(Self {
            key_id: key_id(row.key_id)?,
            device_id: row.device_id,
            app_id: row.app_id,
            environment: parse(&row.environment)?,
            public_key_spki: row.public_key_spki,
            counter,
            receipt_risk_metric: row.receipt_risk_metric,
            created_at: time_from_unix(row.created_at)?,
            last_seen_at: time_from_unix(row.last_seen_at)?,
            attestation_count: count_from_db(row.attestation_count)?,
            assertion_count: count_from_db(row.assertion_count)?,
            revoked_at: row.revoked_at.map(time_from_unix).transpose()?,
            superseded_by: row.superseded_by.map(key_id).transpose()?,
            evidence: evidence_from_db(platform, &row.metadata)?,
            user_id: row.user_id,
            client_ip: row.client_ip,
            counter_regressions: count_from_db(row.counter_regressions)?,
            replays: count_from_db(row.replays)?,
            revocation_reason: row.revocation_reason.as_deref().map(parse).transpose()?,
        })
    }
}

/// The evidence column of a `platform` key: an object of that platform's evidence type.
pub(crate) fn evidence_from_db(platform: Platform, json: &str) -> Result<Evidence, StoreError> {
    let corrupt = |error: String| StoreError::Corrupt(format!("{platform} key evidence: {error}"));
    if !json.trim_start().starts_with('{') {
        return Err(corrupt("not a JSON object".to_owned()));
    }
    match platform {
        Platform::Ios => serde_json::from_str::<AppleEvidence>(json).map(Evidence::Apple),
        Platform::Android => serde_json::from_str::<AndroidEvidence>(json).map(Evidence::Android),
    }
    .map_err(|error| corrupt(error.to_string()))
}

/// The evidence column's JSON for `key`, and the checks the schema makes with it: the counter
/// is present exactly when the platform has one.
pub(crate) fn evidence_to_db(key: &DeviceKey) -> Result<String, StoreError> {
    let platform = key.platform();
    if key.counter.is_some() != platform.has_counter() {
        return Err(StoreError::Invalid(format!(
            "a {platform} key {} a counter",
            if key.counter.is_some() {
                "with"
            } else {
                "without"
            }
        )));
    }
    serde_json::to_string(&key.evidence)
        .map_err(|error| StoreError::Invalid(format!("device key evidence: {error}")))
}

#[derive(sqlx::FromRow)]
pub(crate) struct CounterStateRow {
    /// `None` for a key whose platform has no counter.
    pub(crate) counter: Option<i64>,
    pub(crate) revoked_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct DecisionRow {
    id: i64,
    at: i64,
    app_id: String,
    key_id: Option<Vec<u8>>,
    route: String,
    outcome: String,
    code: String,
    risk_score: Option<i64>,
    kind: Option<String>,
    device_id: Option<String>,
    user_id: Option<String>,
    client_ip: Option<String>,
    environment: Option<String>,
    mode: Option<String>,
    would_deny: i64,
    reasons: String,
    factors: String,
}

impl TryFrom<DecisionRow> for LoggedDecision {
    type Error = StoreError;
    fn try_from(row: DecisionRow) -> Result<Self, StoreError> {
        let risk_score = row
            .risk_score
            .map(|score| {
                u8::try_from(score)
                    .map_err(|_| StoreError::Corrupt(format!("risk score {score} out of range")))
            })
            .transpose()?;
        Ok(Self {
            id: row.id,
            decision: Decision {
                at: time_from_unix(row.at)?,
                app_id: row.app_id,
                key_id: row.key_id.map(key_id).transpose()?,
                route: row.route,
                outcome: parse(&row.outcome)?,
                code: row.code,
                risk_score,
                kind: row.kind.as_deref().map(parse).transpose()?,
                device_id: row.device_id,
                user_id: row.user_id,
                client_ip: row.client_ip,
                environment: row.environment.as_deref().map(parse).transpose()?,
                mode: row.mode.as_deref().map(parse).transpose()?,
                would_deny: flag_from_db(row.would_deny)?,
                reasons: reasons_from_json(&row.reasons)?,
                factors: factors_from_json(&row.factors)?,
            },
        })
    }
}

/// The reasons of a decision as the `reasons` column holds them: `[{"code", "message"}]`.
pub(crate) fn reasons_to_json(reasons: &[DecisionReason]) -> String {
    Value::Array(
        reasons
            .iter()
            .map(|r| json!({ "code": r.code, "message": r.message }))
            .collect(),
    )
    .to_string()
}

/// The factors of a decision as the `factors` column holds them:
/// `[{"name", "points", "evidence"}]`.
pub(crate) fn factors_to_json(factors: &[DecisionFactor]) -> String {
    Value::Array(
        factors
            .iter()
            .map(|f| json!({ "name": f.name, "points": f.points, "evidence": f.evidence }))
            .collect(),
    )
    .to_string()
}

fn json_array(text: &str, what: &str) -> Result<Vec<Value>, StoreError> {
    match serde_json::from_str(text) {
        Ok(Value::Array(items)) => Ok(items),
        _ => Err(StoreError::Corrupt(format!(
            "decision {what} are not a JSON array"
        ))),
    }
}

fn text_field(item: &Value, name: &str, what: &str) -> Result<String, StoreError> {
    item.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Corrupt(format!("decision {what}: no text {name:?}")))
}

fn reasons_from_json(text: &str) -> Result<Vec<DecisionReason>, StoreError> {
    json_array(text, "reasons")?
        .iter()
        .map(|item| {
            Ok(DecisionReason {
                code: text_field(item, "code", "reason")?,
                message: text_field(item, "message", "reason")?,
            })
        })
        .collect()
}

fn factors_from_json(text: &str) -> Result<Vec<DecisionFactor>, StoreError> {
    json_array(text, "factors")?
        .iter()
        .map(|item| {
            let points = item
                .get("points")
                .and_then(Value::as_u64)
                .and_then(|p| u8::try_from(p).ok())
                .ok_or_else(|| StoreError::Corrupt("decision factor: bad points".to_owned()))?;
            Ok(DecisionFactor {
                name: text_field(item, "name", "factor")?,
                points,
                evidence: text_field(item, "evidence", "factor")?,
            })
        })
        .collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct FailureCountRow {
    code: String,
    count: i64,
}

impl TryFrom<FailureCountRow> for FailureCount {
    type Error = StoreError;
    fn try_from(row: FailureCountRow) -> Result<Self, StoreError> {
        Ok(Self {
            code: row.code,
            count: count_from_db(row.count)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SenderFailuresRow {
    app_id: String,
    subject: String,
    code: String,
    failures: i64,
    logged: i64,
}

impl TryFrom<SenderFailuresRow> for crate::SenderFailures {
    type Error = StoreError;
    fn try_from(row: SenderFailuresRow) -> Result<Self, StoreError> {
        Ok(Self {
            app_id: row.app_id,
            client_ip: crate::tally::sender_address(row.subject),
            code: row.code,
            failures: count_from_db(row.failures)?,
            logged: count_from_db(row.logged)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OutcomeCountRow {
    outcome: String,
    would_deny: i64,
    count: i64,
}

impl TryFrom<OutcomeCountRow> for OutcomeCount {
    type Error = StoreError;
    fn try_from(row: OutcomeCountRow) -> Result<Self, StoreError> {
        Ok(Self {
            outcome: parse(&row.outcome)?,
            would_deny: flag_from_db(row.would_deny)?,
            count: count_from_db(row.count)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ReasonCountRow {
    outcome: String,
    reason: String,
    count: i64,
}

impl TryFrom<ReasonCountRow> for ReasonCount {
    type Error = StoreError;
    fn try_from(row: ReasonCountRow) -> Result<Self, StoreError> {
        Ok(Self {
            outcome: parse(&row.outcome)?,
            reason: row.reason,
            count: count_from_db(row.count)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    id: i64,
    event_id: String,
    event: String,
    endpoint: String,
    payload: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    created_at: i64,
    last_attempt_at: Option<i64>,
    last_http_status: Option<i64>,
    last_error: Option<String>,
    delivered_at: Option<i64>,
}

impl TryFrom<DeliveryRow> for WebhookDelivery {
    type Error = StoreError;
    fn try_from(row: DeliveryRow) -> Result<Self, StoreError> {
        let last_http_status = row
            .last_http_status
            .map(|status| {
                u16::try_from(status)
                    .map_err(|_| StoreError::Corrupt(format!("HTTP status {status} out of range")))
            })
            .transpose()?;
        Ok(Self {
            id: row.id,
            event_id: row.event_id,
            event: row.event,
            endpoint: row.endpoint,
            payload: row.payload,
            status: parse(&row.status)?,
            attempts: u32::try_from(row.attempts).map_err(|_| {
                StoreError::Corrupt(format!("attempts {} out of range", row.attempts))
            })?,
            next_attempt_at: time_from_unix(row.next_attempt_at)?,
            created_at: time_from_unix(row.created_at)?,
            last_attempt_at: row.last_attempt_at.map(time_from_unix).transpose()?,
            last_http_status,
            last_error: row.last_error,
            delivered_at: row.delivered_at.map(time_from_unix).transpose()?,
        })
    }
}

/// A boolean as the database stores it (0 or 1).
pub(crate) fn flag_to_db(flag: bool) -> i64 {
    i64::from(flag)
}

fn flag_from_db(value: i64) -> Result<bool, StoreError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(StoreError::Corrupt(format!("flag {other} is not 0 or 1"))),
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SigningKeyRow {
    kid: String,
    algorithm: String,
    private_pkcs8: Vec<u8>,
    created_at: i64,
    retired_at: Option<i64>,
}

impl TryFrom<SigningKeyRow> for SigningKey {
    type Error = StoreError;
    fn try_from(row: SigningKeyRow) -> Result<Self, StoreError> {
        Ok(Self {
            kid: row.kid,
            algorithm: row.algorithm,
            private_pkcs8: row.private_pkcs8,
            created_at: time_from_unix(row.created_at)?,
            retired_at: row.retired_at.map(time_from_unix).transpose()?,
        })
    }
}

/// Converts every row, failing on the first that does not convert.
pub(crate) fn convert_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// Unix seconds, the form every time takes in the database.
pub(crate) fn unix(time: OffsetDateTime) -> i64 {
    time.unix_timestamp()
}

fn time_from_unix(seconds: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|_| StoreError::Corrupt(format!("time {seconds} out of range")))
}

pub(crate) fn key_id(bytes: Vec<u8>) -> Result<KeyId, StoreError> {
    let length = bytes.len();
    KeyId::try_from(bytes)
        .map_err(|_| StoreError::Corrupt(format!("key id of {length} bytes, expected 32")))
}

pub(crate) fn counter_from_db(counter: i64) -> Result<u32, StoreError> {
    u32::try_from(counter)
        .map_err(|_| StoreError::Corrupt(format!("counter {counter} out of range")))
}

pub(crate) fn count_from_db(count: i64) -> Result<u64, StoreError> {
    u64::try_from(count).map_err(|_| StoreError::Corrupt(format!("count {count} out of range")))
}

/// A count as the database stores it (`BIGINT`).
pub(crate) fn count_to_db(count: u64) -> Result<i64, StoreError> {
    i64::try_from(count).map_err(|_| StoreError::Invalid(format!("count {count} too large")))
}

/// A page size as bound to `LIMIT`, capped at [`MAX_PAGE_SIZE`].
pub(crate) fn page_limit(limit: u32) -> i64 {
    i64::from(limit.min(MAX_PAGE_SIZE))
}

/// An offset as bound to `OFFSET`; beyond `i64::MAX` no row exists anyway.
pub(crate) fn page_offset(offset: u64) -> i64 {
    i64::try_from(offset).unwrap_or(i64::MAX)
}

fn parse<T: std::str::FromStr<Err = crate::records::UnknownValue>>(
    text: &str,
) -> Result<T, StoreError> {
    text.parse().map_err(|error: crate::records::UnknownValue| {
        StoreError::Corrupt(format!("{error} {text:?}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_is_read_as_the_key_platform_type_and_corruption_is_an_error() {
        // Rows written before evidence was typed: Apple's old metadata, even empty.
        for old in [
            "{}",
            r#"{"bundleVersion":"1","receiptStatus":"valid","leafNotAfter":9}"#,
        ] {
            let evidence = evidence_from_db(Platform::Ios, old).expect(old);
            assert_eq!(evidence.platform(), Platform::Ios);
        }
        for (platform, corrupt) in [
            (Platform::Ios, "[]"),
            (Platform::Ios, "null"),
            (Platform::Ios, r#"{"receiptStatus":"fine"}"#),
            (Platform::Ios, r#"{"validationCategory":"not hex"}"#),
            (Platform::Ios, "{"),
            (Platform::Android, "{}"),
            (Platform::Android, r#"{"bundleVersion":"1"}"#),
        ] {
            let error = evidence_from_db(platform, corrupt).expect_err(corrupt);
            assert!(
                matches!(error, StoreError::Corrupt(_)),
                "{corrupt}: {error:?}"
            );
        }
    }
}
