//! The risk score and the policy decision of every attestation and assertion.
//!
//! attest-policy does the scoring and the deciding ([`attest_policy::assess`],
//! [`attest_policy::decide`]); this module feeds it. [`evaluate`] is the pure step (signals and
//! app settings in, [`Verdict`] out); [`gather`] collects the signals from the request and the
//! store; [`record`] logs the verdict, counts it in metrics and raises webhook events.

pub mod gather;
pub mod record;

use attest_policy::{
    AndroidSignals, Band, Decision, Environment, Outcome, Policy, PolicyMode, ReceiptStatus,
    RiskAssessment, RiskWeights, Signals, Verification, assess, decide,
};
use attest_store::DeviceKey;
use attest_types::evidence::ReceiptStatus as StoredReceipt;
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// What the policy made of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The score, its band and the factors that produced it.
    pub assessment: RiskAssessment,
    /// The outcome, every failed rule, `would_deny` and the permissions.
    pub decision: Decision,
    /// The app's mode.
    pub mode: PolicyMode,
}

impl Verdict {
    /// Whether the request is refused.
    pub fn denied(&self) -> bool {
        self.decision.outcome == Outcome::Deny
    }

    /// Whether the score is in the high or critical band.
    pub fn high_risk(&self) -> bool {
        self.assessment.band >= Band::High
    }

    /// The JWT claims: `risk_score`, `risk_band`, `risk_factors` (names), `permissions` and
    /// `decision` (the outcome).
    pub fn claims(&self) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("risk_score".into(), json!(self.assessment.score));
        claims.insert("risk_band".into(), json!(self.assessment.band.as_str()));
        claims.insert("risk_factors".into(), json!(self.assessment.factor_names()));
        claims.insert("permissions".into(), json!(self.decision.permissions));
        claims.insert("decision".into(), json!(self.decision.outcome.as_str()));
        claims
    }

    /// [`claims`](Self::claims) plus what the key itself tells: `apple_risk_metric`, the risk
    /// metric of the receipt stored with the key (the attestation's, or the latest one the
    /// receipt refresh obtained), when there is one.
    pub fn claims_for(&self, key: &DeviceKey) -> Map<String, Value> {
        let mut claims = self.claims();
        if let Some(metric) = key.receipt_risk_metric {
            claims.insert("apple_risk_metric".into(), json!(metric));
        }
        claims
    }
}

/// Scores `signals` with `weights` and applies `policy`. Pure.
///
/// One rule is the server's own: a request whose own proof failed (verification, an unusable
/// key, a spent challenge) is denied in **every** mode. Monitor and off relax the policy rules,
/// never the cryptography: there is no verified key to register and no counter to advance, so
/// there is nothing to let through. The decision keeps its reasons and `would_deny`.
pub fn evaluate(policy: &Policy, weights: &RiskWeights, signals: &Signals) -> Verdict {
    let assessment = assess(signals, weights);
    let mut decision = decide(
        policy,
        signals.verification.as_result(),
        &assessment,
        signals.now,
    );
    if matches!(signals.verification, Verification::Failed(_)) {
        decision.outcome = Outcome::Deny;
        decision.permissions.clear();
    }
    Verdict {
        assessment,
        decision,
        mode: policy.mode,
    }
}

/// What a stored key tells the risk score.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFacts {
    /// The receipt's status at attestation.
    pub receipt: Option<ReceiptStatus>,
    /// Apple's risk metric from the latest receipt.
    pub risk_metric: Option<u32>,
    /// How old that receipt is.
    pub receipt_age: Option<Duration>,
    /// The key's environment.
    pub environment: Option<Environment>,
    /// iOS 27 validation category bytes.
    pub validation_category: Option<Vec<u8>>,
    /// iOS 27 bundle version.
    pub bundle_version: Option<String>,
    /// Counter regressions seen for the key.
    pub counter_regressions: u32,
    /// Replays seen for the key.
    pub replays: u32,
    /// What an Android key's attestation said about the device.
    pub android: Option<AndroidSignals>,
}

impl KeyFacts {
    /// The facts of `key` at `now`. Every stored App Attest key names its receipt status
    /// (migration 0111 gave keys stored before statuses theirs); evidence without one claims
    /// nothing, so it counts as missing.
    pub fn of(key: &DeviceKey, now: OffsetDateTime) -> Self {
        let apple = key.evidence.apple();
        let receipt = apple.map(|apple| match apple.receipt_status {
            Some(StoredReceipt::Valid) => ReceiptStatus::Valid,
            Some(StoredReceipt::Invalid) => ReceiptStatus::Invalid(
                apple
                    .receipt_reason
                    .clone()
                    .unwrap_or_else(|| "receipt_invalid".to_owned()),
            ),
            None | Some(StoredReceipt::Missing) => ReceiptStatus::Missing,
        });
        let receipt_age = apple
            .and_then(|apple| apple.receipt_created_at)
            .and_then(|at| OffsetDateTime::from_unix_timestamp(at).ok())
            .map(|at| now - at);
        Self {
            receipt,
            risk_metric: key
                .receipt_risk_metric
                .map(|metric| u32::try_from(metric.max(0)).unwrap_or(u32::MAX)),
            receipt_age,
            environment: Some(key.environment),
            validation_category: apple.and_then(|apple| apple.validation_category.clone()),
            bundle_version: apple.and_then(|apple| apple.bundle_version.clone()),
            counter_regressions: saturate(key.counter_regressions),
            replays: saturate(key.replays),
            android: key.evidence.android().map(|android| AndroidSignals {
                software_backed: android.keymint_security_level.rank() == 0,
                verified_boot_state: android.verified_boot_state,
                device_locked: android.device_locked,
                os_patch_level: android.os_patch_level,
            }),
        }
    }

    /// Writes these facts into `signals`.
    pub fn apply(&self, signals: &mut Signals) {
        signals.receipt.clone_from(&self.receipt);
        signals.apple_risk_metric = self.risk_metric;
        signals.apple_risk_metric_age = self.receipt_age;
        signals.environment = self.environment;
        signals
            .validation_category
            .clone_from(&self.validation_category);
        signals.bundle_version.clone_from(&self.bundle_version);
        signals.counter_regressions = self.counter_regressions;
        signals.replays = self.replays;
        signals.android = self.android;
    }
}

/// A count for a `u32` signal.
pub fn saturate(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// The client's clock, when a JSON object payload carries `timestamp`: unix seconds (or
/// milliseconds, above 10^11) as a number, or RFC 3339 text. The payload is the signed client
/// data, so the time is the app's own.
pub fn client_time(payload: &str) -> Option<OffsetDateTime> {
    if !payload.trim_start().starts_with('{') {
        return None;
    }
    let value: Value = serde_json::from_str(payload).ok()?;
    match value.get("timestamp")? {
        Value::Number(number) => {
            let seconds = match number.as_i64() {
                Some(n) if n.abs() > 100_000_000_000 => n / 1000,
                Some(n) => n,
                None => number.as_f64().filter(|f| f.is_finite())? as i64,
            };
            OffsetDateTime::from_unix_timestamp(seconds).ok()
        }
        Value::String(text) => OffsetDateTime::parse(text, &Rfc3339).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use attest_policy::{FactorName, ReasonCode};
    use attest_store::AppleEvidence;
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-05-04 12:00 UTC);

    fn risky() -> Signals {
        Signals {
            receipt: Some(ReceiptStatus::Invalid("receipt_signature_invalid".into())),
            apple_risk_metric: Some(12),
            environment: Some(Environment::Production),
            ..Signals::new(NOW)
        }
    }

    fn policy(mode: PolicyMode) -> Policy {
        Policy {
            mode,
            max_risk_score: Some(50),
            ..Policy::default()
        }
    }

    #[test]
    fn monitor_lets_a_risky_request_through_and_enforce_denies_it() {
        let weights = RiskWeights::default();
        let monitored = evaluate(&policy(PolicyMode::Monitor), &weights, &risky());
        assert_eq!(monitored.assessment.score, 65);
        assert_eq!(monitored.decision.outcome, Outcome::AllowMonitored);
        assert!(monitored.decision.would_deny && !monitored.denied());
        assert_eq!(monitored.decision.permissions, ["basic"]);
        let enforced = evaluate(&policy(PolicyMode::Enforce), &weights, &risky());
        assert!(enforced.denied());
        assert_eq!(enforced.decision.reasons, monitored.decision.reasons);
        assert_eq!(enforced.decision.reasons[0].code, ReasonCode::RiskAboveMax);
        let off = evaluate(&policy(PolicyMode::Off), &weights, &risky());
        assert_eq!(off.decision.outcome, Outcome::Allow);
        assert!(off.decision.would_deny);
    }

    #[test]
    fn a_failed_proof_is_denied_in_every_mode() {
        for mode in [PolicyMode::Off, PolicyMode::Monitor, PolicyMode::Enforce] {
            let signals = Signals {
                verification: Verification::failed("signature_invalid"),
                ..Signals::new(NOW)
            };
            let verdict = evaluate(&policy(mode), &RiskWeights::default(), &signals);
            assert!(verdict.denied(), "{mode:?}");
            assert!(verdict.decision.would_deny);
            assert!(verdict.decision.permissions.is_empty());
            assert_eq!(verdict.mode, mode);
            assert_eq!(
                verdict.assessment.factors[0].name,
                FactorName::VerificationFailed
            );
        }
    }

    #[test]
    fn claims_carry_score_band_factors_and_permissions() {
        let verdict = evaluate(
            &policy(PolicyMode::Monitor),
            &RiskWeights::default(),
            &risky(),
        );
        let claims = verdict.claims();
        assert_eq!(claims["risk_score"], 65);
        assert_eq!(claims["risk_band"], "high");
        assert_eq!(
            claims["risk_factors"],
            json!(["receipt_invalid", "high_apple_risk_metric"])
        );
        assert_eq!(claims["permissions"], json!(["basic"]));
        assert_eq!(claims["decision"], "allow_monitored");
        assert!(verdict.high_risk());
    }

    #[test]
    fn key_facts_come_from_the_stored_key() {
        let mut key = DeviceKey::new(
            attest_types::KeyId([1; 32]),
            "dev_1",
            "T.app",
            attest_store::Environment::Development,
            vec![1],
            AppleEvidence {
                receipt_status: Some(StoredReceipt::Invalid),
                receipt_reason: Some("receipt_chain_invalid".into()),
                receipt_created_at: Some((NOW - Duration::days(2)).unix_timestamp()),
                validation_category: Some(vec![1, 0, 0, 0]),
                bundle_version: Some("42".into()),
                leaf_not_after: None,
            },
            NOW,
        );
        key.receipt_risk_metric = Some(7);
        key.counter_regressions = 2;
        key.replays = u64::MAX;
        let facts = KeyFacts::of(&key, NOW);
        assert_eq!(
            facts.receipt,
            Some(ReceiptStatus::Invalid("receipt_chain_invalid".into()))
        );
        assert_eq!(facts.risk_metric, Some(7));
        assert_eq!(facts.receipt_age, Some(Duration::days(2)));
        assert_eq!(facts.environment, Some(Environment::Development));
        assert_eq!(facts.validation_category, Some(vec![1, 0, 0, 0]));
        assert_eq!(facts.bundle_version.as_deref(), Some("42"));
        assert_eq!((facts.counter_regressions, facts.replays), (2, u32::MAX));

        // Evidence that names no receipt status claims no verified receipt.
        key.evidence = AppleEvidence::default().into();
        assert_eq!(
            KeyFacts::of(&key, NOW).receipt,
            Some(ReceiptStatus::Missing)
        );
    }

    #[test]
    fn client_time_is_read_from_a_json_payload() {
        let at = NOW.unix_timestamp();
        assert_eq!(
            client_time(&json!({ "timestamp": at }).to_string()),
            Some(NOW)
        );
        assert_eq!(
            client_time(&json!({ "timestamp": at * 1000 }).to_string()),
            Some(NOW)
        );
        assert_eq!(
            client_time(r#"{"timestamp": "2026-05-04T12:00:00Z"}"#),
            Some(NOW)
        );
        assert_eq!(client_time("plain challenge"), None);
        assert_eq!(client_time(r#"{"timestamp": true}"#), None);
        assert_eq!(client_time(r#"{"timestamp": 1e300}"#), None);
        assert_eq!(client_time("{not json"), None);
    }
}
