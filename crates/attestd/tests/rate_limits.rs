//! Rate limits through the server: 429 `rate_limited` with `Retry-After`, per address and per
//! key, probes exempt, and limits split between the instances sharing a database.
//!
//! Every limit here refills at one request per 1,000 s or slower, so nothing refills while a
//! test runs, however slow the machine: the counts are exact.

mod common;

use std::time::Duration;

use attestd::server::limits::Rate;
use attestd::server::{Config, RateLimitSettings};
use common::{ADMIN_TOKEN, APP, Db, Server, assertion_body, device};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_stores!(
    a_flooding_address_gets_429_with_retry_after_while_probes_and_others_pass,
    a_key_is_limited_by_its_own_assertions_and_strangers_cannot_spend_its_budget,
    instances_sharing_a_database_split_the_limits,
    the_admin_and_hosted_routes_are_limited_in_their_own_error_shapes,
);

/// `burst` requests, then nothing for 1,000 s per request.
fn slow(burst: u32) -> Option<Rate> {
    Some(Rate {
        per_second: 0.001,
        burst: f64::from(burst),
    })
}

fn config(db: &Db, limits: RateLimitSettings) -> Config {
    let mut config = common::config(db);
    config.trust_forwarded_for = true;
    config.rate_limits = limits;
    config
}

/// A challenge request from `address`: its status, `Retry-After` and body.
async fn challenge_from(server: &Server, address: &str) -> (StatusCode, Option<u64>, Value) {
    let response = server
        .client
        .post(server.url("/v1/challenges"))
        .header("x-forwarded-for", address)
        .json(&json!({ "appId": APP }))
        .send()
        .await
        .expect("request");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, retry_after, body)
}

#[track_caller]
fn assert_limited(answer: &(StatusCode, Option<u64>, Value), limit: &str) {
    let (status, retry_after, body) = answer;
    assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "rate_limited", "{body}");
    assert_eq!(body["details"]["limit"], limit, "{body}");
    let seconds = retry_after.expect("Retry-After");
    assert!((1..=10_000).contains(&seconds), "{seconds}");
    assert_eq!(body["details"]["retryAfterSeconds"], seconds);
}

async fn a_flooding_address_gets_429_with_retry_after_while_probes_and_others_pass(db: &Db) {
    let limits = RateLimitSettings {
        address: slow(5),
        key: None,
        ..RateLimitSettings::default()
    };
    let server = Server::start_with(config(db, limits)).await;
    let flooder = "203.0.113.9";
    for n in 1..=5 {
        let (status, _, body) = challenge_from(&server, flooder).await;
        assert_eq!(status, StatusCode::CREATED, "request {n}: {body}");
    }
    for _ in 0..3 {
        assert_limited(&challenge_from(&server, flooder).await, "address");
    }
    // Any route counts, the unknown ones too.
    let response = server
        .client
        .get(server.url("/v1/nothing-here"))
        .header("x-forwarded-for", flooder)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);

    // Health, readiness and metrics answer the flooder (the limit counts nothing there).
    for _ in 0..20 {
        for path in ["/healthz", "/readyz", "/metrics"] {
            let response = server
                .client
                .get(server.url(path))
                .header("x-forwarded-for", flooder)
                .send()
                .await
                .expect("request");
            assert_eq!(response.status(), StatusCode::OK, "{path}");
        }
    }
    assert!(
        server
            .metrics()
            .await
            .lines()
            .any(|line| line.starts_with("attestd_rate_limited_total{limit=\"address\"}")),
        "counted in metrics"
    );

    // Another address has its own budget; an IPv6 subscriber's /64 shares one.
    let (status, _, _) = challenge_from(&server, "198.51.100.4").await;
    assert_eq!(status, StatusCode::CREATED);
    for n in 1..=5 {
        let address = format!("2001:db8:7:7::{n}");
        let (status, _, body) = challenge_from(&server, &address).await;
        assert_eq!(status, StatusCode::CREATED, "{address}: {body}");
    }
    assert_limited(
        &challenge_from(&server, "2001:db8:7:7:ffff::1").await,
        "address",
    );
    let (status, _, _) = challenge_from(&server, "2001:db8:7:8::1").await;
    assert_eq!(status, StatusCode::CREATED, "another /64");
}

/// The address limit counts every route but the probes: the admin API (a guessed token costs
/// the guesser) and the hosted-compatible routes, which answer in their own shape.
async fn the_admin_and_hosted_routes_are_limited_in_their_own_error_shapes(db: &Db) {
    let limits = RateLimitSettings {
        address: slow(2),
        key: None,
        ..RateLimitSettings::default()
    };
    let server = Server::start_with(config(db, limits)).await;
    let send = |path: &str, address: &str, token: &str| {
        server
            .client
            .get(server.url(path))
            .header("x-forwarded-for", address)
            .header("x-app-id", APP)
            .bearer_auth(token)
            .send()
    };

    let guesser = "203.0.113.20";
    for n in 1..=2 {
        let response = send("/admin/v1/apps", guesser, "a-guess")
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "guess {n}");
    }
    let response = send("/admin/v1/apps", guesser, ADMIN_TOKEN)
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "rate_limited", "{body}");

    let hosted = "203.0.113.21";
    let challenge = "/api/v1/attestation/challenge";
    for n in 1..=2 {
        let response = send(challenge, hosted, "").await.expect("request");
        assert!(
            response.status().is_success(),
            "challenge {n}: {}",
            response.status()
        );
    }
    let response = send(challenge, hosted, "").await.expect("request");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "invalid_attestation", "{body}");
    assert_eq!(body["details"]["reason"], "rate_limited", "{body}");
    assert_eq!(body["details"]["limit"], "address", "{body}");
}

async fn a_key_is_limited_by_its_own_assertions_and_strangers_cannot_spend_its_budget(db: &Db) {
    let limits = RateLimitSettings {
        address: None,
        key: slow(3),
        ..RateLimitSettings::default()
    };
    let server = Server::start_with(config(db, limits)).await;
    let device = device();
    server.attest(&device).await;

    // A stranger sends garbage in the key's name, many times: refused, never rate limited on
    // the key's account, and the key's budget is untouched.
    let challenge = server.assertion_challenge(&device).await;
    let forged = device
        .assertion(APP, challenge.as_bytes(), 1)
        .corrupt_signature()
        .build()
        .object;
    let forged = assertion_body(&device, &challenge, &forged);
    for _ in 0..20 {
        let (status, error) = server
            .post_from("203.0.113.66", "/v1/assertions", &forged)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
        assert_eq!(error["code"], "signature_invalid");
    }

    // The device's own assertions spend it: three, then 429 for the key.
    for counter in 1..=3 {
        let (status, body) = server.assert_counter(&device, APP, counter).await;
        assert_eq!(status, StatusCode::OK, "{counter}: {body}");
    }
    let challenge = server.assertion_challenge(&device).await;
    let assertion = device.assert(APP, challenge.as_bytes(), 4);
    let response = server
        .client
        .post(server.url("/v1/assertions"))
        .json(&assertion_body(&device, &challenge, &assertion))
        .send()
        .await
        .expect("request");
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let answer = (
        response.status(),
        retry_after,
        response.json::<Value>().await.expect("body"),
    );
    assert_limited(&answer, "key");

    // Another key is not affected.
    let other = common::device();
    server.attest(&other).await;
    let (status, body) = server.assert_counter(&other, APP, 1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Two instances on one database each enforce half the burst; when one stops, the other takes
/// the whole limit back. PostgreSQL only (SQLite is one process at a time).
async fn instances_sharing_a_database_split_the_limits(db: &Db) {
    let limits = RateLimitSettings {
        address: slow(10),
        key: None,
        heartbeat: Duration::from_millis(300),
        ..RateLimitSettings::default()
    };
    let first = Server::start_with(config(db, limits.clone())).await;
    let (status, _, _) = challenge_from(&first, "192.0.2.1").await;
    assert_eq!(status, StatusCode::CREATED);
    if !db.url.starts_with("postgres") {
        return;
    }
    let second = Server::start_with(config(db, limits)).await;

    // The second instance counted two instances before serving: 5 of 10 each.
    let address = "192.0.2.2";
    for n in 1..=5 {
        let (status, _, body) = challenge_from(&second, address).await;
        assert_eq!(status, StatusCode::CREATED, "{n}: {body}");
    }
    assert_limited(&challenge_from(&second, address).await, "address");

    // The first one learns of the second at its next heartbeat.
    let mut fresh = 0;
    let mut polls = 0;
    loop {
        fresh += 1;
        if split(&first, fresh).await {
            break;
        }
        polls += 1;
        assert!(polls < 100, "the first instance never split its limits");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The second leaves: the first takes the whole limit back.
    second.stop().await;
    let mut polls = 0;
    loop {
        fresh += 1;
        if !split(&first, fresh).await {
            break;
        }
        polls += 1;
        assert!(polls < 100, "the first instance kept half its limits");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether `server` limits a fresh address to half the burst of 10: five pass, the sixth?
async fn split(server: &Server, fresh: u32) -> bool {
    let address = format!("192.0.2.{}", 10 + fresh);
    for _ in 0..5 {
        let (status, _, _) = challenge_from(server, &address).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    challenge_from(server, &address).await.0 == StatusCode::TOO_MANY_REQUESTS
}
