//! DeviceCheck through attestd's admin API, against a fake Apple on loopback: validate a device
//! token, query and update the two bits (Apple's plain-text "bit state not found" included), and
//! every failure mapped to a stable JSON error. Each test runs on SQLite, and on PostgreSQL when
//! `DATABASE_URL` is set.

mod apple;
mod common;

use std::sync::Arc;
use std::time::Duration;

use attest_apple::fake::{FakeApple, Scripted};
use common::{Db, Server};
use reqwest::StatusCode;
use serde_json::{Value, json};

use apple::{Apple, admin_post};

on_both_stores!(
    validates_queries_and_updates_the_two_bits,
    apple_failures_become_stable_json_errors,
    requests_are_checked_before_apple_is_called,
    without_credentials_devicecheck_is_unavailable,
    apple_refusing_our_key_is_a_bad_gateway,
);

/// A device token as `DCDevice.generateToken` gives it: base64 with line breaks.
const TOKEN: &str = "ZGV2aWNlLWNoZWNrLXRva2Vu\nLWZyb20tRENEZXZpY2UhIQ==";
const TOKEN_SENT: &str = "ZGV2aWNlLWNoZWNrLXRva2VuLWZyb20tRENEZXZpY2UhIQ==";

fn token_body() -> Value {
    json!({ "deviceToken": TOKEN })
}

#[track_caller]
fn assert_apple_error(
    answer: &(StatusCode, Value, Option<String>),
    status: StatusCode,
    code: &str,
) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
    assert!(answer.1["message"].is_string(), "{}", answer.1);
    assert!(answer.1["details"].is_object(), "{}", answer.1);
}

async fn validates_queries_and_updates_the_two_bits(db: &Db) {
    let apple = Apple::start().await;
    let server = Server::start_with(apple::config(db, &apple)).await;

    let answer = admin_post(&server, "/admin/v1/devicecheck/validate", &token_body()).await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    assert_eq!(
        answer.1,
        json!({ "valid": true, "environment": "production" })
    );

    // Never set: Apple answers 200 with the plain text "Failed to find bit state".
    let answer = admin_post(&server, "/admin/v1/devicecheck/query", &token_body()).await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    assert_eq!(
        answer.1,
        json!({
            "found": false, "bit0": null, "bit1": null, "lastUpdateTime": null,
            "environment": "production"
        })
    );

    let body = json!({ "deviceToken": TOKEN, "bit0": true, "bit1": false });
    let answer = admin_post(&server, "/admin/v1/devicecheck/update", &body).await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    assert_eq!(
        answer.1,
        json!({ "updated": true, "bit0": true, "bit1": false, "environment": "production" })
    );
    assert_eq!(
        apple.fake.bits(TOKEN_SENT),
        Some((true, false)),
        "the token reached Apple without its line break"
    );

    let answer = admin_post(&server, "/admin/v1/devicecheck/query", &token_body()).await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    assert_eq!(answer.1["found"], true);
    assert_eq!(
        (&answer.1["bit0"], &answer.1["bit1"]),
        (&json!(true), &json!(false))
    );
    let month = answer.1["lastUpdateTime"].as_str().expect("a month");
    assert!(month.len() == 7 && month.as_bytes()[4] == b'-', "{month}");

    // Apple's other wording of "never set".
    apple
        .fake
        .push_response(Scripted::ok_text("Bit State Not Found"));
    let answer = admin_post(&server, "/admin/v1/devicecheck/query", &token_body()).await;
    assert_eq!(
        (answer.0, &answer.1["found"]),
        (StatusCode::OK, &json!(false))
    );

    // The development service is a separate base URL.
    let body = json!({ "deviceToken": TOKEN, "environment": "development" });
    let answer = admin_post(&server, "/admin/v1/devicecheck/validate", &body).await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    assert_eq!(answer.1["environment"], "development");

    let requests = apple.fake.requests();
    let paths: Vec<&str> = requests
        .iter()
        .map(|request| request.path.as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "/v1/validate_device_token",
            "/v1/query_two_bits",
            "/v1/update_two_bits",
            "/v1/query_two_bits",
            "/v1/query_two_bits",
            "/v1/validate_device_token",
        ]
    );
    for request in &requests {
        assert!(
            request
                .authorization
                .as_deref()
                .is_some_and(|value| value.starts_with("Bearer ")),
            "DeviceCheck takes a bearer provider token"
        );
    }
    let metrics = apple::metrics_text(&server).await;
    assert!(
        metrics.contains(r#"attestd_devicecheck_requests_total{operation="update",result="ok"}"#),
        "{metrics}"
    );
    server.stop().await;
}

async fn apple_failures_become_stable_json_errors(db: &Db) {
    let apple = Apple::start().await;
    let server = Server::start_with(apple::config(db, &apple)).await;
    let cases: Vec<(Scripted, &str, StatusCode, &str)> = vec![
        (
            Scripted::status(400),
            "/admin/v1/devicecheck/validate",
            StatusCode::UNPROCESSABLE_ENTITY,
            "apple_invalid_device_token",
        ),
        (
            Scripted::Reply {
                status: 400,
                headers: Vec::new(),
                body: b"Missing or incorrectly formatted bits".to_vec(),
            },
            "/admin/v1/devicecheck/update",
            StatusCode::BAD_GATEWAY,
            "apple_invalid_bits",
        ),
        (
            Scripted::status(401),
            "/admin/v1/devicecheck/query",
            StatusCode::BAD_GATEWAY,
            "apple_unauthorized",
        ),
        (
            Scripted::rate_limited(Duration::from_secs(30)),
            "/admin/v1/devicecheck/query",
            StatusCode::SERVICE_UNAVAILABLE,
            "apple_rate_limited",
        ),
        (
            Scripted::status(500),
            "/admin/v1/devicecheck/validate",
            StatusCode::BAD_GATEWAY,
            "apple_server_error",
        ),
        (
            Scripted::status(503),
            "/admin/v1/devicecheck/validate",
            StatusCode::SERVICE_UNAVAILABLE,
            "apple_server_error",
        ),
        (
            Scripted::Drop,
            "/admin/v1/devicecheck/query",
            StatusCode::SERVICE_UNAVAILABLE,
            "apple_unreachable",
        ),
        (
            Scripted::ok_text("<html>maintenance</html>"),
            "/admin/v1/devicecheck/query",
            StatusCode::BAD_GATEWAY,
            "apple_malformed_response",
        ),
    ];
    let update = json!({ "deviceToken": TOKEN, "bit0": false, "bit1": true });
    for (script, path, status, code) in cases {
        apple.fake.push_response(script);
        let body = if path.ends_with("update") {
            update.clone()
        } else {
            token_body()
        };
        let answer = admin_post(&server, path, &body).await;
        assert_apple_error(&answer, status, code);
        assert_eq!(
            answer.1["details"]["upstream"], "devicecheck",
            "{}",
            answer.1
        );
        if code == "apple_rate_limited" {
            assert_eq!(answer.2.as_deref(), Some("30"), "Retry-After is passed on");
            assert_eq!(answer.1["details"]["retryAfterSeconds"], 30);
        }
        if code == "apple_server_error" {
            assert!(answer.1["details"]["appleStatus"].is_u64());
        }
        assert_eq!(
            apple.fake.pending_responses(),
            0,
            "one call per request, no retries"
        );
    }
    assert_eq!(
        apple.fake.bits(TOKEN_SENT),
        None,
        "the failed update changed nothing"
    );
    // Failures alone (below the threshold) do not make the server unready.
    let (status, ready) = server.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert!(ready["apple"].is_object(), "{ready}");
    server.stop().await;
}

async fn requests_are_checked_before_apple_is_called(db: &Db) {
    let apple = Apple::start().await;
    let server = Server::start_with(apple::config(db, &apple)).await;
    for (path, body) in [
        ("/admin/v1/devicecheck/validate", json!({})),
        (
            "/admin/v1/devicecheck/validate",
            json!({ "deviceToken": "" }),
        ),
        (
            "/admin/v1/devicecheck/query",
            json!({ "deviceToken": "not base64!" }),
        ),
        (
            "/admin/v1/devicecheck/query",
            json!({ "deviceToken": TOKEN, "environment": "staging" }),
        ),
        (
            "/admin/v1/devicecheck/query",
            json!({ "deviceToken": TOKEN, "extra": 1 }),
        ),
        (
            "/admin/v1/devicecheck/update",
            json!({ "deviceToken": TOKEN, "bit0": true }),
        ),
        (
            "/admin/v1/devicecheck/update",
            json!({ "deviceToken": TOKEN, "bit0": 1, "bit1": 0 }),
        ),
    ] {
        let answer = admin_post(&server, path, &body).await;
        assert_apple_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
    }
    // The admin token is required.
    let response = server
        .client
        .post(server.url("/admin/v1/devicecheck/validate"))
        .json(&token_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(apple.fake.counts().total, 0, "Apple was never called");
    server.stop().await;
}

async fn without_credentials_devicecheck_is_unavailable(db: &Db) {
    let server = Server::start(db).await;
    let answer = admin_post(&server, "/admin/v1/devicecheck/query", &token_body()).await;
    assert_apple_error(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "apple_not_configured",
    );
    // No Apple detail in the health answers without credentials.
    let (status, ready) = server.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ready.get("apple").is_none(), "{ready}");
    server.stop().await;
}

async fn apple_refusing_our_key_is_a_bad_gateway(db: &Db) {
    let apple = Apple::start().await;
    // A fake that trusts some other key: our tokens fail Apple's check for real.
    let other = attest_apple::fake::generate_credentials(apple::TEAM_ID, apple::KEY_ID)
        .expect("credentials");
    let stranger = FakeApple::builder()
        .credentials(Arc::new(other))
        .start()
        .await
        .expect("fake");
    let mut config = apple::config(db, &apple);
    config.apple.devicecheck_base_url_production = stranger.base_url().to_owned();
    let server = Server::start_with(config).await;
    let answer = admin_post(&server, "/admin/v1/devicecheck/validate", &token_body()).await;
    assert_apple_error(&answer, StatusCode::BAD_GATEWAY, "apple_unauthorized");
    assert_eq!(stranger.counts().unauthorized, 1);
    // The development service (the fake that trusts our key) accepts the same token.
    let body = json!({ "deviceToken": TOKEN, "environment": "development" });
    let answer = admin_post(&server, "/admin/v1/devicecheck/validate", &body).await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    server.stop().await;
}
