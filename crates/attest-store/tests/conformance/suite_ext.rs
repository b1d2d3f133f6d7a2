//! Contracts of the device-intelligence and decision-log methods.

use std::sync::Arc;

use attest_store::{
    ContextQuery, CounterAdvance, CounterAnomaly, Decision, DecisionFactor, DecisionFilter,
    DecisionKind, DecisionReason, DeviceHistory, DeviceKey, Environment, FailureCount,
    FailureScope, FailureSubject, KeyFilter, Outcome, OutcomeCount, PolicyMode, ReasonCount,
    Refusal, RevocationReason, Store, StoreError, SummaryFilter,
};
use time::{Duration, OffsetDateTime};
use tokio::sync::Barrier;

use crate::suite::{APP, OTHER_APP, T0, decision, device_key, key_id, stored_key};

const RACERS: usize = 20;

fn reason(code: &str) -> DecisionReason {
    DecisionReason {
        code: code.to_owned(),
        message: format!("{code} failed"),
    }
}

fn failure(at: OffsetDateTime, code: &str, kind: DecisionKind) -> Decision {
    Decision {
        kind: Some(kind),
        ..Decision::new(at, APP, "/v1/attestations", Outcome::Deny, code)
    }
}

pub async fn a_supersession_link_and_a_revocation_reason_are_never_rewritten<S: Store>(store: S) {
    for seed in 1..=4 {
        store
            .insert_device_key(&device_key(seed, APP, T0), &[])
            .await
            .expect("insert");
    }
    let t1 = T0 + Duration::hours(1);
    store
        .supersede_device_key(key_id(1), key_id(2), t1)
        .await
        .expect("supersede");
    // A second supersession neither redirects the chain nor moves the time or the reason.
    store
        .supersede_device_key(key_id(1), key_id(3), t1 + Duration::hours(1))
        .await
        .expect("supersede again");
    let old = stored_key(&store, 1).await;
    assert_eq!(old.superseded_by, Some(key_id(2)));
    assert_eq!(old.revoked_at, Some(t1));
    assert_eq!(old.revocation_reason, Some(RevocationReason::Superseded));

    // Revoked first, superseded later: linked, but still an administrative revocation.
    store
        .revoke_device_key(key_id(3), t1)
        .await
        .expect("revoke");
    store
        .supersede_device_key(key_id(3), key_id(4), t1 + Duration::hours(2))
        .await
        .expect("supersede revoked");
    let revoked = stored_key(&store, 3).await;
    assert_eq!(revoked.superseded_by, Some(key_id(4)));
    assert_eq!(revoked.revoked_at, Some(t1));
    assert_eq!(revoked.revocation_reason, Some(RevocationReason::Revoked));

    // An expired key cannot be expired or revoked into another reason.
    let idle = T0 + Duration::days(200);
    assert!(
        store
            .expire_device_key(key_id(4), idle, idle)
            .await
            .expect("expire")
    );
    store
        .revoke_device_key(key_id(4), idle + Duration::days(1))
        .await
        .expect("revoke expired");
    let expired = stored_key(&store, 4).await;
    assert_eq!(expired.revocation_reason, Some(RevocationReason::Expired));
    assert_eq!(expired.revoked_at, Some(idle));
}

pub async fn keys_are_found_and_counted_by_device_user_address_environment_and_age<S: Store>(
    store: S,
) {
    // Seeds 1-6 of APP; 7 of OTHER_APP. Devices: d1 = {1, 2, 3}, d2 = {4, 5}; user u1 = {1, 2, 4}.
    let mut keys = Vec::new();
    for seed in 1..=7u8 {
        let mut key = device_key(
            seed,
            if seed == 7 { OTHER_APP } else { APP },
            T0 + Duration::hours(i64::from(seed)),
        );
        key.device_id = if seed <= 3 { "d1" } else { "d2" }.to_owned();
        key.user_id = [1, 2, 4, 7].contains(&seed).then(|| "u1".to_owned());
        key.client_ip = Some(
            if seed % 2 == 0 {
                "10.0.0.2"
            } else {
                "10.0.0.1"
            }
            .to_owned(),
        );
        if seed == 3 {
            key.environment = Environment::Development;
        }
        store.insert_device_key(&key, &[]).await.expect("insert");
        keys.push(key);
    }
    store
        .supersede_device_key(key_id(1), key_id(2), T0 + Duration::days(1))
        .await
        .expect("supersede");

    let seeds = |found: Vec<attest_store::DeviceKey>| -> Vec<u8> {
        found.iter().map(|key| key.key_id.0[0]).collect()
    };
    let app = |filter: KeyFilter| KeyFilter {
        app_id: Some(APP.to_owned()),
        ..filter
    };
    let cases: Vec<(KeyFilter, Vec<u8>)> = vec![
        (KeyFilter::default(), vec![1, 2, 3, 4, 5, 6, 7]),
        (
            app(KeyFilter {
                device_id: Some("d1".into()),
                ..Default::default()
            }),
            vec![1, 2, 3],
        ),
        (
            app(KeyFilter {
                device_id: Some("d1".into()),
                environment: Some(Environment::Production),
                active_only: true,
                ..Default::default()
            }),
            vec![2],
        ),
        (
            app(KeyFilter {
                user_id: Some("u1".into()),
                ..Default::default()
            }),
            vec![1, 2, 4],
        ),
        (
            app(KeyFilter {
                client_ip: Some("10.0.0.1".into()),
                created_since: Some(T0 + Duration::hours(3)),
                ..Default::default()
            }),
            vec![3, 5],
        ),
        (
            KeyFilter {
                user_id: Some("u1".into()),
                ..Default::default()
            },
            vec![1, 2, 4, 7],
        ),
        (
            app(KeyFilter {
                device_id: Some("nobody".into()),
                ..Default::default()
            }),
            vec![],
        ),
    ];
    for (filter, expected) in cases {
        let found = store.find_device_keys(&filter, 100).await.expect("find");
        assert_eq!(seeds(found), expected, "{filter:?}");
        let count = store.count_device_keys(&filter).await.expect("count");
        assert_eq!(
            count,
            u64::try_from(expected.len()).expect("small"),
            "{filter:?}"
        );
    }
    let page = store
        .find_device_keys(&KeyFilter::default(), 2)
        .await
        .expect("limited");
    assert_eq!(seeds(page), [1, 2]);
    assert!(
        store
            .find_device_keys(&KeyFilter::default(), 0)
            .await
            .expect("empty page")
            .is_empty()
    );
}

pub async fn counter_anomalies_are_counted_without_touching_the_counter<S>(store: S)
where
    S: Store + Clone + 'static,
{
    store
        .insert_device_key(&device_key(1, APP, T0), &[])
        .await
        .expect("insert");
    assert_eq!(
        store
            .advance_counter(key_id(1), 9, T0)
            .await
            .expect("advance"),
        CounterAdvance::Advanced
    );
    let start = Arc::new(Barrier::new(RACERS));
    let mut racers = Vec::new();
    for index in 0..RACERS {
        let (store, start) = (store.clone(), Arc::clone(&start));
        let anomaly = if index % 2 == 0 {
            CounterAnomaly::Regression
        } else {
            CounterAnomaly::Replay
        };
        racers.push(tokio::spawn(async move {
            start.wait().await;
            store.record_counter_anomaly(key_id(1), anomaly).await
        }));
    }
    for racer in racers {
        racer.await.expect("task").expect("record");
    }
    let key = stored_key(&store, 1).await;
    let half = u64::try_from(RACERS / 2).expect("small");
    assert_eq!((key.counter_regressions, key.replays), (half, half));
    assert_eq!(
        (key.counter, key.assertion_count),
        (Some(9), 1),
        "counter untouched"
    );

    let missing = store
        .record_counter_anomaly(key_id(9), CounterAnomaly::Replay)
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
}

pub async fn only_idle_active_keys_expire<S: Store>(store: S) {
    // Last seen: key 1 at T0, key 2 at T0 + 10 days (after an assertion), key 3 at T0 but revoked.
    for seed in 1..=3 {
        store
            .insert_device_key(&device_key(seed, APP, T0), &[])
            .await
            .expect("insert");
    }
    let t10 = T0 + Duration::days(10);
    assert!(
        store
            .advance_counter(key_id(2), 1, t10)
            .await
            .expect("advance")
            .is_advanced()
    );
    store
        .revoke_device_key(key_id(3), T0)
        .await
        .expect("revoke");

    let now = T0 + Duration::days(20);
    let idle_before = T0 + Duration::days(5);
    // Not idle: key 2 was seen after the cutoff.
    assert!(
        !store
            .expire_device_key(key_id(2), idle_before, now)
            .await
            .expect("expire")
    );
    // The cutoff is exclusive: last seen exactly at it is not idle.
    assert!(
        !store
            .expire_device_key(key_id(1), T0, now)
            .await
            .expect("expire")
    );
    assert_eq!(
        store
            .expire_idle_keys(idle_before, now)
            .await
            .expect("expire idle"),
        1,
        "only key 1: key 2 is recent, key 3 already revoked"
    );
    assert_eq!(
        store
            .expire_idle_keys(idle_before, now)
            .await
            .expect("expire idle again"),
        0
    );
    let expired = stored_key(&store, 1).await;
    assert_eq!(expired.revoked_at, Some(now));
    assert_eq!(expired.revocation_reason, Some(RevocationReason::Expired));
    assert_eq!(
        store
            .advance_counter(key_id(1), 1, now)
            .await
            .expect("advance"),
        CounterAdvance::Revoked
    );
    assert_eq!(
        stored_key(&store, 3).await.revocation_reason,
        Some(RevocationReason::Revoked)
    );
    assert_eq!(stored_key(&store, 2).await.revoked_at, None);
    assert!(
        !store
            .expire_device_key(key_id(9), now, now)
            .await
            .expect("unknown key")
    );
}

pub async fn decisions_keep_their_reasons_and_factors_and_filter_by_would_deny_and_device<
    S: Store,
>(
    store: S,
) {
    let full = Decision {
        kind: Some(DecisionKind::Assertion),
        device_id: Some("d1".into()),
        user_id: Some("u1".into()),
        client_ip: Some("192.0.2.7".into()),
        environment: Some(Environment::Production),
        mode: Some(PolicyMode::Monitor),
        would_deny: true,
        reasons: vec![
            reason("risk_above_max"),
            reason("outside_time_window"),
            // A repeated code is logged as given but counted once.
            reason("risk_above_max"),
        ],
        factors: vec![
            DecisionFactor {
                name: "new_device".into(),
                points: 5,
                evidence: "device first seen 0s ago < 1d".into(),
            },
            DecisionFactor {
                name: "replay_attempt".into(),
                points: 100,
                evidence: "unicode ✓ \"quoted\"".into(),
            },
        ],
        ..decision(T0, APP, Some(1), Outcome::AllowMonitored)
    };
    let plain = Decision {
        kind: Some(DecisionKind::DeviceCheck),
        ..decision(T0 + Duration::seconds(1), APP, Some(2), Outcome::Allow)
    };
    let other_device = Decision {
        device_id: Some("d2".into()),
        would_deny: true,
        reasons: vec![reason("verification_failed")],
        ..decision(T0 + Duration::seconds(2), APP, None, Outcome::Deny)
    };
    for entry in [&full, &plain, &other_device] {
        store.record_decision(entry).await.expect("record");
    }
    let all = store
        .list_decisions(&DecisionFilter::default(), 10)
        .await
        .expect("list");
    let listed: Vec<Decision> = all.into_iter().map(|logged| logged.decision).collect();
    assert_eq!(listed, [other_device.clone(), plain.clone(), full.clone()]);

    let select = |filter: DecisionFilter| {
        let store = &store;
        async move {
            let found = store.list_decisions(&filter, 10).await.expect("list");
            found
                .into_iter()
                .map(|logged| logged.decision)
                .collect::<Vec<_>>()
        }
    };
    let would_deny = select(DecisionFilter {
        would_deny: Some(true),
        ..Default::default()
    })
    .await;
    assert_eq!(would_deny, [other_device.clone(), full.clone()]);
    let would_allow = select(DecisionFilter {
        would_deny: Some(false),
        ..Default::default()
    })
    .await;
    assert_eq!(would_allow, std::slice::from_ref(&plain));
    assert_eq!(
        plain.kind,
        Some(DecisionKind::DeviceCheck),
        "kinds round-trip"
    );
    let device = select(DecisionFilter {
        device_id: Some("d1".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(device, std::slice::from_ref(&full));
    let monitored_would_deny = select(DecisionFilter {
        app_id: Some(APP.into()),
        outcome: Some(Outcome::AllowMonitored),
        would_deny: Some(true),
        ..Default::default()
    })
    .await;
    assert_eq!(monitored_would_deny, [full]);
}

pub async fn failures_are_counted_by_code_for_any_of_key_device_and_address<S: Store>(store: S) {
    let at = |seconds: i64| T0 + Duration::seconds(seconds);
    let entries = [
        Decision {
            key_id: Some(key_id(1)),
            ..failure(at(0), "nonce_mismatch", DecisionKind::Attestation)
        },
        Decision {
            device_id: Some("d1".into()),
            ..failure(at(1), "nonce_mismatch", DecisionKind::Assertion)
        },
        Decision {
            client_ip: Some("10.0.0.9".into()),
            ..failure(at(2), "challenge_invalid", DecisionKind::Attestation)
        },
        // Too old for the window.
        Decision {
            key_id: Some(key_id(1)),
            ..failure(at(-10), "signature_invalid", DecisionKind::Assertion)
        },
        // Successes are not failures.
        Decision {
            key_id: Some(key_id(1)),
            ..decision(at(3), APP, Some(1), Outcome::Allow)
        },
        // Another app.
        Decision {
            key_id: Some(key_id(1)),
            app_id: OTHER_APP.into(),
            ..failure(at(3), "malformed", DecisionKind::Attestation)
        },
        // Nobody we ask about.
        Decision {
            key_id: Some(key_id(2)),
            ..failure(at(4), "malformed", DecisionKind::Assertion)
        },
    ];
    for entry in &entries {
        store.record_decision(entry).await.expect("record");
    }
    let count = |code: &str, count: u64| FailureCount {
        code: code.to_owned(),
        count,
    };
    let scope = FailureScope {
        app_id: Some(APP.into()),
        key_id: Some(key_id(1)),
        device_id: Some("d1".into()),
        client_ip: Some("10.0.0.9".into()),
        ..Default::default()
    };
    assert_eq!(
        store.failure_counts(&scope, T0).await.expect("counts"),
        [count("challenge_invalid", 1), count("nonce_mismatch", 2)]
    );
    let attestations = FailureScope {
        kind: Some(DecisionKind::Attestation),
        ..scope.clone()
    };
    assert_eq!(
        store
            .failure_counts(&attestations, T0)
            .await
            .expect("counts"),
        [count("challenge_invalid", 1), count("nonce_mismatch", 1)]
    );
    let whole_app = FailureScope {
        app_id: Some(APP.into()),
        ..Default::default()
    };
    assert_eq!(
        store
            .failure_counts(&whole_app, T0 - Duration::minutes(1))
            .await
            .expect("counts"),
        [
            count("challenge_invalid", 1),
            count("malformed", 1),
            count("nonce_mismatch", 2),
            count("signature_invalid", 1)
        ]
    );
    let device_only = FailureScope {
        device_id: Some("d1".into()),
        ..Default::default()
    };
    assert_eq!(
        store
            .failure_counts(&device_only, T0)
            .await
            .expect("counts"),
        [count("nonce_mismatch", 1)]
    );
}

pub async fn decisions_are_summarised_by_outcome_and_reason<S: Store>(store: S) {
    let with = |outcome: Outcome, device: &str, reasons: &[&str], seconds: i64| Decision {
        device_id: Some(device.to_owned()),
        would_deny: !reasons.is_empty(),
        reasons: reasons.iter().map(|code| reason(code)).collect(),
        ..decision(T0 + Duration::seconds(seconds), APP, None, outcome)
    };
    let entries = [
        with(Outcome::Allow, "d1", &[], 0),
        with(Outcome::Allow, "d2", &[], 1),
        with(
            Outcome::AllowMonitored,
            "d1",
            &["risk_above_max", "outside_time_window"],
            2,
        ),
        with(Outcome::AllowMonitored, "d1", &["risk_above_max"], 3),
        with(Outcome::AllowMonitored, "d3", &["risk_above_max"], 4),
        with(Outcome::Deny, "d4", &["verification_failed"], 5),
        Decision {
            app_id: OTHER_APP.into(),
            ..with(Outcome::Deny, "d9", &["verification_failed"], 6)
        },
    ];
    for entry in &entries {
        store.record_decision(entry).await.expect("record");
    }
    let summary = store
        .decision_summary(&SummaryFilter {
            app_id: Some(APP.into()),
            since: None,
        })
        .await
        .expect("summary");
    let outcome = |outcome, would_deny, count| OutcomeCount {
        outcome,
        would_deny,
        count,
    };
    assert_eq!(
        summary.by_outcome,
        [
            outcome(Outcome::Allow, false, 2),
            outcome(Outcome::AllowMonitored, true, 3),
            outcome(Outcome::Deny, true, 1),
        ]
    );
    let by_reason = |outcome, reason: &str, count| ReasonCount {
        outcome,
        reason: reason.to_owned(),
        count,
    };
    assert_eq!(
        summary.by_reason,
        [
            by_reason(Outcome::AllowMonitored, "outside_time_window", 1),
            by_reason(Outcome::AllowMonitored, "risk_above_max", 3),
            by_reason(Outcome::Deny, "verification_failed", 1),
        ]
    );
    assert_eq!(summary.would_deny_devices, 3, "d1, d3, d4");

    let recent = store
        .decision_summary(&SummaryFilter {
            app_id: None,
            since: Some(T0 + Duration::seconds(5)),
        })
        .await
        .expect("summary");
    assert_eq!(recent.by_outcome, [outcome(Outcome::Deny, true, 2)]);
    assert_eq!(
        recent.by_reason,
        [by_reason(Outcome::Deny, "verification_failed", 2)]
    );
    assert_eq!(recent.would_deny_devices, 2);

    let empty = store
        .decision_summary(&SummaryFilter {
            app_id: Some("NOBODY.app".into()),
            since: None,
        })
        .await
        .expect("summary");
    assert_eq!(empty, attest_store::DecisionSummary::default());
}

pub async fn purging_decisions_removes_the_oldest_with_their_reasons<S: Store>(store: S) {
    for (days, code) in [(10, "old"), (5, "older"), (0, "recent")] {
        let mut logged = decision(T0 - Duration::days(days), APP, Some(1), Outcome::Deny);
        logged.reasons = vec![reason(code)];
        store.record_decision(&logged).await.expect("record");
    }
    let before = T0 - Duration::days(1);
    assert_eq!(store.purge_decisions(before, 1).await.expect("purge"), 1);
    assert_eq!(store.purge_decisions(before, 1000).await.expect("purge"), 1);
    assert_eq!(store.purge_decisions(before, 1000).await.expect("purge"), 0);
    let left = store
        .list_decisions(&DecisionFilter::default(), 10)
        .await
        .expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].decision.at, T0);
    // The purged decisions' reasons went with them.
    let summary = store
        .decision_summary(&SummaryFilter::default())
        .await
        .expect("summary");
    let reasons: Vec<&str> = summary
        .by_reason
        .iter()
        .map(|r| r.reason.as_str())
        .collect();
    assert_eq!(reasons, ["recent"]);
}

fn lineage_key(seed: u8, environment: Environment, created_at: OffsetDateTime) -> DeviceKey {
    let mut key = device_key(seed, APP, created_at);
    key.device_id = "shared-device".to_owned();
    key.environment = environment;
    key
}

pub async fn settling_a_lineage_leaves_the_key_stored_last<S: Store>(store: S) {
    let production = Environment::Production;
    for (seed, environment) in [
        (1, production),
        (2, production),
        (3, production),
        (4, Environment::Development),
    ] {
        store
            .insert_device_key(&lineage_key(seed, environment, T0), &[])
            .await
            .expect("insert");
    }
    store
        .insert_device_key(&device_key(5, APP, T0), &[])
        .await
        .expect("insert");
    let mut linked = store
        .settle_lineage(APP, "shared-device", production, T0 + Duration::seconds(9))
        .await
        .expect("settle");
    linked.sort_unstable();
    assert_eq!(linked, [(key_id(1), key_id(3)), (key_id(2), key_id(3))]);
    for seed in [1, 2] {
        let key = stored_key(&store, seed).await;
        assert_eq!(key.superseded_by, Some(key_id(3)));
        assert_eq!(key.revocation_reason, Some(RevocationReason::Superseded));
        assert_eq!(key.revoked_at, Some(T0 + Duration::seconds(9)));
    }
    // The other environment and the other device are other lineages.
    for seed in [3, 4, 5] {
        assert_eq!(
            stored_key(&store, seed).await.revoked_at,
            None,
            "key {seed}"
        );
    }
    assert!(
        store
            .settle_lineage(APP, "shared-device", production, T0)
            .await
            .expect("settle again")
            .is_empty()
    );
    // Stored last, though its creation time is earlier: storage order decides.
    store
        .insert_device_key(&lineage_key(6, production, T0 - Duration::days(1)), &[])
        .await
        .expect("insert");
    let linked = store
        .settle_lineage(APP, "shared-device", production, T0)
        .await
        .expect("settle");
    assert_eq!(linked, [(key_id(3), key_id(6))]);
}

pub async fn concurrent_re_attestations_settle_on_one_active_key<S>(store: S)
where
    S: Store + Clone + 'static,
{
    const RACERS: u8 = 12;
    let start = Arc::new(Barrier::new(usize::from(RACERS)));
    let mut racers = Vec::new();
    for seed in 1..=RACERS {
        let (store, start) = (store.clone(), Arc::clone(&start));
        racers.push(tokio::spawn(async move {
            start.wait().await;
            store
                .insert_device_key(&lineage_key(seed, Environment::Production, T0), &[])
                .await?;
            store
                .settle_lineage(APP, "shared-device", Environment::Production, T0)
                .await
        }));
    }
    for racer in racers {
        racer.await.expect("task").expect("insert and settle");
    }
    let keys = store
        .find_device_keys(
            &KeyFilter {
                device_id: Some("shared-device".to_owned()),
                ..KeyFilter::default()
            },
            100,
        )
        .await
        .expect("keys");
    let active: Vec<_> = keys.iter().filter(|k| k.revoked_at.is_none()).collect();
    assert_eq!(active.len(), 1, "{active:?}");
    // Every other key leads to the active one through its successors, without a cycle.
    for key in &keys {
        let mut current = key.clone();
        for _ in 0..RACERS {
            match current.superseded_by {
                Some(next) => current = stored_key(&store, next.0[0]).await,
                None => break,
            }
        }
        assert_eq!(current.key_id, active[0].key_id);
    }
}

pub async fn a_key_context_counts_what_the_separate_queries_count<S: Store>(store: S) {
    let at = |seconds: i64| T0 + Duration::seconds(seconds);
    let mut key = device_key(1, APP, at(0));
    key.device_id = "d1".into();
    key.user_id = Some("u1".into());
    key.client_ip = Some("10.0.0.9".into());
    store.insert_device_key(&key, &[]).await.expect("insert");
    for (seed, app, user, ip, created) in [
        (2u8, APP, Some("u1"), Some("10.0.0.9"), at(5)),
        (3, APP, Some("u1"), None, at(-100)),
        (4, APP, None, Some("10.0.0.9"), at(6)),
        (5, OTHER_APP, Some("u1"), Some("10.0.0.9"), at(7)),
    ] {
        let mut other = device_key(seed, app, created);
        other.device_id = if seed == 2 {
            "d1".into()
        } else {
            format!("d{seed}")
        };
        other.user_id = user.map(str::to_owned);
        other.client_ip = ip.map(str::to_owned);
        store.insert_device_key(&other, &[]).await.expect("insert");
    }
    // Refusals that proved possession of a key of d1 count (the key's own and key 2's), in the
    // window; one naming key 1 that proved nothing, one before the window and one of another
    // app do not.
    let refusal = |at: OffsetDateTime, code: &str, app: &str, proven: Option<&'static str>| {
        let decision = Decision {
            key_id: Some(key_id(1)),
            client_ip: Some("10.0.0.9".into()),
            app_id: app.to_owned(),
            ..failure(at, code, DecisionKind::Assertion)
        };
        (decision, proven)
    };
    for (decision, proven) in [
        refusal(at(1), "counter_invalid", APP, Some("d1")),
        refusal(at(2), "counter_invalid", APP, Some("d1")),
        refusal(at(3), "challenge_invalid", APP, Some("d1")),
        refusal(at(3), "signature_invalid", APP, None),
        refusal(at(-500), "counter_regressed", APP, Some("d1")),
        refusal(at(4), "malformed", OTHER_APP, Some("d1")),
    ] {
        let counted = Refusal {
            decision: &decision,
            proven_device: proven,
            window_seconds: 300,
            sample: 10,
        };
        store.record_refusal(&counted).await.expect("record");
    }
    store
        .record_decision(&Decision {
            key_id: Some(key_id(1)),
            ..decision(at(4), APP, Some(1), Outcome::Allow)
        })
        .await
        .expect("record");
    let query = ContextQuery {
        client_ip: Some("10.0.0.9".into()),
        failures_since: T0,
        keys_since: T0,
        count_ip_keys: true,
        count_user_keys: true,
    };
    let context = store
        .key_context(key_id(1), &query)
        .await
        .expect("context")
        .expect("the key exists");
    assert_eq!(context.key, key);
    // Keys 1 and 2 are the device's in the app.
    assert_eq!(
        context.history,
        DeviceHistory {
            keys: 2,
            first_seen: Some(at(0))
        }
    );
    let subject = FailureSubject::Device {
        app_id: APP.into(),
        device_id: "d1".into(),
    };
    let separately = store.tallied_failures(&subject, T0).await.expect("counts");
    assert_eq!(context.failures, separately);
    assert_eq!(
        context.failures,
        [
            FailureCount {
                code: "challenge_invalid".into(),
                count: 1
            },
            FailureCount {
                code: "counter_invalid".into(),
                count: 2
            },
        ]
    );
    let keys = |filter: KeyFilter| {
        let store = &store;
        async move { store.count_device_keys(&filter).await.expect("count") }
    };
    let ip_keys = keys(KeyFilter {
        app_id: Some(APP.into()),
        client_ip: Some("10.0.0.9".into()),
        created_since: Some(T0),
        ..KeyFilter::default()
    })
    .await;
    let user_keys = keys(KeyFilter {
        app_id: Some(APP.into()),
        user_id: Some("u1".into()),
        created_since: Some(T0),
        ..KeyFilter::default()
    })
    .await;
    assert_eq!(
        (context.keys_from_ip, context.keys_for_user),
        (Some(ip_keys), Some(user_keys))
    );
    assert_eq!((ip_keys, user_keys), (3, 2));

    // Counts not asked for, or without an address, are not read.
    let lean = ContextQuery {
        client_ip: None,
        count_ip_keys: true,
        count_user_keys: false,
        ..query
    };
    let context = store
        .key_context(key_id(1), &lean)
        .await
        .expect("context")
        .expect("the key exists");
    assert_eq!((context.keys_from_ip, context.keys_for_user), (None, None));
    assert_eq!(
        context.failures, separately,
        "the device's failures, whatever the address"
    );
    assert_eq!(
        store.key_context(key_id(9), &lean).await.expect("context"),
        None
    );
}

/// `link_device_key` moves an active key (and names its user) and nothing else; a retired key
/// never moves.
pub async fn only_an_active_key_is_linked_to_another_device_and_user<S: Store>(store: S) {
    for seed in [1, 2] {
        let mut key = device_key(seed, APP, T0);
        key.user_id = Some("first-user".into());
        store.insert_device_key(&key, &[]).await.expect("insert");
    }
    let before = stored_key(&store, 1).await;
    store
        .link_device_key(key_id(1), "device-2", Some("alice"))
        .await
        .expect("link");
    let after = stored_key(&store, 1).await;
    assert_eq!(after.device_id, "device-2");
    assert_eq!(after.user_id.as_deref(), Some("alice"));
    let unchanged = DeviceKey {
        device_id: before.device_id.clone(),
        user_id: before.user_id.clone(),
        ..after.clone()
    };
    assert_eq!(unchanged, before, "nothing else changes");
    // Without a user id, the user stays.
    store
        .link_device_key(key_id(1), "device-3", None)
        .await
        .expect("link");
    let moved = stored_key(&store, 1).await;
    assert_eq!(
        (moved.device_id.as_str(), moved.user_id.as_deref()),
        ("device-3", Some("alice"))
    );
    // A revoked key, or no key, never moves.
    store
        .revoke_device_key(key_id(2), T0 + Duration::seconds(1))
        .await
        .expect("revoke");
    assert!(matches!(
        store.link_device_key(key_id(2), "device-3", None).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(stored_key(&store, 2).await.device_id, "device-2");
    assert!(matches!(
        store.link_device_key(key_id(9), "device-3", None).await,
        Err(StoreError::NotFound)
    ));
}
