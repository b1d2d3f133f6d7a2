//! One function per point of the `Store` security contract (and per plain round trip).
//!
//! Each contract takes a fresh, empty store and works for any backend.

use std::sync::Arc;

pub use crate::suite_ext::*;
pub use crate::suite_revocation_list::*;
pub use crate::suite_secrets::*;
pub use crate::suite_tally::*;
pub use crate::suite_webhooks::*;

use attest_store::{
    AppleEvidence, AssertionCommit, AssertionCommitted, ContextQuery, CounterAdvance, Decision,
    DecisionFilter, DeviceHistory, DeviceKey, Environment, Evidence, KeyContext, KeyId, Outcome,
    RevocationReason, SigningKey, SpentChallenge, Store, StoreError,
};
use attest_types::evidence::ReceiptStatus;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tokio::sync::Barrier;

/// How many tasks race in the concurrency contracts.
const RACERS: usize = 50;

pub(crate) const APP: &str = "TEAMID1234.com.example.app";
pub(crate) const OTHER_APP: &str = "TEAMID1234.com.example.other";
pub(crate) const T0: OffsetDateTime = datetime!(2026-01-01 12:00:00 UTC);

pub(crate) fn key_id(seed: u8) -> KeyId {
    KeyId([seed; 32])
}

pub(crate) fn device_key(seed: u8, app_id: &str, created_at: OffsetDateTime) -> DeviceKey {
    DeviceKey {
        key_id: key_id(seed),
        device_id: format!("device-{seed}"),
        app_id: app_id.to_owned(),
        environment: Environment::Production,
        public_key_spki: vec![0x30, seed, 0x01],
        counter: Some(0),
        receipt_risk_metric: None,
        created_at,
        last_seen_at: created_at,
        attestation_count: 1,
        assertion_count: 0,
        revoked_at: None,
        superseded_by: None,
        evidence: Evidence::Apple(AppleEvidence {
            bundle_version: Some("1.0".to_owned()),
            ..AppleEvidence::default()
        }),
        user_id: None,
        client_ip: None,
        counter_regressions: 0,
        replays: 0,
        revocation_reason: None,
    }
}

pub(crate) fn decision(
    at: OffsetDateTime,
    app_id: &str,
    seed: Option<u8>,
    outcome: Outcome,
) -> Decision {
    let code = if outcome == Outcome::Allow {
        "ok"
    } else {
        "counter_replayed"
    };
    Decision {
        key_id: seed.map(key_id),
        risk_score: Some(15),
        ..Decision::new(at, app_id, "/v1/assert", outcome, code)
    }
}

pub(crate) async fn stored_key<S: Store>(store: &S, seed: u8) -> DeviceKey {
    store
        .device_key(key_id(seed))
        .await
        .expect("read key")
        .expect("key exists")
}

pub async fn ping_answers<S: Store>(store: S) {
    store.ping().await.expect("ping");
}

pub async fn inserting_an_existing_key_fails_and_keeps_the_original<S: Store>(store: S) {
    let original = device_key(1, APP, T0);
    store
        .insert_device_key(&original, &[0x30, 0x80, 1])
        .await
        .expect("first insert");
    assert_eq!(
        store
            .advance_counter(key_id(1), 7, T0 + Duration::seconds(5))
            .await
            .expect("advance"),
        CounterAdvance::Advanced
    );
    let before = stored_key(&store, 1).await;

    // Same key id, everything else an attacker would like to change.
    let mut impostor = device_key(1, OTHER_APP, T0 + Duration::seconds(10));
    impostor.public_key_spki = vec![0xEE; 91];
    impostor.device_id = "attacker".to_owned();
    let error = store
        .insert_device_key(&impostor, &[0xEE])
        .await
        .expect_err("second insert must fail");
    assert!(matches!(error, StoreError::Conflict), "{error:?}");

    assert_eq!(stored_key(&store, 1).await, before);
    assert_eq!(before.counter, Some(7), "the counter was not reset");
    assert_eq!(
        store.device_key_receipt(key_id(1)).await.expect("receipt"),
        Some(vec![0x30, 0x80, 1]),
        "the receipt was not replaced"
    );
}

pub async fn device_key_round_trips_every_field<S: Store>(store: S) {
    let mut key = device_key(2, APP, T0);
    key.environment = Environment::Development;
    key.counter = Some(u32::MAX);
    key.receipt_risk_metric = Some(3);
    key.last_seen_at = T0 + Duration::hours(1);
    key.attestation_count = 2;
    key.assertion_count = 41;
    key.revoked_at = Some(T0 + Duration::days(1));
    key.superseded_by = Some(key_id(3));
    key.revocation_reason = Some(RevocationReason::Superseded);
    key.user_id = Some("user-42@example.com".to_owned());
    key.client_ip = Some("2001:db8::7".to_owned());
    key.counter_regressions = 2;
    key.replays = u64::try_from(i64::MAX).expect("fits");
    key.evidence = Evidence::Apple(AppleEvidence {
        leaf_not_after: Some(1_767_225_600),
        bundle_version: Some("2.3.1".to_owned()),
        validation_category: Some(vec![0, 1, 0xff]),
        receipt_status: Some(ReceiptStatus::Invalid),
        receipt_reason: Some("receipt_expired".to_owned()),
        receipt_created_at: Some(1_767_000_000),
    });
    let receipt = vec![0x30; 5000];
    store
        .insert_device_key(&key, &receipt)
        .await
        .expect("insert");
    assert_eq!(stored_key(&store, 2).await, key);
    assert_eq!(
        store.device_key_receipt(key_id(2)).await.expect("receipt"),
        Some(receipt)
    );
    assert_eq!(
        store.device_key_receipt(key_id(9)).await.expect("receipt"),
        None
    );

    let minimal = device_key(4, APP, T0);
    store
        .insert_device_key(&minimal, &[])
        .await
        .expect("insert minimal");
    assert_eq!(stored_key(&store, 4).await, minimal);
    assert_eq!(
        store.device_key_receipt(key_id(4)).await.expect("receipt"),
        Some(Vec::new()),
        "an attestation without a receipt"
    );
}

/// An Android key: its own evidence, and no counter.
pub(crate) fn android_key(seed: u8, created_at: OffsetDateTime) -> DeviceKey {
    use attest_types::evidence::{Provisioning, SecurityLevel, TrustAnchor, VerifiedBootState};
    let evidence = attest_store::AndroidEvidence {
        attestation_version: 300,
        attestation_security_level: SecurityLevel::StrongBox,
        keymint_security_level: SecurityLevel::Unknown(7),
        verified_boot_state: Some(VerifiedBootState::SelfSigned),
        device_locked: Some(false),
        verified_boot_key: Some(vec![seed; 32]),
        os_version: Some(150000),
        os_patch_level: Some(202511),
        vendor_patch_level: None,
        boot_patch_level: Some(20251101),
        package_names: vec!["com.example.app".to_owned()],
        signing_digests: vec![vec![1; 32], vec![2; 32]],
        provisioning: Provisioning::Factory,
        anchor: TrustAnchor::GoogleRsa,
        attest_key_certificates: 1,
    };
    let mut key = DeviceKey::new(
        key_id(seed),
        format!("device-{seed}"),
        "com.example.app",
        Environment::Production,
        vec![0x30, seed],
        evidence,
        created_at,
    );
    key.user_id = Some("user-7".to_owned());
    key
}

pub async fn an_android_key_round_trips_without_a_counter<S: Store>(store: S) {
    let key = android_key(5, T0);
    assert_eq!(key.counter, None);
    assert_eq!(key.platform(), attest_store::Platform::Android);
    let error = store
        .insert_device_key(&key, &[0x30])
        .await
        .expect_err("Android keys have no receipt");
    assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
    store.insert_device_key(&key, &[]).await.expect("insert");
    assert_eq!(stored_key(&store, 5).await, key);
    assert_eq!(
        store.device_key_receipt(key_id(5)).await.expect("receipt"),
        None
    );

    // A counter is never advanced on it, and trying changes nothing.
    let error = store
        .advance_counter(key_id(5), 1, T0 + Duration::seconds(1))
        .await
        .expect_err("no counter to advance");
    assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
    assert_eq!(stored_key(&store, 5).await, key);

    // A key whose counter does not fit its platform is refused, and not stored.
    let mut apple_without = device_key(6, APP, T0);
    apple_without.counter = None;
    let mut android_with = android_key(7, T0);
    android_with.counter = Some(0);
    for wrong in [apple_without, android_with] {
        let error = store
            .insert_device_key(&wrong, &[])
            .await
            .expect_err("a counter that does not fit the platform");
        assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
        assert_eq!(store.device_key(wrong.key_id).await.expect("read"), None);
    }
}

/// A key without a counter commits with `counter: None`: the spent challenge is its replay
/// defence, and nothing else changes the rules.
pub async fn a_key_without_a_counter_commits_on_its_challenge_alone<S: Store>(store: S) {
    let key = android_key(5, T0);
    store.insert_device_key(&key, &[]).await.expect("insert");
    let logged = decision(T0, "com.example.app", Some(5), Outcome::Allow);
    let commit = |nonce: &'static [u8], counter| AssertionCommit {
        challenge: spent(nonce, T0 + Duration::minutes(5)),
        key_id: key_id(5),
        counter,
        seen_at: T0 + Duration::seconds(30),
        decision: &logged,
    };
    let accepted = store
        .commit_assertion(commit(&[5; 16], None))
        .await
        .expect("commit");
    assert!(
        matches!(accepted, AssertionCommitted::Accepted { .. }),
        "{accepted:?}"
    );
    let stored = stored_key(&store, 5).await;
    assert_eq!((stored.counter, stored.assertion_count), (None, 1));
    assert_eq!(stored.last_seen_at, T0 + Duration::seconds(30));

    // The same challenge again is refused, however the request differs.
    assert_eq!(
        store
            .commit_assertion(commit(&[5; 16], None))
            .await
            .expect("commit"),
        AssertionCommitted::ChallengeSpent
    );
    assert_eq!(stored_key(&store, 5).await.assertion_count, 1);

    // A revoked key is refused on a fresh challenge.
    store
        .revoke_device_key(key_id(5), T0 + Duration::minutes(1))
        .await
        .expect("revoke");
    assert_eq!(
        store
            .commit_assertion(commit(&[6; 16], None))
            .await
            .expect("commit"),
        AssertionCommitted::NotAdvanced(CounterAdvance::Revoked)
    );
    assert_eq!(stored_key(&store, 5).await.assertion_count, 1);
    let decisions = store
        .list_decisions(&DecisionFilter::default(), 10)
        .await
        .expect("decisions");
    assert_eq!(decisions.len(), 1, "only the accepted commit logged");
}

pub async fn unknown_key_is_absent<S: Store>(store: S) {
    assert_eq!(store.device_key(key_id(9)).await.expect("read"), None);
}

fn spent(nonce: &[u8], expires_at: OffsetDateTime) -> SpentChallenge<'_> {
    SpentChallenge { nonce, expires_at }
}

pub async fn challenge_is_spent_once<S: Store>(store: S) {
    let nonce = [7u8; 16];
    let expires_at = T0 + Duration::minutes(5);
    assert!(
        store
            .spend_challenge(spent(&nonce, expires_at))
            .await
            .expect("first spend")
    );
    assert!(
        !store
            .spend_challenge(spent(&nonce, expires_at))
            .await
            .expect("second spend")
    );
    // Another expiry does not make the same nonce new again.
    assert!(
        !store
            .spend_challenge(spent(&nonce, expires_at + Duration::days(1)))
            .await
            .expect("third spend")
    );
    assert!(
        store
            .spend_challenge(spent(&[8u8; 16], expires_at))
            .await
            .expect("other nonce")
    );
}

pub async fn concurrent_spends_let_exactly_one_caller_through<S>(store: S)
where
    S: Store + Clone + 'static,
{
    let start = Arc::new(Barrier::new(RACERS));
    let mut racers = Vec::new();
    for _ in 0..RACERS {
        let (store, start) = (store.clone(), Arc::clone(&start));
        racers.push(tokio::spawn(async move {
            start.wait().await;
            store
                .spend_challenge(spent(&[9u8; 16], T0 + Duration::minutes(5)))
                .await
        }));
    }
    let mut winners = 0;
    for racer in racers {
        if racer.await.expect("task").expect("spend") {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

pub async fn purge_forgets_only_challenges_expired_before_the_bound<S: Store>(store: S) {
    for (seed, expires_at) in [
        (1u8, T0 - Duration::seconds(1)),
        (2, T0),
        (3, T0 + Duration::seconds(1)),
    ] {
        assert!(
            store
                .spend_challenge(spent(&[seed; 16], expires_at))
                .await
                .expect("spend")
        );
    }
    assert_eq!(store.purge_spent_challenges(T0).await.expect("purge"), 1);
    assert_eq!(
        store.purge_spent_challenges(T0).await.expect("purge again"),
        0
    );
    // Forgotten: (the server refuses it as expired before it gets here).
    assert!(
        store
            .spend_challenge(spent(&[1; 16], T0))
            .await
            .expect("spend")
    );
    // Remembered: its expiry is not before the bound.
    for seed in [2u8, 3] {
        assert!(
            !store
                .spend_challenge(spent(&[seed; 16], T0))
                .await
                .expect("spend")
        );
    }
}

pub async fn malformed_nonces_are_refused<S: Store>(store: S) {
    for nonce in [&[][..], &[1u8; 15][..], &[1u8; 65][..]] {
        let error = store
            .spend_challenge(spent(nonce, T0))
            .await
            .expect_err("nonce of the wrong length");
        assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
    }
}

pub async fn the_first_server_secret_wins<S: Store>(store: S) {
    let first = store
        .server_secret("challenge-mac", &[1u8; 32], T0)
        .await
        .expect("first");
    assert_eq!(first, vec![1u8; 32]);
    let second = store
        .server_secret("challenge-mac", &[2u8; 48], T0 + Duration::hours(1))
        .await
        .expect("second");
    assert_eq!(
        second, first,
        "an instance starting later reads the stored secret"
    );
    let other = store
        .server_secret("other", &[3u8; 32], T0)
        .await
        .expect("other name");
    assert_eq!(other, vec![3u8; 32]);
    let error = store
        .server_secret("short", &[4u8; 31], T0)
        .await
        .expect_err("short secret");
    assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
}

pub async fn an_assertion_commits_challenge_counter_and_decision_together<S: Store>(store: S) {
    store
        .insert_device_key(&device_key(1, APP, T0), &[])
        .await
        .expect("insert");
    let logged = decision(T0, APP, Some(1), Outcome::Allow);
    let commit = |nonce: &'static [u8], counter| AssertionCommit {
        challenge: spent(nonce, T0 + Duration::minutes(5)),
        key_id: key_id(1),
        counter: Some(counter),
        seen_at: T0 + Duration::seconds(30),
        decision: &logged,
    };
    let accepted = store
        .commit_assertion(commit(&[1; 16], 3))
        .await
        .expect("commit");
    assert!(
        matches!(accepted, AssertionCommitted::Accepted { .. }),
        "{accepted:?}"
    );
    let key = stored_key(&store, 1).await;
    assert_eq!((key.counter, key.assertion_count), (Some(3), 1));
    assert_eq!(key.last_seen_at, T0 + Duration::seconds(30));
    let decisions = store
        .list_decisions(&DecisionFilter::default(), 10)
        .await
        .expect("decisions");
    assert_eq!(decisions.len(), 1);

    // A spent challenge: nothing changes, not even with a higher counter.
    let again = store
        .commit_assertion(commit(&[1; 16], 4))
        .await
        .expect("commit");
    assert_eq!(again, AssertionCommitted::ChallengeSpent);
    assert_eq!(stored_key(&store, 1).await.counter, Some(3));

    // A replayed counter with a fresh challenge: the challenge is spent, nothing else.
    let replay = store
        .commit_assertion(commit(&[2; 16], 3))
        .await
        .expect("commit");
    assert_eq!(
        replay,
        AssertionCommitted::NotAdvanced(CounterAdvance::Replayed { stored: 3 })
    );
    assert!(
        !store
            .spend_challenge(spent(&[2; 16], T0))
            .await
            .expect("spend")
    );
    let key = stored_key(&store, 1).await;
    assert_eq!((key.counter, key.assertion_count), (Some(3), 1));
    let decisions = store
        .list_decisions(&DecisionFilter::default(), 10)
        .await
        .expect("decisions");
    assert_eq!(decisions.len(), 1, "only the accepted assertion was logged");

    store
        .revoke_device_key(key_id(1), T0)
        .await
        .expect("revoke");
    let revoked = store
        .commit_assertion(commit(&[3; 16], 9))
        .await
        .expect("commit");
    assert_eq!(
        revoked,
        AssertionCommitted::NotAdvanced(CounterAdvance::Revoked)
    );
    let unknown = AssertionCommit {
        key_id: key_id(2),
        ..commit(&[4; 16], 9)
    };
    assert_eq!(
        store.commit_assertion(unknown).await.expect("commit"),
        AssertionCommitted::NotAdvanced(CounterAdvance::UnknownKey)
    );
}

pub async fn concurrent_assertion_commits_with_the_same_counter_let_exactly_one_through<S>(store: S)
where
    S: Store + Clone + 'static,
{
    store
        .insert_device_key(&device_key(1, APP, T0), &[])
        .await
        .expect("insert");
    let start = Arc::new(Barrier::new(RACERS));
    let mut racers = Vec::new();
    for racer in 0..RACERS {
        let (store, start) = (store.clone(), Arc::clone(&start));
        racers.push(tokio::spawn(async move {
            let logged = decision(T0, APP, Some(1), Outcome::Allow);
            // Every racer has its own fresh challenge; only the counter is contested.
            let nonce = [u8::try_from(racer).expect("small"); 16];
            start.wait().await;
            store
                .commit_assertion(AssertionCommit {
                    challenge: spent(&nonce, T0 + Duration::minutes(5)),
                    key_id: key_id(1),
                    counter: Some(1),
                    seen_at: T0,
                    decision: &logged,
                })
                .await
        }));
    }
    let mut accepted = 0;
    for racer in racers {
        match racer.await.expect("task").expect("commit") {
            AssertionCommitted::Accepted { .. } => accepted += 1,
            other => assert_eq!(
                other,
                AssertionCommitted::NotAdvanced(CounterAdvance::Replayed { stored: 1 })
            ),
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!(stored_key(&store, 1).await.assertion_count, 1);
}

pub async fn a_failed_assertion_commit_leaves_nothing_behind<S: Store>(store: S) {
    store
        .insert_device_key(&device_key(1, APP, T0), &[])
        .await
        .expect("insert");
    let mut refused = decision(T0, APP, Some(1), Outcome::Allow);
    refused.risk_score = Some(101);
    let commit = |nonce: &'static [u8], decision| AssertionCommit {
        challenge: spent(nonce, T0 + Duration::minutes(5)),
        key_id: key_id(1),
        counter: Some(5),
        seen_at: T0,
        decision,
    };
    // The decision violates the schema after the challenge and counter statements ran: the
    // whole transaction goes, and the connection is usable afterwards.
    let error = store
        .commit_assertion(commit(&[1; 16], &refused))
        .await
        .expect_err("a score of 101");
    assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
    assert_eq!(stored_key(&store, 1).await.counter, Some(0));
    let logged = decision(T0, APP, Some(1), Outcome::Allow);
    // The challenge was not spent either.
    let accepted = store
        .commit_assertion(commit(&[1; 16], &logged))
        .await
        .expect("commit");
    assert!(
        matches!(accepted, AssertionCommitted::Accepted { .. }),
        "{accepted:?}"
    );
    for _ in 0..3 {
        // Several times: whichever connection the pool hands out must be clean.
        let again = store
            .commit_assertion(commit(&[1; 16], &logged))
            .await
            .expect("commit");
        assert_eq!(again, AssertionCommitted::ChallengeSpent);
    }
    assert_eq!(stored_key(&store, 1).await.counter, Some(5));
    assert_eq!(
        store
            .list_decisions(&DecisionFilter::default(), 10)
            .await
            .expect("decisions")
            .len(),
        1
    );
}

pub async fn a_failed_commit_among_concurrent_ones_fails_alone<S>(store: S)
where
    S: Store + Clone + 'static,
{
    const KEYS: u8 = 24;
    for seed in 1..=KEYS {
        store
            .insert_device_key(&device_key(seed, APP, T0), &[])
            .await
            .expect("insert");
    }
    let start = Arc::new(Barrier::new(usize::from(KEYS)));
    let mut racers = Vec::new();
    for seed in 1..=KEYS {
        let (store, start) = (store.clone(), Arc::clone(&start));
        racers.push(tokio::spawn(async move {
            let mut logged = decision(T0, APP, Some(seed), Outcome::Allow);
            if seed == 7 {
                logged.risk_score = Some(101);
            }
            let nonce = [seed; 16];
            start.wait().await;
            store
                .commit_assertion(AssertionCommit {
                    challenge: spent(&nonce, T0 + Duration::minutes(5)),
                    key_id: key_id(seed),
                    counter: Some(1),
                    seen_at: T0,
                    decision: &logged,
                })
                .await
        }));
    }
    for (racer, seed) in racers.into_iter().zip(1..=KEYS) {
        let outcome = racer.await.expect("task");
        let counter = stored_key(&store, seed).await.counter;
        if seed == 7 {
            assert!(
                matches!(outcome, Err(StoreError::Invalid(_))),
                "{outcome:?}"
            );
            assert_eq!(counter, Some(0));
        } else {
            assert!(
                matches!(outcome, Ok(AssertionCommitted::Accepted { .. })),
                "{seed}: {outcome:?}"
            );
            assert_eq!(counter, Some(1));
        }
    }
    let logged = store
        .list_decisions(&DecisionFilter::default(), 100)
        .await
        .expect("decisions");
    assert_eq!(logged.len(), usize::from(KEYS) - 1);
}

pub async fn a_key_comes_with_its_device_history<S: Store>(store: S) {
    let mut keys = Vec::new();
    for (seed, app, created) in [
        (1u8, APP, T0),
        (2, APP, T0 - Duration::days(3)),
        (3, OTHER_APP, T0 - Duration::days(9)),
        (4, APP, T0 + Duration::days(1)),
    ] {
        let mut key = device_key(seed, app, created);
        if seed != 4 {
            key.device_id = "shared-device".to_owned();
        }
        store.insert_device_key(&key, &[]).await.expect("insert");
        keys.push(key);
    }
    store
        .revoke_device_key(key_id(2), T0)
        .await
        .expect("revoke");
    let no_counts = ContextQuery {
        client_ip: None,
        failures_since: T0,
        keys_since: T0,
        count_ip_keys: false,
        count_user_keys: false,
    };
    let KeyContext { key, history, .. } = store
        .key_context(key_id(1), &no_counts)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(key, keys[0]);
    // Keys 1 and 2 (revoked ones count); key 3 is another app's, key 4 another device's.
    assert_eq!(
        history,
        DeviceHistory {
            keys: 2,
            first_seen: Some(T0 - Duration::days(3))
        }
    );
    assert_eq!(
        store
            .key_context(key_id(9), &no_counts)
            .await
            .expect("read"),
        None
    );
}

pub async fn counter_only_moves_forward<S: Store>(store: S) {
    store
        .insert_device_key(&device_key(1, APP, T0), &[])
        .await
        .expect("insert");
    let t1 = T0 + Duration::seconds(1);
    let t2 = T0 + Duration::seconds(2);
    let t3 = T0 + Duration::seconds(3);

    assert_eq!(
        store
            .advance_counter(key_id(1), 0, t1)
            .await
            .expect("advance"),
        CounterAdvance::Replayed { stored: 0 },
        "the attestation's counter 0 cannot be reused"
    );
    assert_eq!(
        store
            .advance_counter(key_id(1), 5, t1)
            .await
            .expect("advance"),
        CounterAdvance::Advanced
    );
    assert_eq!(
        store
            .advance_counter(key_id(1), 5, t2)
            .await
            .expect("advance"),
        CounterAdvance::Replayed { stored: 5 },
        "equal counter"
    );
    assert_eq!(
        store
            .advance_counter(key_id(1), 3, t2)
            .await
            .expect("advance"),
        CounterAdvance::Replayed { stored: 5 },
        "lower counter"
    );
    let key = stored_key(&store, 1).await;
    assert_eq!(
        (key.counter, key.assertion_count, key.last_seen_at),
        (Some(5), 1, t1)
    );

    assert_eq!(
        store
            .advance_counter(key_id(1), u32::MAX, t3)
            .await
            .expect("advance"),
        CounterAdvance::Advanced
    );
    let key = stored_key(&store, 1).await;
    assert_eq!(
        (key.counter, key.assertion_count, key.last_seen_at),
        (Some(u32::MAX), 2, t3)
    );
    assert_eq!(
        store
            .advance_counter(key_id(1), u32::MAX, t3)
            .await
            .expect("advance"),
        CounterAdvance::Replayed { stored: u32::MAX }
    );
    assert_eq!(
        store
            .advance_counter(key_id(9), 1, t3)
            .await
            .expect("advance"),
        CounterAdvance::UnknownKey
    );
}

pub async fn concurrent_advances_with_the_same_counter_let_exactly_one_through<S>(store: S)
where
    S: Store + Clone + 'static,
{
    store
        .insert_device_key(&device_key(1, APP, T0), &[])
        .await
        .expect("insert");
    let start = Arc::new(Barrier::new(RACERS));
    let mut racers = Vec::new();
    for _ in 0..RACERS {
        let (store, start) = (store.clone(), Arc::clone(&start));
        racers.push(tokio::spawn(async move {
            start.wait().await;
            store.advance_counter(key_id(1), 1, T0).await
        }));
    }
    let mut advanced = 0;
    for racer in racers {
        match racer.await.expect("task").expect("advance") {
            CounterAdvance::Advanced => advanced += 1,
            CounterAdvance::Replayed { stored: 1 } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(advanced, 1);
    let key = stored_key(&store, 1).await;
    assert_eq!((key.counter, key.assertion_count), (Some(1), 1));
}

pub async fn concurrent_advances_with_different_counters_end_at_the_highest<S>(store: S)
where
    S: Store + Clone + 'static,
{
    store
        .insert_device_key(&device_key(1, APP, T0), &[])
        .await
        .expect("insert");
    let start = Arc::new(Barrier::new(RACERS));
    let mut racers = Vec::new();
    // Interleave high and low counters so that the arrival order is not the counter order.
    for index in 0..RACERS {
        let counter = if index % 2 == 0 {
            RACERS - index
        } else {
            index
        };
        let counter = u32::try_from(counter).expect("small counter");
        let (store, start) = (store.clone(), Arc::clone(&start));
        racers.push(tokio::spawn(async move {
            start.wait().await;
            store.advance_counter(key_id(1), counter, T0).await
        }));
    }
    let mut advanced = 0;
    for racer in racers {
        if racer.await.expect("task").expect("advance").is_advanced() {
            advanced += 1;
        }
    }
    let key = stored_key(&store, 1).await;
    assert_eq!(key.counter, Some(u32::try_from(RACERS).expect("small")));
    assert_eq!(key.assertion_count, advanced);
    assert!(advanced >= 1);
}

pub async fn revoked_key_cannot_advance<S: Store>(store: S) {
    store
        .insert_device_key(&device_key(1, APP, T0), &[])
        .await
        .expect("insert");
    let revoked_at = T0 + Duration::minutes(1);
    store
        .revoke_device_key(key_id(1), revoked_at)
        .await
        .expect("revoke");
    assert_eq!(
        store
            .advance_counter(key_id(1), 10, T0 + Duration::minutes(2))
            .await
            .expect("advance"),
        CounterAdvance::Revoked
    );
    let key = stored_key(&store, 1).await;
    assert_eq!((key.counter, key.assertion_count), (Some(0), 0));
    assert_eq!(key.revoked_at, Some(revoked_at));
    assert_eq!(key.revocation_reason, Some(RevocationReason::Revoked));

    store
        .revoke_device_key(key_id(1), T0 + Duration::hours(1))
        .await
        .expect("revoke again");
    assert_eq!(
        stored_key(&store, 1).await.revoked_at,
        Some(revoked_at),
        "first time kept"
    );

    let error = store
        .revoke_device_key(key_id(9), T0)
        .await
        .expect_err("unknown key");
    assert!(matches!(error, StoreError::NotFound), "{error:?}");
}

pub async fn superseded_key_is_revoked_and_names_its_successor<S: Store>(store: S) {
    store
        .insert_device_key(&device_key(1, APP, T0), &[])
        .await
        .expect("insert old");
    store
        .insert_device_key(&device_key(2, APP, T0), &[])
        .await
        .expect("insert new");
    let at = T0 + Duration::days(3);
    store
        .supersede_device_key(key_id(1), key_id(2), at)
        .await
        .expect("supersede");

    let old = stored_key(&store, 1).await;
    assert_eq!(
        (old.superseded_by, old.revoked_at, old.revocation_reason),
        (
            Some(key_id(2)),
            Some(at),
            Some(RevocationReason::Superseded)
        )
    );
    assert_eq!(
        store
            .advance_counter(key_id(1), 1, at)
            .await
            .expect("advance"),
        CounterAdvance::Revoked
    );
    assert_eq!(
        stored_key(&store, 2).await.revoked_at,
        None,
        "the successor stays valid"
    );

    let missing = store.supersede_device_key(key_id(2), key_id(9), at).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    let missing = store.supersede_device_key(key_id(9), key_id(2), at).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    let itself = store.supersede_device_key(key_id(2), key_id(2), at).await;
    assert!(matches!(itself, Err(StoreError::Invalid(_))), "{itself:?}");
    assert_eq!(stored_key(&store, 2).await.revoked_at, None);
}

pub async fn device_keys_list_in_stable_pages<S: Store>(store: S) {
    // Seeds 1..=7; odd seeds belong to APP. Seeds 6 and 7 share a creation time, so the key id
    // breaks the tie.
    let mut expected = Vec::new();
    for seed in 1..=7u8 {
        let created_at = T0 + Duration::seconds(i64::from(seed.min(6)));
        let app_id = if seed % 2 == 1 { APP } else { OTHER_APP };
        let key = device_key(seed, app_id, created_at);
        store.insert_device_key(&key, &[]).await.expect("insert");
        expected.push(key);
    }

    let mut paged = Vec::new();
    for offset in [0, 3, 6, 9] {
        paged.extend(store.list_device_keys(None, 3, offset).await.expect("page"));
    }
    assert_eq!(paged, expected);

    let mine = store
        .list_device_keys(Some(APP), 10, 0)
        .await
        .expect("filtered");
    let seeds: Vec<u8> = mine.iter().map(|key| key.key_id.0[0]).collect();
    assert_eq!(seeds, [1, 3, 5, 7]);
    let second_page = store
        .list_device_keys(Some(APP), 2, 2)
        .await
        .expect("filtered page");
    let seeds: Vec<u8> = second_page.iter().map(|key| key.key_id.0[0]).collect();
    assert_eq!(seeds, [5, 7]);

    assert!(
        store
            .list_device_keys(None, 0, 0)
            .await
            .expect("empty page")
            .is_empty()
    );
    assert!(
        store
            .list_device_keys(Some("NOBODY.app"), 10, 0)
            .await
            .expect("none")
            .is_empty()
    );
    assert!(
        store
            .list_device_keys(None, 10, u64::MAX)
            .await
            .expect("far")
            .is_empty()
    );
}

pub async fn decisions_round_trip_newest_first_and_filter<S: Store>(store: S) {
    let recorded = [
        decision(T0, APP, Some(1), Outcome::Allow),
        decision(T0 + Duration::seconds(1), APP, Some(2), Outcome::Deny),
        decision(
            T0 + Duration::seconds(2),
            OTHER_APP,
            None,
            Outcome::AllowMonitored,
        ),
        Decision {
            risk_score: None,
            ..decision(T0 + Duration::seconds(3), APP, Some(1), Outcome::Deny)
        },
        decision(T0 + Duration::seconds(4), APP, None, Outcome::Allow),
    ];
    let mut ids = Vec::new();
    for entry in &recorded {
        ids.push(store.record_decision(entry).await.expect("record"));
    }
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "ids increase: {ids:?}"
    );

    let all = store
        .list_decisions(&DecisionFilter::default(), 100)
        .await
        .expect("list");
    let newest_first: Vec<_> = recorded.iter().rev().cloned().collect();
    assert_eq!(
        all.iter()
            .map(|logged| logged.decision.clone())
            .collect::<Vec<_>>(),
        newest_first
    );
    assert_eq!(all.iter().map(|logged| logged.id).collect::<Vec<_>>(), {
        let mut reversed = ids.clone();
        reversed.reverse();
        reversed
    });

    let select = |filter: DecisionFilter| {
        let store = &store;
        async move {
            let found = store.list_decisions(&filter, 100).await.expect("list");
            found
                .into_iter()
                .map(|logged| logged.decision.at)
                .collect::<Vec<_>>()
        }
    };
    let at = |seconds: i64| T0 + Duration::seconds(seconds);
    let by_app = select(DecisionFilter {
        app_id: Some(APP.into()),
        ..Default::default()
    })
    .await;
    assert_eq!(by_app, [at(4), at(3), at(1), at(0)]);
    let by_key = select(DecisionFilter {
        key_id: Some(key_id(1)),
        ..Default::default()
    })
    .await;
    assert_eq!(by_key, [at(3), at(0)]);
    let denied = select(DecisionFilter {
        outcome: Some(Outcome::Deny),
        ..Default::default()
    })
    .await;
    assert_eq!(denied, [at(3), at(1)]);
    let since = select(DecisionFilter {
        since: Some(at(3)),
        ..Default::default()
    })
    .await;
    assert_eq!(since, [at(4), at(3)]);
    let combined = select(DecisionFilter {
        app_id: Some(APP.into()),
        outcome: Some(Outcome::Allow),
        since: Some(at(1)),
        ..Default::default()
    })
    .await;
    assert_eq!(combined, [at(4)]);

    // Keyset pagination: pass the last id of a page as `before_id`.
    let first_page = store
        .list_decisions(&DecisionFilter::default(), 2)
        .await
        .expect("page");
    assert_eq!(first_page.len(), 2);
    let before_id = first_page.last().map(|logged| logged.id);
    let next = select(DecisionFilter {
        before_id,
        ..Default::default()
    })
    .await;
    assert_eq!(next, [at(2), at(1), at(0)]);
}

pub async fn signing_keys_round_trip_and_retire<S: Store>(store: S) {
    let keys = [
        SigningKey {
            kid: "kid-old".into(),
            algorithm: "ES256".into(),
            private_pkcs8: vec![0x30, 0x81, 0x87, 1, 2, 3],
            created_at: T0,
            retired_at: None,
        },
        SigningKey {
            kid: "kid-new".into(),
            algorithm: "ES256".into(),
            private_pkcs8: vec![0x30, 0x81, 0x87, 4, 5, 6],
            created_at: T0 + Duration::days(30),
            retired_at: None,
        },
    ];
    for key in &keys {
        store.insert_signing_key(key).await.expect("insert");
    }
    assert_eq!(store.signing_keys().await.expect("list"), keys);

    let duplicate = SigningKey {
        private_pkcs8: vec![9],
        ..keys[0].clone()
    };
    let error = store
        .insert_signing_key(&duplicate)
        .await
        .expect_err("duplicate kid");
    assert!(matches!(error, StoreError::Conflict), "{error:?}");

    let retired_at = T0 + Duration::days(60);
    store
        .retire_signing_key("kid-old", retired_at)
        .await
        .expect("retire");
    store
        .retire_signing_key("kid-old", retired_at + Duration::days(1))
        .await
        .expect("retire again");
    let listed = store.signing_keys().await.expect("list");
    assert_eq!(
        listed[0],
        SigningKey {
            retired_at: Some(retired_at),
            ..keys[0].clone()
        }
    );
    assert_eq!(listed[1], keys[1]);

    let error = store
        .retire_signing_key("kid-missing", retired_at)
        .await
        .expect_err("unknown");
    assert!(matches!(error, StoreError::NotFound), "{error:?}");
}

pub async fn values_outside_their_domain_are_refused<S: Store>(store: S) {
    let out_of_range = Decision {
        risk_score: Some(101),
        ..decision(T0, APP, None, Outcome::Deny)
    };
    let error = store
        .record_decision(&out_of_range)
        .await
        .expect_err("risk score 101");
    assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");

    let mut key = device_key(1, APP, T0);
    key.assertion_count = u64::MAX;
    let error = store
        .insert_device_key(&key, &[])
        .await
        .expect_err("count beyond i64");
    assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
    assert_eq!(store.device_key(key_id(1)).await.expect("read"), None);
}
