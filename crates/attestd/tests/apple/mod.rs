//! Shared by `receipt_refresh.rs` and `device_check.rs`: a fake Apple on loopback trusting a
//! freshly generated DeviceCheck key (written as a `.p8` file, as Apple hands them out), and a
//! test-server configuration pointing every Apple URL at it with a fast schedule.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use attest_apple::fake::FakeApple;
use attest_apple::{AppleCredentials, RetryPolicy};
use attest_store::{AnyStore, ReceiptRefreshState, RefreshStore};
use attestd::server::Config;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::Instant;

use crate::common::{self, Db, Server};

/// Team and key id of the generated DeviceCheck key.
pub const TEAM_ID: &str = "TESTTEAM01";
pub const KEY_ID: &str = "TESTKEY001";

/// A running fake Apple and the `.p8` file of the key it trusts.
#[derive(Debug)]
pub struct Apple {
    pub fake: FakeApple,
    pub key_path: PathBuf,
    _dir: tempfile::TempDir,
}

/// A new P-256 key as a PKCS#8 PEM `.p8` file.
pub fn p8_pem() -> String {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .expect("generate key");
    let base64 = STANDARD.encode(pkcs8.as_ref());
    let lines: Vec<&str> = base64
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

impl Apple {
    /// A development fake that signs new receipts with the test servers' receipt CA and
    /// accepts tokens of a new key, whose `.p8` file it returns.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let pem = p8_pem();
        let key_path = dir.path().join("AuthKey_TESTKEY001.p8");
        std::fs::write(&key_path, &pem).expect("write .p8");
        // A private key: attestd refuses key files others may read.
        std::fs::set_permissions(
            &key_path,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
        )
        .expect("chmod .p8");
        let credentials =
            AppleCredentials::from_p8_pem(TEAM_ID, KEY_ID, &pem).expect("credentials");
        let fake = FakeApple::builder()
            .credentials(Arc::new(credentials))
            .receipt_ca(common::cas().1.clone())
            .start()
            .await
            .expect("start the fake Apple");
        Self {
            fake,
            key_path,
            _dir: dir,
        }
    }
}

/// The test-server configuration with every Apple URL at the fake and a fast schedule: new keys
/// due at once, polled every 50 ms, one attempt per exchange, and distinct long backoffs so
/// that a key is not tried twice during a test (failure 1 h, rejection 3 h).
pub fn config(db: &Db, apple: &Apple) -> Config {
    let mut config = common::config(db);
    let settings = &mut config.apple;
    settings.team_id = Some(TEAM_ID.to_owned());
    settings.key_id = Some(KEY_ID.to_owned());
    settings.private_key_path = Some(apple.key_path.clone());
    let base = apple.fake.base_url().to_owned();
    settings.receipt_base_url_production = base.clone();
    settings.receipt_base_url_development = base.clone();
    settings.devicecheck_base_url_production = base.clone();
    settings.devicecheck_base_url_development = base;
    settings.request_timeout = Duration::from_secs(3);
    settings.retry = RetryPolicy {
        max_attempts: 1,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
    };
    settings.degraded_after_failures = 1000;
    let refresh = &mut settings.refresh;
    refresh.concurrency = 2;
    refresh.rate_per_sec = 0.0;
    refresh.batch_size = 8;
    refresh.poll_interval = Duration::from_millis(50);
    refresh.lease = Duration::from_secs(30);
    refresh.first_delay = Duration::ZERO;
    refresh.first_jitter = Duration::ZERO;
    refresh.interval = Duration::from_secs(3600);
    refresh.jitter = Duration::from_secs(60);
    refresh.failure_backoff = Duration::from_secs(3600);
    refresh.failure_backoff_max = Duration::from_secs(2 * 3600);
    refresh.rejected_backoff = Duration::from_secs(3 * 3600);
    config
}

/// Polls `probe` every 25 ms until it gives a value; panics after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The store behind a test server, opened a second time.
pub async fn store(db: &Db) -> AnyStore {
    AnyStore::connect(&db.url).await.expect("open the store")
}

/// The key's refresh state.
pub async fn state(store: &AnyStore, key_id: attest_types::KeyId) -> Option<ReceiptRefreshState> {
    store.refresh_state(key_id).await.expect("refresh state")
}

/// Waits until the key's refresh state satisfies `done`.
pub async fn state_where(
    store: &AnyStore,
    key_id: attest_types::KeyId,
    what: &str,
    done: impl Fn(&ReceiptRefreshState) -> bool,
) -> ReceiptRefreshState {
    eventually(what, Duration::from_secs(20), || async {
        state(store, key_id).await.filter(|state| done(state))
    })
    .await
}

/// `GET` with the admin token.
pub async fn admin_get(server: &Server, path: &str) -> (StatusCode, Value) {
    server
        .admin(reqwest::Method::GET, path, Some(common::ADMIN_TOKEN))
        .await
}

/// `POST` of a JSON body with the admin token.
pub async fn admin_post(
    server: &Server,
    path: &str,
    body: &Value,
) -> (StatusCode, Value, Option<String>) {
    let response = server
        .client
        .post(server.url(path))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body, retry_after)
}

/// The value of an unlabelled metric line `name value` in `/metrics`.
pub async fn metric(server: &Server, name: &str) -> Option<f64> {
    let text = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse().ok()).flatten()
        })
}

/// The `/metrics` text.
pub async fn metrics_text(server: &Server) -> String {
    server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body")
}
