//! The receipt exchange ("Assessing fraud risk"): `POST {base}/v1/attestationData` with the
//! base64 receipt as body; the answer is a new `RECEIPT` receipt carrying the risk metric.

use std::sync::Arc;
use std::time::Duration;

use attest_core::UnixTime;
use attest_core::apple::Environment;
use attest_core::apple::receipt::{
    ReceiptError, ReceiptType, ReceiptVerifier, VerifiedReceipt, parse_receipt,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::credentials::AppleCredentials;
use crate::error::Error;
use crate::http::{self, Api, AuthorizationScheme, HttpOptions};
use crate::retry::RetryPolicy;

/// Production receipt API (App Store, TestFlight and Enterprise builds).
pub const RECEIPT_PRODUCTION_URL: &str = "https://data.appattest.apple.com";
/// Development (sandbox) receipt API.
pub const RECEIPT_DEVELOPMENT_URL: &str = "https://data-development.appattest.apple.com";
/// The path under either base URL.
pub const ATTESTATION_DATA_PATH: &str = "/v1/attestationData";

/// How far in the future (by our clock) a new receipt's creation time may be: Apple's clock and
/// ours disagree by seconds, not minutes.
const MAX_CREATION_SKEW: Duration = Duration::from_secs(5 * 60);

/// The base URL of the receipt API for `environment`.
pub fn receipt_base_url(environment: Environment) -> &'static str {
    match environment {
        Environment::Production => RECEIPT_PRODUCTION_URL,
        Environment::Development => RECEIPT_DEVELOPMENT_URL,
    }
}

/// What Apple answered to a successful exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptRefresh {
    /// 200: a new receipt, verified. Store `receipt` in place of the old one.
    Refreshed {
        /// The new receipt (the answer body, base64-decoded).
        receipt: Vec<u8>,
        /// Its verified contents (`receipt.risk_metric` is the metric); boxed, as it is most of
        /// the enum's size.
        verified: Box<VerifiedReceipt>,
    },
    /// 304: asked before the previous receipt's Not Before (field 19); keep the old receipt and
    /// ask again after that time.
    NotModified,
}

/// Client of Apple's receipt API.
///
/// ```no_run
/// # async fn example(credentials: std::sync::Arc<attest_apple::AppleCredentials>, old: Vec<u8>)
/// # -> Result<(), attest_apple::Error> {
/// use std::sync::Arc;
/// use attest_apple::{ReceiptClient, ReceiptRefresh, RetryPolicy};
/// use attest_core::apple::{Environment, receipt::ReceiptVerifier};
///
/// let client = ReceiptClient::builder(credentials, Arc::new(ReceiptVerifier::apple()))
///     .environment(Environment::Production)
///     .build()?;
/// let now = attest_core::UnixTime::now();
/// match client.refresh_with_retry(&old, now, &RetryPolicy::default()).await? {
///     ReceiptRefresh::Refreshed { receipt, verified } => {
///         let _metric = verified.receipt.risk_metric;
///         let _store_me = receipt;
///     }
///     ReceiptRefresh::NotModified => {}
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ReceiptClient {
    http: reqwest::Client,
    endpoint: String,
    credentials: Arc<AppleCredentials>,
    verifier: Arc<ReceiptVerifier>,
    scheme: AuthorizationScheme,
}

/// Options for a [`ReceiptClient`].
#[derive(Debug)]
pub struct ReceiptClientBuilder {
    credentials: Arc<AppleCredentials>,
    verifier: Arc<ReceiptVerifier>,
    base_url: String,
    scheme: AuthorizationScheme,
    http: HttpOptions,
}

impl ReceiptClientBuilder {
    /// Use Apple's base URL for `environment` (the default is production).
    pub fn environment(mut self, environment: Environment) -> Self {
        self.base_url = receipt_base_url(environment).to_owned();
        self
    }

    /// Use another base URL (a proxy, or a fake in tests); the path is appended to it.
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// How the token is sent (default [`AuthorizationScheme::Raw`], as Apple documents).
    pub fn authorization_scheme(mut self, scheme: AuthorizationScheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// Timeouts and proxies (default [`HttpOptions::default`]).
    pub fn http_options(mut self, options: HttpOptions) -> Self {
        self.http = options;
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<ReceiptClient, Error> {
        let base = http::normalize_base_url(&self.base_url)?;
        Ok(ReceiptClient {
            http: http::build_client(&self.http)?,
            endpoint: format!("{base}{ATTESTATION_DATA_PATH}"),
            credentials: self.credentials,
            verifier: self.verifier,
            scheme: self.scheme,
        })
    }
}

impl ReceiptClient {
    /// Options, starting from: production base URL, raw token, default timeouts. `verifier`
    /// checks the receipts Apple returns (use [`ReceiptVerifier::apple`] in production).
    pub fn builder(
        credentials: Arc<AppleCredentials>,
        verifier: Arc<ReceiptVerifier>,
    ) -> ReceiptClientBuilder {
        ReceiptClientBuilder {
            credentials,
            verifier,
            base_url: RECEIPT_PRODUCTION_URL.to_owned(),
            scheme: AuthorizationScheme::Raw,
            http: HttpOptions::default(),
        }
    }

    /// The full URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Exchanges `receipt` (the attestation's receipt or the last one Apple returned) for a new
    /// one, verified at `now`: it must chain to the verifier's roots, be of type `RECEIPT`, and
    /// name the same App ID and attested key as `receipt`.
    ///
    /// One request, no retries; see [`refresh_with_retry`](Self::refresh_with_retry).
    pub async fn refresh(&self, receipt: &[u8], now: UnixTime) -> Result<ReceiptRefresh, Error> {
        // The old receipt is only parsed (it was verified when it was stored): we need its App ID
        // and key to check that Apple's answer is about the same key.
        let previous = parse_receipt(receipt).map_err(Error::InvalidPreviousReceipt)?;
        let previous = previous.receipt();
        let jwt = self.credentials.authorization_jwt(now)?;
        let request = self
            .http
            .post(&self.endpoint)
            .header(
                reqwest::header::AUTHORIZATION,
                self.scheme.header_value(&jwt),
            )
            .header(reqwest::header::CONTENT_TYPE, "text/plain")
            .body(STANDARD.encode(receipt));
        let answer = http::send(request).await?;
        match answer.status {
            200 => {}
            304 => return Ok(ReceiptRefresh::NotModified),
            _ => return Err(http::error_for(Api::Receipt, &answer)),
        }

        let invalid = Error::InvalidReceiptFromApple;
        let text: Vec<u8> = answer
            .body
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let new = STANDARD
            .decode(text)
            .map_err(|_| invalid(ReceiptError::Malformed("Apple's answer is not base64")))?;
        let verified = self.verifier.verify(&new, now).map_err(invalid)?;
        let fresh = &verified.receipt;
        if fresh.receipt_type != ReceiptType::Receipt {
            return Err(invalid(ReceiptError::WrongType));
        }
        if fresh.app_id != previous.app_id {
            return Err(invalid(ReceiptError::AppIdMismatch));
        }
        let key = fresh.attested_public_key();
        if key.is_none() || key != previous.attested_public_key() {
            return Err(invalid(ReceiptError::PublicKeyMismatch));
        }
        let latest = i128::from(now.as_secs()) + i128::from(MAX_CREATION_SKEW.as_secs());
        if i128::from(fresh.creation_time.unix_timestamp()) > latest {
            return Err(invalid(ReceiptError::CreatedInFuture));
        }
        Ok(ReceiptRefresh::Refreshed {
            receipt: new,
            verified: Box::new(verified),
        })
    }

    /// [`refresh`](Self::refresh) under `policy`: 5xx and transport failures are retried with
    /// backoff, 429 after `Retry-After`; everything else is returned at once.
    pub async fn refresh_with_retry(
        &self,
        receipt: &[u8],
        now: UnixTime,
        policy: &RetryPolicy,
    ) -> Result<ReceiptRefresh, Error> {
        policy.run(|| self.refresh(receipt, now)).await
    }
}
