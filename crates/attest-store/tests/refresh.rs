//! The security contract of `RefreshStore` (receipt refresh schedule), proved against every
//! backend: SQLite in a temporary file, PostgreSQL in a fresh schema when `DATABASE_URL` is set
//! (otherwise cargo reports those tests as ignored, with the reason).
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p attest-store --test refresh
//! ```

#[path = "conformance/harness.rs"]
mod harness;

use std::collections::HashSet;
use std::sync::Arc;

use attest_store::{
    DeviceKey, Environment, KeyId, ReceiptUpdate, RefreshAttempt, RefreshEnrollment, RefreshStore,
    RefreshedReceipt, Store, StoreError,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tokio::sync::Barrier;

const APP: &str = "TEAMID1234.com.example.app";
const T0: OffsetDateTime = datetime!(2026-01-01 12:00:00 UTC);

/// Generates one `#[tokio::test]` per contract and backend.
macro_rules! contract_tests {
    ($($contract:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $contract() {
                    crate::harness::on_sqlite(crate::$contract).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[cfg_attr(no_database_url, ignore = "PostgreSQL: set DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run")]
                async fn $contract() {
                    crate::harness::on_postgres(crate::$contract).await;
                }
            )*
        }
    };
}

contract_tests!(
    new_keys_are_listed_until_enrolled_and_enrolment_never_overwrites,
    due_keys_are_claimed_most_overdue_first_and_leased,
    concurrent_claims_hand_each_due_key_to_exactly_one_caller,
    an_expired_lease_makes_the_key_due_again,
    only_the_lease_owner_records_an_outcome,
    failures_count_up_and_an_answer_resets_them,
    stopped_keys_are_never_claimed,
    a_receipt_is_only_replaced_by_a_newer_one,
    concurrent_receipts_end_with_the_newest,
    released_claims_are_due_again_at_once,
    values_outside_their_domain_are_refused,
);

fn key_id(seed: u8) -> KeyId {
    KeyId([seed; 32])
}

async fn insert_key<S: Store>(store: &S, seed: u8, created_at: OffsetDateTime) {
    let key = DeviceKey::new(
        key_id(seed),
        format!("device-{seed}"),
        APP,
        Environment::Development,
        vec![0x30, seed],
        attest_store::AppleEvidence::default(),
        created_at,
    );
    store
        .insert_device_key(&key, &[0xA0, seed])
        .await
        .expect("insert key");
}

async fn stored_receipt<S: Store>(store: &S, seed: u8) -> Vec<u8> {
    store
        .device_key_receipt(key_id(seed))
        .await
        .expect("read receipt")
        .expect("an App Attest key has a receipt row")
}

fn enrollment(seed: u8, next: Option<OffsetDateTime>) -> RefreshEnrollment {
    RefreshEnrollment {
        key_id: key_id(seed),
        next_refresh_at: next,
        receipt_created_at: Some(T0),
        receipt_not_before: None,
        receipt_expires_at: Some(T0 + Duration::days(90)),
        enrolled_at: T0,
    }
}

/// `count` keys, seeds 1..=count, enrolled due at T0 + seed seconds.
async fn enrolled_keys<S: Store + RefreshStore>(store: &S, count: u8) {
    for seed in 1..=count {
        insert_key(store, seed, T0).await;
        let due = T0 + Duration::seconds(i64::from(seed));
        assert!(
            store
                .enroll_refresh(&enrollment(seed, Some(due)))
                .await
                .expect("enroll")
        );
    }
}

fn answered(at: OffsetDateTime, status: &str) -> RefreshAttempt {
    RefreshAttempt {
        at,
        status: status.to_owned(),
        succeeded: true,
    }
}

fn failed(at: OffsetDateTime, status: &str) -> RefreshAttempt {
    RefreshAttempt {
        at,
        status: status.to_owned(),
        succeeded: false,
    }
}

fn receipt(bytes: &[u8], created_at: OffsetDateTime, metric: i64) -> RefreshedReceipt {
    RefreshedReceipt {
        receipt: bytes.to_vec(),
        created_at,
        not_before: Some(created_at + Duration::days(1)),
        expires_at: Some(created_at + Duration::days(90)),
        risk_metric: Some(metric),
        received_at: created_at + Duration::seconds(1),
    }
}

async fn claim<S: RefreshStore>(
    store: &S,
    now: OffsetDateTime,
    limit: u32,
    owner: &str,
) -> Vec<KeyId> {
    store
        .claim_due_refreshes(now, limit, now + Duration::minutes(5), owner)
        .await
        .expect("claim")
        .into_iter()
        .map(|state| state.key_id)
        .collect()
}

pub async fn new_keys_are_listed_until_enrolled_and_enrolment_never_overwrites<
    S: Store + RefreshStore,
>(
    store: S,
) {
    insert_key(&store, 1, T0).await;
    insert_key(&store, 2, T0 + Duration::seconds(10)).await;
    insert_key(&store, 3, T0 + Duration::seconds(20)).await;
    store
        .revoke_device_key(key_id(3), T0 + Duration::seconds(30))
        .await
        .expect("revoke");
    // An Android key has no receipt: it is never a candidate.
    let android = DeviceKey::new(
        key_id(4),
        "device-4",
        "com.example.app",
        Environment::Production,
        vec![0x30, 4],
        attest_store::AndroidEvidence {
            attestation_version: 300,
            attestation_security_level: attest_types::evidence::SecurityLevel::TrustedEnvironment,
            keymint_security_level: attest_types::evidence::SecurityLevel::TrustedEnvironment,
            verified_boot_state: None,
            device_locked: None,
            verified_boot_key: None,
            os_version: None,
            os_patch_level: None,
            vendor_patch_level: None,
            boot_patch_level: None,
            package_names: Vec::new(),
            signing_digests: Vec::new(),
            provisioning: attest_types::evidence::Provisioning::Remote,
            anchor: attest_types::evidence::TrustAnchor::GoogleKeyAttestationCa1,
            attest_key_certificates: 0,
        },
        T0 + Duration::seconds(1),
    );
    store
        .insert_device_key(&android, &[])
        .await
        .expect("insert an Android key");

    let candidates = store
        .unenrolled_device_keys(T0, 10)
        .await
        .expect("candidates");
    let ids: Vec<KeyId> = candidates.iter().map(|c| c.key_id).collect();
    assert_eq!(
        ids,
        [key_id(1), key_id(2)],
        "oldest first, revoked and Android keys left out"
    );
    assert_eq!(candidates[0].receipt, [0xA0, 1]);
    assert_eq!(candidates[0].created_at, T0);
    let later = store
        .unenrolled_device_keys(T0 + Duration::seconds(5), 10)
        .await
        .expect("candidates");
    assert_eq!(later.len(), 1, "created_since filters");

    let first = enrollment(1, Some(T0 + Duration::days(1)));
    assert!(store.enroll_refresh(&first).await.expect("enroll"));
    let mut second = enrollment(1, Some(T0));
    second.receipt_created_at = None;
    assert!(
        !store.enroll_refresh(&second).await.expect("enroll again"),
        "a second enrolment reports that the key was enrolled already"
    );
    let state = store
        .refresh_state(key_id(1))
        .await
        .expect("state")
        .expect("enrolled");
    assert_eq!(state.next_refresh_at, Some(T0 + Duration::days(1)));
    assert_eq!(state.receipt_created_at, Some(T0));
    assert_eq!(state.receipt_expires_at, Some(T0 + Duration::days(90)));
    assert_eq!((state.attempts, state.refreshes), (0, 0));
    assert_eq!(state.enrolled_at, T0);
    assert!(state.last_status.is_none() && state.lease_until.is_none());

    let remaining = store
        .unenrolled_device_keys(T0, 10)
        .await
        .expect("candidates");
    assert_eq!(
        remaining.iter().map(|c| c.key_id).collect::<Vec<_>>(),
        [key_id(2)]
    );

    let unknown = store.enroll_refresh(&enrollment(9, Some(T0))).await;
    assert!(
        matches!(unknown, Err(StoreError::Invalid(_))),
        "{unknown:?}"
    );
    assert!(
        store
            .refresh_state(key_id(9))
            .await
            .expect("state")
            .is_none()
    );
}

pub async fn due_keys_are_claimed_most_overdue_first_and_leased<S: Store + RefreshStore>(store: S) {
    enrolled_keys(&store, 5).await;
    let now = T0 + Duration::seconds(4);
    assert_eq!(store.count_due_refreshes(now).await.expect("count"), 4);

    let claimed = store
        .claim_due_refreshes(now, 2, now + Duration::minutes(5), "node-a")
        .await
        .expect("claim");
    assert_eq!(
        claimed.iter().map(|s| s.key_id).collect::<Vec<_>>(),
        [key_id(1), key_id(2)]
    );
    for state in &claimed {
        assert_eq!(state.lease_owner.as_deref(), Some("node-a"));
        assert_eq!(state.lease_until, Some(now + Duration::minutes(5)));
    }
    assert_eq!(
        claim(&store, now, 10, "node-b").await,
        [key_id(3), key_id(4)],
        "leased keys are skipped; key 5 is not due yet"
    );
    assert!(claim(&store, now, 10, "node-c").await.is_empty());
    assert_eq!(
        store.count_due_refreshes(now).await.expect("count"),
        4,
        "leased keys still count as backlog"
    );
}

pub async fn concurrent_claims_hand_each_due_key_to_exactly_one_caller<
    S: Store + RefreshStore + 'static,
>(
    store: S,
) {
    const KEYS: u8 = 60;
    const RACERS: usize = 12;
    enrolled_keys(&store, KEYS).await;
    let now = T0 + Duration::hours(1);
    let store = Arc::new(store);
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for racer in 0..RACERS {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let owner = format!("node-{racer}");
            let mut mine = Vec::new();
            // Bounded: at most KEYS claims can return anything.
            for _ in 0..usize::from(KEYS) {
                let batch = claim(&*store, now, 3, &owner).await;
                if batch.is_empty() {
                    break;
                }
                mine.extend(batch);
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for task in tasks {
        for key in task.await.expect("racer") {
            total += 1;
            assert!(seen.insert(key), "key {} claimed twice", key.0[0]);
        }
    }
    assert_eq!(total, usize::from(KEYS));
    assert_eq!(seen.len(), usize::from(KEYS), "every due key was claimed");
}

pub async fn an_expired_lease_makes_the_key_due_again<S: Store + RefreshStore>(store: S) {
    enrolled_keys(&store, 1).await;
    let now = T0 + Duration::minutes(1);
    let lease = now + Duration::seconds(30);
    let claimed = store
        .claim_due_refreshes(now, 10, lease, "crashed")
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert!(
        claim(&store, lease - Duration::seconds(1), 10, "node-b")
            .await
            .is_empty()
    );
    assert_eq!(claim(&store, lease, 10, "node-b").await, [key_id(1)]);

    // The crashed owner comes back: its outcome is refused, node-b's stands.
    let refused = store
        .record_refresh(
            key_id(1),
            "crashed",
            &answered(lease, "refreshed"),
            Some(T0 + Duration::days(9)),
        )
        .await
        .expect("record");
    assert!(!refused);
    let state = store.refresh_state(key_id(1)).await.unwrap().unwrap();
    assert_eq!(state.lease_owner.as_deref(), Some("node-b"));
    assert!(state.last_status.is_none());
}

pub async fn only_the_lease_owner_records_an_outcome<S: Store + RefreshStore>(store: S) {
    enrolled_keys(&store, 2).await;
    let now = T0 + Duration::minutes(1);
    assert_eq!(claim(&store, now, 1, "node-a").await, [key_id(1)]);
    let next = now + Duration::days(1);

    for owner in ["node-b", "node-a-but-longer"] {
        assert!(
            !store
                .record_refresh(key_id(1), owner, &answered(now, "refreshed"), Some(next))
                .await
                .expect("record"),
            "{owner} does not hold the lease"
        );
    }
    assert!(
        !store
            .record_refresh(key_id(2), "node-a", &answered(now, "refreshed"), Some(next))
            .await
            .expect("record"),
        "key 2 was never claimed by node-a"
    );
    assert!(
        store
            .record_refresh(key_id(1), "node-a", &answered(now, "refreshed"), Some(next))
            .await
            .expect("record")
    );
    let state = store.refresh_state(key_id(1)).await.unwrap().unwrap();
    assert_eq!(state.next_refresh_at, Some(next));
    assert_eq!(state.last_attempt_at, Some(now));
    assert_eq!(state.last_status.as_deref(), Some("refreshed"));
    assert_eq!(state.lease_until, None, "recording ends the lease");
    assert_eq!(
        state.lease_owner.as_deref(),
        Some("node-a"),
        "last owner kept"
    );

    // Not due before `next`, due at `next`.
    assert_eq!(
        claim(&store, next - Duration::seconds(1), 10, "node-b").await,
        [key_id(2)]
    );
    assert_eq!(claim(&store, next, 10, "node-b").await, [key_id(1)]);
}

pub async fn failures_count_up_and_an_answer_resets_them<S: Store + RefreshStore>(store: S) {
    enrolled_keys(&store, 1).await;
    let mut now = T0 + Duration::minutes(1);
    for (expected, attempt) in [
        (1, failed(now, "apple_unreachable")),
        (2, failed(now, "apple_server_error")),
        (3, failed(now, "apple_rate_limited")),
        (0, answered(now, "not_modified")),
        (1, failed(now, "apple_no_data")),
    ] {
        assert_eq!(claim(&store, now, 1, "node-a").await, [key_id(1)]);
        assert!(
            store
                .record_refresh(key_id(1), "node-a", &attempt, Some(now))
                .await
                .expect("record")
        );
        let state = store.refresh_state(key_id(1)).await.unwrap().unwrap();
        assert_eq!(state.attempts, expected, "after {}", attempt.status);
        assert_eq!(state.last_status.as_deref(), Some(attempt.status.as_str()));
        now += Duration::seconds(1);
    }
}

pub async fn stopped_keys_are_never_claimed<S: Store + RefreshStore>(store: S) {
    enrolled_keys(&store, 2).await;
    insert_key(&store, 3, T0).await;
    assert!(
        store
            .enroll_refresh(&enrollment(3, None))
            .await
            .expect("enroll stopped")
    );
    let now = T0 + Duration::minutes(1);
    assert_eq!(claim(&store, now, 1, "node-a").await, [key_id(1)]);
    assert!(
        store
            .record_refresh(key_id(1), "node-a", &answered(now, "key_revoked"), None)
            .await
            .expect("stop")
    );
    let far = T0 + Duration::days(10_000);
    assert_eq!(claim(&store, far, 10, "node-a").await, [key_id(2)]);
    assert_eq!(store.count_due_refreshes(far).await.expect("count"), 1);
    let state = store.refresh_state(key_id(1)).await.unwrap().unwrap();
    assert_eq!(state.next_refresh_at, None);
}

pub async fn a_receipt_is_only_replaced_by_a_newer_one<S: Store + RefreshStore>(store: S) {
    enrolled_keys(&store, 1).await;
    let newer = receipt(b"receipt-2", T0 + Duration::days(2), 7);
    assert_eq!(
        store
            .store_refreshed_receipt(key_id(1), &newer)
            .await
            .expect("store"),
        ReceiptUpdate::Stored
    );
    let key = store.device_key(key_id(1)).await.unwrap().unwrap();
    assert_eq!(stored_receipt(&store, 1).await, b"receipt-2");
    assert_eq!(
        key.receipt_risk_metric,
        Some(7),
        "the device key's risk metric is the one updated"
    );
    let state = store.refresh_state(key_id(1)).await.unwrap().unwrap();
    assert_eq!(state.risk_metric, Some(7));
    assert_eq!(state.risk_metric_at, Some(newer.received_at));
    assert_eq!(state.last_refreshed_at, Some(newer.received_at));
    assert_eq!(state.receipt_created_at, Some(newer.created_at));
    assert_eq!(state.receipt_not_before, newer.not_before);
    assert_eq!(state.receipt_expires_at, newer.expires_at);
    assert_eq!(state.refreshes, 1);

    for stale in [
        receipt(b"older", T0 + Duration::days(1), 1),
        receipt(b"much-older", T0 - Duration::days(1), 1),
    ] {
        assert_eq!(
            store
                .store_refreshed_receipt(key_id(1), &stale)
                .await
                .expect("store"),
            ReceiptUpdate::Stale
        );
    }
    let key = store.device_key(key_id(1)).await.unwrap().unwrap();
    assert_eq!(
        (stored_receipt(&store, 1).await, key.receipt_risk_metric),
        (b"receipt-2".to_vec(), Some(7))
    );
    assert_eq!(
        store.refresh_state(key_id(1)).await.unwrap().unwrap(),
        state,
        "a stale receipt changes nothing"
    );

    // A receipt of the same second (Apple's first answer right after the attestation, when the
    // ATTEST receipt is just as old) does replace it.
    let same_second = receipt(b"receipt-2b", T0 + Duration::days(2), 8);
    assert_eq!(
        store
            .store_refreshed_receipt(key_id(1), &same_second)
            .await
            .expect("store"),
        ReceiptUpdate::Stored
    );
    let key = store.device_key(key_id(1)).await.unwrap().unwrap();
    assert_eq!(key.receipt_risk_metric, Some(8));

    let newest = receipt(b"receipt-3", T0 + Duration::days(3), 2);
    assert_eq!(
        store
            .store_refreshed_receipt(key_id(1), &newest)
            .await
            .expect("store"),
        ReceiptUpdate::Stored
    );
    let key = store.device_key(key_id(1)).await.unwrap().unwrap();
    assert_eq!(key.receipt_risk_metric, Some(2));
    assert_eq!(
        store
            .refresh_state(key_id(1))
            .await
            .unwrap()
            .unwrap()
            .refreshes,
        3
    );

    insert_key(&store, 8, T0).await;
    let unenrolled = store
        .store_refreshed_receipt(key_id(8), &newest)
        .await
        .expect_err("no refresh state");
    assert!(matches!(unenrolled, StoreError::NotFound), "{unenrolled:?}");
    let key = store.device_key(key_id(8)).await.unwrap().unwrap();
    assert_eq!(
        (stored_receipt(&store, 8).await, key.receipt_risk_metric),
        (vec![0xA0, 8], None),
        "untouched"
    );
}

pub async fn concurrent_receipts_end_with_the_newest<S: Store + RefreshStore + 'static>(store: S) {
    const WRITERS: u8 = 16;
    enrolled_keys(&store, 1).await;
    let store = Arc::new(store);
    let barrier = Arc::new(Barrier::new(usize::from(WRITERS)));
    let mut tasks = Vec::new();
    for writer in 1..=WRITERS {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let created = T0 + Duration::hours(i64::from(writer));
            let body = format!("receipt-{writer}");
            store
                .store_refreshed_receipt(
                    key_id(1),
                    &receipt(body.as_bytes(), created, i64::from(writer)),
                )
                .await
                .expect("store")
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    let key = store.device_key(key_id(1)).await.unwrap().unwrap();
    assert_eq!(
        stored_receipt(&*store, 1).await,
        format!("receipt-{WRITERS}").as_bytes()
    );
    assert_eq!(key.receipt_risk_metric, Some(i64::from(WRITERS)));
    let state = store.refresh_state(key_id(1)).await.unwrap().unwrap();
    assert_eq!(
        state.receipt_created_at,
        Some(T0 + Duration::hours(i64::from(WRITERS)))
    );
    assert_eq!(state.risk_metric, Some(i64::from(WRITERS)));
}

pub async fn released_claims_are_due_again_at_once<S: Store + RefreshStore>(store: S) {
    enrolled_keys(&store, 3).await;
    let now = T0 + Duration::minutes(1);
    assert_eq!(claim(&store, now, 3, "node-a").await.len(), 3);
    assert!(
        store
            .record_refresh(
                key_id(1),
                "node-a",
                &answered(now, "refreshed"),
                Some(now + Duration::days(1))
            )
            .await
            .unwrap()
    );
    assert_eq!(claim(&store, now, 3, "node-b").await, Vec::<KeyId>::new());
    assert_eq!(
        store.release_refresh_claims("node-b").await.expect("none"),
        0
    );
    assert_eq!(
        store
            .release_refresh_claims("node-a")
            .await
            .expect("release"),
        2,
        "only the keys still leased"
    );
    assert_eq!(
        claim(&store, now, 3, "node-b").await,
        [key_id(2), key_id(3)]
    );
}

fn invalid<T>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Invalid(_)))
}

pub async fn values_outside_their_domain_are_refused<S: Store + RefreshStore>(store: S) {
    enrolled_keys(&store, 1).await;
    let now = T0 + Duration::minutes(1);

    assert!(invalid(
        store
            .claim_due_refreshes(now, 1, now + Duration::minutes(1), "")
            .await
    ));
    let long = "x".repeat(attest_store::MAX_REFRESH_LABEL_LEN + 1);
    assert!(invalid(
        store
            .claim_due_refreshes(now, 1, now + Duration::minutes(1), &long)
            .await
    ));
    assert!(invalid(
        store.claim_due_refreshes(now, 1, now, "node-a").await
    ));
    assert_eq!(claim(&store, now, 1, "node-a").await, [key_id(1)]);
    assert!(invalid(
        store
            .record_refresh(key_id(1), "node-a", &answered(now, ""), None)
            .await
    ));
    assert!(invalid(
        store
            .store_refreshed_receipt(key_id(1), &receipt(b"r", T0 + Duration::days(1), -1))
            .await
    ));
    assert!(invalid(store.release_refresh_claims("").await));
    // Nothing above changed the row.
    let state = store.refresh_state(key_id(1)).await.unwrap().unwrap();
    assert_eq!((state.attempts, state.refreshes), (0, 0));
    assert!(state.last_status.is_none() && state.risk_metric.is_none());
}
