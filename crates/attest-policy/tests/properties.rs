//! Properties of the score over arbitrary signals and weights.

use std::collections::BTreeMap;

use attest_policy::{
    Band, DeviceCheck, Environment, FailureCounts, MAX_SCORE, Policy, ReceiptStatus, RiskWeights,
    Signals, Verification, WindowCount, assess, decide,
};
use proptest::prelude::*;
use time::{Duration, OffsetDateTime};

fn window_count() -> impl Strategy<Value = Option<WindowCount>> {
    proptest::option::of(
        (0u32..100, 0i64..200_000).prop_map(|(count, secs)| WindowCount {
            count,
            window: Duration::seconds(secs),
        }),
    )
}

fn apple_signals() -> impl Strategy<Value = Signals> {
    let now = OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap();
    let offset = || proptest::option::of(-200_000i64..200_000);
    (
        (
            proptest::option::of("[a-z_]{1,12}"),
            proptest::option::of(prop_oneof![
                Just(ReceiptStatus::Valid),
                Just(ReceiptStatus::Missing),
                "[a-z_]{1,12}".prop_map(ReceiptStatus::Invalid),
            ]),
            proptest::option::of(0u32..50),
            proptest::option::of(0i64..5_000_000),
            proptest::option::of(prop_oneof![
                Just(Environment::Development),
                Just(Environment::Production)
            ]),
            any::<bool>(),
            offset(),
            proptest::option::of(0u32..20),
        ),
        (
            window_count(),
            window_count(),
            0u32..5,
            0u32..5,
            proptest::option::of(proptest::collection::btree_map(
                "[a-z_]{1,8}",
                0u32..5,
                0..4,
            )),
            offset(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..5)),
            proptest::option::of(
                (any::<bool>(), proptest::option::of(any::<[bool; 2]>()))
                    .prop_map(|(valid, bits)| DeviceCheck { valid, bits }),
            ),
        ),
    )
        .prop_map(
            move |(
                (verification, receipt, metric, metric_age, environment, prod_only, first, count),
                (user, ip, regressions, replays, failures, client, category, device_check),
            )| Signals {
                now,
                verification: verification.map_or(Verification::Ok, Verification::Failed),
                receipt,
                apple_risk_metric: metric,
                apple_risk_metric_age: metric_age.map(Duration::seconds),
                environment,
                app_production_only: prod_only,
                device_first_seen: first.map(|s| now - Duration::seconds(s)),
                attestation_count: count,
                new_keys_for_user: user,
                new_keys_from_ip: ip,
                counter_regressions: regressions,
                replays,
                recent_failures: failures.map(|by_code: BTreeMap<String, u32>| FailureCounts {
                    window: Duration::HOUR,
                    by_code,
                }),
                client_time: client.map(|s| now + Duration::seconds(s)),
                validation_category: category,
                bundle_version: None,
                device_check,
                // Drawn in `signals` (the tuples above are full).
                android: None,
            },
        )
}

/// Signals of either platform: Android's are drawn on top of the others.
fn signals() -> impl Strategy<Value = Signals> {
    use attest_types::evidence::VerifiedBootState;
    let android = (
        any::<bool>(),
        proptest::option::of((0u64..6).prop_map(VerifiedBootState::from_value)),
        proptest::option::of(any::<bool>()),
        proptest::option::of(prop_oneof![190_001u64..203_512, 0u64..30_000_000]),
    )
        .prop_map(
            |(software_backed, verified_boot_state, device_locked, os_patch_level)| {
                attest_policy::AndroidSignals {
                    software_backed,
                    verified_boot_state,
                    device_locked,
                    os_patch_level,
                }
            },
        );
    (apple_signals(), proptest::option::of(android)).prop_map(|(mut signals, android)| {
        signals.android = android;
        signals
    })
}

fn weights() -> impl Strategy<Value = RiskWeights> {
    (
        proptest::collection::vec(any::<u8>(), 16),
        proptest::collection::vec(0u32..10, 8),
        proptest::option::of(proptest::collection::vec("[0-9a-f]{2}", 1..3)),
        proptest::collection::vec(0u8..2, 0..3),
    )
        .prop_map(|(p, t, expected, flag_bits)| RiskWeights {
            verification_failed: p[0],
            receipt_invalid: p[1],
            receipt_missing: p[2],
            high_apple_risk_metric: p[3],
            user_key_churn: p[4],
            ip_key_churn: p[5],
            repeated_attestation: p[6],
            counter_regression: p[7],
            replay_attempt: p[8],
            repeated_failures: p[9],
            new_device: p[10],
            development_key_in_production_app: p[11],
            clock_skew: p[12],
            unexpected_validation_category: p[13],
            device_check_invalid: p[14],
            device_check_flagged: p[15],
            device_check_flag_bits: flag_bits,
            apple_risk_metric_threshold: t[0],
            user_key_churn_threshold: t[1],
            ip_key_churn_threshold: t[2],
            repeated_attestation_threshold: t[3],
            counter_regression_threshold: t[4],
            replay_attempt_threshold: t[5],
            repeated_failures_threshold: t[6],
            clock_skew_threshold_seconds: t[7] * 100,
            expected_validation_categories: expected.unwrap_or_default(),
            ..RiskWeights::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn score_is_the_capped_sum_of_factor_points(s in signals(), w in weights()) {
        let a = assess(&s, &w);
        prop_assert!(a.score <= MAX_SCORE);
        let sum: u32 = a.factors.iter().map(|f| u32::from(f.points)).sum();
        prop_assert_eq!(u32::from(a.score), sum.min(100));
        prop_assert_eq!(a.band, Band::from_score(a.score));
        prop_assert!(a.band.range().contains(&a.score));
        // Listed factors all count, and each at most once.
        prop_assert!(a.factors.iter().all(|f| f.points > 0 && !f.evidence.is_empty()));
        let mut names: Vec<_> = a.factors.iter().map(|f| f.name).collect();
        let listed = names.clone();
        names.sort();
        names.dedup();
        prop_assert_eq!(names.len(), listed.len());
        // Deterministic.
        prop_assert_eq!(assess(&s, &w), a);
    }

    #[test]
    fn default_weights_score_is_in_range(s in signals()) {
        let a = assess(&s, &RiskWeights::default());
        prop_assert!(a.score <= MAX_SCORE);
    }

    #[test]
    fn would_deny_matches_reasons_and_enforce(s in signals(), w in weights(), max in 0u8..=100) {
        let a = assess(&s, &w);
        let policy = Policy { max_risk_score: Some(max), ..Policy::default() };
        let d = decide(&policy, s.verification.as_result(), &a, s.now);
        prop_assert_eq!(d.would_deny, !d.reasons.is_empty());
        prop_assert_eq!(d.would_deny, s.verification != Verification::Ok || a.score > max);
    }
}
