//! Contracts of readiness, signing-key retention and text the store refuses (points 7 and 8).

use attest_store::{
    AssertionCommit, DecisionFilter, DeliveryFilter, FailureScope, KeyFilter, Outcome, SigningKey,
    SpentChallenge, Store, StoreError, SummaryFilter,
};
use time::Duration;

use crate::suite::{APP, T0, decision, device_key, key_id};

pub async fn the_write_probe_commits_again_and_again<S: Store>(store: S) {
    for second in 0..3 {
        store
            .probe_write(T0 + Duration::seconds(second))
            .await
            .expect("a writable database takes the probe");
    }
}

pub async fn only_retired_signing_keys_are_deleted_and_only_before_the_bound<S: Store>(store: S) {
    let key = |kid: &str, created: i64, retired_at| SigningKey {
        kid: kid.to_owned(),
        algorithm: "ES256".into(),
        private_pkcs8: vec![0x30, 0x81, 0x87, 1],
        created_at: T0 + Duration::seconds(created),
        retired_at,
    };
    let keys = [
        key("retired-first", 0, Some(T0 + Duration::hours(1))),
        key("retired-later", 1, Some(T0 + Duration::hours(3))),
        key("live", 2, None),
    ];
    for key in &keys {
        store.insert_signing_key(key).await.expect("insert");
    }
    let deleted = store
        .delete_retired_signing_keys(T0 + Duration::hours(2))
        .await
        .expect("delete");
    assert_eq!(deleted, 1);
    assert_eq!(store.signing_keys().await.expect("list"), keys[1..]);
    let deleted = store
        .delete_retired_signing_keys(T0 + Duration::days(3650))
        .await
        .expect("delete");
    assert_eq!(deleted, 1, "the unretired key stays, however old");
    assert_eq!(store.signing_keys().await.expect("list"), keys[2..]);
}

/// Point 8: a NUL in any text the store binds is `Invalid` (PostgreSQL used to fail the
/// statement, which read as `Unavailable`; SQLite stored it).
pub async fn text_with_a_nul_is_refused_as_invalid<S: Store>(store: S) {
    const NUL: &str = "alice\0";
    let mut refusals: Vec<(&str, Result<(), StoreError>)> = Vec::new();
    let filter = KeyFilter {
        user_id: Some(NUL.into()),
        ..KeyFilter::default()
    };
    refusals.push((
        "find_device_keys",
        store.find_device_keys(&filter, 10).await.map(drop),
    ));
    refusals.push((
        "count_device_keys",
        store.count_device_keys(&filter).await.map(drop),
    ));
    refusals.push((
        "list_device_keys",
        store.list_device_keys(Some(NUL), 10, 0).await.map(drop),
    ));
    let decisions = DecisionFilter {
        app_id: Some(NUL.into()),
        ..DecisionFilter::default()
    };
    refusals.push((
        "list_decisions",
        store.list_decisions(&decisions, 10).await.map(drop),
    ));
    let decisions = DecisionFilter {
        device_id: Some(NUL.into()),
        ..DecisionFilter::default()
    };
    refusals.push((
        "list_decisions by device",
        store.list_decisions(&decisions, 10).await.map(drop),
    ));
    let scope = FailureScope {
        client_ip: Some(NUL.into()),
        ..FailureScope::default()
    };
    refusals.push((
        "failure_counts",
        store.failure_counts(&scope, T0).await.map(drop),
    ));
    let summary = SummaryFilter {
        app_id: Some(NUL.into()),
        since: None,
    };
    refusals.push((
        "decision_summary",
        store.decision_summary(&summary).await.map(drop),
    ));
    let deliveries = DeliveryFilter {
        event: Some(NUL.into()),
        ..DeliveryFilter::default()
    };
    refusals.push((
        "list_webhook_deliveries",
        store
            .list_webhook_deliveries(&deliveries, 10)
            .await
            .map(drop),
    ));
    let mut key = device_key(1, APP, T0);
    key.user_id = Some(NUL.into());
    refusals.push((
        "insert_device_key",
        store.insert_device_key(&key, &[]).await,
    ));
    let mut logged = decision(T0, APP, None, Outcome::Deny);
    logged.device_id = Some(NUL.into());
    refusals.push((
        "record_decision",
        store.record_decision(&logged).await.map(drop),
    ));
    refusals.push((
        "commit_assertion",
        store
            .commit_assertion(AssertionCommit {
                challenge: SpentChallenge {
                    nonce: &[7; 16],
                    expires_at: T0,
                },
                key_id: key_id(1),
                counter: Some(1),
                seen_at: T0,
                decision: &logged,
            })
            .await
            .map(drop),
    ));
    refusals.push((
        "server_secret",
        store.server_secret(NUL, &[1; 32], T0).await.map(drop),
    ));
    refusals.push((
        "settle_lineage",
        store
            .settle_lineage(APP, NUL, attest_store::Environment::Production, T0)
            .await
            .map(drop),
    ));
    for (method, result) in refusals {
        assert!(
            matches!(&result, Err(StoreError::Invalid(message)) if message.contains("NUL")),
            "{method}: {result:?}"
        );
    }
    // Nothing was written, and the challenge of the refused commit is still unspent.
    assert!(
        store
            .find_device_keys(&KeyFilter::default(), 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        store
            .spend_challenge(SpentChallenge {
                nonce: &[7; 16],
                expires_at: T0,
            })
            .await
            .expect("spend")
    );
}
