//! Allow, allow-monitored or deny, with the reasons.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::policy::{Policy, PolicyMode};
use crate::risk::RiskAssessment;
use crate::signals::ReceiptStatus;

pub use attest_types::Outcome;

/// The stable id of a failed rule (snake_case; a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// The attestation or assertion failed verification.
    VerificationFailed,
    /// A valid receipt is required and the key's receipt is invalid.
    ReceiptInvalid,
    /// A valid receipt is required and the key has none (or its status is unknown).
    ReceiptMissing,
    /// The key's environment is not in `allowed_environments` (or is unknown while the policy
    /// allows only one).
    EnvironmentNotAllowed,
    /// The risk score is above `max_risk_score`.
    RiskAboveMax,
    /// The request came outside every configured time window.
    OutsideTimeWindow,
}

impl ReasonCode {
    /// Every reason, in the order [`decide`] checks and lists them.
    pub const ALL: [Self; 6] = [
        Self::VerificationFailed,
        Self::ReceiptInvalid,
        Self::ReceiptMissing,
        Self::EnvironmentNotAllowed,
        Self::RiskAboveMax,
        Self::OutsideTimeWindow,
    ];

    /// The stable snake_case id, e.g. `risk_above_max`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::VerificationFailed => "verification_failed",
            Self::ReceiptInvalid => "receipt_invalid",
            Self::ReceiptMissing => "receipt_missing",
            Self::EnvironmentNotAllowed => "environment_not_allowed",
            Self::RiskAboveMax => "risk_above_max",
            Self::OutsideTimeWindow => "outside_time_window",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reason {
    /// The rule's stable id.
    pub code: ReasonCode,
    /// What failed, with the numbers (`risk score 80 > max 75 (...)`).
    pub message: String,
}

/// The error code the hosted service this mirrors returns for the same refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HostedCode {
    /// `invalid_attestation`: verification, receipt or environment.
    #[serde(rename = "ATT_002")]
    Att002,
    /// `bundle_mismatch`: the App ID did not match (`app_id_mismatch`,
    /// `receipt_app_id_mismatch`).
    #[serde(rename = "ATT_003")]
    Att003,
    /// `high_risk_device`: the risk score is above the maximum.
    #[serde(rename = "ATT_004")]
    Att004,
}

impl HostedCode {
    /// `ATT_002`, `ATT_003` or `ATT_004`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Att002 => "ATT_002",
            Self::Att003 => "ATT_003",
            Self::Att004 => "ATT_004",
        }
    }
}

impl fmt::Display for HostedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Verification codes that mean "wrong app" rather than "bad attestation".
const APP_MISMATCH_CODES: [&str; 2] = ["app_id_mismatch", "receipt_app_id_mismatch"];

/// What the policy made of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// What happens to the request.
    pub outcome: Outcome,
    /// Every rule that failed, in [`ReasonCode::ALL`] order, whatever the mode: in monitor and
    /// off mode they say what enforcing would have blocked.
    pub reasons: Vec<Reason>,
    /// Whether enforce mode would deny this request (`!reasons.is_empty()`).
    pub would_deny: bool,
    /// The permissions granted: the assessment's band's list, or none when denied.
    pub permissions: Vec<String>,
    /// The hosted-service code of the first reason that has one, whenever `would_deny`
    /// (an enforcing deny carries it; in monitor mode it says which code enforcing would return).
    /// `None` when nothing would be denied, or only the time window failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosted_code: Option<HostedCode>,
}

impl Decision {
    /// The codes of the failed rules, e.g. for a metrics label.
    pub fn reason_codes(&self) -> Vec<&'static str> {
        self.reasons.iter().map(|r| r.code.as_str()).collect()
    }
}

/// Applies `policy` to a request: its verification outcome (`Err` holds the stable failure
/// code), its risk assessment, and the server's time `now` (for time windows).
///
/// Every rule is evaluated in every mode; the mode only decides what the failures do:
/// - `off`: [`Outcome::Allow`], always;
/// - `monitor`: [`Outcome::AllowMonitored`] when a rule failed, else [`Outcome::Allow`];
/// - `enforce`: [`Outcome::Deny`] when a rule failed, else [`Outcome::Allow`].
pub fn decide(
    policy: &Policy,
    verification: Result<(), &str>,
    assessment: &RiskAssessment,
    now: OffsetDateTime,
) -> Decision {
    let mut reasons = Vec::new();
    let mut hosted_code = None;
    let mut fail = |code: ReasonCode, hosted: Option<HostedCode>, message: String| {
        reasons.push(Reason { code, message });
        hosted_code = hosted_code.or(hosted);
    };

    if let Err(code) = verification {
        let hosted = if APP_MISMATCH_CODES.contains(&code) {
            HostedCode::Att003
        } else {
            HostedCode::Att002
        };
        fail(
            ReasonCode::VerificationFailed,
            Some(hosted),
            format!("verification failed: {code}"),
        );
    }

    if policy.require_valid_receipt {
        match &assessment.receipt {
            Some(ReceiptStatus::Valid) => {}
            Some(ReceiptStatus::Invalid(reason)) => fail(
                ReasonCode::ReceiptInvalid,
                Some(HostedCode::Att002),
                format!("a valid receipt is required; the receipt is invalid: {reason}"),
            ),
            Some(ReceiptStatus::Missing) => fail(
                ReasonCode::ReceiptMissing,
                Some(HostedCode::Att002),
                "a valid receipt is required; the key has none".to_owned(),
            ),
            None => fail(
                ReasonCode::ReceiptMissing,
                Some(HostedCode::Att002),
                "a valid receipt is required; the receipt status is unknown".to_owned(),
            ),
        }
    }

    if !policy.allows_environment(assessment.environment) {
        let allowed: Vec<_> = policy
            .allowed_environments
            .iter()
            .map(|e| e.as_str())
            .collect();
        let env = assessment.environment.map_or("unknown", |e| e.as_str());
        fail(
            ReasonCode::EnvironmentNotAllowed,
            Some(HostedCode::Att002),
            format!(
                "key environment {env} is not allowed (allowed: {})",
                allowed.join(", ")
            ),
        );
    }

    if let Some(max) = policy.max_risk_score
        && assessment.score > max
    {
        let factors = assessment.factor_names().join(", ");
        fail(
            ReasonCode::RiskAboveMax,
            Some(HostedCode::Att004),
            format!(
                "risk score {} > max {max} (band {}; factors: {factors})",
                assessment.score, assessment.band
            ),
        );
    }

    if !policy.in_time_window(now) {
        let windows: Vec<_> = policy.time_windows.iter().map(|w| w.to_string()).collect();
        let utc = now.to_offset(time::UtcOffset::UTC);
        fail(
            ReasonCode::OutsideTimeWindow,
            None,
            format!(
                "{} {:02}:{:02} UTC is outside every allowed time window ({})",
                crate::policy::Day::from(utc.weekday()).as_str(),
                utc.hour(),
                utc.minute(),
                windows.join("; ")
            ),
        );
    }

    let would_deny = !reasons.is_empty();
    let outcome = match (policy.mode, would_deny) {
        (PolicyMode::Enforce, true) => Outcome::Deny,
        (PolicyMode::Monitor, true) => Outcome::AllowMonitored,
        (PolicyMode::Off, _) | (_, false) => Outcome::Allow,
    };
    let permissions = if outcome == Outcome::Deny {
        Vec::new()
    } else {
        policy
            .permissions_by_band
            .for_band(assessment.band)
            .to_vec()
    };
    Decision {
        outcome,
        reasons,
        would_deny,
        permissions,
        hosted_code,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::policy::{ClockTime, TimeWindow};
    use crate::risk::{Band, FactorName, RiskFactor};
    use crate::signals::Environment;

    const NOW: OffsetDateTime = datetime!(2026-05-04 12:00 UTC); // a Monday

    fn assessment(score: u8) -> RiskAssessment {
        let factors = if score == 0 {
            Vec::new()
        } else {
            vec![RiskFactor {
                name: FactorName::HighAppleRiskMetric,
                points: score,
                evidence: format!("test {score}"),
            }]
        };
        RiskAssessment::from_factors(
            factors,
            Some(ReceiptStatus::Valid),
            Some(Environment::Production),
        )
    }

    /// A policy with every rule switched on, which a clean request at `NOW` passes.
    fn strict(mode: PolicyMode) -> Policy {
        Policy {
            mode,
            max_risk_score: Some(50),
            require_valid_receipt: true,
            allowed_environments: vec![Environment::Production],
            time_windows: vec![TimeWindow {
                days: None,
                start: "09:00".parse().unwrap(),
                end: "17:00".parse().unwrap(),
                utc_offset_minutes: 0,
            }],
            ..Policy::default()
        }
    }

    /// One failing case per rule: (expected reason, hosted code, verification, assessment, now).
    type Case = (
        ReasonCode,
        Option<HostedCode>,
        Result<(), &'static str>,
        RiskAssessment,
        OffsetDateTime,
    );

    fn failing_cases() -> Vec<Case> {
        let mut invalid_receipt = assessment(10);
        invalid_receipt.receipt = Some(ReceiptStatus::Invalid("receipt_signature_invalid".into()));
        let mut missing_receipt = assessment(10);
        missing_receipt.receipt = Some(ReceiptStatus::Missing);
        let mut development = assessment(10);
        development.environment = Some(Environment::Development);
        vec![
            (
                ReasonCode::VerificationFailed,
                Some(HostedCode::Att002),
                Err("nonce_mismatch"),
                assessment(10),
                NOW,
            ),
            (
                ReasonCode::ReceiptInvalid,
                Some(HostedCode::Att002),
                Ok(()),
                invalid_receipt,
                NOW,
            ),
            (
                ReasonCode::ReceiptMissing,
                Some(HostedCode::Att002),
                Ok(()),
                missing_receipt,
                NOW,
            ),
            (
                ReasonCode::EnvironmentNotAllowed,
                Some(HostedCode::Att002),
                Ok(()),
                development,
                NOW,
            ),
            (
                ReasonCode::RiskAboveMax,
                Some(HostedCode::Att004),
                Ok(()),
                assessment(51),
                NOW,
            ),
            (
                ReasonCode::OutsideTimeWindow,
                None,
                Ok(()),
                assessment(10),
                datetime!(2026-05-04 20:00 UTC),
            ),
        ]
    }

    #[test]
    fn every_mode_passes_a_clean_request() {
        for mode in [PolicyMode::Off, PolicyMode::Monitor, PolicyMode::Enforce] {
            let d = decide(&strict(mode), Ok(()), &assessment(10), NOW);
            assert_eq!(d.outcome, Outcome::Allow, "{mode:?}");
            assert_eq!(d.reasons, [], "{mode:?}");
            assert!(!d.would_deny);
            assert_eq!(d.hosted_code, None);
            assert_eq!(d.permissions, ["basic", "payments", "transfers"]);
        }
    }

    #[test]
    fn every_mode_times_every_failing_rule() {
        for (code, hosted, verification, a, now) in failing_cases() {
            for (mode, outcome) in [
                (PolicyMode::Off, Outcome::Allow),
                (PolicyMode::Monitor, Outcome::AllowMonitored),
                (PolicyMode::Enforce, Outcome::Deny),
            ] {
                let policy = strict(mode);
                let d = decide(&policy, verification, &a, now);
                let what = format!("{mode:?} / {code}");
                assert_eq!(d.outcome, outcome, "{what}");
                assert!(d.would_deny, "{what}");
                assert_eq!(d.reason_codes(), [code.as_str()], "{what}: {:?}", d.reasons);
                assert_eq!(d.hosted_code, hosted, "{what}");
                let expected_permissions: &[String] = if outcome == Outcome::Deny {
                    &[]
                } else {
                    policy.permissions_by_band.for_band(a.band)
                };
                assert_eq!(d.permissions, expected_permissions, "{what}");
            }
        }
    }

    #[test]
    fn default_policy_denies_only_verification_failures() {
        let policy = Policy::default();
        let mut bad = assessment(100);
        bad.receipt = Some(ReceiptStatus::Missing);
        bad.environment = Some(Environment::Development);
        let d = decide(&policy, Ok(()), &bad, datetime!(2026-05-04 03:00 UTC));
        assert_eq!(d.outcome, Outcome::Allow);
        assert!(
            d.permissions.is_empty(),
            "critical band grants nothing by default"
        );
        let d = decide(&policy, Err("signature_invalid"), &assessment(0), NOW);
        assert_eq!(d.outcome, Outcome::Deny);
        assert_eq!(
            d.reasons[0].message,
            "verification failed: signature_invalid"
        );
    }

    #[test]
    fn messages_name_the_numbers() {
        let mut a = assessment(80);
        a.receipt = Some(ReceiptStatus::Invalid("receipt_digest_mismatch".into()));
        a.environment = None;
        let d = decide(
            &strict(PolicyMode::Enforce),
            Err("app_id_mismatch"),
            &a,
            datetime!(2026-05-09 22:15 UTC),
        );
        let messages: Vec<_> = d.reasons.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "verification failed: app_id_mismatch",
                "a valid receipt is required; the receipt is invalid: receipt_digest_mismatch",
                "key environment unknown is not allowed (allowed: production)",
                "risk score 80 > max 50 (band critical; factors: high_apple_risk_metric)",
                "sat 22:15 UTC is outside every allowed time window (09:00-17:00 UTC+00:00)",
            ]
        );
        // The first reason with a hosted code wins: the App ID mismatch.
        assert_eq!(d.hosted_code, Some(HostedCode::Att003));
        let codes: Vec<_> = d.reasons.iter().map(|r| r.code).collect();
        assert_eq!(
            codes,
            [
                ReasonCode::VerificationFailed,
                ReasonCode::ReceiptInvalid,
                ReasonCode::EnvironmentNotAllowed,
                ReasonCode::RiskAboveMax,
                ReasonCode::OutsideTimeWindow,
            ]
        );
    }

    #[test]
    fn unknown_receipt_counts_as_missing_when_required() {
        let mut a = assessment(0);
        a.receipt = None;
        let d = decide(&strict(PolicyMode::Enforce), Ok(()), &a, NOW);
        assert_eq!(d.reason_codes(), ["receipt_missing"]);
        assert_eq!(
            d.reasons[0].message,
            "a valid receipt is required; the receipt status is unknown"
        );
        // Not required: no rule.
        let d = decide(&Policy::default(), Ok(()), &a, NOW);
        assert_eq!(d.reasons, []);
    }

    #[test]
    fn receipt_app_id_mismatch_maps_to_att_003() {
        let d = decide(
            &Policy::default(),
            Err("receipt_app_id_mismatch"),
            &assessment(0),
            NOW,
        );
        assert_eq!(d.hosted_code, Some(HostedCode::Att003));
    }

    #[test]
    fn risk_at_max_passes_above_denies() {
        let policy = strict(PolicyMode::Enforce);
        assert_eq!(
            decide(&policy, Ok(()), &assessment(50), NOW).outcome,
            Outcome::Allow
        );
        assert_eq!(
            decide(&policy, Ok(()), &assessment(51), NOW).outcome,
            Outcome::Deny
        );
        let zero = Policy {
            max_risk_score: Some(0),
            ..Policy::default()
        };
        assert_eq!(
            decide(&zero, Ok(()), &assessment(0), NOW).outcome,
            Outcome::Allow
        );
        assert_eq!(
            decide(&zero, Ok(()), &assessment(1), NOW).outcome,
            Outcome::Deny
        );
    }

    #[test]
    fn permissions_per_band() {
        let policy = Policy::default();
        for (score, band, expected) in [
            (0, Band::Low, &["basic", "payments", "transfers"][..]),
            (20, Band::Low, &["basic", "payments", "transfers"][..]),
            (21, Band::Medium, &["basic", "payments"][..]),
            (50, Band::Medium, &["basic", "payments"][..]),
            (51, Band::High, &["basic"][..]),
            (75, Band::High, &["basic"][..]),
            (76, Band::Critical, &[][..]),
            (100, Band::Critical, &[][..]),
        ] {
            let a = assessment(score);
            assert_eq!(a.band, band);
            let d = decide(&policy, Ok(()), &a, NOW);
            assert_eq!(d.permissions, expected, "score {score}");
        }
        // Custom lists, and monitor mode keeps granting the band's list.
        let custom = Policy {
            mode: PolicyMode::Monitor,
            max_risk_score: Some(60),
            permissions_by_band: crate::policy::PermissionsByBand {
                low: vec!["all".into()],
                medium: vec!["read".into(), "write".into()],
                high: vec!["read".into()],
                critical: vec![],
            },
            ..Policy::default()
        };
        let d = decide(&custom, Ok(()), &assessment(70), NOW);
        assert_eq!(d.outcome, Outcome::AllowMonitored);
        assert_eq!(d.permissions, ["read"]);
        assert_eq!(d.hosted_code, Some(HostedCode::Att004));
        let d = decide(&custom, Ok(()), &assessment(30), NOW);
        assert_eq!(d.permissions, ["read", "write"]);
    }

    #[test]
    fn time_window_with_offset_and_midnight() {
        let policy = Policy {
            time_windows: vec![TimeWindow {
                days: Some(vec![crate::policy::Day::Fri]),
                start: ClockTime::new(22, 0).unwrap(),
                end: ClockTime::new(2, 0).unwrap(),
                utc_offset_minutes: 60,
            }],
            ..Policy::default()
        };
        // Friday 22:30 at UTC+01:00 is 21:30 UTC; Saturday 01:30 local is 00:30 UTC.
        let inside = [
            datetime!(2026-05-08 21:30 UTC),
            datetime!(2026-05-09 00:30 UTC),
        ];
        let outside = [
            datetime!(2026-05-08 20:59 UTC),
            datetime!(2026-05-09 01:00 UTC),
            datetime!(2026-05-09 21:30 UTC),
        ];
        for now in inside {
            assert_eq!(
                decide(&policy, Ok(()), &assessment(0), now).outcome,
                Outcome::Allow,
                "{now}"
            );
        }
        for now in outside {
            let d = decide(&policy, Ok(()), &assessment(0), now);
            assert_eq!(d.outcome, Outcome::Deny, "{now}");
            assert_eq!(d.reason_codes(), ["outside_time_window"]);
            assert_eq!(d.hosted_code, None);
        }
    }

    #[test]
    fn decision_json() {
        let d = decide(&strict(PolicyMode::Monitor), Ok(()), &assessment(60), NOW);
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "outcome": "allow_monitored",
                "reasons": [{
                    "code": "risk_above_max",
                    "message": "risk score 60 > max 50 (band high; factors: high_apple_risk_metric)"
                }],
                "would_deny": true,
                "permissions": ["basic"],
                "hosted_code": "ATT_004"
            })
        );
        assert_eq!(serde_json::from_value::<Decision>(v).unwrap(), d);
        let clean =
            serde_json::to_value(decide(&Policy::default(), Ok(()), &assessment(0), NOW)).unwrap();
        assert!(clean.get("hosted_code").is_none());
    }

    #[test]
    fn stable_names() {
        for code in ReasonCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        for outcome in [Outcome::Allow, Outcome::AllowMonitored, Outcome::Deny] {
            assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.as_str());
        }
        for hosted in [HostedCode::Att002, HostedCode::Att003, HostedCode::Att004] {
            assert_eq!(serde_json::to_value(hosted).unwrap(), hosted.as_str());
        }
    }
}
