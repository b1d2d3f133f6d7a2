//! The test harness: real servers on 127.0.0.1:0, simulated devices, both stores.
//!
//! Each test runs once on a fresh SQLite file and once on a fresh PostgreSQL schema (when
//! `DATABASE_URL` is set; otherwise cargo reports the PostgreSQL half as ignored, with the reason).
#![allow(dead_code)]

pub mod fake_status;
pub mod process;
pub mod raw;

use std::sync::OnceLock;
use std::time::Duration;

use attest_core::apple::attestation::hash_challenge;
use attest_core::apple::{AppId, EnvironmentPolicy};
use attest_sim::{Device, Environment, ReceiptCa, TestCa};
use attestd::server::{AppConfig, Config, TrustRoot};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The development app every test server accepts.
pub const APP: &str = "TESTTEAM01.dev.attestd.tests";
/// A second development app, for wrong-app tests.
pub const OTHER_APP: &str = "TESTTEAM01.dev.attestd.other";
/// The admin token of test servers.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The simulator CAs the test servers trust (generated once per test binary).
pub fn cas() -> &'static (TestCa, ReceiptCa) {
    static CAS: OnceLock<(TestCa, ReceiptCa)> = OnceLock::new();
    CAS.get_or_init(|| (TestCa::generate(), ReceiptCa::generate()))
}

/// Runs `$test(db)` once per store: `mod $test { sqlite, postgres }`.
#[macro_export]
macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::common::Db::sqlite();
                super::$test(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(no_database_url, ignore = "PostgreSQL: set DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run")]
            async fn postgres() {
                let db = $crate::common::Db::postgres().await;
                let db = std::sync::Arc::new(db);
                let run = std::sync::Arc::clone(&db);
                // Run the test as its own task so that its schema is dropped even if it panics.
                let outcome = tokio::spawn(async move { super::$test(&run).await }).await;
                db.cleanup().await;
                if let Err(error) = outcome {
                    std::panic::resume_unwind(error.into_panic());
                }
            }
        }
    )*};
}

/// A fresh database: a SQLite file in a temporary directory, or a PostgreSQL schema.
#[derive(Debug)]
pub struct Db {
    pub url: String,
    schema: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("attestd.db").display()
        );
        Self {
            url,
            schema: None,
            _dir: Some(dir),
        }
    }

    /// A new schema in `DATABASE_URL`'s database. PostgreSQL tests are built `#[ignore]`d when
    /// the variable is unset (see build.rs), so a missing one here is a mistake, not a skip.
    pub async fn postgres() -> Self {
        let base = std::env::var("DATABASE_URL")
            .ok()
            .filter(|url| url.starts_with("postgres"))
            .expect("DATABASE_URL was set when this test was built but is not set now (or is not a postgres:// URL)");
        let mut random = [0u8; 8];
        aws_lc_rs::rand::fill(&mut random).expect("random");
        let schema = format!("attestd_test_{}", hex::encode(random));
        let mut connection = sqlx::PgConnection::connect(&base)
            .await
            .expect("connect to DATABASE_URL");
        // The schema name is generated here from hex digits: nothing to inject.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut connection)
            .await
            .expect("create schema");
        connection.close().await.ok();
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options[search_path]={schema}");
        Self {
            url,
            schema: Some((base, schema)),
            _dir: None,
        }
    }

    /// Drops the PostgreSQL schema (SQLite files go with their directory).
    pub async fn cleanup(&self) {
        if let Some((base, schema)) = &self.schema
            && let Ok(mut connection) = sqlx::PgConnection::connect(base).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut connection)
                .await;
        }
    }
}

/// The configuration of a test server: two development apps trusting the simulator CAs.
pub fn config(db: &Db) -> Config {
    let (ca, receipts) = cas();
    let mut config = Config::new(db.url.clone());
    config.database_max_connections = Some(4);
    config.apps = [APP, OTHER_APP]
        .into_iter()
        .map(|id| {
            AppConfig::new(
                AppId::new(id).expect("app id"),
                EnvironmentPolicy::Development,
            )
        })
        .collect();
    config.danger_extra_attestation_roots = vec![TrustRoot {
        source: "test CA".into(),
        der: ca.root_der().to_vec(),
    }];
    config.danger_extra_receipt_roots = vec![TrustRoot {
        source: "test receipt CA".into(),
        der: receipts.root_der().to_vec(),
    }];
    config.admin_token = Some(attestd::server::config::Secret::new(ADMIN_TOKEN));
    // Every test request comes from 127.0.0.1: the limits have tests of their own
    // (tests/it/rate_limits.rs), the others must not depend on the machine's speed.
    config.rate_limits = attestd::server::RateLimitSettings::off();
    config
}

/// A server running in this process until dropped.
#[derive(Debug)]
pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start(db: &Db) -> Self {
        Self::start_with(config(db)).await
    }

    pub async fn start_with(config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            attestd::server::run(config, listener, shutdown)
                .await
                .expect("server runs");
        });
        let server = Self {
            base: format!("http://{address}"),
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        for _ in 0..800 {
            if let Ok(response) = self.client.get(self.url("/readyz")).send().await
                && response.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server did not become ready");
    }

    /// Stops the server and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request");
        answer(response).await
    }

    /// POSTs `body` as if from `client_ip` (`X-Forwarded-For`: the server must trust it, see
    /// `Config::trust_forwarded_for`).
    pub async fn post_from(
        &self,
        client_ip: &str,
        path: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .header("x-forwarded-for", client_ip)
            .json(body)
            .send()
            .await
            .expect("request");
        answer(response).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.post(self.url(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        answer(request.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        answer(
            self.client
                .get(self.url(path))
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request.send().await.expect("request")).await
    }

    /// A fresh attestation challenge for `app`.
    pub async fn challenge(&self, app: &str) -> String {
        let (status, body) = self.post("/v1/challenges", &json!({ "appId": app })).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["challenge"].as_str().expect("challenge").to_owned()
    }

    /// A fresh assertion challenge bound to `device`'s key.
    pub async fn assertion_challenge(&self, device: &Device) -> String {
        let body = json!({ "appId": APP, "purpose": "assertion", "keyId": key_id(device) });
        let (status, body) = self.post("/v1/challenges", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["challenge"].as_str().expect("challenge").to_owned()
    }

    /// Attests `device` for [`APP`]; returns the 201 body.
    pub async fn attest(&self, device: &Device) -> Value {
        let challenge = self.challenge(APP).await;
        let body = attestation_body(
            device,
            APP,
            &challenge,
            &attestation(device, APP, &challenge),
        );
        let (status, answer) = self.post("/v1/attestations", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        answer
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

pub fn device() -> Device {
    Device::new(Environment::Development)
}

pub fn key_id(device: &Device) -> String {
    STANDARD.encode(device.key_id())
}

/// A correct attestation of `device` for `app` over SHA-256(`challenge`).
pub fn attestation(device: &Device, app: &str, challenge: &str) -> Vec<u8> {
    let (ca, receipts) = cas();
    device.attest(
        ca,
        receipts,
        app,
        &hash_challenge(challenge.as_bytes()),
        OffsetDateTime::now_utc(),
    )
}

pub fn attestation_body(device: &Device, app: &str, challenge: &str, attestation: &[u8]) -> Value {
    json!({
        "platform": "ios",
        "format": "apple-app-attest",
        "appId": app,
        "keyId": key_id(device),
        "challenge": challenge,
        "token": STANDARD.encode(attestation),
    })
}

pub fn assertion_body(device: &Device, payload: &str, assertion: &[u8]) -> Value {
    json!({
        "platform": "ios",
        "format": "apple-app-attest",
        "keyId": key_id(device),
        "payload": payload,
        "token": STANDARD.encode(assertion),
    })
}

/// Asserts the status and the error code of an answer.
#[track_caller]
pub fn assert_error(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
    assert!(answer.1["message"].is_string(), "{}", answer.1);
    assert!(answer.1["details"].is_object(), "{}", answer.1);
}

// ---- risk, policy and lifecycle helpers -------------------------------------------------------

/// `body` with the fields of `extra` added (both JSON objects).
pub fn with_fields(mut body: Value, extra: Value) -> Value {
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

/// An attestation of `device` for `app` over SHA-256(`challenge`), edited by `edit` (receipt,
/// iOS 27 profile...).
pub fn attestation_with(
    device: &Device,
    app: &str,
    challenge: &str,
    edit: impl FnOnce(attest_sim::AttestationBuilder<'_>) -> attest_sim::AttestationBuilder<'_>,
) -> Vec<u8> {
    let (ca, receipts) = cas();
    let builder = device.attestation(
        ca,
        receipts,
        app,
        &hash_challenge(challenge.as_bytes()),
        OffsetDateTime::now_utc(),
    );
    edit(builder).build().object
}

/// The claims of a JWT, decoded without verification (tests check the signature elsewhere).
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("JWT payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The names of the risk factors of an answer (success body or error details).
pub fn factor_names(risk: &Value) -> Vec<String> {
    risk["riskFactors"]
        .as_array()
        .map(|factors| {
            factors
                .iter()
                .filter_map(|f| f["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The factor `name` of an answer, if it triggered.
pub fn factor<'a>(risk: &'a Value, name: &str) -> Option<&'a Value> {
    risk["riskFactors"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)
}

impl Server {
    /// Attests `device` for `app` with an attestation edited by `edit` and extra body fields
    /// (`userId`, `deviceId`); returns the answer, whatever it is.
    pub async fn attest_as(
        &self,
        device: &Device,
        app: &str,
        extra: Value,
        edit: impl FnOnce(attest_sim::AttestationBuilder<'_>) -> attest_sim::AttestationBuilder<'_>,
    ) -> (StatusCode, Value) {
        let challenge = self.challenge(app).await;
        let object = attestation_with(device, app, &challenge, edit);
        let body = with_fields(attestation_body(device, app, &challenge, &object), extra);
        self.post("/v1/attestations", &body).await
    }

    /// A fresh assertion challenge of `app` bound to `device`'s key.
    pub async fn assertion_challenge_for(&self, app: &str, device: &Device) -> String {
        let body = json!({ "appId": app, "purpose": "assertion", "keyId": key_id(device) });
        let (status, body) = self.post("/v1/challenges", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["challenge"].as_str().expect("challenge").to_owned()
    }

    /// Asserts with `counter` over a fresh challenge of `app`; returns the answer.
    pub async fn assert_counter(
        &self,
        device: &Device,
        app: &str,
        counter: u32,
    ) -> (StatusCode, Value) {
        let challenge = self.assertion_challenge_for(app, device).await;
        let assertion = device.assert(app, challenge.as_bytes(), counter);
        self.post(
            "/v1/assertions",
            &assertion_body(device, &challenge, &assertion),
        )
        .await
    }

    /// An admin GET that must answer 200.
    pub async fn admin_get(&self, path: &str) -> Value {
        let (status, body) = self
            .admin(reqwest::Method::GET, path, Some(ADMIN_TOKEN))
            .await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    }

    /// The admin view of `device`'s key.
    pub async fn admin_device(&self, device: &Device) -> Value {
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(device.key_id());
        self.admin_get(&format!("/admin/v1/devices/{id}")).await
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }
}

// ---- linking: link tokens signed as the app's backend signs them ------------------------------

/// The `link_secret` of both test apps in [`linking_config`] (at least 32 bytes).
pub const LINK_SECRET: &str = "test-link-secret-of-the-backend-0123456789";

/// [`config`] with [`LINK_SECRET`] set on both apps, for tests that link keys.
pub fn linking_config(db: &Db) -> Config {
    let mut config = config(db);
    for app in &mut config.apps {
        app.link_secret = Some(attestd::server::config::Secret::new(LINK_SECRET));
    }
    config
}

/// `claims` signed with HS256 and `secret`, as a backend's JWT library would.
pub fn sign_link_token(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign link token")
}

/// The claims of a link token for `device`'s key in `app`, valid for five minutes from now.
pub fn link_claims(
    app: &str,
    device: &Device,
    user: Option<&str>,
    device_id: Option<&str>,
) -> Value {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = json!({ "aud": app, "key_id": key_id(device), "iat": now, "exp": now + 300 });
    if let Some(user) = user {
        claims["sub"] = json!(user);
    }
    if let Some(device_id) = device_id {
        claims["device_id"] = json!(device_id);
    }
    claims
}

/// The body fields `{"linkToken": ...}` linking `device`'s key in `app` to `user` and/or
/// `device_id`, signed with [`LINK_SECRET`].
pub fn linked(app: &str, device: &Device, user: Option<&str>, device_id: Option<&str>) -> Value {
    let token = sign_link_token(LINK_SECRET, &link_claims(app, device, user, device_id));
    json!({ "linkToken": token })
}

impl Server {
    /// A server whose apps check link tokens with [`LINK_SECRET`].
    pub async fn start_linking(db: &Db) -> Self {
        Self::start_with(linking_config(db)).await
    }
}
