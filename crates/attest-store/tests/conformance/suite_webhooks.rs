//! Contracts of the webhook outbox.

use std::sync::Arc;

use attest_store::{
    DeliveryAttempt, DeliveryFilter, DeliveryStatus, NewWebhookDelivery, NextAttempt, Store,
    StoreError,
};
use time::{Duration, OffsetDateTime};
use tokio::sync::Barrier;

use crate::suite::T0;

const RACERS: usize = 20;

fn delivery(event_id: &str, endpoint: &str, created_at: OffsetDateTime) -> NewWebhookDelivery {
    NewWebhookDelivery {
        event_id: event_id.to_owned(),
        event: "device.new".to_owned(),
        endpoint: endpoint.to_owned(),
        payload: format!(r#"{{"id":"{event_id}"}}"#),
        created_at,
    }
}

fn attempt(at: OffsetDateTime, next: NextAttempt) -> DeliveryAttempt {
    DeliveryAttempt {
        at,
        http_status: Some(500),
        error: Some("HTTP 500".to_owned()),
        next,
    }
}

pub async fn webhook_deliveries_are_enqueued_once_per_event_and_endpoint<S: Store>(store: S) {
    let first = store
        .enqueue_webhook(&delivery("evt-1", "http://a.example/hook", T0))
        .await
        .expect("enqueue");
    let second = store
        .enqueue_webhook(&delivery("evt-1", "http://b.example/hook", T0))
        .await
        .expect("same event, other endpoint");
    assert!(second > first);
    let error = store
        .enqueue_webhook(&delivery("evt-1", "http://a.example/hook", T0))
        .await
        .expect_err("duplicate");
    assert!(matches!(error, StoreError::Conflict), "{error:?}");

    let listed = store
        .list_webhook_deliveries(&DeliveryFilter::default(), 10)
        .await
        .expect("list");
    assert_eq!(listed.len(), 2);
    let queued = &listed[1];
    assert_eq!(queued.id, first);
    assert_eq!(queued.status, DeliveryStatus::Pending);
    assert_eq!(queued.attempts, 0);
    assert_eq!(queued.next_attempt_at, T0);
    assert_eq!(queued.created_at, T0);
    assert_eq!(queued.payload, r#"{"id":"evt-1"}"#);
    assert_eq!(
        (
            queued.last_attempt_at,
            queued.last_http_status,
            queued.delivered_at
        ),
        (None, None, None)
    );
}

pub async fn a_due_webhook_is_claimed_by_one_caller_until_its_lease_lapses<S>(store: S)
where
    S: Store + Clone + 'static,
{
    let mut ids = Vec::new();
    for index in 0..5 {
        let event = format!("evt-{index}");
        ids.push(
            store
                .enqueue_webhook(&delivery(
                    &event,
                    "http://a.example/hook",
                    T0 + Duration::seconds(index),
                ))
                .await
                .expect("enqueue"),
        );
    }
    // Not due yet at T0 + 2 s: events 3 and 4.
    let now = T0 + Duration::seconds(2);
    let lease = now + Duration::minutes(1);
    let start = Arc::new(Barrier::new(RACERS));
    let mut racers = Vec::new();
    for _ in 0..RACERS {
        let (store, start) = (store.clone(), Arc::clone(&start));
        racers.push(tokio::spawn(async move {
            start.wait().await;
            store.claim_due_webhooks(now, lease, 10).await
        }));
    }
    let mut claimed = Vec::new();
    for racer in racers {
        claimed.extend(racer.await.expect("task").expect("claim"));
    }
    let mut claimed_ids: Vec<i64> = claimed.iter().map(|d| d.id).collect();
    claimed_ids.sort_unstable();
    assert_eq!(
        claimed_ids,
        ids[..3],
        "each due delivery claimed exactly once"
    );
    assert!(claimed.iter().all(|d| d.next_attempt_at == lease));

    assert_eq!(
        store
            .claim_due_webhooks(now, lease, 10)
            .await
            .expect("claim")
            .len(),
        0,
        "claimed deliveries wait for their lease"
    );
    let limited = store
        .claim_due_webhooks(T0 + Duration::seconds(10), lease, 1)
        .await
        .expect("claim");
    assert_eq!(limited.iter().map(|d| d.id).collect::<Vec<_>>(), [ids[3]]);
    let after_lease = store
        .claim_due_webhooks(lease, lease + Duration::minutes(1), 10)
        .await
        .expect("claim after the lease");
    assert_eq!(
        after_lease.iter().map(|d| d.id).collect::<Vec<_>>(),
        ids,
        "oldest first; lapsed claims are claimable again"
    );
}

pub async fn webhook_attempts_retry_deliver_or_give_up_and_finished_deliveries_stay<S: Store>(
    store: S,
) {
    let retried = store
        .enqueue_webhook(&delivery("evt-r", "http://a.example/hook", T0))
        .await
        .expect("enqueue");
    let failed = store
        .enqueue_webhook(&delivery("evt-f", "http://a.example/hook", T0))
        .await
        .expect("enqueue");
    let t1 = T0 + Duration::seconds(1);
    let retry_at = T0 + Duration::seconds(30);
    store
        .record_webhook_attempt(retried, &attempt(t1, NextAttempt::RetryAt(retry_at)))
        .await
        .expect("retry");
    let by_id = |id: i64| {
        let store = &store;
        async move {
            store
                .list_webhook_deliveries(&DeliveryFilter::default(), 10)
                .await
                .expect("list")
                .into_iter()
                .find(|d| d.id == id)
                .expect("listed")
        }
    };
    let pending = by_id(retried).await;
    assert_eq!(pending.status, DeliveryStatus::Pending);
    assert_eq!(pending.attempts, 1);
    assert_eq!(pending.next_attempt_at, retry_at);
    assert_eq!(pending.last_attempt_at, Some(t1));
    assert_eq!(pending.last_http_status, Some(500));
    assert_eq!(pending.last_error.as_deref(), Some("HTTP 500"));

    let t2 = retry_at + Duration::seconds(1);
    let success = DeliveryAttempt {
        at: t2,
        http_status: Some(204),
        error: None,
        next: NextAttempt::Delivered,
    };
    store
        .record_webhook_attempt(retried, &success)
        .await
        .expect("deliver");
    let delivered = by_id(retried).await;
    assert_eq!(delivered.status, DeliveryStatus::Delivered);
    assert_eq!(delivered.attempts, 2);
    assert_eq!(delivered.delivered_at, Some(t2));
    assert_eq!(delivered.last_http_status, Some(204));
    assert_eq!(delivered.last_error, None);

    let transport = DeliveryAttempt {
        at: t1,
        http_status: None,
        error: Some("connection refused".into()),
        next: NextAttempt::GiveUp,
    };
    store
        .record_webhook_attempt(failed, &transport)
        .await
        .expect("give up");
    let given_up = by_id(failed).await;
    assert_eq!(given_up.status, DeliveryStatus::Failed);
    assert_eq!((given_up.attempts, given_up.last_http_status), (1, None));

    // Finished deliveries are never claimed or changed again.
    for id in [retried, failed, 999_999] {
        let again = store
            .record_webhook_attempt(id, &attempt(t2, NextAttempt::RetryAt(t2)))
            .await;
        assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
    }
    assert!(
        store
            .claim_due_webhooks(T0 + Duration::days(1), T0 + Duration::days(2), 10)
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(by_id(retried).await, delivered);

    // An HTTP status outside 100-599 is refused.
    let other = store
        .enqueue_webhook(&delivery("evt-x", "http://a.example/hook", T0))
        .await
        .expect("enqueue");
    let bogus = DeliveryAttempt {
        http_status: Some(42),
        ..attempt(t1, NextAttempt::GiveUp)
    };
    let error = store
        .record_webhook_attempt(other, &bogus)
        .await
        .expect_err("status 42");
    assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
}

pub async fn webhook_deliveries_list_newest_first_with_filters<S: Store>(store: S) {
    let mut ids = Vec::new();
    for (index, event) in ["device.new", "key.superseded", "device.new"]
        .into_iter()
        .enumerate()
    {
        let mut new = delivery(&format!("evt-{index}"), "http://a.example/hook", T0);
        new.event = event.to_owned();
        ids.push(store.enqueue_webhook(&new).await.expect("enqueue"));
    }
    store
        .record_webhook_attempt(
            ids[0],
            &DeliveryAttempt {
                at: T0,
                http_status: Some(200),
                error: None,
                next: NextAttempt::Delivered,
            },
        )
        .await
        .expect("deliver");
    let list = |filter: DeliveryFilter, limit: u32| {
        let store = &store;
        async move {
            store
                .list_webhook_deliveries(&filter, limit)
                .await
                .expect("list")
                .into_iter()
                .map(|d| d.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(DeliveryFilter::default(), 10).await,
        [ids[2], ids[1], ids[0]]
    );
    assert_eq!(
        list(
            DeliveryFilter {
                status: Some(DeliveryStatus::Pending),
                ..Default::default()
            },
            10
        )
        .await,
        [ids[2], ids[1]]
    );
    assert_eq!(
        list(
            DeliveryFilter {
                event: Some("device.new".into()),
                ..Default::default()
            },
            10
        )
        .await,
        [ids[2], ids[0]]
    );
    let first_page = list(DeliveryFilter::default(), 1).await;
    assert_eq!(
        list(
            DeliveryFilter {
                before_id: first_page.last().copied(),
                ..Default::default()
            },
            10
        )
        .await,
        [ids[1], ids[0]]
    );
}
