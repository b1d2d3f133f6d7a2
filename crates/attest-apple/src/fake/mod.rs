//! A local fake of Apple's receipt and DeviceCheck APIs, for tests (feature `fake`).
//!
//! [`FakeApple::start`] listens on `127.0.0.1:<random port>` and speaks both protocols on the
//! same base URL:
//! - every request must carry a valid provider token: ES256 signed by the trusted key, `kid` =
//!   key id, `iss` = team id, `iat` at most an hour old (and not in the future) — otherwise
//!   401. DeviceCheck requires `Bearer <jwt>`; the receipt API accepts the bare token and the
//!   bearer form unless [`FakeAppleBuilder::receipt_authorization`] narrows it.
//! - `POST /v1/attestationData`: the base64 body is parsed with attest-core; a receipt of the
//!   other environment gets 400 "Incorrect Environment", anything unreadable 400 "Bad Payload",
//!   a revoked key 404, a `RECEIPT` before its Not Before 304; otherwise 200 with a new `RECEIPT`
//!   receipt (BER, like Apple's) signed by the fake's [`ReceiptCa`], with the configured risk
//!   metric.
//! - `POST /v1/{validate_device_token,query_two_bits,update_two_bits}`: checks the JSON body
//!   like Apple (400 with Apple's texts), keeps two bits per device token, and answers a query
//!   for a never-set device with 200 and the plain text "Failed to find bit state".
//!
//! Answers can be scripted ahead ([`FakeApple::push_response`]): a status with Apple's text and
//! optional `Retry-After`, any exact reply, a delay, or closing the connection unanswered.
//! Each queued entry is used by the next request, whichever API it is for.

mod handlers;
mod server;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use attest_core::apple::Environment;
use attest_core::apple::KeyId;
use attest_core::apple::receipt::ReceiptVerifier;
use attest_sim::ReceiptCa;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use time::OffsetDateTime;

use crate::credentials::{AppleCredentials, CredentialsError};
use crate::http::AuthorizationScheme;

/// Team id of the credentials a fake generates when none are given.
pub const FAKE_TEAM_ID: &str = "FAKETEAM01";
/// Key id of the credentials a fake generates when none are given.
pub const FAKE_KEY_ID: &str = "FAKEKEY001";

/// Fresh credentials with a new random P-256 key, e.g. to sign tokens the fake must reject.
pub fn generate_credentials(
    team_id: &str,
    key_id: &str,
) -> Result<AppleCredentials, CredentialsError> {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| CredentialsError::SigningFailed)?;
    AppleCredentials::from_pkcs8_der(team_id, key_id, pkcs8.as_ref())
}

/// A scripted answer for the next request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scripted {
    /// Answer this status with Apple's text for it (per API: e.g. 400 is "Bad Payload" on the
    /// receipt API and the device-token text on DeviceCheck; 304 has no body), and a
    /// `Retry-After: <seconds>` header if given.
    Status(u16, Option<Duration>),
    /// Answer exactly this.
    Reply {
        /// HTTP status.
        status: u16,
        /// Extra headers (e.g. an HTTP-date `Retry-After`).
        headers: Vec<(String, String)>,
        /// Body.
        body: Vec<u8>,
    },
    /// Wait this long, then answer normally (to trip the client's timeout).
    Delay(Duration),
    /// Read the request, then close the connection without answering.
    Drop,
    /// Answer normally, but a new receipt carries this risk metric (receipt API only).
    RiskMetric(u64),
}

impl Scripted {
    /// [`Scripted::Status`] without `Retry-After`.
    pub fn status(status: u16) -> Self {
        Self::Status(status, None)
    }

    /// 429 with `Retry-After: <seconds>`.
    pub fn rate_limited(retry_after: Duration) -> Self {
        Self::Status(429, Some(retry_after))
    }

    /// 200 with a text body.
    pub fn ok_text(body: &str) -> Self {
        Self::Reply {
            status: 200,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }
}

/// How many requests the fake received, by endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// All requests, scripted or not.
    pub total: u64,
    /// `POST /v1/attestationData`.
    pub attestation_data: u64,
    /// `POST /v1/validate_device_token`.
    pub validate_device_token: u64,
    /// `POST /v1/query_two_bits`.
    pub query_two_bits: u64,
    /// `POST /v1/update_two_bits`.
    pub update_two_bits: u64,
    /// Any other path.
    pub other: u64,
    /// Requests answered 401 because of their token (not scripted 401s).
    pub unauthorized: u64,
    /// Connections closed unanswered ([`Scripted::Drop`]).
    pub dropped: u64,
}

/// One request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path (no query).
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// Fixed at start.
struct Config {
    team_id: String,
    key_id: String,
    /// Uncompressed P-256 point the tokens must verify with.
    public_key: Vec<u8>,
    environment: Environment,
    receipt_ca: ReceiptCa,
    receipt_scheme: Option<AuthorizationScheme>,
    max_token_age: Duration,
}

/// Two bits and the month they were set (`YYYY-MM`).
#[derive(Debug, Clone)]
struct StoredBits {
    bit0: bool,
    bit1: bool,
    month: String,
}

#[derive(Default)]
struct State {
    script: VecDeque<Scripted>,
    risk_metric: u64,
    risk_by_key: HashMap<KeyId, u64>,
    revoked: HashSet<KeyId>,
    bits: HashMap<String, StoredBits>,
    now: Option<OffsetDateTime>,
    counts: RequestCounts,
    requests: Vec<RecordedRequest>,
}

/// What the server task and the handle share.
struct Shared {
    config: Config,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A handler that panicked leaves consistent data behind (every update is one statement).
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.state().now.unwrap_or_else(OffsetDateTime::now_utc)
    }
}

/// Options for a [`FakeApple`].
pub struct FakeAppleBuilder {
    credentials: Option<Arc<AppleCredentials>>,
    receipt_ca: Option<ReceiptCa>,
    environment: Environment,
    risk_metric: u64,
    receipt_scheme: Option<AuthorizationScheme>,
    max_token_age: Duration,
}

impl fmt::Debug for FakeAppleBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeAppleBuilder")
            .field("credentials", &self.credentials)
            .field("environment", &self.environment)
            .field("risk_metric", &self.risk_metric)
            .field("receipt_scheme", &self.receipt_scheme)
            .field("max_token_age", &self.max_token_age)
            .finish_non_exhaustive()
    }
}

impl FakeAppleBuilder {
    /// Trust these credentials' team id, key id and public key (default: generated ones, see
    /// [`FakeApple::credentials`]).
    pub fn credentials(mut self, credentials: Arc<AppleCredentials>) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Sign new receipts with this CA (default: a fresh [`ReceiptCa::generate`]).
    pub fn receipt_ca(mut self, ca: ReceiptCa) -> Self {
        self.receipt_ca = Some(ca);
        self
    }

    /// Which environment this fake is (default development, like
    /// `data-development.appattest.apple.com`): receipts of the other get 400.
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }

    /// The risk metric of new receipts (default 1).
    pub fn risk_metric(mut self, metric: u64) -> Self {
        self.risk_metric = metric;
        self
    }

    /// Accept only this form of `Authorization` on the receipt API (default: both).
    pub fn receipt_authorization(mut self, scheme: AuthorizationScheme) -> Self {
        self.receipt_scheme = Some(scheme);
        self
    }

    /// Oldest `iat` accepted (default one hour, like Apple).
    pub fn max_token_age(mut self, age: Duration) -> Self {
        self.max_token_age = age;
        self
    }

    /// Binds `127.0.0.1:0` and starts serving on the current tokio runtime.
    pub async fn start(self) -> std::io::Result<FakeApple> {
        let credentials = match self.credentials {
            Some(credentials) => credentials,
            None => Arc::new(
                generate_credentials(FAKE_TEAM_ID, FAKE_KEY_ID)
                    .map_err(|e| std::io::Error::other(e.to_string()))?,
            ),
        };
        let config = Config {
            team_id: credentials.team_id().to_owned(),
            key_id: credentials.key_id().to_owned(),
            public_key: credentials.public_key().to_vec(),
            environment: self.environment,
            receipt_ca: self.receipt_ca.unwrap_or_else(ReceiptCa::generate),
            receipt_scheme: self.receipt_scheme,
            max_token_age: self.max_token_age,
        };
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State {
                risk_metric: self.risk_metric,
                ..State::default()
            }),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let server = tokio::spawn(server::accept_loop(listener, Arc::clone(&shared)));
        Ok(FakeApple {
            base_url: format!("http://{address}"),
            shared,
            credentials,
            server,
        })
    }
}

/// A running fake Apple; stops when dropped.
pub struct FakeApple {
    base_url: String,
    shared: Arc<Shared>,
    credentials: Arc<AppleCredentials>,
    server: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for FakeApple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeApple")
            .field("base_url", &self.base_url)
            .field("environment", &self.shared.config.environment)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeApple {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeApple {
    /// A development fake with generated credentials and receipt CA.
    ///
    /// # Panics
    ///
    /// If `127.0.0.1:0` cannot be bound (see [`FakeAppleBuilder::start`] for a `Result`).
    #[allow(clippy::expect_used)] // test fixture: a machine without loopback cannot run the tests
    pub async fn start() -> FakeApple {
        Self::builder()
            .start()
            .await
            .expect("fake Apple: bind 127.0.0.1:0")
    }

    /// Options.
    pub fn builder() -> FakeAppleBuilder {
        FakeAppleBuilder {
            credentials: None,
            receipt_ca: None,
            environment: Environment::Development,
            risk_metric: 1,
            receipt_scheme: None,
            max_token_age: Duration::from_secs(60 * 60),
        }
    }

    /// `http://127.0.0.1:<port>`: the base URL of both APIs.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The credentials whose tokens the fake accepts.
    pub fn credentials(&self) -> Arc<AppleCredentials> {
        Arc::clone(&self.credentials)
    }

    /// The CA new receipts are signed with (give it to the simulator so attestation receipts
    /// and refreshed ones share a root).
    pub fn receipt_ca(&self) -> &ReceiptCa {
        &self.shared.config.receipt_ca
    }

    /// A verifier anchored at the fake's receipt root only.
    ///
    /// # Panics
    ///
    /// Never in practice: the root is the fake's own freshly made certificate.
    #[allow(clippy::expect_used)] // our own root certificate always parses
    pub fn receipt_verifier(&self) -> ReceiptVerifier {
        ReceiptVerifier::with_roots(vec![self.receipt_ca().root_der().to_vec()])
            .expect("the fake's receipt root parses")
    }

    /// Queues an answer for a coming request (first in, first used).
    pub fn push_response(&self, scripted: Scripted) {
        self.shared.state().script.push_back(scripted);
    }

    /// Scripted answers not used yet.
    pub fn pending_responses(&self) -> usize {
        self.shared.state().script.len()
    }

    /// The risk metric of new receipts from now on (keys with their own metric excepted).
    pub fn set_risk_metric(&self, metric: u64) {
        self.shared.state().risk_metric = metric;
    }

    /// The risk metric of new receipts for the key whose id (SHA-256 of the uncompressed public
    /// point, as the app reports it) is `key_id`.
    pub fn set_risk_metric_for_key(&self, key_id: KeyId, metric: u64) {
        self.shared.state().risk_by_key.insert(key_id, metric);
    }

    /// From now on, answer 404 "No Data Found" to receipts of this key.
    pub fn revoke_key(&self, key_id: KeyId) {
        self.shared.state().revoked.insert(key_id);
    }

    /// Use this time instead of the wall clock (token freshness, receipt times, Not Before).
    pub fn set_now(&self, now: OffsetDateTime) {
        self.shared.state().now = Some(now);
    }

    /// Go back to the wall clock.
    pub fn use_wall_clock(&self) {
        self.shared.state().now = None;
    }

    /// Requests received so far.
    pub fn counts(&self) -> RequestCounts {
        self.shared.state().counts
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.clone()
    }

    /// The bits stored for `device_token`, if ever set.
    pub fn bits(&self, device_token: &str) -> Option<(bool, bool)> {
        self.shared
            .state()
            .bits
            .get(device_token)
            .map(|stored| (stored.bit0, stored.bit1))
    }
}
