//! Google's Android status list through the real server: fetched and stored, kept across a
//! restart without the network, never replaced by an unparsable list or a failure, fetched
//! conditionally, and shown in `/metrics` and the admin API. The list comes from a local fake
//! (tests/common/fake_status.rs), never from Google.

use std::time::{Duration, Instant};

use attest_store::{AnyStore, Store};
use serde_json::Value;

use crate::common::fake_status::{FakeStatus, Mode, google_test_list};
use crate::common::{Db, Server, config};

const VIEW: &str = "/admin/v1/android/revocation-list";

on_both_stores!(
    a_fetched_list_is_stored_and_survives_a_restart_without_the_network,
    an_unparsable_list_is_never_stored_and_a_failure_keeps_the_old_list,
    the_etag_is_sent_and_a_304_confirms_the_list,
    a_slow_list_does_not_hold_up_startup,
);

/// A server fetching from `url` every `interval`, retrying after a second.
fn fetching(db: &Db, url: &str, interval: Duration) -> attestd::server::Config {
    let mut config = config(db);
    let list = &mut config.android.revocation_list;
    list.enabled = true;
    list.url = url.to_owned();
    list.interval = interval;
    list.jitter = Duration::ZERO;
    list.request_timeout = Duration::from_secs(2);
    list.failure_backoff = Duration::from_secs(1);
    list.failure_backoff_max = Duration::from_secs(1);
    config
}

/// Polls the admin view until `done` holds (10 s at most).
async fn view_until(server: &Server, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let view = server.admin_get(VIEW).await;
        if done(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "waiting for {what}: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stored_body(db: &Db) -> Option<Vec<u8>> {
    let store = AnyStore::connect(&db.url).await.expect("store");
    let state = store.revocation_list().await.expect("load");
    store.close().await;
    state.list.map(|list| list.body)
}

fn status_is(code: &'static str) -> impl Fn(&Value) -> bool {
    move |view| view["lastAttemptStatus"] == code
}

async fn a_fetched_list_is_stored_and_survives_a_restart_without_the_network(db: &Db) {
    let fake = FakeStatus::serving_list("\"v1\"").await;
    let server = Server::start_with(fetching(db, &fake.url, Duration::from_secs(3600))).await;
    // The list is held a moment before its attempt is recorded: wait for both.
    let view = view_until(&server, "the first list", |view| {
        view["entries"] == 5 && view["lastAttemptStatus"] == "fetched"
    })
    .await;
    assert_eq!(view["enabled"], true);
    assert_eq!(view["sourceUrl"], fake.url.as_str());
    assert_eq!(view["lastAttemptStatus"], "fetched");
    assert_eq!(view["etag"], "\"v1\"");
    assert_eq!(view["stale"], false);
    assert_eq!(view["maxAgeSeconds"], 86_400);
    assert!(view["ageSeconds"].as_u64().expect("age") < 60, "{view}");
    let fetched_at = view["fetchedAt"].clone();
    assert_eq!(stored_body(db).await, Some(google_test_list()));

    let metrics = server.metrics().await;
    let age = metrics
        .lines()
        .find_map(|line| line.strip_prefix("attestd_android_revocation_list_age_seconds "))
        .unwrap_or_else(|| panic!("age gauge in /metrics:\n{metrics}"));
    assert!(age.parse::<f64>().is_ok(), "{age}");
    assert!(metrics.contains("attestd_android_revocation_list_stale "));
    assert!(metrics.contains("attestd_android_revocation_list_fetches_total{result=\"fetched\"}"));
    server.stop().await;

    // The network is gone: the restarted server holds the stored list before it serves, and
    // a failed fetch changes nothing.
    let gone = fake.url.clone();
    drop(fake);
    let server = Server::start_with(fetching(db, &gone, Duration::from_secs(1))).await;
    let view = server.admin_get(VIEW).await;
    assert_eq!(view["entries"], 5, "{view}");
    assert_eq!(view["fetchedAt"], fetched_at);
    let view = view_until(&server, "a failed fetch", |view| {
        view["lastAttemptStatus"] == "connect" || view["lastAttemptStatus"] == "transport"
    })
    .await;
    assert_eq!(view["entries"], 5);
    assert_eq!(view["fetchedAt"], fetched_at);
    assert_eq!(stored_body(db).await, Some(google_test_list()));
    server.stop().await;
}

async fn an_unparsable_list_is_never_stored_and_a_failure_keeps_the_old_list(db: &Db) {
    let fake = FakeStatus::start(Mode::Garbage).await;
    let server = Server::start_with(fetching(db, &fake.url, Duration::from_secs(1))).await;
    let view = view_until(&server, "the garbage", status_is("unparsable")).await;
    assert_eq!(view["entries"], Value::Null);
    assert_eq!(view["fetchedAt"], Value::Null);
    assert_eq!(
        view["stale"], true,
        "no list: Android attestations fail closed"
    );
    assert_eq!(stored_body(db).await, None);

    fake.set(Mode::List {
        body: google_test_list(),
        etag: None,
    });
    view_until(&server, "a list", |view| view["entries"] == 5).await;

    for (mode, code) in [(Mode::Garbage, "unparsable"), (Mode::Error, "http_500")] {
        fake.set(mode);
        let view = view_until(&server, code, status_is(code)).await;
        assert_eq!(view["entries"], 5, "{code}: the old list stays");
        assert_eq!(stored_body(db).await, Some(google_test_list()), "{code}");
    }
    server.stop().await;
}

async fn the_etag_is_sent_and_a_304_confirms_the_list(db: &Db) {
    let fake = FakeStatus::serving_list("\"v7\"").await;
    let server = Server::start_with(fetching(db, &fake.url, Duration::from_secs(1))).await;
    let first = view_until(&server, "the first list", |view| view["entries"] == 5).await;
    assert_eq!(fake.requests().first(), Some(&None), "no ETag to send yet");
    let view = view_until(&server, "a 304", |view| {
        view["lastAttemptStatus"] == "not_modified" && view["fetchedAt"] != first["fetchedAt"]
    })
    .await;
    assert_eq!(view["entries"], 5);
    assert_eq!(view["etag"], "\"v7\"");
    assert!(
        fake.requests()
            .iter()
            .any(|sent| sent.as_deref() == Some("\"v7\"")),
        "{:?}",
        fake.requests()
    );
    // The 304 reset the stored list's age, too.
    let store = AnyStore::connect(&db.url).await.expect("store");
    let stored = store
        .revocation_list()
        .await
        .expect("load")
        .list
        .expect("a list");
    store.close().await;
    assert_eq!(stored.etag.as_deref(), Some("\"v7\""));
    assert_eq!(stored.body, google_test_list());
    assert_ne!(
        Value::String(attestd_time(stored.fetched_at)),
        first["fetchedAt"]
    );
    server.stop().await;
}

async fn a_slow_list_does_not_hold_up_startup(db: &Db) {
    let fake = FakeStatus::start(Mode::Slow(Duration::from_secs(30))).await;
    let mut config = fetching(db, &fake.url, Duration::from_secs(3600));
    config.android.revocation_list.request_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let server = Server::start_with(config).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let view = view_until(&server, "the timeout", status_is("timeout")).await;
    assert_eq!(view["entries"], Value::Null);
    assert_eq!(stored_body(db).await, None);
    server.stop().await;
}

fn attestd_time(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339")
}
