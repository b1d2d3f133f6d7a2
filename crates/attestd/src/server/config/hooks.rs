//! Webhook settings: the endpoints with their secrets and events, and how deliveries are retried.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Secret};

/// An event a webhook endpoint can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum WebhookEvent {
    /// A key was attested for a device the server had never seen.
    #[serde(rename = "device.new")]
    DeviceNew,
    /// A request scored in the high or critical band.
    #[serde(rename = "device.high_risk")]
    DeviceHighRisk,
    /// An app's failed attestations reached the threshold within the window.
    #[serde(rename = "attestation.failure_spike")]
    AttestationFailureSpike,
    /// A re-attestation replaced a key of the same device or user.
    #[serde(rename = "key.superseded")]
    KeySuperseded,
}

impl WebhookEvent {
    /// Every event.
    pub const ALL: [Self; 4] = [
        Self::DeviceNew,
        Self::DeviceHighRisk,
        Self::AttestationFailureSpike,
        Self::KeySuperseded,
    ];

    /// The event's name in payloads and the `X-Attestd-Event` header.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DeviceNew => "device.new",
            Self::DeviceHighRisk => "device.high_risk",
            Self::AttestationFailureSpike => "attestation.failure_spike",
            Self::KeySuperseded => "key.superseded",
        }
    }
}

impl fmt::Display for WebhookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One endpoint (`[[webhooks]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL the events are POSTed to.
    pub url: String,
    /// The HMAC-SHA256 key of `X-Attestd-Signature`.
    pub secret: Secret,
    /// The events it receives.
    pub events: Vec<WebhookEvent>,
}

impl WebhookConfig {
    /// Rejects a URL that is not http(s), an empty secret and an empty event list.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|_| ConfigError::Webhook(format!("{:?} is not a URL", self.url)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ConfigError::Webhook(format!(
                "{:?}: only http:// and https:// URLs with a host",
                self.url
            )));
        }
        if self.secret.expose().is_empty() {
            return Err(ConfigError::Webhook(format!(
                "{:?}: empty secret",
                self.url
            )));
        }
        if self.events.is_empty() {
            return Err(ConfigError::Webhook(format!("{:?}: no event", self.url)));
        }
        Ok(())
    }
}

/// How events are detected and deliveries retried (`[webhook_delivery]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Attempts per delivery before it is marked failed.
    pub max_attempts: u32,
    /// The wait before the second attempt; it doubles for each later one.
    pub retry_base: Duration,
    /// The longest wait between two attempts.
    pub retry_max: Duration,
    /// How long one attempt may take.
    pub attempt_timeout: Duration,
    /// How often the outbox is polled (besides being woken by new events).
    pub poll_interval: Duration,
    /// `attestation.failure_spike` fires when an app has this many failed attestations...
    pub failure_spike_threshold: u32,
    /// ...within this window (and then at most once per window).
    pub failure_spike_window: Duration,
    /// `device.high_risk` fires at most once per device in this period (per process).
    pub high_risk_repeat: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(3600),
            attempt_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(2),
            failure_spike_threshold: 20,
            failure_spike_window: Duration::from_secs(300),
            high_risk_repeat: Duration::from_secs(3600),
        }
    }
}

impl WebhookSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::Invalid(
                "webhook max_attempts must be at least 1",
            ));
        }
        if self.failure_spike_threshold == 0 || self.failure_spike_window.is_zero() {
            return Err(ConfigError::Invalid(
                "webhook failure spike threshold and window must be positive",
            ));
        }
        if self.poll_interval.is_zero() || self.attempt_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "webhook poll interval and attempt timeout must be positive",
            ));
        }
        Ok(())
    }
}

/// `[[webhooks]]` in the TOML file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileWebhook {
    url: String,
    secret: String,
    events: Option<Vec<WebhookEvent>>,
}

impl FileWebhook {
    pub(super) fn resolve(self) -> WebhookConfig {
        WebhookConfig {
            url: self.url,
            secret: Secret(self.secret),
            events: self.events.unwrap_or_else(|| WebhookEvent::ALL.to_vec()),
        }
    }
}

/// `[webhook_delivery]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileWebhookDelivery {
    max_attempts: Option<u32>,
    retry_base_secs: Option<u64>,
    retry_max_secs: Option<u64>,
    attempt_timeout_secs: Option<u64>,
    poll_interval_secs: Option<u64>,
    failure_spike_threshold: Option<u32>,
    failure_spike_window_secs: Option<u64>,
    high_risk_repeat_secs: Option<u64>,
}

impl FileWebhookDelivery {
    pub(super) fn resolve(self) -> WebhookSettings {
        let d = WebhookSettings::default();
        let secs =
            |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_secs);
        WebhookSettings {
            max_attempts: self.max_attempts.unwrap_or(d.max_attempts),
            retry_base: secs(self.retry_base_secs, d.retry_base),
            retry_max: secs(self.retry_max_secs, d.retry_max),
            attempt_timeout: secs(self.attempt_timeout_secs, d.attempt_timeout),
            poll_interval: secs(self.poll_interval_secs, d.poll_interval),
            failure_spike_threshold: self
                .failure_spike_threshold
                .unwrap_or(d.failure_spike_threshold),
            failure_spike_window: secs(self.failure_spike_window_secs, d.failure_spike_window),
            high_risk_repeat: secs(self.high_risk_repeat_secs, d.high_risk_repeat),
        }
    }
}
