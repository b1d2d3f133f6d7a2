//! Webhook events: detected while requests are decided, written to the outbox table (so they
//! survive restarts), delivered by [`deliver::run`], signed with HMAC-SHA256.
//!
//! Body (the exact bytes signed):
//! `{"id": "evt_...", "event": "device.new", "createdAt": "RFC 3339", "appId": "...", "data": {...}}`.
//! Headers: `X-Attestd-Signature: sha256=<hex HMAC-SHA256(secret, body)>`,
//! `X-Attestd-Timestamp` (unix seconds of the attempt), `X-Attestd-Event`, `X-Attestd-Event-Id`,
//! `X-Attestd-Delivery` (the delivery's id in the log).

pub mod deliver;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use attest_store::{AnyStore, NewWebhookDelivery, Store, whole_seconds};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::Notify;

use super::config::{Config, WebhookConfig, WebhookEvent, WebhookSettings};
use super::dto::rfc3339;
use super::telemetry::{Severity, server_failure};

/// The configured endpoints, the wake-up of the deliverer, and the per-process memory that
/// keeps repeating events (`device.high_risk`, `attestation.failure_spike`) from flooding.
#[derive(Debug)]
pub struct Webhooks {
    endpoints: Vec<WebhookConfig>,
    settings: WebhookSettings,
    wake: Notify,
    fired: Mutex<HashMap<String, OffsetDateTime>>,
    /// Per app, the times and codes of its latest failed attestations: at most
    /// `failure_spike_threshold` each, all within `failure_spike_window`.
    recent_failures: Mutex<HashMap<String, VecDeque<(OffsetDateTime, String)>>>,
}

/// An app's failed attestations in the spike window, once they reached the threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spike {
    /// How many (the threshold).
    pub failures: usize,
    /// By code.
    pub by_code: BTreeMap<String, u64>,
}

/// The most remembered repeat keys; beyond it the memory is cleared (at worst an event repeats).
const MAX_REMEMBERED: usize = 100_000;

impl Webhooks {
    /// From the configuration.
    pub fn new(config: &Config) -> Self {
        Self {
            endpoints: config.webhooks.clone(),
            settings: config.webhook_settings.clone(),
            wake: Notify::new(),
            fired: Mutex::new(HashMap::new()),
            recent_failures: Mutex::new(HashMap::new()),
        }
    }

    /// Detection and retry settings.
    pub fn settings(&self) -> &WebhookSettings {
        &self.settings
    }

    /// Whether any endpoint subscribes to `event` (detection is skipped otherwise).
    pub fn wants(&self, event: WebhookEvent) -> bool {
        self.endpoints.iter().any(|e| e.events.contains(&event))
    }

    /// The endpoint with this URL.
    pub fn endpoint(&self, url: &str) -> Option<&WebhookConfig> {
        self.endpoints.iter().find(|e| e.url == url)
    }

    /// Whether an event keyed `key` may fire now: `true` at most once per `period` per key.
    pub fn once_per(&self, key: String, period: Duration, now: OffsetDateTime) -> bool {
        let mut fired = self
            .fired
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let period = time::Duration::try_from(period).unwrap_or(time::Duration::DAY);
        if fired.get(&key).is_some_and(|at| now - *at < period) {
            return false;
        }
        if fired.len() >= MAX_REMEMBERED {
            fired.clear();
        }
        fired.insert(key, now);
        true
    }

    /// Counts a failed attestation of `app_id` (a configured app: the map has one entry per app)
    /// at `now`; the spike when the app's failures in the window reached the threshold. Memory
    /// stays at the threshold's number of entries per app, whatever the rate of failures.
    pub fn count_failure(&self, app_id: &str, code: &str, now: OffsetDateTime) -> Option<Spike> {
        let threshold =
            usize::try_from(self.settings.failure_spike_threshold).unwrap_or(usize::MAX);
        let window = time::Duration::try_from(self.settings.failure_spike_window)
            .unwrap_or(time::Duration::DAY);
        let mut apps = self
            .recent_failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let recent = apps.entry(app_id.to_owned()).or_default();
        recent.push_back((now, code.to_owned()));
        while recent.len() > threshold || recent.front().is_some_and(|(at, _)| now - *at >= window)
        {
            recent.pop_front();
        }
        (recent.len() >= threshold).then(|| {
            let mut by_code = BTreeMap::new();
            for (_, code) in recent.iter() {
                *by_code.entry(code.clone()).or_insert(0) += 1;
            }
            Spike {
                failures: recent.len(),
                by_code,
            }
        })
    }

    /// Queues `event` for every endpoint subscribed to it and wakes the deliverer. A failure to
    /// queue is logged, never returned: events must not fail the request that raised them.
    pub async fn emit(
        &self,
        store: &AnyStore,
        event: WebhookEvent,
        app_id: &str,
        data: Value,
        now: OffsetDateTime,
    ) {
        let endpoints: Vec<&WebhookConfig> = self
            .endpoints
            .iter()
            .filter(|e| e.events.contains(&event))
            .collect();
        if endpoints.is_empty() {
            return;
        }
        let Some(event_id) = event_id() else {
            tracing::error!(event = %event, "no randomness for a webhook event id");
            return;
        };
        let created_at = whole_seconds(now);
        let payload = json!({
            "id": event_id,
            "event": event.as_str(),
            "createdAt": rfc3339(created_at),
            "appId": app_id,
            "data": data,
        })
        .to_string();
        for endpoint in endpoints {
            let delivery = NewWebhookDelivery {
                event_id: event_id.clone(),
                event: event.as_str().to_owned(),
                endpoint: endpoint.url.clone(),
                payload: payload.clone(),
                created_at,
            };
            if let Err(error) = store.enqueue_webhook(&delivery).await {
                server_failure(
                    Severity::Dependency,
                    "could not queue a webhook event",
                    &error,
                );
            }
        }
        self.wake.notify_one();
    }

    /// Completes when an event was queued since the last call.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}

fn event_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(format!("evt_{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// `sha256=<hex>` of HMAC-SHA256 over `body` with `secret`: the `X-Attestd-Signature` value.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    format!("sha256={}", hex::encode(hmac::sign(&key, body).as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn repeating_events_fire_once_per_period() {
        let hooks = Webhooks::new(&Config::new("sqlite::memory:"));
        let now = OffsetDateTime::UNIX_EPOCH;
        let period = Duration::from_secs(60);
        assert!(hooks.once_per("a".into(), period, now));
        assert!(!hooks.once_per("a".into(), period, now + time::Duration::seconds(59)));
        assert!(hooks.once_per("b".into(), period, now));
        assert!(hooks.once_per("a".into(), period, now + time::Duration::seconds(60)));
        assert!(!hooks.wants(WebhookEvent::DeviceNew));
    }

    #[test]
    fn a_spike_is_the_threshold_of_failures_within_the_window_in_bounded_memory() {
        let mut config = Config::new("sqlite::memory:");
        config.webhook_settings.failure_spike_threshold = 3;
        config.webhook_settings.failure_spike_window = Duration::from_secs(60);
        let hooks = Webhooks::new(&config);
        let at = |seconds: i64| OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(seconds);
        assert_eq!(hooks.count_failure("app", "nonce_mismatch", at(0)), None);
        assert_eq!(hooks.count_failure("app", "nonce_mismatch", at(10)), None);
        assert_eq!(hooks.count_failure("other", "malformed", at(11)), None);
        let spike = hooks
            .count_failure("app", "malformed", at(20))
            .expect("spike");
        assert_eq!(spike.failures, 3);
        assert_eq!(
            spike.by_code,
            BTreeMap::from([
                ("malformed".to_owned(), 1),
                ("nonce_mismatch".to_owned(), 2)
            ])
        );
        // The first two left the window: one more is not a spike.
        assert_eq!(hooks.count_failure("app", "malformed", at(75)), None);
        for second in 0..10_000 {
            hooks.count_failure("app", "malformed", at(100 + second));
        }
        let apps = hooks.recent_failures.lock().unwrap();
        assert_eq!(apps["app"].len(), 3, "never more than the threshold");
    }
}
