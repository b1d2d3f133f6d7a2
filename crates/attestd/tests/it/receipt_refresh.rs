//! Receipt refresh (Apple's fraud risk metric) through the real server and a fake Apple on
//! loopback: the schedule, every answer Apple can give, a restart, two instances sharing one
//! database, and an outage. Each test runs on SQLite, and on PostgreSQL when `DATABASE_URL` is
//! set.

use crate::apple;
use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use attest_apple::fake::Scripted;
use attest_core::apple::receipt::{ReceiptType, parse_receipt};
use attest_store::{RefreshStore, Store};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{APP, Db, Server, assertion_body, device};
use reqwest::StatusCode;
use serde_json::Value;
use time::OffsetDateTime;

use apple::{Apple, admin_get, eventually, state, state_where};

on_both_stores!(
    a_device_attested_over_http_gets_its_receipt_refreshed_on_schedule,
    new_keys_wait_a_day_after_their_attest_receipt,
    every_apple_answer_leads_to_the_documented_state,
    refreshes_continue_across_a_restart_without_duplicates,
    two_instances_refresh_each_due_key_exactly_once,
    an_apple_outage_leaves_verification_working_and_refreshes_resume,
    revoked_keys_leave_the_schedule,
);

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// `at` lies in `[from + low, to + high]`, with a second of slack for the store's whole
/// seconds.
#[track_caller]
fn assert_between(
    what: &str,
    at: Option<OffsetDateTime>,
    (from, low): (OffsetDateTime, Duration),
    (to, high): (OffsetDateTime, Duration),
) {
    let at = at.unwrap_or_else(|| panic!("{what}: no time"));
    let earliest = from + low - SECOND;
    let latest = to + high + SECOND;
    assert!(
        earliest <= at && at <= latest,
        "{what}: {at} not in [{earliest}, {latest}]"
    );
}

fn device_path(key_id: attest_types::KeyId) -> String {
    format!("/admin/v1/devices/{}", URL_SAFE_NO_PAD.encode(key_id))
}

async fn a_device_attested_over_http_gets_its_receipt_refreshed_on_schedule(db: &Db) {
    let apple = Apple::start().await;
    let device = device();
    let key_id = device.key_id();
    apple.fake.set_risk_metric_for_key(key_id, 5);
    let server = Server::start_with(apple::config(db, &apple)).await;
    let store = apple::store(db).await;

    let before = now();
    let attested = server.attest(&device).await;
    assert_eq!(
        attested["deviceIntelligence"]["receiptRiskMetric"],
        Value::Null,
        "an ATTEST receipt has no risk metric"
    );
    let refreshed = state_where(&store, key_id, "the first refresh", |state| {
        state.refreshes == 1 && state.lease_until.is_none()
    })
    .await;
    let after = now();

    assert_eq!(refreshed.last_status.as_deref(), Some("refreshed"));
    assert_eq!(refreshed.attempts, 0);
    assert_eq!(refreshed.risk_metric, Some(5));
    // The next refresh: the new receipt's Not Before (a day after its creation) plus up to the
    // jitter window (60 s in the test configuration); the refresh interval (1 h) is shorter.
    assert_between(
        "Not Before",
        refreshed.receipt_not_before,
        (before, DAY),
        (after, DAY),
    );
    let not_before = refreshed.receipt_not_before.unwrap();
    assert_between(
        "next refresh",
        refreshed.next_refresh_at,
        (not_before, Duration::ZERO),
        (not_before, MINUTE),
    );
    assert_between(
        "Expiration",
        refreshed.receipt_expires_at,
        (before, 90 * DAY),
        (after, 90 * DAY),
    );

    // The key now holds Apple's new receipt and its risk metric.
    let key = store.device_key(key_id).await.unwrap().unwrap();
    assert_eq!(key.receipt_risk_metric, Some(5));
    let receipt = store.device_key_receipt(key_id).await.unwrap().unwrap();
    let stored = parse_receipt(&receipt).expect("stored receipt parses");
    assert_eq!(stored.receipt().receipt_type, ReceiptType::Receipt);
    assert_eq!(stored.receipt().risk_metric, Some(5));
    // What the fake received was the attestation's ATTEST receipt, as base64 text.
    let requests = apple.fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/v1/attestationData");
    let sent = STANDARD.decode(&requests[0].body).expect("base64 body");
    assert_eq!(
        parse_receipt(&sent).unwrap().receipt().receipt_type,
        ReceiptType::Attest
    );
    assert!(
        requests[0]
            .authorization
            .as_deref()
            .is_some_and(|value| value.split('.').count() == 3),
        "a provider token"
    );

    // The metric is in the device intelligence the admin API shows...
    let (status, view) = admin_get(&server, &device_path(key_id)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let shown = view
        .get("receiptRiskMetric")
        .or_else(|| view["deviceIntelligence"].get("receiptRiskMetric"));
    assert_eq!(shown, Some(&Value::from(5)), "{view}");
    let (status, view) =
        admin_get(&server, &format!("{}/receipt-refresh", device_path(key_id))).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["enrolled"], true);
    assert_eq!(view["lastStatus"], "refreshed");
    assert_eq!(view["riskMetric"], 5);
    assert_eq!(view["refreshes"], 1);
    assert!(
        view["nextRefreshAt"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z'))
    );

    // ... and in the claims of a token renewed with an assertion (the attestation's token,
    // issued before the refresh, has none).
    assert_eq!(
        common::claims(attested["token"].as_str().unwrap())["apple_risk_metric"],
        Value::Null
    );
    let challenge = attested["nextChallenge"]["challenge"].as_str().unwrap();
    let assertion = device.assert(APP, challenge.as_bytes(), 1);
    let (status, renewed) = server
        .post(
            "/v1/tokens",
            &assertion_body(&device, challenge, &assertion),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!(
        (&renewed["valid"], &renewed["counter"]),
        (&Value::Bool(true), &Value::from(1))
    );
    let claims = common::claims(renewed["token"].as_str().unwrap());
    assert_eq!(claims["apple_risk_metric"], 5, "{claims}");
    assert_eq!(claims["sub"], attested["deviceId"]);

    // Nothing more until the next refresh is due, a day from now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(apple.fake.counts().attestation_data, 1);
    let metrics = apple::metrics_text(&server).await;
    assert!(
        metrics.contains(r#"attestd_receipt_refresh_total{result="refreshed"}"#),
        "{metrics}"
    );
    server.stop().await;
    store.close().await;
}

async fn new_keys_wait_a_day_after_their_attest_receipt(db: &Db) {
    let apple = Apple::start().await;
    let mut config = apple::config(db, &apple);
    let defaults = attestd::server::apple::RefreshSettings::default();
    config.apple.refresh.first_delay = defaults.first_delay;
    config.apple.refresh.first_jitter = defaults.first_jitter;
    let server = Server::start_with(config).await;
    let store = apple::store(db).await;

    let device = device();
    let before = now();
    server.attest(&device).await;
    let enrolled = state_where(&store, device.key_id(), "enrolment", |_| true).await;
    let after = now();
    // Creation of the ATTEST receipt + 1 day + up to 6 hours of jitter.
    assert_between(
        "receipt creation",
        enrolled.receipt_created_at,
        (before, Duration::ZERO),
        (after, Duration::ZERO),
    );
    let created = enrolled.receipt_created_at.unwrap();
    assert_between(
        "first refresh",
        enrolled.next_refresh_at,
        (created, DAY),
        (created, DAY + 6 * HOUR),
    );
    assert_eq!(enrolled.receipt_not_before, None);
    assert_eq!((enrolled.attempts, enrolled.refreshes), (0, 0));
    assert_eq!(enrolled.last_status, None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(apple.fake.counts().total, 0, "nothing is due yet");
    assert_eq!(
        store.count_due_refreshes(now()).await.unwrap(),
        0,
        "no backlog"
    );
    server.stop().await;
    store.close().await;
}

/// What the scheduler must make of one answer.
struct Case {
    answer: &'static str,
    script: Option<Scripted>,
    /// Answer 404 the real way: the fake no longer knows the key.
    revoke: bool,
    status: &'static str,
    attempts: u32,
    refreshes: u64,
    /// The next refresh lies in [start + low, end + high].
    next: (Duration, Duration),
}

fn cases() -> Vec<Case> {
    // The test configuration: interval 1 h, jitter 60 s; failures back off 1 h × [½, 1];
    // rejections 3 h + up to a quarter; Retry-After is honoured exactly, plus up to a tenth.
    let rejected = (3 * HOUR, 3 * HOUR + 45 * MINUTE);
    let failed = (30 * MINUTE, HOUR);
    let case = |answer, script, status, next| Case {
        answer,
        script,
        revoke: false,
        status,
        attempts: 1,
        refreshes: 0,
        next,
    };
    vec![
        Case {
            refreshes: 1,
            attempts: 0,
            ..case("200", None, "refreshed", (DAY, DAY + MINUTE))
        },
        Case {
            attempts: 0,
            ..case(
                "304",
                Some(Scripted::status(304)),
                "not_modified",
                (HOUR, HOUR + MINUTE),
            )
        },
        case(
            "400 Incorrect Environment",
            Some(Scripted::Reply {
                status: 400,
                headers: Vec::new(),
                body: b"Incorrect Environment".to_vec(),
            }),
            "apple_incorrect_environment",
            rejected,
        ),
        case(
            "400 Bad Payload",
            Some(Scripted::status(400)),
            "apple_bad_payload",
            rejected,
        ),
        case(
            "401",
            Some(Scripted::status(401)),
            "apple_unauthorized",
            rejected,
        ),
        Case {
            revoke: true,
            ..case("404 No Data Found", None, "apple_no_data", rejected)
        },
        case(
            "429 Retry-After: 7200",
            Some(Scripted::rate_limited(2 * HOUR)),
            "apple_rate_limited",
            (2 * HOUR, 2 * HOUR + 12 * MINUTE),
        ),
        case(
            "500",
            Some(Scripted::status(500)),
            "apple_server_error",
            failed,
        ),
        case(
            "503",
            Some(Scripted::status(503)),
            "apple_server_error",
            failed,
        ),
        case(
            "connection dropped",
            Some(Scripted::Drop),
            "apple_unreachable",
            failed,
        ),
        case(
            "200 with a receipt that does not verify",
            Some(Scripted::ok_text("bm90IGEgcmVjZWlwdA==")),
            "apple_invalid_receipt",
            rejected,
        ),
    ]
}

async fn every_apple_answer_leads_to_the_documented_state(db: &Db) {
    let apple = Apple::start().await;
    let server = Server::start_with(apple::config(db, &apple)).await;
    let store = apple::store(db).await;

    for (index, case) in cases().into_iter().enumerate() {
        let device = device();
        let key_id = device.key_id();
        if let Some(script) = case.script.clone() {
            apple.fake.push_response(script);
        }
        if case.revoke {
            apple.fake.revoke_key(key_id);
        }
        let requests_before = apple.fake.counts().attestation_data;
        let start = now();
        server.attest(&device).await;
        let state = state_where(&store, key_id, case.answer, |state| {
            state.last_status.is_some() && state.lease_until.is_none()
        })
        .await;
        let end = now();

        assert_eq!(
            state.last_status.as_deref(),
            Some(case.status),
            "{}",
            case.answer
        );
        assert_eq!(state.attempts, case.attempts, "{}", case.answer);
        assert_eq!(state.refreshes, case.refreshes, "{}", case.answer);
        assert_between(
            case.answer,
            state.next_refresh_at,
            (start, case.next.0),
            (end, case.next.1),
        );
        assert_eq!(
            apple.fake.counts().attestation_data,
            requests_before + 1,
            "{}: one request, no retry storm",
            case.answer
        );
        assert_eq!(apple.fake.pending_responses(), 0, "{}", case.answer);
        let key = store.device_key(key_id).await.unwrap().unwrap();
        if case.refreshes == 0 {
            assert_eq!(key.receipt_risk_metric, None, "{}", case.answer);
            assert_eq!(
                parse_receipt(&store.device_key_receipt(key_id).await.unwrap().unwrap())
                    .unwrap()
                    .receipt()
                    .receipt_type,
                ReceiptType::Attest,
                "{}: the ATTEST receipt is kept",
                case.answer
            );
            assert_eq!(state.risk_metric, None, "{}", case.answer);
        } else {
            assert_eq!(key.receipt_risk_metric, Some(1), "{}", case.answer);
        }
        println!("{index}: {} -> {} ok", case.answer, case.status);
    }

    let metrics = apple::metrics_text(&server).await;
    for result in [
        "refreshed",
        "not_modified",
        "apple_incorrect_environment",
        "apple_bad_payload",
        "apple_unauthorized",
        "apple_no_data",
        "apple_rate_limited",
        "apple_server_error",
        "apple_unreachable",
        "apple_invalid_receipt",
    ] {
        let line = format!(r#"attestd_receipt_refresh_total{{result="{result}"}}"#);
        assert!(metrics.contains(&line), "{line} missing");
    }
    // Apple answered or failed, but attestd itself stayed ready throughout.
    let (status, ready) = server.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    server.stop().await;
    store.close().await;
}

async fn refreshes_continue_across_a_restart_without_duplicates(db: &Db) {
    const DEVICES: usize = 5;
    let apple = Apple::start().await;
    let mut config = apple::config(db, &apple);
    config.apple.refresh.concurrency = 1;
    config.apple.refresh.rate_per_sec = 1.0;
    config.apple.refresh.batch_size = 1;
    let store = apple::store(db).await;

    // The devices are attested while refresh is off, so that all of them are due together.
    let mut attesting = config.clone();
    attesting.apple.refresh_enabled = Some(false);
    let attesting = Server::start_with(attesting).await;
    let devices: Vec<_> = (0..DEVICES).map(|_| device()).collect();
    for device in &devices {
        attesting.attest(device).await;
    }
    attesting.stop().await;
    assert_eq!(apple.fake.counts().total, 0);

    let first = Server::start_with(config.clone()).await;
    eventually("a first refresh", Duration::from_secs(20), || async {
        (apple.fake.counts().attestation_data >= 1).then_some(())
    })
    .await;
    // Mid-schedule: at one exchange per second, most keys are still due.
    first.stop().await;
    let done_before_restart = apple.fake.counts().attestation_data;
    assert!(
        (1..DEVICES as u64).contains(&done_before_restart),
        "{done_before_restart} exchanges before the restart"
    );
    let mut refreshed = 0;
    for device in &devices {
        // Keys attested just before the stop may not be enrolled yet: the next instance will.
        if let Some(state) = state(&store, device.key_id()).await {
            assert_eq!(
                state.lease_until, None,
                "no key stays claimed by a stopped server"
            );
            refreshed += state.refreshes;
        }
    }
    assert_eq!(
        refreshed, done_before_restart,
        "every exchange made before the stop was recorded"
    );

    let second = Server::start_with(config).await;
    for device in &devices {
        state_where(
            &store,
            device.key_id(),
            "refresh after the restart",
            |state| state.refreshes >= 1,
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        apple.fake.counts().attestation_data,
        DEVICES as u64,
        "each key exchanged exactly once across the restart"
    );
    for device in &devices {
        let state = state(&store, device.key_id()).await.unwrap();
        assert_eq!(state.refreshes, 1);
        assert_eq!(state.last_status.as_deref(), Some("refreshed"));
    }
    second.stop().await;
    store.close().await;
}

async fn two_instances_refresh_each_due_key_exactly_once(db: &Db) {
    const DEVICES: usize = 16;
    let apple = Apple::start().await;
    let mut config = apple::config(db, &apple);
    config.apple.refresh.batch_size = 2;
    // Slow answers keep several exchanges in flight on both instances at once.
    for _ in 0..DEVICES {
        apple
            .fake
            .push_response(Scripted::Delay(Duration::from_millis(40)));
    }
    let store = apple::store(db).await;
    let one = Server::start_with(config.clone()).await;
    let two = Server::start_with(config).await;

    let devices: Vec<_> = (0..DEVICES).map(|_| device()).collect();
    for (index, device) in devices.iter().enumerate() {
        let server = if index % 2 == 0 { &one } else { &two };
        server.attest(device).await;
    }
    for device in &devices {
        state_where(&store, device.key_id(), "a refresh", |state| {
            state.refreshes >= 1 && state.lease_until.is_none()
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        apple.fake.counts().attestation_data,
        DEVICES as u64,
        "each due key was exchanged by exactly one instance"
    );
    let mut owners = HashSet::new();
    for device in &devices {
        let state = state(&store, device.key_id()).await.unwrap();
        assert_eq!(state.refreshes, 1);
        owners.insert(state.lease_owner.expect("an owner"));
    }
    println!("keys refreshed by {} instance(s): {owners:?}", owners.len());
    one.stop().await;
    two.stop().await;
    store.close().await;
}

async fn an_apple_outage_leaves_verification_working_and_refreshes_resume(db: &Db) {
    let apple = Apple::start().await;
    let mut config = apple::config(db, &apple);
    config.apple.degraded_after_failures = 2;
    config.apple.refresh.failure_backoff = Duration::from_millis(100);
    config.apple.refresh.failure_backoff_max = Duration::from_millis(300);
    // The outage: every connection is read and closed unanswered, until the test drains them.
    for _ in 0..400 {
        apple.fake.push_response(Scripted::Drop);
    }
    let server = Server::start_with(config).await;
    let store = apple::store(db).await;

    let first = device();
    let attested = server.attest(&first).await;
    let ready = eventually("the degraded state", Duration::from_secs(20), || async {
        let (status, body) = server.get("/readyz").await;
        (body["apple"]["status"] == "degraded").then_some((status, body))
    })
    .await;
    assert_eq!(ready.0, StatusCode::OK, "still ready: {}", ready.1);
    assert_eq!(ready.1["status"], "ready");
    assert!(ready.1["apple"]["since"].is_string(), "{}", ready.1);
    assert!(ready.1["apple"]["consecutiveFailures"].as_u64() >= Some(2));
    assert_eq!(ready.1["apple"]["lastError"], "apple_unreachable");
    let (status, health) = server.get("/healthz").await;
    assert_eq!(
        (status, &health["apple"]["status"]),
        (StatusCode::OK, &Value::from("degraded"))
    );
    assert!(
        apple::metric(&server, "attestd_apple_degraded").await >= Some(1.0),
        "the gauge shows the outage"
    );
    assert!(
        apple::metrics_text(&server)
            .await
            .contains(r#"attestd_receipt_refresh_total{result="apple_unreachable"}"#)
    );

    // Verification is offline: attestations and assertions go on.
    let second = device();
    server.attest(&second).await;
    let challenge = attested["nextChallenge"]["challenge"].as_str().unwrap();
    let assertion = first.assert(APP, challenge.as_bytes(), 1);
    let (status, asserted) = server
        .post(
            "/v1/assertions",
            &assertion_body(&first, challenge, &assertion),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{asserted}");
    let queued = state(&store, first.key_id()).await.unwrap();
    assert_eq!(queued.refreshes, 0);
    assert!(queued.attempts >= 2, "{queued:?}");
    assert_eq!(queued.last_status.as_deref(), Some("apple_unreachable"));
    assert!(queued.next_refresh_at.is_some(), "still scheduled");

    // Apple comes back: use up the remaining dropped connections.
    // One connection per request: the fake closes each one it drops.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for _ in 0..4000 {
        if apple.fake.pending_responses() == 0 {
            break;
        }
        let _ = client
            .post(format!("{}/drain", apple.fake.base_url()))
            .send()
            .await;
    }
    assert_eq!(apple.fake.pending_responses(), 0);

    for device in [&first, &second] {
        let state = state_where(
            &store,
            device.key_id(),
            "refresh after the outage",
            // The receipt is stored before the exchange is recorded (which resets `attempts`
            // and ends the lease): wait for both steps.
            |state| state.refreshes == 1 && state.lease_until.is_none(),
        )
        .await;
        assert_eq!(state.attempts, 0);
        assert_eq!(state.risk_metric, Some(1));
    }
    let ready = eventually("recovery", Duration::from_secs(10), || async {
        let (_, body) = server.get("/readyz").await;
        (body["apple"]["status"] == "ok").then_some(body)
    })
    .await;
    assert_eq!(ready["apple"]["consecutiveFailures"], 0);
    assert_eq!(ready["apple"]["since"], Value::Null);
    server.stop().await;
    store.close().await;
}

async fn revoked_keys_leave_the_schedule(db: &Db) {
    let apple = Apple::start().await;
    let mut config = apple::config(db, &apple);
    config.apple.refresh.first_delay = Duration::from_secs(2);
    let server = Server::start_with(config).await;
    let store = apple::store(db).await;
    let device = device();
    server.attest(&device).await;
    state_where(&store, device.key_id(), "enrolment", |_| true).await;
    let (status, body) = server
        .admin(
            reqwest::Method::POST,
            &format!("{}/revoke", device_path(device.key_id())),
            Some(common::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stopped = state_where(&store, device.key_id(), "the stop", |state| {
        state.last_status.is_some()
    })
    .await;
    assert_eq!(stopped.last_status.as_deref(), Some("key_revoked"));
    assert_eq!(stopped.next_refresh_at, None);
    assert_eq!(apple.fake.counts().total, 0, "Apple was not asked");
    server.stop().await;
    store.close().await;
}
