//! Admin API bodies: device detail, the decision log, per-app summaries, webhook deliveries.

use attest_policy::Band;
use attest_store::{DecisionSummary, LoggedDecision, WebhookDelivery};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{DeviceIntelligence, DeviceQuery, DeviceView, FactorView, rfc3339, wire};
use crate::server::error::ApiError;
use crate::server::extract::encode_key_id;

/// 400 `malformed_request` naming the first of `fields` (query parameter names) whose text
/// holds a NUL character, which no stored value can contain (PostgreSQL cannot store it): a
/// filter with one matches nothing, and must not reach the database, where it read as an
/// outage.
pub fn check_text(fields: &[(&'static str, Option<&str>)]) -> Result<(), ApiError> {
    match fields
        .iter()
        .find(|(_, value)| value.is_some_and(|value| value.contains('\0')))
    {
        Some((field, _)) => Err(ApiError::field(
            field,
            format!("{field} must not contain a NUL character"),
        )),
        None => Ok(()),
    }
}

impl DeviceQuery {
    /// [`check_text`] of the text filters.
    pub fn check_text(&self) -> Result<(), ApiError> {
        check_text(&[
            ("appId", self.app_id.as_deref()),
            ("userId", self.user_id.as_deref()),
            ("deviceId", self.device_id.as_deref()),
        ])
    }
}

impl DecisionQuery {
    /// [`check_text`] of the text filters.
    pub fn check_text(&self) -> Result<(), ApiError> {
        check_text(&[
            ("appId", self.app_id.as_deref()),
            ("outcome", self.outcome.as_deref()),
            ("since", self.since.as_deref()),
            ("deviceId", self.device_id.as_deref()),
            ("keyId", self.key_id.as_deref()),
        ])
    }
}

impl DeliveryQuery {
    /// [`check_text`] of the text filters.
    pub fn check_text(&self) -> Result<(), ApiError> {
        check_text(&[
            ("status", self.status.as_deref()),
            ("event", self.event.as_deref()),
        ])
    }
}

/// `GET /admin/v1/devices/{keyId}`: the key, its device's intelligence, every key of the device
/// (the supersession chain) and the device's recent decisions.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceDetail {
    /// The key asked for.
    #[serde(flatten)]
    pub key: DeviceView,
    /// What the server knows about its device (failures: every refusal that proved possession
    /// of one of its keys and is still tallied, the last day at least).
    pub intelligence: DeviceIntelligence,
    /// Every key of the device, oldest first; `supersededBy` links each replaced key to its
    /// successor.
    pub keys: Vec<DeviceView>,
    /// The device's (or, without a device, the key's) latest decisions, newest first.
    pub recent_decisions: Vec<DecisionLogView>,
}

/// Orders a device's keys for display: by creation time, and within one second (the store's
/// precision) each replaced key before its successor, so the supersession chain reads in order.
pub fn history_order(mut keys: Vec<attest_store::DeviceKey>) -> Vec<attest_store::DeviceKey> {
    // depth = length of the longest chain of predecessors; links only point to newer keys, and
    // each pass settles at least one more level, so `len` passes reach the fixed point.
    let mut depth = vec![0usize; keys.len()];
    for _ in 0..keys.len() {
        let mut changed = false;
        for (index, key) in keys.iter().enumerate() {
            let Some(next) = key.superseded_by else {
                continue;
            };
            if let Some(successor) = keys.iter().position(|k| k.key_id == next)
                && depth[successor] < depth[index] + 1
            {
                depth[successor] = depth[index] + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| (keys[i].created_at, depth[i]));
    let mut slots: Vec<Option<attest_store::DeviceKey>> = keys.drain(..).map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// One logged decision.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionLogView {
    /// Log id (pass as `beforeId` for the next page).
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    /// App ID (empty when the key was unknown).
    pub app_id: String,
    /// The route.
    pub route: String,
    /// `attestation` or `assertion`.
    pub kind: Option<&'static str>,
    /// The key (standard base64).
    pub key_id: Option<String>,
    /// The device.
    pub device_id: Option<String>,
    /// The user id named.
    pub user_id: Option<String>,
    /// The client address.
    pub client_ip: Option<String>,
    /// The key's environment.
    pub environment: Option<&'static str>,
    /// `ok` (the proof verified), or the failure code.
    pub code: String,
    /// The app's mode then.
    pub mode: Option<&'static str>,
    /// `allow`, `allow_monitored` or `deny`.
    pub outcome: &'static str,
    /// Whether enforcing would deny it.
    pub would_deny: bool,
    /// Every failed rule.
    pub reasons: Vec<LoggedReasonView>,
    /// 0-100.
    pub risk_score: Option<u8>,
    /// The score's band.
    pub risk_band: Option<&'static str>,
    /// The factors with their evidence.
    pub risk_factors: Vec<FactorView>,
}

/// A failed rule, as logged.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedReasonView {
    /// The rule's code.
    pub code: String,
    /// What failed.
    pub message: String,
}

impl From<&LoggedDecision> for DecisionLogView {
    fn from(logged: &LoggedDecision) -> Self {
        let d = &logged.decision;
        Self {
            id: logged.id,
            at: rfc3339(d.at),
            app_id: d.app_id.clone(),
            route: d.route.clone(),
            kind: d.kind.map(|k| k.as_str()),
            key_id: d.key_id.as_ref().map(encode_key_id),
            device_id: d.device_id.clone(),
            user_id: d.user_id.clone(),
            client_ip: d.client_ip.clone(),
            environment: d.environment.map(|e| e.as_str()),
            code: d.code.clone(),
            mode: d.mode.map(|m| m.as_str()),
            outcome: d.outcome.as_str(),
            would_deny: d.would_deny,
            reasons: d
                .reasons
                .iter()
                .map(|r| LoggedReasonView {
                    code: r.code.clone(),
                    message: r.message.clone(),
                })
                .collect(),
            risk_score: d.risk_score,
            risk_band: d.risk_score.map(|s| Band::from_score(s).as_str()),
            risk_factors: d
                .factors
                .iter()
                .map(|f| FactorView {
                    name: factor_name(&f.name),
                    points: f.points,
                    evidence: f.evidence.clone(),
                })
                .collect(),
        }
    }
}

/// The static name of a logged factor (`unknown` for a name this version does not know).
fn factor_name(name: &str) -> &'static str {
    attest_policy::FactorName::ALL
        .iter()
        .map(|f| f.as_str())
        .find(|known| *known == name)
        .unwrap_or("unknown")
}

/// Query of `GET /admin/v1/decisions`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DecisionQuery {
    /// Only this App ID.
    #[param(value_type = Option<wire::FilterText>)]
    pub app_id: Option<String>,
    /// Only `allow`, `allow_monitored` or `deny`.
    #[param(value_type = Option<wire::Outcome>)]
    pub outcome: Option<String>,
    /// `true`: only what enforcing would deny; `false`: only what it would allow.
    pub would_deny: Option<bool>,
    /// Only decisions at or after this time: RFC 3339 or unix seconds.
    #[param(value_type = Option<wire::Since>)]
    pub since: Option<String>,
    /// Only this device.
    #[param(value_type = Option<wire::FilterText>)]
    pub device_id: Option<String>,
    /// Only this key.
    #[param(value_type = Option<wire::KeyId>)]
    pub key_id: Option<String>,
    /// Only decisions older than this log id (the last `id` of the previous page).
    pub before_id: Option<i64>,
    /// Page size: 1 to 1000 (default 100); anything else is 400 `malformed_request`.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// `GET /admin/v1/decisions`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionList {
    /// Newest first.
    pub decisions: Vec<DecisionLogView>,
    /// Pass as `beforeId` for the next page (absent on the last page).
    pub next_before_id: Option<i64>,
}

/// Query of `GET /admin/v1/apps/{appId}/summary`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Only decisions at or after this time: RFC 3339 or unix seconds (default: all).
    #[param(value_type = Option<wire::Since>)]
    pub since: Option<String>,
}

/// `GET /admin/v1/apps/{appId}/summary`: what the app's policy did, and what enforcing would.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SummaryView {
    /// The App ID.
    pub app_id: String,
    /// The app's current mode.
    pub mode: &'static str,
    /// The app's current `max_risk_score`.
    pub max_risk_score: Option<u8>,
    /// Decisions counted since (RFC 3339), or all.
    pub since: Option<String>,
    /// All decisions.
    pub total: u64,
    /// Decisions that enforce mode would deny (denied, or let through in monitor/off mode).
    pub would_deny: u64,
    /// Of those, the ones let through (what switching to enforce would newly block).
    pub would_deny_allowed: u64,
    /// Distinct devices with at least one decision enforcing would deny.
    pub would_deny_devices: u64,
    /// By outcome.
    pub by_outcome: Vec<OutcomeCountView>,
    /// By outcome and failed rule (a decision with two failed rules counts under both).
    pub by_reason: Vec<ReasonCountView>,
    /// Refusals counted against their sender but not logged in full (past each sender's
    /// sample of `refusal_log_sample` per code and window); not in the counts above. See
    /// `GET /admin/v1/apps/{appId}/senders`.
    pub unlogged_refusals: u64,
}

/// Decisions of one outcome.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeCountView {
    /// The outcome.
    pub outcome: &'static str,
    /// Whether enforcing would deny them.
    pub would_deny: bool,
    /// How many.
    pub count: u64,
}

/// Decisions of one outcome that failed one rule.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReasonCountView {
    /// The outcome.
    pub outcome: &'static str,
    /// The rule.
    pub reason: String,
    /// How many.
    pub count: u64,
}

impl SummaryView {
    /// From the store's counts.
    pub fn new(
        app_id: String,
        policy: &attest_policy::Policy,
        since: Option<String>,
        summary: &DecisionSummary,
    ) -> Self {
        let by_outcome: Vec<OutcomeCountView> = summary
            .by_outcome
            .iter()
            .map(|c| OutcomeCountView {
                outcome: c.outcome.as_str(),
                would_deny: c.would_deny,
                count: c.count,
            })
            .collect();
        let sum = |keep: &dyn Fn(&OutcomeCountView) -> bool| -> u64 {
            by_outcome.iter().filter(|c| keep(c)).map(|c| c.count).sum()
        };
        Self {
            app_id,
            mode: policy.mode.as_str(),
            max_risk_score: policy.max_risk_score,
            since,
            total: sum(&|_| true),
            would_deny: sum(&|c| c.would_deny),
            would_deny_allowed: sum(&|c| c.would_deny && c.outcome != "deny"),
            would_deny_devices: summary.would_deny_devices,
            unlogged_refusals: summary.unlogged_refusals,
            by_reason: summary
                .by_reason
                .iter()
                .map(|c| ReasonCountView {
                    outcome: c.outcome.as_str(),
                    reason: c.reason.clone(),
                    count: c.count,
                })
                .collect(),
            by_outcome,
        }
    }
}

/// Query of `GET /admin/v1/webhooks/deliveries`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only `pending`, `delivered` or `failed`.
    #[param(value_type = Option<wire::DeliveryStatus>)]
    pub status: Option<String>,
    /// Only this event (`device.new`, ...).
    #[param(value_type = Option<wire::FilterText>)]
    pub event: Option<String>,
    /// Only deliveries older than this id.
    pub before_id: Option<i64>,
    /// Page size: 1 to 1000 (default 100); anything else is 400 `malformed_request`.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// One event for one endpoint.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    /// Delivery id (the `X-Attestd-Delivery` header).
    pub id: i64,
    /// Event id (the body's `id`).
    pub event_id: String,
    /// Event name.
    pub event: String,
    /// Endpoint URL.
    pub endpoint: String,
    /// `pending`, `delivered` or `failed`.
    pub status: &'static str,
    /// Attempts made.
    pub attempts: u32,
    /// RFC 3339: when the next attempt is due (pending only).
    pub next_attempt_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub last_attempt_at: Option<String>,
    /// The last answer's status.
    pub last_http_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// RFC 3339.
    pub delivered_at: Option<String>,
    /// The signed body.
    #[schema(value_type = Object)]
    pub payload: Value,
}

impl From<&WebhookDelivery> for DeliveryView {
    fn from(d: &WebhookDelivery) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id.clone(),
            event: d.event.clone(),
            endpoint: d.endpoint.clone(),
            status: d.status.as_str(),
            attempts: d.attempts,
            next_attempt_at: (d.status == attest_store::DeliveryStatus::Pending)
                .then(|| rfc3339(d.next_attempt_at)),
            created_at: rfc3339(d.created_at),
            last_attempt_at: d.last_attempt_at.map(rfc3339),
            last_http_status: d.last_http_status,
            last_error: d.last_error.clone(),
            delivered_at: d.delivered_at.map(rfc3339),
            payload: serde_json::from_str(&d.payload).unwrap_or(Value::Null),
        }
    }
}

/// `GET /admin/v1/webhooks/deliveries`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<DeliveryView>,
    /// Pass as `beforeId` for the next page.
    pub next_before_id: Option<i64>,
}

#[cfg(test)]
mod tests {
    use attest_store::{DeviceKey, Environment};
    use time::OffsetDateTime;

    use super::history_order;

    #[test]
    fn same_second_keys_follow_their_supersession_chain() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let key = |seed: u8, successor: Option<u8>, offset: i64| {
            let mut key = DeviceKey::new(
                attest_types::KeyId([seed; 32]),
                "d",
                "T.app",
                Environment::Production,
                vec![],
                attest_store::AppleEvidence::default(),
                at + time::Duration::seconds(offset),
            );
            key.superseded_by = successor.map(|s| attest_types::KeyId([s; 32]));
            key
        };
        // 9 -> 5 -> 1 within one second (key ids in reverse order), then 7 a second later.
        let keys = vec![
            key(1, Some(7), 0),
            key(5, Some(1), 0),
            key(7, None, 1),
            key(9, Some(5), 0),
        ];
        let seeds: Vec<u8> = history_order(keys).iter().map(|k| k.key_id.0[0]).collect();
        assert_eq!(seeds, [9, 5, 1, 7]);
    }
}
