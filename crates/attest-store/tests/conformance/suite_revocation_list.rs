//! Contract point 10: Google's Android status list, the newest fetch wins; and the last fetch
//! attempt.

use std::sync::Arc;

use attest_store::{
    NewRevocationList, RevocationListAttempt, RevocationListSaved, RevocationListState, Store,
    StoreError, StoredRevocationList,
};
use time::{Duration, OffsetDateTime};
use tokio::sync::Barrier;

use crate::suite::T0;

const RACERS: usize = 20;
const LIST: &[u8] = br#"{"entries":{"2c8cdddfd5e03bfc":{"status":"REVOKED"}}}"#;

fn list(body: &[u8], fetched_at: OffsetDateTime) -> NewRevocationList<'_> {
    NewRevocationList {
        body,
        fetched_at,
        etag: None,
        last_modified: None,
    }
}

fn attempt(at: OffsetDateTime, status: &str) -> RevocationListAttempt {
    RevocationListAttempt {
        at,
        status: status.to_owned(),
    }
}

pub async fn the_revocation_list_is_absent_until_saved_and_round_trips(store: impl Store) {
    assert_eq!(
        store.revocation_list().await.expect("load"),
        RevocationListState::default()
    );
    let saved = NewRevocationList {
        etag: Some("\"v1\""),
        last_modified: Some("Wed, 02 Dec 2026 10:00:00 GMT"),
        ..list(LIST, T0)
    };
    assert_eq!(
        store.save_revocation_list(&saved).await.expect("save"),
        RevocationListSaved::Stored
    );
    let state = store.revocation_list().await.expect("load");
    assert_eq!(
        state.list,
        Some(StoredRevocationList {
            body: LIST.to_vec(),
            fetched_at: T0,
            etag: Some("\"v1\"".to_owned()),
            last_modified: Some("Wed, 02 Dec 2026 10:00:00 GMT".to_owned()),
        })
    );
    assert_eq!(state.last_attempt, None);
}

pub async fn an_older_revocation_list_never_replaces_a_newer_one(store: impl Store) {
    let newer = NewRevocationList {
        etag: Some("\"new\""),
        ..list(b"{\"entries\":{}}", T0 + Duration::minutes(10))
    };
    assert_eq!(
        store.save_revocation_list(&newer).await.expect("save"),
        RevocationListSaved::Stored
    );
    for at in [T0, T0 + Duration::minutes(10)] {
        // Older, and the same second: both leave the stored list as it is.
        assert_eq!(
            store
                .save_revocation_list(&list(LIST, at))
                .await
                .expect("save"),
            RevocationListSaved::Stale
        );
    }
    let stored = store
        .revocation_list()
        .await
        .expect("load")
        .list
        .expect("a list");
    assert_eq!(stored.body, b"{\"entries\":{}}");
    assert_eq!(stored.etag.as_deref(), Some("\"new\""));
    assert_eq!(stored.fetched_at, T0 + Duration::minutes(10));

    // A later save (a 304 confirming the same list is one) replaces it, validators included.
    assert_eq!(
        store
            .save_revocation_list(&list(LIST, T0 + Duration::minutes(11)))
            .await
            .expect("save"),
        RevocationListSaved::Stored
    );
    let stored = store
        .revocation_list()
        .await
        .expect("load")
        .list
        .expect("a list");
    assert_eq!(stored.body, LIST);
    assert_eq!(stored.etag, None);
    assert_eq!(stored.fetched_at, T0 + Duration::minutes(11));
}

pub async fn concurrent_revocation_list_saves_leave_the_newest<S>(store: S)
where
    S: Store + Clone + Send + Sync + 'static,
{
    let start = Arc::new(Barrier::new(RACERS));
    let mut racers = Vec::new();
    for n in 0..RACERS {
        let (store, start) = (store.clone(), Arc::clone(&start));
        racers.push(tokio::spawn(async move {
            // Racers start in any order; their fetch times are scrambled too.
            let seconds = i64::try_from((n * 7) % RACERS).expect("small");
            let body = format!("{{\"entries\":{{}},\"n\":{seconds}}}");
            start.wait().await;
            store
                .save_revocation_list(&list(body.as_bytes(), T0 + Duration::seconds(seconds)))
                .await
        }));
    }
    let mut stored = 0;
    for racer in racers {
        if racer.await.expect("racer").expect("save") == RevocationListSaved::Stored {
            stored += 1;
        }
    }
    assert!(stored >= 1, "the first save to land is stored");
    let stored = store
        .revocation_list()
        .await
        .expect("load")
        .list
        .expect("a list");
    let last = i64::try_from(RACERS - 1).expect("small");
    assert_eq!(stored.fetched_at, T0 + Duration::seconds(last));
    assert_eq!(
        stored.body,
        format!("{{\"entries\":{{}},\"n\":{last}}}").as_bytes()
    );
}

pub async fn the_last_revocation_list_attempt_is_kept_apart_from_the_list(store: impl Store) {
    store
        .record_revocation_list_attempt(&attempt(T0, "http_500"))
        .await
        .expect("record");
    let state = store.revocation_list().await.expect("load");
    assert_eq!(state.list, None, "a failed first fetch stores no list");
    assert_eq!(state.last_attempt, Some(attempt(T0, "http_500")));

    let saved = store
        .save_revocation_list(&list(LIST, T0 + Duration::minutes(1)))
        .await
        .expect("save");
    assert_eq!(saved, RevocationListSaved::Stored);
    store
        .record_revocation_list_attempt(&attempt(T0 + Duration::minutes(1), "fetched"))
        .await
        .expect("record");
    // An instance reporting late does not hide the newer outcome.
    store
        .record_revocation_list_attempt(&attempt(T0 + Duration::seconds(30), "timeout"))
        .await
        .expect("record");
    let state = store.revocation_list().await.expect("load");
    assert_eq!(
        state.last_attempt,
        Some(attempt(T0 + Duration::minutes(1), "fetched"))
    );
    assert_eq!(
        state.list.expect("a list").fetched_at,
        T0 + Duration::minutes(1)
    );
}

pub async fn revocation_list_values_outside_their_domain_are_refused(store: impl Store) {
    let long = "x".repeat(attest_store::MAX_VALIDATOR_LEN + 1);
    for bad in [
        list(b"", T0),
        NewRevocationList {
            etag: Some(""),
            ..list(LIST, T0)
        },
        NewRevocationList {
            etag: Some("a\0b"),
            ..list(LIST, T0)
        },
        NewRevocationList {
            last_modified: Some(&long),
            ..list(LIST, T0)
        },
    ] {
        assert!(
            matches!(
                store.save_revocation_list(&bad).await,
                Err(StoreError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
    for status in [String::new(), "s".repeat(129), "a\0".to_owned()] {
        assert!(matches!(
            store
                .record_revocation_list_attempt(&attempt(T0, &status))
                .await,
            Err(StoreError::Invalid(_))
        ));
    }
    assert_eq!(
        store.revocation_list().await.expect("load"),
        RevocationListState::default()
    );
}
