//! The risk explanation and device intelligence every attestation and assertion answer carries.

use std::collections::BTreeMap;

use attest_store::{DeviceKey, FailureCount};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::rfc3339;
use crate::server::apple::device_check::DeviceCheckSignal;
use crate::server::risk::Verdict;

/// `riskScore`, `riskBand`, `riskFactors`, `decision`, `permissions`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RiskView {
    /// 0 (trusted) to 100: the sum of the factors' points, capped at 100.
    pub risk_score: u8,
    /// `low` (0-20), `medium` (21-50), `high` (51-75) or `critical` (76-100).
    pub risk_band: &'static str,
    /// Every factor that added points, with the evidence (see docs/risk.md).
    pub risk_factors: Vec<FactorView>,
    /// What the app's policy made of the request.
    pub decision: DecisionView,
    /// The permissions of the band (none when denied): the `permissions` claim.
    pub permissions: Vec<String>,
}

/// One risk factor.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FactorView {
    /// Stable snake_case id, e.g. `new_device`.
    pub name: &'static str,
    /// Points added.
    pub points: u8,
    /// The numbers that triggered it.
    pub evidence: String,
}

/// The policy decision.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionView {
    /// `allow`, `allow_monitored` (let through in monitor mode although enforcing would deny)
    /// or `deny`.
    pub outcome: &'static str,
    /// The app's mode: `off`, `monitor` or `enforce`.
    pub mode: &'static str,
    /// Every failed rule, whatever the mode.
    pub reasons: Vec<ReasonView>,
    /// Whether enforce mode would deny this request.
    pub would_deny: bool,
    /// The hosted-service code enforcing returns (`ATT_002`/`ATT_003`/`ATT_004`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosted_code: Option<&'static str>,
}

/// A failed rule.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReasonView {
    /// Stable snake_case code, e.g. `risk_above_max`.
    pub code: &'static str,
    /// What failed, with the numbers.
    pub message: String,
}

impl From<&Verdict> for RiskView {
    fn from(verdict: &Verdict) -> Self {
        let decision = &verdict.decision;
        Self {
            risk_score: verdict.assessment.score,
            risk_band: verdict.assessment.band.as_str(),
            risk_factors: verdict
                .assessment
                .factors
                .iter()
                .map(|f| FactorView {
                    name: f.name.as_str(),
                    points: f.points,
                    evidence: f.evidence.clone(),
                })
                .collect(),
            decision: DecisionView {
                outcome: decision.outcome.as_str(),
                mode: verdict.mode.as_str(),
                reasons: decision
                    .reasons
                    .iter()
                    .map(|r| ReasonView {
                        code: r.code.as_str(),
                        message: r.message.clone(),
                    })
                    .collect(),
                would_deny: decision.would_deny,
                hosted_code: decision.hosted_code.map(|c| c.as_str()),
            },
            permissions: decision.permissions.clone(),
        }
    }
}

impl RiskView {
    /// As fields of an error body's `details`.
    pub fn into_details(self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}

/// What the server knows about a device: every key it attested, with this key's own facts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceIntelligence {
    /// The server's id for the device.
    pub device_id: String,
    /// This key's environment: `development` or `production`.
    pub environment: String,
    /// Every environment the device has keys in.
    pub environments: Vec<String>,
    /// Keys attested for the device (this one included).
    pub attestation_count: u64,
    /// Keys of the device still accepted.
    pub active_keys: u64,
    /// Accepted assertions over all the device's keys.
    pub assertion_count: u64,
    /// RFC 3339: when the device's first key was attested.
    pub first_seen: String,
    /// RFC 3339: the device's last accepted request.
    pub last_seen: String,
    /// Apple's fraud risk metric from this key's latest receipt, when known.
    pub receipt_risk_metric: Option<i64>,
    /// `valid`, `invalid` or `missing`: this key's receipt at attestation.
    pub receipt_status: Option<String>,
    /// iOS 27: this key's validation category (hex), when present.
    pub validation_category: Option<String>,
    /// iOS 27: this key's bundle version (CFBundleVersion), when present.
    pub bundle_version: Option<String>,
    /// User ids the device's keys were attested for.
    pub user_ids: Vec<String>,
    /// Counter regressions over the device's keys.
    pub counter_regressions: u64,
    /// Replayed assertions over the device's keys.
    pub replays: u64,
    /// Refusals that proved possession of a key of this device, by code (window: the configured
    /// failure window; on the admin API every one still tallied). A refusal that proved nothing
    /// (a bad signature, an unknown challenge: anyone can send one with a keyId) is counted
    /// against its sender instead (`GET /admin/v1/senders/{address}`).
    pub failures_by_code: BTreeMap<String, u64>,
    /// Apple's answer about the DeviceCheck token sent with this request; absent when none
    /// was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_check: Option<DeviceCheckView>,
}

/// What Apple's DeviceCheck said about a device token sent with a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceCheckView {
    /// `valid`, `invalid` (Apple does not recognise the token) or `unavailable` (Apple could
    /// not be asked: see `reason`; the request was scored without it).
    pub status: &'static str,
    /// Bit 0 of the team's two per-device bits; `null` when never set or unknown.
    pub bit0: Option<bool>,
    /// Bit 1.
    pub bit1: Option<bool>,
    /// Why Apple could not be asked (`apple_unreachable`, `apple_rate_limited`,
    /// `apple_not_configured`, ...), when `status` is `unavailable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl From<&DeviceCheckSignal> for DeviceCheckView {
    fn from(signal: &DeviceCheckSignal) -> Self {
        let (status, bits, reason) = match signal {
            DeviceCheckSignal::Answered(answer) if answer.valid => ("valid", answer.bits, None),
            DeviceCheckSignal::Answered(_) => ("invalid", None, None),
            unavailable => ("unavailable", None, Some(unavailable.code())),
        };
        Self {
            status,
            bit0: bits.map(|[bit0, _]| bit0),
            bit1: bits.map(|[_, bit1]| bit1),
            reason,
        }
    }
}

impl DeviceIntelligence {
    /// From this key, the device's keys (this one may or may not be among them) and failures.
    pub fn of(key: &DeviceKey, device_keys: &[DeviceKey], failures: &[FailureCount]) -> Self {
        let mut keys: Vec<&DeviceKey> = device_keys
            .iter()
            .filter(|k| k.key_id != key.key_id)
            .collect();
        keys.push(key);
        let mut environments: Vec<String> = keys
            .iter()
            .map(|k| k.environment.as_str().to_owned())
            .collect();
        environments.sort_unstable();
        environments.dedup();
        let mut user_ids: Vec<String> = keys.iter().filter_map(|k| k.user_id.clone()).collect();
        user_ids.sort_unstable();
        user_ids.dedup();
        let apple = key.evidence.apple();
        Self {
            device_id: key.device_id.clone(),
            environment: key.environment.as_str().to_owned(),
            environments,
            attestation_count: keys.iter().map(|k| k.attestation_count).sum(),
            active_keys: keys.iter().filter(|k| k.revoked_at.is_none()).count() as u64,
            assertion_count: keys.iter().map(|k| k.assertion_count).sum(),
            first_seen: rfc3339(
                keys.iter()
                    .map(|k| k.created_at)
                    .min()
                    .unwrap_or(key.created_at),
            ),
            last_seen: rfc3339(
                keys.iter()
                    .map(|k| k.last_seen_at)
                    .max()
                    .unwrap_or(key.last_seen_at),
            ),
            receipt_risk_metric: key.receipt_risk_metric,
            receipt_status: apple
                .and_then(|apple| apple.receipt_status)
                .map(|status| status.as_str().to_owned()),
            validation_category: apple
                .and_then(|apple| apple.validation_category.as_deref())
                .map(hex::encode),
            bundle_version: apple.and_then(|apple| apple.bundle_version.clone()),
            user_ids,
            counter_regressions: keys.iter().map(|k| k.counter_regressions).sum(),
            replays: keys.iter().map(|k| k.replays).sum(),
            failures_by_code: failures.iter().map(|f| (f.code.clone(), f.count)).collect(),
            device_check: None,
        }
    }
}
