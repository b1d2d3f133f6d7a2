//! DeviceCheck through attestd's admin API, against a fake Apple on loopback: validate a device
//! token, query and update the two bits (Apple's plain-text "bit state not found" included), and
//! every failure mapped to a stable JSON error. Each test runs on SQLite, and on PostgreSQL when
//! `DATABASE_URL` is set.

use crate::apple;
use crate::common;

use std::sync::Arc;
use std::time::Duration;

use attest_apple::fake::{FakeApple, Scripted};
use common::{Db, Server};
use reqwest::StatusCode;
use serde_json::{Value, json};

use apple::{Apple, admin_get, admin_post};
use common::{APP, factor, factor_names};

on_both_stores!(
    validates_queries_and_updates_the_two_bits,
    apple_failures_become_stable_json_errors,
    requests_are_checked_before_apple_is_called,
    without_credentials_devicecheck_is_a_conflict,
    apple_refusing_our_key_is_a_bad_gateway,
    device_check_is_a_fallback_for_devices_without_app_attest,
    the_fallback_is_opt_in_and_checks_requests_before_apple,
    a_device_check_token_with_an_attestation_is_scored,
    one_device_token_wins_once_across_two_instances,
    a_device_token_spelt_differently_is_the_same_token,
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

/// A setting the operator has not made is no outage: 409 `apple_not_configured` on every admin
/// DeviceCheck route (it was a 503, which schemathesis counted as a server error).
async fn without_credentials_devicecheck_is_a_conflict(db: &Db) {
    let server = Server::start(db).await;
    for route in ["validate", "query", "update"] {
        let body = with(&token_body(), json!({"bit0": true, "bit1": false}));
        let body = if route == "update" {
            body
        } else {
            token_body()
        };
        let answer = admin_post(&server, &format!("/admin/v1/devicecheck/{route}"), &body).await;
        assert_apple_error(&answer, StatusCode::CONFLICT, "apple_not_configured");
    }
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

// ---- the DeviceCheck fallback (`POST /v1/device-checks`) and DeviceCheck as a risk input ----

/// The test config with Apple at the fake, no receipt refresh, and `device_check_fallback` on
/// for [`APP`], which treats bit 1 as "flagged".
fn fallback_config(db: &Db, apple: &Apple) -> attestd::server::config::Config {
    let mut config = apple::config(db, apple);
    // No receipt refreshes: they would take the fake's scripted answers.
    config.apple.refresh_enabled = Some(false);
    for app in &mut config.apps {
        if app.id.as_str() == APP {
            app.device_check_fallback = true;
            app.risk.device_check_flag_bits = vec![1];
        }
    }
    config
}

/// A distinct, well-formed device token.
fn device_token(n: u32) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .encode(format!("device-check-token-{n:04}-from-DCDevice"))
}

fn fallback_body(token: &str) -> Value {
    json!({
        "platform": "ios",
        "format": "apple-devicecheck",
        "appId": APP,
        "deviceToken": token,
        "environment": "development",
        "userId": "user-7",
    })
}

async fn device_check_is_a_fallback_for_devices_without_app_attest(db: &Db) {
    let apple = Apple::start().await;
    let server = Server::start_with(fallback_config(db, &apple)).await;

    // A token Apple accepts, bits never set.
    let first = device_token(1);
    let (status, answer) = server
        .post("/v1/device-checks", &fallback_body(&first))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["valid"], true);
    assert_eq!(answer["assurance"], "device_check");
    assert_eq!(answer["environment"], "development");
    assert_eq!(
        (&answer["bit0"], &answer["bit1"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(answer["decision"]["outcome"], "allow", "{answer}");
    assert!(answer["riskScore"].is_u64(), "{answer}");
    assert!(
        answer.get("token").is_none(),
        "no JWT for DeviceCheck alone"
    );
    assert_eq!(
        answer["link"],
        json!({ "status": "unverified", "ignored": ["userId"] }),
        "a device check links nothing; the userId it named is ignored"
    );

    // Each token works once, across requests (and instances: the spend is in the store).
    let replay = server
        .post("/v1/device-checks", &fallback_body(&first))
        .await;
    common::assert_error(&replay, StatusCode::CONFLICT, "device_token_reused");
    assert_eq!(factor_names(&replay.1["details"]), ["verification_failed"]);

    // The team flagged a device earlier (bit 1): the factor triggers.
    let flagged = device_token(2);
    let update = json!({
        "deviceToken": flagged, "bit0": false, "bit1": true, "environment": "development"
    });
    let answer = admin_post(&server, "/admin/v1/devicecheck/update", &update).await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    let (status, answer) = server
        .post("/v1/device-checks", &fallback_body(&flagged))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (&answer["bit0"], &answer["bit1"]),
        (&json!(false), &json!(true))
    );
    let flag = factor(&answer, "device_check_flagged").expect("flag factor");
    assert_eq!(flag["points"], 30);
    assert_eq!(flag["evidence"], "DeviceCheck bit1 set for this device");

    // A token Apple refuses: 422 with the explanation, and logged.
    apple.fake.push_response(common_scripted_invalid());
    let refused = server
        .post("/v1/device-checks", &fallback_body(&device_token(3)))
        .await;
    common::assert_error(
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "device_token_invalid",
    );
    let names = factor_names(&refused.1["details"]);
    assert!(
        names.contains(&"device_check_invalid".to_owned()),
        "{names:?}"
    );
    assert_eq!(refused.1["details"]["decision"]["outcome"], "deny");

    // Apple unreachable: 503 with Apple's code, no decision (nothing learnt), token spent.
    apple.fake.push_response(Scripted::Drop);
    let dropped = server
        .post("/v1/device-checks", &fallback_body(&device_token(4)))
        .await;
    common::assert_error(
        &dropped,
        StatusCode::SERVICE_UNAVAILABLE,
        "apple_unreachable",
    );
    let again = server
        .post("/v1/device-checks", &fallback_body(&device_token(4)))
        .await;
    common::assert_error(&again, StatusCode::CONFLICT, "device_token_reused");

    // Every verdict is in the decision log with its kind.
    let (status, log) = admin_get(&server, "/admin/v1/decisions?limit=50").await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let logged: Vec<(&str, &str)> = log["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .filter(|d| d["kind"] == "device_check")
        .map(|d| (d["code"].as_str().unwrap(), d["route"].as_str().unwrap()))
        .collect();
    assert_eq!(
        logged,
        [
            ("device_token_reused", "/v1/device-checks"),
            ("device_token_invalid", "/v1/device-checks"),
            ("ok", "/v1/device-checks"),
            ("device_token_reused", "/v1/device-checks"),
            ("ok", "/v1/device-checks"),
        ],
        "newest first; the Apple outage is not a decision"
    );
    let metrics = apple::metrics_text(&server).await;
    assert!(
        metrics.contains(r#"attestd_verifications_total{kind="device_check",result="ok"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"attestd_devicecheck_requests_total{operation="signal",result="apple_unreachable"}"#
        ),
        "{metrics}"
    );
    server.stop().await;
}

/// Apple's "bad device token" answer.
fn common_scripted_invalid() -> Scripted {
    Scripted::status(400)
}

async fn the_fallback_is_opt_in_and_checks_requests_before_apple(db: &Db) {
    let apple = Apple::start().await;
    let server = Server::start_with(fallback_config(db, &apple)).await;
    let token = device_token(9);
    let other_app = with(
        &fallback_body(&token),
        json!({ "appId": common::OTHER_APP }),
    );
    let answer = server.post("/v1/device-checks", &other_app).await;
    common::assert_error(&answer, StatusCode::FORBIDDEN, "device_check_disabled");
    for (body, status, code) in [
        (
            with(
                &fallback_body(&token),
                json!({ "format": "apple-app-attest" }),
            ),
            StatusCode::BAD_REQUEST,
            "unsupported_platform",
        ),
        (
            with(&fallback_body(&token), json!({ "platform": "android" })),
            StatusCode::BAD_REQUEST,
            "unsupported_platform",
        ),
        (
            with(
                &fallback_body(&token),
                json!({ "deviceToken": "not base64!" }),
            ),
            StatusCode::BAD_REQUEST,
            "malformed_request",
        ),
        (
            with(&fallback_body(&token), json!({ "deviceToken": 5 })),
            StatusCode::BAD_REQUEST,
            "malformed_request",
        ),
        (
            with(&fallback_body(&token), json!({ "environment": "staging" })),
            StatusCode::BAD_REQUEST,
            "malformed_request",
        ),
        (
            with(&fallback_body(&token), json!({ "appId": "TEAM.unknown" })),
            StatusCode::NOT_FOUND,
            "unknown_app",
        ),
    ] {
        let answer = server.post("/v1/device-checks", &body).await;
        common::assert_error(&answer, status, code);
    }
    assert_eq!(apple.fake.counts().total, 0, "Apple was never called");
    // The refusals above spent nothing: the token still works.
    let (status, answer) = server
        .post("/v1/device-checks", &fallback_body(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    server.stop().await;

    // Without Apple credentials the fallback cannot work: 409 (a setting not made, not an
    // outage), not an acceptance.
    let mut config = common::config(db);
    config.apps[0].device_check_fallback = true;
    let server = Server::start_with(config).await;
    let answer = server
        .post("/v1/device-checks", &fallback_body(&device_token(10)))
        .await;
    common::assert_error(&answer, StatusCode::CONFLICT, "apple_not_configured");
    server.stop().await;
}

fn with(body: &Value, extra: Value) -> Value {
    common::with_fields(body.clone(), extra)
}

async fn a_device_check_token_with_an_attestation_is_scored(db: &Db) {
    let apple = Apple::start().await;
    let server = Server::start_with(fallback_config(db, &apple)).await;
    let attest = |device_token: Option<String>| {
        let server = &server;
        async move {
            let device = common::device();
            let challenge = server.challenge(APP).await;
            let attestation = common::attestation(&device, APP, &challenge);
            let mut body = common::attestation_body(&device, APP, &challenge, &attestation);
            if let Some(token) = device_token {
                body = common::with_fields(body, json!({ "deviceCheckToken": token }));
            }
            server.post("/v1/attestations", &body).await
        }
    };

    // Valid token, bits never set: no factor, and the answer says what Apple said.
    let (status, answer) = attest(Some(device_token(20))).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        answer["deviceIntelligence"]["deviceCheck"],
        json!({ "status": "valid", "bit0": null, "bit1": null })
    );
    assert!(
        factor(&answer, "device_check_invalid").is_none(),
        "{answer}"
    );

    // Apple refuses the token: scored, the key is still registered (monitor-worthy, 40 points).
    apple.fake.push_response(Scripted::status(400));
    let (status, answer) = attest(Some(device_token(21))).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        answer["deviceIntelligence"]["deviceCheck"]["status"],
        "invalid"
    );
    assert_eq!(
        factor(&answer, "device_check_invalid").expect("factor")["points"],
        40
    );

    // Apple down: the attestation goes through without the signal, and says why.
    apple.fake.push_response(Scripted::status(503));
    let (status, answer) = attest(Some(device_token(22))).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        answer["deviceIntelligence"]["deviceCheck"],
        json!({ "status": "unavailable", "bit0": null, "bit1": null, "reason": "apple_server_error" })
    );
    assert!(
        factor(&answer, "device_check_invalid").is_none(),
        "{answer}"
    );

    // Apple slower than the signal timeout: same, within the timeout.
    apple
        .fake
        .push_response(Scripted::Delay(Duration::from_secs(5)));
    let started = std::time::Instant::now();
    let (status, answer) = attest(Some(device_token(23))).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        answer["deviceIntelligence"]["deviceCheck"]["status"],
        "unavailable"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // No token: no DeviceCheck call, no field.
    let calls = apple.fake.counts().query_two_bits;
    let (status, answer) = attest(None).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert!(
        answer["deviceIntelligence"].get("deviceCheck").is_none(),
        "{answer}"
    );
    assert_eq!(apple.fake.counts().query_two_bits, calls);

    // A malformed token is the client's mistake, refused before anything is verified.
    let (status, answer) = attest(Some("not base64!".to_owned())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["details"]["field"], "deviceCheckToken");
    server.stop().await;
}

/// The same DeviceCheck token sent 20 times at once to two instances sharing one database:
/// exactly one request is accepted, every other one is `device_token_reused`.
async fn one_device_token_wins_once_across_two_instances(db: &Db) {
    let apple = Apple::start().await;
    let servers = [
        Arc::new(Server::start_with(fallback_config(db, &apple)).await),
        Arc::new(Server::start_with(fallback_config(db, &apple)).await),
    ];
    let body = fallback_body(&device_token(30));
    let mut requests = tokio::task::JoinSet::new();
    for attempt in 0..20 {
        let server = Arc::clone(&servers[attempt % 2]);
        let body = body.clone();
        requests.spawn(async move { server.post("/v1/device-checks", &body).await });
    }
    let answers = requests.join_all().await;
    let accepted = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    assert_eq!(accepted, 1, "{answers:?}");
    for answer in answers
        .iter()
        .filter(|(status, _)| *status != StatusCode::OK)
    {
        common::assert_error(answer, StatusCode::CONFLICT, "device_token_reused");
    }
    assert_eq!(
        apple.fake.counts().query_two_bits,
        1,
        "only the request that spent the token asked Apple"
    );
}

/// The replay guard remembers the token, not its spelling: the same bytes in the URL-safe
/// alphabet, without padding or broken by line breaks are `device_token_reused`, and Apple is
/// sent one canonical (standard, padded) spelling whatever the client wrote.
async fn a_device_token_spelt_differently_is_the_same_token(db: &Db) {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    let apple = Apple::start().await;
    let server = Server::start_with(fallback_config(db, &apple)).await;
    // Bytes whose base64 has `+`, `/` and padding.
    let bytes = b"\xfb\xff\xbfdevice-check-token-respelt";
    let standard = STANDARD.encode(bytes);
    assert!(
        standard.starts_with("+/+/") && standard.ends_with('='),
        "{standard}"
    );
    let wrapped: String = standard
        .as_bytes()
        .chunks(8)
        .map(|chunk| std::str::from_utf8(chunk).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n");

    let (status, answer) = server
        .post(
            "/v1/device-checks",
            &fallback_body(&URL_SAFE_NO_PAD.encode(bytes)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    for spelling in [standard.clone(), URL_SAFE.encode(bytes), wrapped] {
        let replay = server
            .post("/v1/device-checks", &fallback_body(&spelling))
            .await;
        common::assert_error(&replay, StatusCode::CONFLICT, "device_token_reused");
    }
    let other = STANDARD.encode(b"\xfb\xff\xbfanother-device-check-token");
    let (status, answer) = server
        .post("/v1/device-checks", &fallback_body(&other))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // A token spent by an earlier version, which remembered SHA-256 of the text, stays spent.
    let earlier = STANDARD.encode(b"spent-before-the-upgrade");
    let digest = {
        let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        context.update(b"attestd devicecheck token v1\0");
        context.update(earlier.as_bytes());
        context.finish()
    };
    let store = attest_store::AnyStore::connect(&db.url)
        .await
        .expect("store");
    let expires_at = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let spent = attest_store::Store::spend_challenge(
        &store,
        attest_store::SpentChallenge {
            nonce: digest.as_ref(),
            expires_at: attest_store::whole_seconds(expires_at),
        },
    )
    .await
    .expect("spend");
    assert!(spent);
    store.close().await;
    let replay = server
        .post("/v1/device-checks", &fallback_body(&earlier))
        .await;
    common::assert_error(&replay, StatusCode::CONFLICT, "device_token_reused");
    server.stop().await;
}
