//! RetryPolicy through the real clients and the fake: attempts, delays, giving up.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use attest_apple::fake::Scripted;
use attest_apple::{Error, ReceiptRefresh, RetryPolicy, TwoBits};
use attest_core::UnixTime;
use common::{DEVICE_TOKEN, RecordingSleeper, device_check_client, setup};

const POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base_delay: Duration::from_millis(100),
    max_delay: Duration::from_secs(10),
};

#[tokio::test]
async fn server_errors_are_retried_with_growing_jittered_backoff() {
    let s = setup().await;
    s.apple.push_response(Scripted::status(503));
    s.apple.push_response(Scripted::status(500));
    let sleeper = RecordingSleeper::default();
    let now = UnixTime::now();
    let outcome = POLICY
        .run_with(&sleeper, || s.client.refresh(&s.receipt, now))
        .await
        .unwrap();
    assert!(matches!(outcome, ReceiptRefresh::Refreshed { .. }));
    assert_eq!(s.apple.counts().attestation_data, 3);
    let delays = sleeper.delays();
    assert_eq!(delays.len(), 2);
    assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&delays[0]));
    assert!((Duration::from_millis(100)..=Duration::from_millis(200)).contains(&delays[1]));
}

#[tokio::test]
async fn rate_limit_waits_exactly_retry_after() {
    let s = setup().await;
    s.apple
        .push_response(Scripted::rate_limited(Duration::from_secs(7)));
    let sleeper = RecordingSleeper::default();
    let now = UnixTime::now();
    POLICY
        .run_with(&sleeper, || s.client.refresh(&s.receipt, now))
        .await
        .unwrap();
    assert_eq!(sleeper.delays(), [Duration::from_secs(7)]);
    assert_eq!(s.apple.counts().attestation_data, 2);
}

#[tokio::test]
async fn retry_after_longer_than_max_delay_is_returned_at_once() {
    let s = setup().await;
    s.apple
        .push_response(Scripted::rate_limited(Duration::from_secs(3600)));
    let sleeper = RecordingSleeper::default();
    let now = UnixTime::now();
    let result = POLICY
        .run_with(&sleeper, || s.client.refresh(&s.receipt, now))
        .await;
    assert_eq!(
        result,
        Err(Error::RateLimited {
            retry_after: Some(Duration::from_secs(3600))
        })
    );
    assert!(sleeper.delays().is_empty());
    assert_eq!(s.apple.counts().attestation_data, 1);
}

#[tokio::test]
async fn gives_up_after_max_attempts_with_the_last_error() {
    let s = setup().await;
    for _ in 0..5 {
        s.apple.push_response(Scripted::status(503));
    }
    let sleeper = RecordingSleeper::default();
    let now = UnixTime::now();
    let result = POLICY
        .run_with(&sleeper, || s.client.refresh(&s.receipt, now))
        .await;
    assert_eq!(result, Err(Error::ServerError { status: 503 }));
    assert_eq!(s.apple.counts().attestation_data, 3);
    assert_eq!(sleeper.delays().len(), 2);
    assert_eq!(s.apple.pending_responses(), 2);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let s = setup().await;
    let now = UnixTime::now();
    for (scripted, expected) in [
        (Scripted::status(400), Error::BadPayload),
        (Scripted::status(401), Error::Unauthorized),
        (Scripted::status(404), Error::NoData),
    ] {
        let before = s.apple.counts().attestation_data;
        s.apple.push_response(scripted);
        let sleeper = RecordingSleeper::default();
        let result = POLICY
            .run_with(&sleeper, || s.client.refresh(&s.receipt, now))
            .await;
        assert_eq!(result, Err(expected));
        assert_eq!(s.apple.counts().attestation_data, before + 1);
        assert!(sleeper.delays().is_empty());
    }
}

#[tokio::test]
async fn dropped_connections_and_timeouts_are_retried() {
    let s = setup().await;
    let impatient = attest_apple::ReceiptClient::builder(
        s.apple.credentials(),
        std::sync::Arc::new(s.apple.receipt_verifier()),
    )
    .base_url(s.apple.base_url())
    .http_options(attest_apple::HttpOptions {
        timeout: Duration::from_millis(300),
        ..common::http_options()
    })
    .build()
    .unwrap();
    s.apple.push_response(Scripted::Drop);
    s.apple
        .push_response(Scripted::Delay(Duration::from_secs(2)));
    let sleeper = RecordingSleeper::default();
    let now = UnixTime::now();
    let outcome = POLICY
        .run_with(&sleeper, || impatient.refresh(&s.receipt, now))
        .await;
    assert!(
        matches!(outcome, Ok(ReceiptRefresh::Refreshed { .. })),
        "{outcome:?}"
    );
    assert_eq!(s.apple.counts().attestation_data, 3);
    assert_eq!(sleeper.delays().len(), 2);
}

#[tokio::test]
async fn refresh_with_retry_uses_tokio_sleep() {
    let s = setup().await;
    s.apple.push_response(Scripted::status(503));
    let quick = RetryPolicy {
        base_delay: Duration::from_millis(1),
        ..POLICY
    };
    let outcome = s
        .client
        .refresh_with_retry(&s.receipt, UnixTime::now(), &quick)
        .await;
    assert!(matches!(outcome, Ok(ReceiptRefresh::Refreshed { .. })));
    assert_eq!(s.apple.counts().attestation_data, 2);
}

#[tokio::test]
async fn device_check_calls_retry_the_same_way() {
    let apple = attest_apple::fake::FakeApple::start().await;
    let client = device_check_client(&apple);
    apple.push_response(Scripted::status(500));
    apple.push_response(Scripted::Drop);
    let sleeper = RecordingSleeper::default();
    let now = UnixTime::now();
    let bits = POLICY
        .run_with(&sleeper, || client.query_two_bits(DEVICE_TOKEN, now))
        .await;
    assert_eq!(bits, Ok(TwoBits::NotFound));
    assert_eq!(apple.counts().query_two_bits, 3);
}

#[tokio::test(start_paused = true)]
async fn backoff_sleeps_on_tokio_time() {
    let attempts = AtomicU32::new(0);
    let policy = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(60),
    };
    let started = tokio::time::Instant::now();
    let result: Result<(), Error> = policy
        .run(|| {
            attempts.fetch_add(1, Ordering::SeqCst);
            async { Err(Error::ServerError { status: 503 }) }
        })
        .await;
    assert_eq!(result, Err(Error::ServerError { status: 503 }));
    assert_eq!(attempts.load(Ordering::SeqCst), 4);
    // Three backoffs of 1, 2 and 4 s, each at least halved by jitter: 3.5 s to 7 s in all.
    let waited = started.elapsed();
    assert!(
        (Duration::from_millis(3500)..=Duration::from_secs(7)).contains(&waited),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_slept_on_tokio_time() {
    let attempts = AtomicU32::new(0);
    let started = tokio::time::Instant::now();
    let result = POLICY
        .run(|| {
            let attempt = attempts.fetch_add(1, Ordering::SeqCst);
            async move {
                if attempt == 0 {
                    Err(Error::RateLimited {
                        retry_after: Some(Duration::from_secs(5)),
                    })
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
    assert_eq!(result, Ok(1));
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}
