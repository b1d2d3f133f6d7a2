//! Webhooks against a local receiver on 127.0.0.1 that checks every signature: the four events,
//! retries with backoff (a receiver that fails twice then succeeds), giving up, the delivery
//! log, and deliveries that survive a server restart (the outbox is in the database).

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attestd::server::config::Secret;
use attestd::server::{Config, WebhookConfig, WebhookEvent, WebhookSettings};
use aws_lc_rs::hmac;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use common::{APP, Db, Server, attestation, attestation_body, device, key_id};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;

on_both_stores!(
    events_are_signed_retried_and_logged,
    pending_deliveries_survive_a_restart,
    a_delivery_gives_up_after_max_attempts,
);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    status: u16,
    signature_ok: bool,
    timestamp: Option<i64>,
    event_header: Option<String>,
    body: Value,
}

/// A webhook receiver: `/{path}` checks the signature with the path's secret (401 if wrong),
/// fails while the path has scripted failures left (500) or is down (503), else answers 204.
#[derive(Debug, Clone, Default)]
struct Receiver {
    secrets: Arc<Mutex<HashMap<String, String>>>,
    failures: Arc<Mutex<HashMap<String, u32>>>,
    down: Arc<Mutex<bool>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(secrets: &[(&str, &str)]) -> (Self, String) {
        let receiver = Self::default();
        for (path, secret) in secrets {
            receiver
                .secrets
                .lock()
                .unwrap()
                .insert((*path).to_owned(), (*secret).to_owned());
        }
        let app = axum::Router::new()
            .route("/{path}", axum::routing::post(receive))
            .with_state(receiver.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, base)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what was received (at most 20 s).
    async fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..200 {
            let received = self.received();
            if done(&received) {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for {what}: {:#?}", self.received());
    }
}

async fn receive(
    State(receiver): State<Receiver>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> AxumStatus {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let secret = receiver
        .secrets
        .lock()
        .unwrap()
        .get(&path)
        .cloned()
        .unwrap_or_default();
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let signature_ok = header("x-attestd-signature")
        .and_then(|value| value.strip_prefix("sha256=").map(str::to_owned))
        .and_then(|hex_text| hex::decode(hex_text).ok())
        .is_some_and(|tag| hmac::verify(&key, &body, &tag).is_ok());
    let status = if !signature_ok {
        AxumStatus::UNAUTHORIZED
    } else if let Some(left) = receiver
        .failures
        .lock()
        .unwrap()
        .get_mut(&path)
        .filter(|left| **left > 0)
    {
        *left -= 1;
        AxumStatus::INTERNAL_SERVER_ERROR
    } else if *receiver.down.lock().unwrap() {
        AxumStatus::SERVICE_UNAVAILABLE
    } else {
        AxumStatus::NO_CONTENT
    };
    receiver.received.lock().unwrap().push(Received {
        path,
        status: status.as_u16(),
        signature_ok,
        timestamp: header("x-attestd-timestamp").and_then(|t| t.parse().ok()),
        event_header: header("x-attestd-event"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    status
}

fn fast_settings() -> WebhookSettings {
    WebhookSettings {
        max_attempts: 5,
        retry_base: Duration::from_secs(1),
        retry_max: Duration::from_secs(2),
        attempt_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(100),
        failure_spike_threshold: 3,
        failure_spike_window: Duration::from_secs(60),
        high_risk_repeat: Duration::from_secs(3600),
    }
}

fn hook(base: &str, path: &str, secret: &str, events: &[WebhookEvent]) -> WebhookConfig {
    WebhookConfig {
        url: format!("{base}/{path}"),
        secret: Secret::new(secret),
        events: events.to_vec(),
    }
}

fn config(db: &Db, hooks: Vec<WebhookConfig>) -> Config {
    let mut config = common::linking_config(db);
    config.webhooks = hooks;
    config.webhook_settings = fast_settings();
    config.apps[0].risk.expected_validation_categories = vec!["02000000".to_owned()];
    config
}

/// Waits (up to 30 s) until the delivery log holds no pending delivery.
async fn settled(server: &Server) {
    for _ in 0..300 {
        let pending = server
            .admin_get("/admin/v1/webhooks/deliveries?status=pending")
            .await;
        if pending["deliveries"] == json!([]) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("deliveries still pending after 30 s");
}

fn delivered<'a>(received: &'a [Received], path: &str, event: &str) -> Vec<&'a Received> {
    received
        .iter()
        .filter(|r| r.path == path && r.status == 204 && r.body["event"] == event)
        .collect()
}

async fn events_are_signed_retried_and_logged(db: &Db) {
    let (receiver, base) =
        Receiver::start(&[("all", "secret-all"), ("flaky", "secret-flaky")]).await;
    receiver
        .failures
        .lock()
        .unwrap()
        .insert("flaky".to_owned(), 2);
    let hooks = vec![
        hook(&base, "all", "secret-all", &WebhookEvent::ALL),
        hook(
            &base,
            "flaky",
            "secret-flaky",
            &[WebhookEvent::KeySuperseded],
        ),
    ];
    let server = Server::start_with(config(db, hooks)).await;

    // device.new, then key.superseded when the same user re-attests (the backend vouching).
    let first = device();
    let second = device();
    let carol = |key| common::linked(APP, key, Some("carol"), None);
    let attested = server.attest_as(&first, APP, carol(&first), |b| b).await.1;
    let device_id = attested["deviceId"].as_str().unwrap().to_owned();
    assert_eq!(
        server
            .attest_as(&second, APP, carol(&second), |b| b)
            .await
            .0,
        StatusCode::CREATED
    );
    // device.high_risk (and device.new): invalid receipt + unexpected category = 65.
    let risky = device();
    let (status, high) = server
        .attest_as(&risky, APP, json!({}), |b| {
            b.ios27().receipt_with(|r| r.corrupt_signature())
        })
        .await;
    assert_eq!(
        (status, high["riskBand"].as_str()),
        (StatusCode::CREATED, Some("high"))
    );
    // attestation.failure_spike: three failed attestations in the window (threshold 3), once.
    for _ in 0..4 {
        let stranger = device();
        let object = attestation(&stranger, APP, "never issued");
        let body = attestation_body(&stranger, APP, "never issued", &object);
        assert_eq!(
            server.post("/v1/attestations", &body).await.0,
            StatusCode::BAD_REQUEST
        );
    }

    let received = receiver
        .wait_for("every event delivered", |r| {
            delivered(r, "all", "device.new").len() == 2
                && delivered(r, "all", "key.superseded").len() == 1
                && delivered(r, "all", "device.high_risk").len() == 1
                && delivered(r, "all", "attestation.failure_spike").len() == 1
                && delivered(r, "flaky", "key.superseded").len() == 1
        })
        .await;
    assert!(received.iter().all(|r| r.signature_ok), "{received:#?}");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for r in &received {
        assert!(r.timestamp.is_some_and(|t| (now - t).abs() < 60), "{r:?}");
        assert_eq!(r.event_header.as_deref(), r.body["event"].as_str());
        assert_eq!(r.body["appId"], APP);
        assert!(r.body["id"].as_str().unwrap().starts_with("evt_"));
        assert!(r.body["createdAt"].is_string());
    }
    let flaky: Vec<&Received> = received.iter().filter(|r| r.path == "flaky").collect();
    assert_eq!(
        flaky.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 204],
        "failed twice, then delivered"
    );
    assert!(
        flaky.windows(2).all(|w| w[0].body == w[1].body),
        "the same signed body each time"
    );

    let superseded = &delivered(&received, "all", "key.superseded")[0].body["data"];
    assert_eq!(superseded["oldKeyId"], key_id(&first));
    assert_eq!(superseded["newKeyId"], key_id(&second));
    assert_eq!(superseded["deviceId"], device_id);
    assert_eq!(superseded["userId"], "carol");
    let high_risk = &delivered(&received, "all", "device.high_risk")[0].body["data"];
    assert_eq!(high_risk["riskScore"], 65);
    assert_eq!(high_risk["keyId"], key_id(&risky));
    assert_eq!(high_risk["riskFactors"][0]["name"], "receipt_invalid");
    let spike = &delivered(&received, "all", "attestation.failure_spike")[0].body["data"];
    assert_eq!(spike["failures"], 3);
    assert_eq!(spike["byCode"]["challenge_invalid"], 3);
    // Events are delivered concurrently: in any order.
    let new_devices = delivered(&received, "all", "device.new");
    assert!(
        new_devices
            .iter()
            .any(|r| r.body["data"]["deviceId"] == device_id.as_str()),
        "{new_devices:#?}"
    );

    // The delivery log, once the server has recorded what the receiver answered (it may
    // see the 204 before the server writes it down).
    settled(&server).await;
    let log = server
        .admin_get("/admin/v1/webhooks/deliveries?event=key.superseded")
        .await;
    let deliveries = log["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2);
    let flaky_log = deliveries
        .iter()
        .find(|d| d["endpoint"] == format!("{base}/flaky"))
        .unwrap();
    assert_eq!(flaky_log["status"], "delivered");
    assert_eq!(flaky_log["attempts"], 3);
    assert_eq!(flaky_log["lastHttpStatus"], 204);
    assert_eq!(flaky_log["payload"]["data"]["newKeyId"], key_id(&second));
    assert_eq!(
        flaky_log["eventId"], deliveries[0]["eventId"],
        "one event, two endpoints"
    );
    let pending = server
        .admin_get("/admin/v1/webhooks/deliveries?status=pending")
        .await;
    assert_eq!(pending["deliveries"], json!([]));
    let answer = server
        .admin(
            reqwest::Method::GET,
            "/admin/v1/webhooks/deliveries?status=lost",
            Some(common::ADMIN_TOKEN),
        )
        .await;
    common::assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
    assert!(
        server
            .metrics()
            .await
            .contains(r#"attestd_webhook_deliveries_total{event="key.superseded",result="retry"}"#)
    );
}

async fn pending_deliveries_survive_a_restart(db: &Db) {
    let (receiver, base) = Receiver::start(&[("down", "secret-down")]).await;
    *receiver.down.lock().unwrap() = true;
    let hooks = vec![hook(
        &base,
        "down",
        "secret-down",
        &[WebhookEvent::DeviceNew],
    )];
    let server = Server::start_with(config(db, hooks.clone())).await;
    server.attest(&device()).await;
    receiver
        .wait_for("a first failed attempt", |r| {
            r.iter().any(|r| r.status == 503)
        })
        .await;
    server.stop().await;

    *receiver.down.lock().unwrap() = false;
    let server = Server::start_with(config(db, hooks)).await;
    let received = receiver
        .wait_for("delivery after the restart", |r| {
            delivered(r, "down", "device.new").len() == 1
        })
        .await;
    let ids: Vec<&Value> = received.iter().map(|r| &r.body["id"]).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one event: {ids:?}");
    settled(&server).await;
    let log = server.admin_get("/admin/v1/webhooks/deliveries").await;
    let delivery = &log["deliveries"][0];
    assert_eq!(delivery["status"], "delivered");
    assert_eq!(delivery["attempts"].as_u64(), Some(received.len() as u64));
    assert!(delivery["attempts"].as_u64().unwrap() >= 2);
}

async fn a_delivery_gives_up_after_max_attempts(db: &Db) {
    let (receiver, base) = Receiver::start(&[("strict", "the-right-secret")]).await;
    let hooks = vec![hook(
        &base,
        "strict",
        "a-wrong-secret",
        &[WebhookEvent::DeviceNew],
    )];
    let mut config = config(db, hooks);
    config.webhook_settings.max_attempts = 2;
    let server = Server::start_with(config).await;
    server.attest(&device()).await;
    receiver
        .wait_for("two refused attempts", |r| r.len() == 2)
        .await;
    let mut delivery = Value::Null;
    for _ in 0..300 {
        let log = server
            .admin_get("/admin/v1/webhooks/deliveries?status=failed")
            .await;
        delivery = log["deliveries"][0].clone();
        if !delivery.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(delivery["attempts"], 2, "{delivery}");
    assert_eq!(delivery["lastHttpStatus"], 401);
    assert_eq!(delivery["lastError"], "HTTP 401");
    assert!(delivery.get("nextAttemptAt").is_none_or(Value::is_null));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), 2, "no third attempt");
    assert!(receiver.received().iter().all(|r| !r.signature_ok));
}
