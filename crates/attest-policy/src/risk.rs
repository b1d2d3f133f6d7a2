//! The risk score: named factors, each with its points and the evidence that triggered it.

use std::fmt;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::signals::{
    AndroidSignals, DeviceCheck, Environment, ReceiptStatus, Signals, Verification, fmt_duration,
    to_hex,
};
use crate::weights::RiskWeights;

/// The highest possible score.
pub const MAX_SCORE: u8 = 100;

/// A score range with a name: how much to trust the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    /// 0-20: no meaningful risk indicator.
    Low,
    /// 21-50: some anomalies; monitor closely.
    Medium,
    /// 51-75: several risk factors; restrict access.
    High,
    /// 76-100: severe compromise indicators.
    Critical,
}

impl Band {
    /// Every band, from lowest to highest.
    pub const ALL: [Self; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];

    /// The band a score falls in (scores above 100 count as critical).
    pub const fn from_score(score: u8) -> Self {
        match score {
            0..=20 => Self::Low,
            21..=50 => Self::Medium,
            51..=75 => Self::High,
            _ => Self::Critical,
        }
    }

    /// The scores the band covers.
    pub const fn range(self) -> RangeInclusive<u8> {
        match self {
            Self::Low => 0..=20,
            Self::Medium => 21..=50,
            Self::High => 51..=75,
            Self::Critical => 76..=MAX_SCORE,
        }
    }

    /// `low`, `medium`, `high` or `critical`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stable id of a risk factor (snake_case in JSON, tokens, logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorName {
    /// The request's attestation or assertion failed verification.
    VerificationFailed,
    /// The key's receipt is present but invalid.
    ReceiptInvalid,
    /// The key has no receipt.
    ReceiptMissing,
    /// Apple's risk metric (keys for the device in 30 days) is above the threshold.
    HighAppleRiskMetric,
    /// Many new keys for the same user id in the window.
    UserKeyChurn,
    /// Many new keys from the same IP in the window.
    IpKeyChurn,
    /// Many attestations for the same device.
    RepeatedAttestation,
    /// Assertion counters went backwards.
    CounterRegression,
    /// Assertions were replayed.
    ReplayAttempt,
    /// Many recent verification failures.
    RepeatedFailures,
    /// The device was first seen very recently.
    NewDevice,
    /// A development key for an app that is production-only.
    DevelopmentKeyInProductionApp,
    /// The client's clock is far from the server's.
    ClockSkew,
    /// The iOS 27 validation category is not one the app expects.
    UnexpectedValidationCategory,
    /// Apple did not recognise the request's DeviceCheck token.
    DeviceCheckInvalid,
    /// A DeviceCheck bit the app treats as a flag is set for the device.
    DeviceCheckFlagged,
    /// Android: KeyMint keeps the key in software, not in a TEE or StrongBox.
    SoftwareBackedKey,
    /// Android: the bootloader is unlocked (or the boot chain was not verified).
    UnlockedBootloader,
    /// Android: the boot chain verified with a user-installed key (custom ROM, relocked).
    SelfSignedBoot,
    /// Android: the OS patch level is older than the app accepts without a mark.
    OldPatchLevel,
}

impl FactorName {
    /// Every factor, in the order [`assess`] evaluates and lists them.
    pub const ALL: [Self; 20] = [
        Self::VerificationFailed,
        Self::ReceiptInvalid,
        Self::ReceiptMissing,
        Self::HighAppleRiskMetric,
        Self::UserKeyChurn,
        Self::IpKeyChurn,
        Self::RepeatedAttestation,
        Self::CounterRegression,
        Self::ReplayAttempt,
        Self::RepeatedFailures,
        Self::NewDevice,
        Self::DevelopmentKeyInProductionApp,
        Self::ClockSkew,
        Self::UnexpectedValidationCategory,
        Self::DeviceCheckInvalid,
        Self::DeviceCheckFlagged,
        Self::SoftwareBackedKey,
        Self::UnlockedBootloader,
        Self::SelfSignedBoot,
        Self::OldPatchLevel,
    ];

    /// The stable snake_case id, e.g. `high_apple_risk_metric`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::VerificationFailed => "verification_failed",
            Self::ReceiptInvalid => "receipt_invalid",
            Self::ReceiptMissing => "receipt_missing",
            Self::HighAppleRiskMetric => "high_apple_risk_metric",
            Self::UserKeyChurn => "user_key_churn",
            Self::IpKeyChurn => "ip_key_churn",
            Self::RepeatedAttestation => "repeated_attestation",
            Self::CounterRegression => "counter_regression",
            Self::ReplayAttempt => "replay_attempt",
            Self::RepeatedFailures => "repeated_failures",
            Self::NewDevice => "new_device",
            Self::DevelopmentKeyInProductionApp => "development_key_in_production_app",
            Self::ClockSkew => "clock_skew",
            Self::UnexpectedValidationCategory => "unexpected_validation_category",
            Self::DeviceCheckInvalid => "device_check_invalid",
            Self::DeviceCheckFlagged => "device_check_flagged",
            Self::SoftwareBackedKey => "software_backed_key",
            Self::UnlockedBootloader => "unlocked_bootloader",
            Self::SelfSignedBoot => "self_signed_boot",
            Self::OldPatchLevel => "old_patch_level",
        }
    }
}

impl fmt::Display for FactorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason the score went up.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RiskFactor {
    /// The factor's stable id.
    pub name: FactorName,
    /// The points it added (its weight; never 0: a factor weighted 0 is not listed).
    pub points: u8,
    /// The numbers that triggered it, e.g. `Apple risk metric 12 > threshold 5`.
    pub evidence: String,
}

/// A risk score with its explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskAssessment {
    /// 0 (trusted) to 100: the sum of the factors' points, capped at 100.
    pub score: u8,
    /// The band the score falls in.
    pub band: Band,
    /// The factors that triggered, in [`FactorName::ALL`] order.
    pub factors: Vec<RiskFactor>,
    /// The receipt status the assessment saw, for [`crate::decide`]'s receipt rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<ReceiptStatus>,
    /// The key environment the assessment saw, for [`crate::decide`]'s environment rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
}

impl RiskAssessment {
    /// An assessment from already-computed factors: score = min(100, sum of points).
    pub fn from_factors(
        factors: Vec<RiskFactor>,
        receipt: Option<ReceiptStatus>,
        environment: Option<Environment>,
    ) -> Self {
        let sum: u32 = factors.iter().map(|f| u32::from(f.points)).sum();
        let score = u8::try_from(sum.min(u32::from(MAX_SCORE))).unwrap_or(MAX_SCORE);
        Self {
            score,
            band: Band::from_score(score),
            factors,
            receipt,
            environment,
        }
    }

    /// The ids of the factors that triggered, e.g. for a token claim or a metric label.
    pub fn factor_names(&self) -> Vec<&'static str> {
        self.factors.iter().map(|f| f.name.as_str()).collect()
    }
}

/// Scores `signals` with `weights`. Deterministic: the same inputs give the same factors, in
/// [`FactorName::ALL`] order, with the same evidence.
pub fn assess(signals: &Signals, weights: &RiskWeights) -> RiskAssessment {
    let mut factors = Vec::new();
    let mut add = |name: FactorName, points: u8, evidence: String| {
        if points > 0 {
            factors.push(RiskFactor {
                name,
                points,
                evidence,
            });
        }
    };

    if let Verification::Failed(code) = &signals.verification {
        add(
            FactorName::VerificationFailed,
            weights.verification_failed,
            format!("verification failed: {code}"),
        );
    }

    match &signals.receipt {
        Some(ReceiptStatus::Invalid(reason)) => add(
            FactorName::ReceiptInvalid,
            weights.receipt_invalid,
            format!("receipt invalid: {reason}"),
        ),
        Some(ReceiptStatus::Missing) => add(
            FactorName::ReceiptMissing,
            weights.receipt_missing,
            "no receipt for this key".to_owned(),
        ),
        Some(ReceiptStatus::Valid) | None => {}
    }

    if let Some(metric) = signals.apple_risk_metric {
        let max_age = Duration::days(i64::from(weights.apple_risk_metric_max_age_days));
        let fresh = signals
            .apple_risk_metric_age
            .is_none_or(|age| age <= max_age);
        if fresh && metric > weights.apple_risk_metric_threshold {
            let age = signals
                .apple_risk_metric_age
                .map(|age| format!(" (receipt {} old)", fmt_duration(age)))
                .unwrap_or_default();
            add(
                FactorName::HighAppleRiskMetric,
                weights.high_apple_risk_metric,
                format!(
                    "Apple risk metric {metric} > threshold {}{age}",
                    weights.apple_risk_metric_threshold
                ),
            );
        }
    }

    if let Some(w) = signals.new_keys_for_user
        && w.count > weights.user_key_churn_threshold
    {
        add(
            FactorName::UserKeyChurn,
            weights.user_key_churn,
            format!(
                "{} new keys for this user in {} > threshold {}",
                w.count,
                fmt_duration(w.window),
                weights.user_key_churn_threshold
            ),
        );
    }

    if let Some(w) = signals.new_keys_from_ip
        && w.count > weights.ip_key_churn_threshold
    {
        add(
            FactorName::IpKeyChurn,
            weights.ip_key_churn,
            format!(
                "{} new keys from this IP in {} > threshold {}",
                w.count,
                fmt_duration(w.window),
                weights.ip_key_churn_threshold
            ),
        );
    }

    if let Some(count) = signals.attestation_count
        && count > weights.repeated_attestation_threshold
    {
        add(
            FactorName::RepeatedAttestation,
            weights.repeated_attestation,
            format!(
                "{count} attestations for this device > threshold {}",
                weights.repeated_attestation_threshold
            ),
        );
    }

    if signals.counter_regressions > weights.counter_regression_threshold {
        add(
            FactorName::CounterRegression,
            weights.counter_regression,
            format!(
                "{} assertion counter regressions > threshold {}",
                signals.counter_regressions, weights.counter_regression_threshold
            ),
        );
    }

    if signals.replays > weights.replay_attempt_threshold {
        add(
            FactorName::ReplayAttempt,
            weights.replay_attempt,
            format!(
                "{} replayed assertions > threshold {}",
                signals.replays, weights.replay_attempt_threshold
            ),
        );
    }

    if let Some(failures) = &signals.recent_failures {
        let total = failures.total();
        if total > u64::from(weights.repeated_failures_threshold) {
            let by_code = failures
                .by_code
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(code, n)| format!("{code}×{n}"))
                .collect::<Vec<_>>()
                .join(", ");
            add(
                FactorName::RepeatedFailures,
                weights.repeated_failures,
                format!(
                    "{total} verification failures in {} > threshold {} ({by_code})",
                    fmt_duration(failures.window),
                    weights.repeated_failures_threshold
                ),
            );
        }
    }

    if let Some(first_seen) = signals.device_first_seen {
        // A first sighting "in the future" (clock trouble) counts as brand new.
        let age = (signals.now - first_seen).max(Duration::ZERO);
        let max_age = Duration::hours(i64::from(weights.new_device_max_age_hours));
        if age < max_age {
            add(
                FactorName::NewDevice,
                weights.new_device,
                format!(
                    "device first seen {} ago < {}",
                    fmt_duration(age),
                    fmt_duration(max_age)
                ),
            );
        }
    }

    if signals.app_production_only && signals.environment == Some(Environment::Development) {
        add(
            FactorName::DevelopmentKeyInProductionApp,
            weights.development_key_in_production_app,
            "development key for a production-only app".to_owned(),
        );
    }

    if let Some(client_time) = signals.client_time {
        let skew = client_time - signals.now;
        let threshold = Duration::seconds(i64::from(weights.clock_skew_threshold_seconds));
        if skew.abs() > threshold {
            let direction = if skew.is_negative() {
                "behind"
            } else {
                "ahead of"
            };
            add(
                FactorName::ClockSkew,
                weights.clock_skew,
                format!(
                    "client clock {}s {direction} server > threshold {}s",
                    skew.whole_seconds().unsigned_abs(),
                    weights.clock_skew_threshold_seconds
                ),
            );
        }
    }

    if let Some(category) = &signals.validation_category
        && !weights.expected_validation_categories.is_empty()
    {
        let hex = to_hex(category);
        let expected = &weights.expected_validation_categories;
        if !expected.iter().any(|e| e.eq_ignore_ascii_case(&hex)) {
            let version = signals
                .bundle_version
                .as_deref()
                .map(|v| format!(" (bundle version {v})"))
                .unwrap_or_default();
            add(
                FactorName::UnexpectedValidationCategory,
                weights.unexpected_validation_category,
                format!(
                    "validation category {hex} not in expected [{}]{version}",
                    expected.join(", ")
                ),
            );
        }
    }

    match signals.device_check {
        Some(DeviceCheck { valid: false, .. }) => add(
            FactorName::DeviceCheckInvalid,
            weights.device_check_invalid,
            "Apple did not recognise the DeviceCheck token".to_owned(),
        ),
        Some(DeviceCheck {
            valid: true,
            bits: Some(bits),
        }) => {
            let set: Vec<String> = weights
                .device_check_flag_bits
                .iter()
                .filter(|&&bit| bits.get(usize::from(bit)).copied().unwrap_or(false))
                .map(|bit| format!("bit{bit}"))
                .collect();
            if !set.is_empty() {
                add(
                    FactorName::DeviceCheckFlagged,
                    weights.device_check_flagged,
                    format!("DeviceCheck {} set for this device", set.join(" and ")),
                );
            }
        }
        Some(DeviceCheck {
            valid: true,
            bits: None,
        })
        | None => {}
    }

    if let Some(android) = &signals.android {
        assess_android(android, signals.now, weights, &mut add);
    }

    RiskAssessment::from_factors(factors, signals.receipt.clone(), signals.environment)
}

/// The Android factors, in [`FactorName::ALL`] order.
fn assess_android(
    android: &AndroidSignals,
    now: OffsetDateTime,
    weights: &RiskWeights,
    add: &mut impl FnMut(FactorName, u8, String),
) {
    use attest_types::evidence::VerifiedBootState;
    if android.software_backed {
        add(
            FactorName::SoftwareBackedKey,
            weights.software_backed_key,
            "KeyMint keeps the key in software".to_owned(),
        );
    }
    let unverified = matches!(
        android.verified_boot_state,
        Some(VerifiedBootState::Unverified | VerifiedBootState::Failed)
    );
    if android.device_locked == Some(false) || unverified {
        let state = android
            .verified_boot_state
            .map_or("unknown", VerifiedBootState::as_str);
        let locked = match android.device_locked {
            Some(true) => "locked",
            Some(false) => "unlocked",
            None => "lock state unknown",
        };
        add(
            FactorName::UnlockedBootloader,
            weights.unlocked_bootloader,
            format!("bootloader {locked}, verified boot state {state}"),
        );
    }
    if android.verified_boot_state == Some(VerifiedBootState::SelfSigned) {
        add(
            FactorName::SelfSignedBoot,
            weights.self_signed_boot,
            "boot chain verified with a user-installed key".to_owned(),
        );
    }
    if let Some(level) = android.os_patch_level
        && weights.max_patch_age_months > 0
        && let Some(age) = patch_age_months(level, now)
        && age > weights.max_patch_age_months
    {
        add(
            FactorName::OldPatchLevel,
            weights.old_patch_level,
            format!(
                "OS patch level {level} is {age} months old > {} months",
                weights.max_patch_age_months
            ),
        );
    }
}

/// Months from a `YYYYMM` (or `YYYYMMDD`) patch level to `now`; `None` for a value that is not
/// a date. A patch level in the future is 0 months old.
fn patch_age_months(level: u64, now: OffsetDateTime) -> Option<u32> {
    let level = if level > 999_999 { level / 100 } else { level };
    let (year, month) = (level / 100, level % 100);
    if !(1..=12).contains(&month) || !(2000..=9999).contains(&year) {
        return None;
    }
    let patched = i64::try_from(year * 12 + month - 1).ok()?;
    let current = i64::from(now.year()) * 12 + i64::from(u8::from(now.month())) - 1;
    u32::try_from((current - patched).max(0)).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use time::macros::datetime;
    use time::{Duration, OffsetDateTime};

    use super::*;
    use crate::signals::{FailureCounts, WindowCount};

    const NOW: OffsetDateTime = datetime!(2026-05-04 12:00 UTC);

    fn base() -> Signals {
        Signals::new(NOW)
    }

    /// The only factor `signals` triggers with default weights.
    fn only(signals: &Signals) -> RiskFactor {
        let a = assess(signals, &RiskWeights::default());
        assert_eq!(a.factors.len(), 1, "{:?}", a.factors);
        let f = a.factors[0].clone();
        assert_eq!(a.score, f.points);
        f
    }

    fn none(signals: &Signals) {
        let a = assess(signals, &RiskWeights::default());
        assert_eq!(a.factors, [], "{a:?}");
        assert_eq!(a.score, 0);
        assert_eq!(a.band, Band::Low);
    }

    #[test]
    fn nothing_known_scores_zero() {
        none(&base());
    }

    #[test]
    fn verification_failed() {
        let f = only(&Signals {
            verification: Verification::failed("nonce_mismatch"),
            ..base()
        });
        assert_eq!(f.name, FactorName::VerificationFailed);
        assert_eq!(f.points, 60);
        assert_eq!(f.evidence, "verification failed: nonce_mismatch");
        none(&Signals {
            verification: Verification::Ok,
            ..base()
        });
    }

    #[test]
    fn receipt_invalid_and_missing() {
        let f = only(&Signals {
            receipt: Some(ReceiptStatus::Invalid("receipt_signature_invalid".into())),
            ..base()
        });
        assert_eq!(
            (f.name, f.points, f.evidence.as_str()),
            (
                FactorName::ReceiptInvalid,
                40,
                "receipt invalid: receipt_signature_invalid"
            )
        );
        let f = only(&Signals {
            receipt: Some(ReceiptStatus::Missing),
            ..base()
        });
        assert_eq!(
            (f.name, f.points, f.evidence.as_str()),
            (FactorName::ReceiptMissing, 30, "no receipt for this key")
        );
        none(&Signals {
            receipt: Some(ReceiptStatus::Valid),
            ..base()
        });
        none(&Signals {
            receipt: None,
            ..base()
        });
    }

    #[test]
    fn apple_risk_metric() {
        let f = only(&Signals {
            apple_risk_metric: Some(12),
            ..base()
        });
        assert_eq!(f.name, FactorName::HighAppleRiskMetric);
        assert_eq!(f.points, 25);
        assert_eq!(f.evidence, "Apple risk metric 12 > threshold 5");

        let f = only(&Signals {
            apple_risk_metric: Some(6),
            apple_risk_metric_age: Some(Duration::days(3)),
            ..base()
        });
        assert_eq!(
            f.evidence,
            "Apple risk metric 6 > threshold 5 (receipt 3d old)"
        );

        // At the threshold: not triggered.
        none(&Signals {
            apple_risk_metric: Some(5),
            ..base()
        });
        // Exactly 30 days old still counts; older is stale and ignored.
        only(&Signals {
            apple_risk_metric: Some(50),
            apple_risk_metric_age: Some(Duration::days(30)),
            ..base()
        });
        none(&Signals {
            apple_risk_metric: Some(50),
            apple_risk_metric_age: Some(Duration::days(30) + Duration::SECOND),
            ..base()
        });
    }

    #[test]
    fn user_key_churn() {
        let f = only(&Signals {
            new_keys_for_user: Some(WindowCount {
                count: 4,
                window: Duration::hours(24),
            }),
            ..base()
        });
        assert_eq!(f.name, FactorName::UserKeyChurn);
        assert_eq!(f.points, 15);
        assert_eq!(f.evidence, "4 new keys for this user in 1d > threshold 3");
        none(&Signals {
            new_keys_for_user: Some(WindowCount {
                count: 3,
                window: Duration::hours(24),
            }),
            ..base()
        });
    }

    #[test]
    fn ip_key_churn() {
        let f = only(&Signals {
            new_keys_from_ip: Some(WindowCount {
                count: 21,
                window: Duration::hours(1),
            }),
            ..base()
        });
        assert_eq!(f.name, FactorName::IpKeyChurn);
        assert_eq!(f.points, 10);
        assert_eq!(f.evidence, "21 new keys from this IP in 1h > threshold 20");
        none(&Signals {
            new_keys_from_ip: Some(WindowCount {
                count: 20,
                window: Duration::hours(1),
            }),
            ..base()
        });
    }

    #[test]
    fn repeated_attestation() {
        let f = only(&Signals {
            attestation_count: Some(4),
            ..base()
        });
        assert_eq!(f.name, FactorName::RepeatedAttestation);
        assert_eq!(f.points, 10);
        assert_eq!(f.evidence, "4 attestations for this device > threshold 3");
        none(&Signals {
            attestation_count: Some(3),
            ..base()
        });
    }

    #[test]
    fn counter_regression() {
        let f = only(&Signals {
            counter_regressions: 2,
            ..base()
        });
        assert_eq!(f.name, FactorName::CounterRegression);
        assert_eq!(f.points, 20);
        assert_eq!(f.evidence, "2 assertion counter regressions > threshold 1");
        none(&Signals {
            counter_regressions: 1,
            ..base()
        });
    }

    #[test]
    fn replay_attempt() {
        let f = only(&Signals {
            replays: 3,
            ..base()
        });
        assert_eq!(f.name, FactorName::ReplayAttempt);
        assert_eq!(f.points, 25);
        assert_eq!(f.evidence, "3 replayed assertions > threshold 1");
        none(&Signals {
            replays: 1,
            ..base()
        });
    }

    #[test]
    fn repeated_failures() {
        let by_code = BTreeMap::from([
            ("signature_invalid".to_owned(), 2),
            ("nonce_mismatch".to_owned(), 3),
            ("never".to_owned(), 0),
        ]);
        let f = only(&Signals {
            recent_failures: Some(FailureCounts {
                window: Duration::hours(1),
                by_code,
            }),
            ..base()
        });
        assert_eq!(f.name, FactorName::RepeatedFailures);
        assert_eq!(f.points, 15);
        assert_eq!(
            f.evidence,
            "5 verification failures in 1h > threshold 3 (nonce_mismatch×3, signature_invalid×2)"
        );
        none(&Signals {
            recent_failures: Some(FailureCounts {
                window: Duration::hours(1),
                by_code: BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), 2)]),
            }),
            ..base()
        });
    }

    #[test]
    fn new_device() {
        let f = only(&Signals {
            device_first_seen: Some(NOW - Duration::hours(2)),
            ..base()
        });
        assert_eq!(f.name, FactorName::NewDevice);
        assert_eq!(f.points, 5);
        assert_eq!(f.evidence, "device first seen 2h ago < 1d");
        // First seen in the future counts as brand new.
        let f = only(&Signals {
            device_first_seen: Some(NOW + Duration::hours(2)),
            ..base()
        });
        assert_eq!(f.evidence, "device first seen 0s ago < 1d");
        none(&Signals {
            device_first_seen: Some(NOW - Duration::hours(24)),
            ..base()
        });
    }

    #[test]
    fn development_key_in_production_app() {
        let f = only(&Signals {
            environment: Some(Environment::Development),
            app_production_only: true,
            ..base()
        });
        assert_eq!(f.name, FactorName::DevelopmentKeyInProductionApp);
        assert_eq!(f.points, 30);
        assert_eq!(f.evidence, "development key for a production-only app");
        none(&Signals {
            environment: Some(Environment::Development),
            app_production_only: false,
            ..base()
        });
        none(&Signals {
            environment: Some(Environment::Production),
            app_production_only: true,
            ..base()
        });
        none(&Signals {
            environment: None,
            app_production_only: true,
            ..base()
        });
    }

    #[test]
    fn clock_skew() {
        let f = only(&Signals {
            client_time: Some(NOW + Duration::seconds(400)),
            ..base()
        });
        assert_eq!(f.name, FactorName::ClockSkew);
        assert_eq!(f.points, 10);
        assert_eq!(
            f.evidence,
            "client clock 400s ahead of server > threshold 300s"
        );
        let f = only(&Signals {
            client_time: Some(NOW - Duration::hours(1)),
            ..base()
        });
        assert_eq!(
            f.evidence,
            "client clock 3600s behind server > threshold 300s"
        );
        none(&Signals {
            client_time: Some(NOW - Duration::seconds(300)),
            ..base()
        });
        none(&Signals {
            client_time: Some(NOW + Duration::seconds(300)),
            ..base()
        });
    }

    #[test]
    fn unexpected_validation_category() {
        let weights = RiskWeights {
            expected_validation_categories: vec!["02000000".into(), "0A000000".into()],
            ..RiskWeights::default()
        };
        let signals = Signals {
            validation_category: Some(vec![1, 0, 0, 0]),
            bundle_version: Some("42".into()),
            ..base()
        };
        let a = assess(&signals, &weights);
        assert_eq!(a.score, 20);
        assert_eq!(a.factors[0].name, FactorName::UnexpectedValidationCategory);
        assert_eq!(
            a.factors[0].evidence,
            "validation category 01000000 not in expected [02000000, 0A000000] (bundle version 42)"
        );
        // Expected (case-insensitive): not triggered.
        let ok = Signals {
            validation_category: Some(vec![0x0a, 0, 0, 0]),
            ..base()
        };
        assert_eq!(assess(&ok, &weights).factors, []);
        // No category reported: not triggered.
        assert_eq!(assess(&base(), &weights).factors, []);
        // No expectation configured (the default): not triggered.
        none(&signals);
    }

    fn everything() -> Signals {
        Signals {
            now: NOW,
            verification: Verification::failed("signature_invalid"),
            receipt: Some(ReceiptStatus::Invalid("receipt_digest_mismatch".into())),
            apple_risk_metric: Some(40),
            apple_risk_metric_age: None,
            environment: Some(Environment::Development),
            app_production_only: true,
            device_first_seen: Some(NOW),
            attestation_count: Some(9),
            new_keys_for_user: Some(WindowCount {
                count: 9,
                window: Duration::DAY,
            }),
            new_keys_from_ip: Some(WindowCount {
                count: 99,
                window: Duration::DAY,
            }),
            counter_regressions: 5,
            replays: 5,
            recent_failures: Some(FailureCounts {
                window: Duration::HOUR,
                by_code: BTreeMap::from([("nonce_mismatch".to_owned(), 10)]),
            }),
            client_time: Some(NOW + Duration::DAY),
            validation_category: Some(vec![9]),
            bundle_version: None,
            device_check: Some(DeviceCheck {
                valid: true,
                bits: Some([false, true]),
            }),
            android: Some(AndroidSignals {
                software_backed: true,
                verified_boot_state: Some(attest_types::evidence::VerifiedBootState::SelfSigned),
                device_locked: Some(false),
                os_patch_level: Some(201_801),
            }),
        }
    }

    #[test]
    fn android_factors_say_what_the_attestation_said() {
        use attest_types::evidence::VerifiedBootState;
        let weights = RiskWeights::default();
        let with = |android: AndroidSignals| Signals {
            android: Some(android),
            ..Signals::new(NOW)
        };
        let names = |signals: &Signals| -> Vec<(FactorName, String)> {
            assess(signals, &weights)
                .factors
                .into_iter()
                .map(|f| (f.name, f.evidence))
                .collect()
        };
        let locked = AndroidSignals {
            software_backed: false,
            verified_boot_state: Some(VerifiedBootState::Verified),
            device_locked: Some(true),
            os_patch_level: Some(202_601),
        };
        assert_eq!(names(&with(locked)), [], "a stock, locked, patched device");
        let unlocked = AndroidSignals {
            verified_boot_state: Some(VerifiedBootState::Unverified),
            device_locked: Some(false),
            ..locked
        };
        assert_eq!(
            names(&with(unlocked)),
            [(
                FactorName::UnlockedBootloader,
                "bootloader unlocked, verified boot state unverified".to_owned()
            )]
        );
        let custom = AndroidSignals {
            verified_boot_state: Some(VerifiedBootState::SelfSigned),
            ..locked
        };
        assert_eq!(names(&with(custom))[0].0, FactorName::SelfSignedBoot);
        // NOW is 2026-05: 2024-05 is 24 months old (not more), 2024-04 is 25.
        let at = |level| AndroidSignals {
            os_patch_level: Some(level),
            ..locked
        };
        assert_eq!(names(&with(at(202_405))), []);
        assert_eq!(
            names(&with(at(20_240_401))),
            [(
                FactorName::OldPatchLevel,
                "OS patch level 20240401 is 25 months old > 24 months".to_owned()
            )]
        );
        assert_eq!(names(&with(at(202_413))), [], "not a date: no claim");
        let software = AndroidSignals {
            software_backed: true,
            ..locked
        };
        assert_eq!(names(&with(software))[0].0, FactorName::SoftwareBackedKey);
    }

    #[test]
    fn score_saturates_at_100_and_lists_all_factors_in_order() {
        let weights = RiskWeights {
            expected_validation_categories: vec!["01".into()],
            device_check_flag_bits: vec![1],
            ..RiskWeights::default()
        };
        let a = assess(&everything(), &weights);
        assert_eq!(a.score, 100);
        assert_eq!(a.band, Band::Critical);
        // Everything but `receipt_missing`, which excludes `receipt_invalid`, and
        // `device_check_invalid`, which excludes `device_check_flagged`.
        let expected: Vec<_> = FactorName::ALL
            .into_iter()
            .filter(|&n| n != FactorName::ReceiptMissing && n != FactorName::DeviceCheckInvalid)
            .collect();
        let names: Vec<_> = a.factors.iter().map(|f| f.name).collect();
        assert_eq!(names, expected);
        let sum: u32 = a.factors.iter().map(|f| u32::from(f.points)).sum();
        assert!(sum > 100);
        assert_eq!(
            a.factor_names(),
            expected.iter().map(|n| n.as_str()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn device_check_invalid_token_and_flag_bits() {
        let invalid = Signals {
            device_check: Some(DeviceCheck {
                valid: false,
                bits: None,
            }),
            ..base()
        };
        let f = only(&invalid);
        assert_eq!((f.name, f.points), (FactorName::DeviceCheckInvalid, 40));

        let flagged = |bits| Signals {
            device_check: Some(DeviceCheck { valid: true, bits }),
            ..base()
        };
        // Bits mean nothing until the app names its flag bits.
        let unset_weights = RiskWeights::default();
        assert!(
            assess(&flagged(Some([true, true])), &unset_weights)
                .factors
                .is_empty()
        );
        let weights = RiskWeights {
            device_check_flag_bits: vec![1],
            ..RiskWeights::default()
        };
        assert!(
            assess(&flagged(Some([true, false])), &weights)
                .factors
                .is_empty()
        );
        assert!(assess(&flagged(None), &weights).factors.is_empty());
        let a = assess(&flagged(Some([false, true])), &weights);
        assert_eq!(a.factor_names(), ["device_check_flagged"]);
        assert_eq!(a.score, 30);
        assert_eq!(
            a.factors[0].evidence,
            "DeviceCheck bit1 set for this device"
        );
        let both = RiskWeights {
            device_check_flag_bits: vec![0, 1],
            ..RiskWeights::default()
        };
        let a = assess(&flagged(Some([true, true])), &both);
        assert_eq!(
            a.factors[0].evidence,
            "DeviceCheck bit0 and bit1 set for this device"
        );
        // An unreachable Apple (no signal) is not evidence.
        assert!(assess(&base(), &both).factors.is_empty());
    }

    #[test]
    fn assess_is_deterministic() {
        let weights = RiskWeights::default();
        assert_eq!(
            assess(&everything(), &weights),
            assess(&everything(), &weights)
        );
    }

    #[test]
    fn weights_override_points_and_thresholds() {
        let weights = RiskWeights {
            high_apple_risk_metric: 70,
            apple_risk_metric_threshold: 1,
            ..RiskWeights::default()
        };
        let a = assess(
            &Signals {
                apple_risk_metric: Some(2),
                ..base()
            },
            &weights,
        );
        assert_eq!(a.score, 70);
        assert_eq!(a.band, Band::High);
        assert_eq!(a.factors[0].evidence, "Apple risk metric 2 > threshold 1");
    }

    #[test]
    fn zero_weight_switches_a_factor_off() {
        let weights = RiskWeights {
            verification_failed: 0,
            ..RiskWeights::default()
        };
        let a = assess(
            &Signals {
                verification: Verification::failed("nonce_mismatch"),
                ..base()
            },
            &weights,
        );
        assert_eq!(a.factors, []);
        assert_eq!(a.score, 0);
    }

    #[test]
    fn assessment_carries_receipt_and_environment() {
        let a = assess(
            &Signals {
                receipt: Some(ReceiptStatus::Valid),
                environment: Some(Environment::Production),
                ..base()
            },
            &RiskWeights::default(),
        );
        assert_eq!(a.receipt, Some(ReceiptStatus::Valid));
        assert_eq!(a.environment, Some(Environment::Production));
    }

    #[test]
    fn band_boundaries() {
        for (score, band) in [
            (0, Band::Low),
            (20, Band::Low),
            (21, Band::Medium),
            (50, Band::Medium),
            (51, Band::High),
            (75, Band::High),
            (76, Band::Critical),
            (100, Band::Critical),
            (255, Band::Critical),
        ] {
            assert_eq!(Band::from_score(score), band, "{score}");
        }
        for score in 0..=MAX_SCORE {
            let band = Band::from_score(score);
            assert!(band.range().contains(&score));
            let containing: Vec<_> = Band::ALL
                .into_iter()
                .filter(|b| b.range().contains(&score))
                .collect();
            assert_eq!(containing, [band]);
        }
    }

    #[test]
    fn band_boundaries_through_assess() {
        // One factor whose weight is the score under test.
        for (points, band) in [
            (20, Band::Low),
            (21, Band::Medium),
            (50, Band::Medium),
            (51, Band::High),
            (75, Band::High),
            (76, Band::Critical),
        ] {
            let weights = RiskWeights {
                replay_attempt: points,
                ..RiskWeights::default()
            };
            let a = assess(
                &Signals {
                    replays: 2,
                    ..base()
                },
                &weights,
            );
            assert_eq!((a.score, a.band), (points, band));
        }
    }

    #[test]
    fn serde_names_are_stable() {
        for name in FactorName::ALL {
            assert_eq!(
                serde_json::to_value(name).unwrap(),
                serde_json::json!(name.as_str())
            );
        }
        for band in Band::ALL {
            assert_eq!(
                serde_json::to_value(band).unwrap(),
                serde_json::json!(band.as_str())
            );
        }
    }

    #[test]
    fn assessment_json_round_trip() {
        let a = assess(&everything(), &RiskWeights::default());
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<RiskAssessment>(&json).unwrap(), a);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["band"], "critical");
        assert_eq!(v["factors"][0]["name"], "verification_failed");
        assert_eq!(v["receipt"]["invalid"], "receipt_digest_mismatch");
        assert_eq!(v["environment"], "development");
        // Unknown receipt and environment are left out.
        let bare = serde_json::to_value(assess(&base(), &RiskWeights::default())).unwrap();
        assert_eq!(
            bare,
            serde_json::json!({"score": 0, "band": "low", "factors": []})
        );
    }
}
