//! Contract point 9: refusals counted per sender (and proven device) and window, logged by
//! sample; and the instances sharing a database.

use std::sync::Arc;

use attest_store::{
    Decision, DecisionFilter, DecisionKind, DecisionReason, FailureCount, FailureSubject, Outcome,
    Refusal, SenderFailures, SenderFilter, Store, StoreError, SummaryFilter,
};
use time::{Duration, OffsetDateTime};
use tokio::sync::Barrier;

use crate::suite::{APP, OTHER_APP, T0, key_id};

const RACERS: usize = 20;
/// Windows of five minutes, as attestd's default (`failure_window` / 12).
const WINDOW: u32 = 300;
const SAMPLE: u32 = 3;
const SENDER: &str = "203.0.113.7";

/// A refused assertion naming key 1, from `SENDER`, with the reason attestd gives.
fn refused(at: OffsetDateTime, code: &str) -> Decision {
    Decision {
        key_id: Some(key_id(1)),
        client_ip: Some(SENDER.into()),
        kind: Some(DecisionKind::Assertion),
        risk_score: Some(60),
        reasons: vec![DecisionReason {
            code: "verification_failed".into(),
            message: format!("verification failed: {code}"),
        }],
        ..Decision::new(at, APP, "/v1/assertions", Outcome::Deny, code)
    }
}

fn unproven(decision: &Decision) -> Refusal<'_> {
    Refusal {
        decision,
        proven_device: None,
        window_seconds: WINDOW,
        sample: SAMPLE,
    }
}

fn sender(app_id: &str, client_ip: Option<&str>) -> FailureSubject {
    FailureSubject::Sender {
        app_id: app_id.into(),
        client_ip: client_ip.map(str::to_owned),
    }
}

fn device(device_id: &str) -> FailureSubject {
    FailureSubject::Device {
        app_id: APP.into(),
        device_id: device_id.into(),
    }
}

fn counts(pairs: &[(&str, u64)]) -> Vec<FailureCount> {
    pairs
        .iter()
        .map(|(code, count)| FailureCount {
            code: (*code).to_owned(),
            count: *count,
        })
        .collect()
}

async fn logged<S: Store>(store: &S) -> Vec<Decision> {
    let filter = DecisionFilter {
        app_id: Some(APP.into()),
        ..DecisionFilter::default()
    };
    store
        .list_decisions(&filter, 1000)
        .await
        .expect("list")
        .into_iter()
        .map(|logged| logged.decision)
        .collect()
}

/// N identical refusals, racing: all counted, exactly the sample logged in full, one tally line.
pub async fn identical_refusals_are_all_counted_and_only_a_sample_is_logged<S>(store: S)
where
    S: Store + Clone + 'static,
{
    let start = Arc::new(Barrier::new(RACERS));
    let mut racers = Vec::new();
    for n in 0..RACERS {
        let (store, start) = (store.clone(), Arc::clone(&start));
        racers.push(tokio::spawn(async move {
            let at = T0 + Duration::seconds(i64::try_from(n % 60).expect("small"));
            let decision = refused(at, "signature_invalid");
            start.wait().await;
            store.record_refusal(&unproven(&decision)).await
        }));
    }
    let mut in_full = 0;
    let mut counts_seen = Vec::new();
    for racer in racers {
        let recorded = racer.await.expect("task").expect("record");
        in_full += usize::from(recorded.decision_id.is_some());
        counts_seen.push(recorded.sender_failures);
    }
    counts_seen.sort_unstable();
    let expected: Vec<u64> = (1..=u64::try_from(RACERS).expect("small")).collect();
    assert_eq!(counts_seen, expected, "each refusal saw its own count");
    assert_eq!(in_full, SAMPLE as usize);
    let decisions = logged(&store).await;
    assert_eq!(
        decisions.len(),
        SAMPLE as usize,
        "only the sample is logged"
    );
    assert!(decisions.iter().all(|d| d.code == "signature_invalid"));

    let all_time = SenderFilter {
        app_id: APP.into(),
        client_ip: None,
        since: OffsetDateTime::UNIX_EPOCH,
        limit: 100,
    };
    assert_eq!(
        store.sender_failures(&all_time).await.expect("senders"),
        [SenderFailures {
            app_id: APP.into(),
            client_ip: Some(SENDER.into()),
            code: "signature_invalid".into(),
            failures: RACERS as u64,
            logged: u64::from(SAMPLE),
        }]
    );
    assert_eq!(
        store
            .tallied_failures(&sender(APP, Some(SENDER)), T0)
            .await
            .expect("counts"),
        counts(&[("signature_invalid", RACERS as u64)])
    );
    assert_eq!(
        store
            .tallied_failures(&device("device-1"), T0)
            .await
            .expect("counts"),
        [],
        "an unproven refusal counts against nobody's device"
    );
    let summary = store
        .decision_summary(&SummaryFilter {
            app_id: Some(APP.into()),
            since: None,
        })
        .await
        .expect("summary");
    assert_eq!(
        summary.unlogged_refusals,
        (RACERS as u64) - u64::from(SAMPLE)
    );

    // The next window starts a new sample; another code has a sample of its own.
    let later = refused(
        T0 + Duration::seconds(i64::from(WINDOW)),
        "signature_invalid",
    );
    let other = refused(T0, "malformed");
    for decision in [&later, &other] {
        let recorded = store
            .record_refusal(&unproven(decision))
            .await
            .expect("record");
        assert_eq!(recorded.sender_failures, 1);
        assert!(recorded.decision_id.is_some());
    }
    assert_eq!(logged(&store).await.len(), SAMPLE as usize + 2);
    assert_eq!(
        store
            .tallied_failures(&sender(APP, Some(SENDER)), T0)
            .await
            .expect("counts"),
        counts(&[("malformed", 1), ("signature_invalid", RACERS as u64 + 1)])
    );
}

/// A refusal that proved possession counts against its device as well; tallies are per app,
/// subject and window, and a sample of 0 logs nothing in full.
pub async fn a_proven_refusal_counts_against_its_device_and_windows_are_read_exactly<S: Store>(
    store: S,
) {
    let at = |seconds: i64| T0 + Duration::seconds(seconds);
    let replay = refused(at(10), "counter_invalid");
    let proven = Refusal {
        proven_device: Some("device-1"),
        ..unproven(&replay)
    };
    for _ in 0..2 {
        store.record_refusal(&proven).await.expect("record");
    }
    let earlier = refused(at(-1), "counter_invalid");
    store
        .record_refusal(&Refusal {
            proven_device: Some("device-1"),
            ..unproven(&earlier)
        })
        .await
        .expect("record");
    let elsewhere = Decision {
        app_id: OTHER_APP.into(),
        ..refused(at(10), "counter_invalid")
    };
    store
        .record_refusal(&Refusal {
            proven_device: Some("device-1"),
            ..unproven(&elsewhere)
        })
        .await
        .expect("record");
    let nameless = Decision {
        client_ip: None,
        ..refused(at(20), "malformed")
    };
    let quiet = Refusal {
        sample: 0,
        ..unproven(&nameless)
    };
    let recorded = store.record_refusal(&quiet).await.expect("record");
    assert_eq!(recorded.decision_id, None, "a sample of 0 logs nothing");

    // T0 starts a window: the refusal at T0 - 1 s is in the window before it.
    assert_eq!(
        store
            .tallied_failures(&device("device-1"), T0)
            .await
            .expect("counts"),
        counts(&[("counter_invalid", 2)])
    );
    assert_eq!(
        store
            .tallied_failures(
                &device("device-1"),
                T0 - Duration::seconds(i64::from(WINDOW))
            )
            .await
            .expect("counts"),
        counts(&[("counter_invalid", 3)])
    );
    assert_eq!(
        store
            .tallied_failures(&device("device-2"), T0 - Duration::days(1))
            .await
            .expect("counts"),
        []
    );
    assert_eq!(
        store
            .tallied_failures(&sender(APP, None), T0)
            .await
            .expect("counts"),
        counts(&[("malformed", 1)]),
        "requests of unknown address are one sender"
    );
    let one_sender = SenderFilter {
        app_id: APP.into(),
        client_ip: Some(SENDER.into()),
        since: T0,
        limit: 10,
    };
    let lines = store.sender_failures(&one_sender).await.expect("senders");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!((lines[0].failures, lines[0].logged), (2, 2));

    // Purging forgets windows that started before the bound, and only those.
    let purged = store.purge_failure_tallies(T0).await.expect("purge");
    assert_eq!(
        purged, 2,
        "the device's and the sender's rows of the earlier window"
    );
    assert_eq!(
        store
            .tallied_failures(&device("device-1"), T0 - Duration::days(1))
            .await
            .expect("counts"),
        counts(&[("counter_invalid", 2)])
    );
}

pub async fn refusals_outside_their_domain_are_refused<S: Store>(store: S) {
    let ok = Decision {
        outcome: Outcome::Allow,
        ..refused(T0, "ok")
    };
    let nul = Decision {
        client_ip: Some("10.0.0.1\0".into()),
        ..refused(T0, "malformed")
    };
    let decision = refused(T0, "malformed");
    let cases = [
        unproven(&ok),
        unproven(&nul),
        Refusal {
            window_seconds: 0,
            ..unproven(&decision)
        },
        Refusal {
            proven_device: Some("d\0"),
            ..unproven(&decision)
        },
    ];
    for refusal in cases {
        assert!(
            matches!(
                store.record_refusal(&refusal).await,
                Err(StoreError::Invalid(_))
            ),
            "{refusal:?}"
        );
    }
    assert!(logged(&store).await.is_empty());
    assert!(
        store
            .tallied_failures(&sender(APP, Some(SENDER)), OffsetDateTime::UNIX_EPOCH)
            .await
            .expect("counts")
            .is_empty()
    );
}

/// Instances count those seen since the bound; stale and departed ones are forgotten.
pub async fn instances_count_those_seen_recently<S: Store>(store: S) {
    let at = |seconds: i64| T0 + Duration::seconds(seconds);
    assert_eq!(store.heartbeat("a", at(0), at(-30)).await.expect("a"), 1);
    assert_eq!(store.heartbeat("b", at(5), at(-25)).await.expect("b"), 2);
    assert_eq!(store.heartbeat("a", at(10), at(-20)).await.expect("a"), 2);
    // b has not been seen for 31 s: gone.
    assert_eq!(store.heartbeat("a", at(36), at(6)).await.expect("a"), 1);
    assert_eq!(store.heartbeat("b", at(37), at(7)).await.expect("b"), 2);
    store.leave("b").await.expect("leave");
    assert_eq!(store.heartbeat("a", at(40), at(10)).await.expect("a"), 1);
    assert!(matches!(
        store.heartbeat("a\0", at(41), at(11)).await,
        Err(StoreError::Invalid(_))
    ));
}
