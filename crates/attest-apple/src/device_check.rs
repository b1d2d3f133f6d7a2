//! DeviceCheck: validate a device token, and query or update the two per-device bits.
//!
//! The bits are shared by every app of the team on that device, not kept per app.

use std::sync::Arc;

use attest_core::UnixTime;
use attest_core::apple::Environment;

use crate::credentials::AppleCredentials;
use crate::error::Error;
use crate::http::{self, Api, AuthorizationScheme, HttpOptions};

/// Production DeviceCheck API.
pub const DEVICE_CHECK_PRODUCTION_URL: &str = "https://api.devicecheck.apple.com";
/// Development DeviceCheck API.
pub const DEVICE_CHECK_DEVELOPMENT_URL: &str = "https://api.development.devicecheck.apple.com";
/// `POST` path: is this a token from a genuine device running our app?
pub const VALIDATE_DEVICE_TOKEN_PATH: &str = "/v1/validate_device_token";
/// `POST` path: read the two bits.
pub const QUERY_TWO_BITS_PATH: &str = "/v1/query_two_bits";
/// `POST` path: set the two bits.
pub const UPDATE_TWO_BITS_PATH: &str = "/v1/update_two_bits";

/// The texts Apple answers (with status 200) for a device whose bits were never set.
pub const BIT_STATE_NOT_FOUND_TEXTS: &[&str] = &["Bit State Not Found", "Failed to find bit state"];

/// The base URL of DeviceCheck for `environment`.
pub fn device_check_base_url(environment: Environment) -> &'static str {
    match environment {
        Environment::Production => DEVICE_CHECK_PRODUCTION_URL,
        Environment::Development => DEVICE_CHECK_DEVELOPMENT_URL,
    }
}

/// The two bits of a device, as last set by the team.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct BitState {
    /// Bit 0.
    pub bit0: bool,
    /// Bit 1.
    pub bit1: bool,
    /// Month of the last update, `YYYY-MM`, as Apple gives it.
    #[serde(default)]
    pub last_update_time: Option<String>,
}

/// The answer to [`DeviceCheckClient::query_two_bits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwoBits {
    /// The bits were set at some point.
    Found(BitState),
    /// The bits were never set for this device (Apple answers 200 with plain text).
    NotFound,
}

#[derive(serde::Serialize)]
struct RequestBody<'a> {
    device_token: &'a str,
    transaction_id: String,
    timestamp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    bit0: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bit1: Option<bool>,
}

/// Client of Apple's DeviceCheck API.
#[derive(Debug, Clone)]
pub struct DeviceCheckClient {
    http: reqwest::Client,
    base_url: String,
    credentials: Arc<AppleCredentials>,
}

/// Options for a [`DeviceCheckClient`].
#[derive(Debug)]
pub struct DeviceCheckClientBuilder {
    credentials: Arc<AppleCredentials>,
    base_url: String,
    http: HttpOptions,
}

impl DeviceCheckClientBuilder {
    /// Use Apple's base URL for `environment` (the default is production).
    pub fn environment(mut self, environment: Environment) -> Self {
        self.base_url = device_check_base_url(environment).to_owned();
        self
    }

    /// Use another base URL (a proxy, or a fake in tests); the paths are appended to it.
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Timeouts and proxies (default [`HttpOptions::default`]).
    pub fn http_options(mut self, options: HttpOptions) -> Self {
        self.http = options;
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<DeviceCheckClient, Error> {
        Ok(DeviceCheckClient {
            http: http::build_client(&self.http)?,
            base_url: http::normalize_base_url(&self.base_url)?,
            credentials: self.credentials,
        })
    }
}

impl DeviceCheckClient {
    /// Options, starting from the production base URL and default timeouts.
    pub fn builder(credentials: Arc<AppleCredentials>) -> DeviceCheckClientBuilder {
        DeviceCheckClientBuilder {
            credentials,
            base_url: DEVICE_CHECK_PRODUCTION_URL.to_owned(),
            http: HttpOptions::default(),
        }
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Checks that `device_token` (from `DCDevice.generateToken`, base64) comes from a genuine
    /// Apple device running the team's app. `Ok` is Apple's 200 with an empty body.
    pub async fn validate_device_token(
        &self,
        device_token: &str,
        now: UnixTime,
    ) -> Result<(), Error> {
        self.post(VALIDATE_DEVICE_TOKEN_PATH, device_token, None, now)
            .await
            .map(|_| ())
    }

    /// Reads the device's two bits.
    pub async fn query_two_bits(
        &self,
        device_token: &str,
        now: UnixTime,
    ) -> Result<TwoBits, Error> {
        let answer = self
            .post(QUERY_TWO_BITS_PATH, device_token, None, now)
            .await?;
        if let Ok(state) = serde_json::from_slice::<BitState>(&answer.body) {
            return Ok(TwoBits::Found(state));
        }
        let text = answer.text();
        let text = text.trim();
        if BIT_STATE_NOT_FOUND_TEXTS
            .iter()
            .any(|known| text.eq_ignore_ascii_case(known))
        {
            return Ok(TwoBits::NotFound);
        }
        tracing::warn!(
            target: "attest_apple",
            body = %text.chars().take(200).collect::<String>(),
            "unreadable query_two_bits answer"
        );
        Err(Error::MalformedResponse(
            "query_two_bits answer is neither bits nor \"not found\"",
        ))
    }

    /// Sets the device's two bits.
    pub async fn update_two_bits(
        &self,
        device_token: &str,
        bit0: bool,
        bit1: bool,
        now: UnixTime,
    ) -> Result<(), Error> {
        self.post(UPDATE_TWO_BITS_PATH, device_token, Some((bit0, bit1)), now)
            .await
            .map(|_| ())
    }

    async fn post(
        &self,
        path: &str,
        device_token: &str,
        bits: Option<(bool, bool)>,
        now: UnixTime,
    ) -> Result<http::Answer, Error> {
        // Apple wants the token "with no line breaks"; apps often send iOS's 76-column base64.
        let device_token: String = device_token
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let body = RequestBody {
            device_token: &device_token,
            transaction_id: transaction_id(),
            timestamp: now.as_secs().saturating_mul(1000),
            bit0: bits.map(|(bit0, _)| bit0),
            bit1: bits.map(|(_, bit1)| bit1),
        };
        let jwt = self.credentials.authorization_jwt(now)?;
        let request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header(
                reqwest::header::AUTHORIZATION,
                AuthorizationScheme::Bearer.header_value(&jwt),
            )
            .json(&body);
        let answer = http::send(request).await?;
        if answer.status == 200 {
            Ok(answer)
        } else {
            Err(http::error_for(Api::DeviceCheck, &answer))
        }
    }
}

/// A random version-4 UUID, as Apple's examples use for `transaction_id`.
fn transaction_id() -> String {
    let mut bytes = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // The id only needs to be unique; should the system RNG ever fail, use the clock.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = nanos.to_be_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut id = String::with_capacity(36);
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_ids_are_random_v4_uuids() {
        let a = transaction_id();
        let b = transaction_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let groups: Vec<&str> = a.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'));
        assert!(matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
    }

    #[test]
    fn bit_state_reads_apples_json() {
        let state: BitState =
            serde_json::from_str(r#"{"bit0":true,"bit1":false,"last_update_time":"2024-05"}"#)
                .unwrap();
        assert_eq!(
            state,
            BitState {
                bit0: true,
                bit1: false,
                last_update_time: Some("2024-05".into())
            }
        );
    }
}
