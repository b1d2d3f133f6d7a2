//! The deliverer: claims due deliveries from the outbox, POSTs them signed, and records each
//! attempt. Failed attempts are retried with exponential backoff up to `max_attempts`.
//!
//! Every node runs one; the store hands each due delivery to one node at a time (a claim is a
//! lease, so the deliveries of a node that dies are retried by another when the lease lapses).
//! Delivery is at least once: a receiver that answered 2xx too late (after the lease) may see
//! an event twice, and should dedupe on the event id.

use std::sync::Arc;
use std::time::Duration;

use attest_store::{
    DeliveryAttempt, NextAttempt, Store, StoreError, WebhookDelivery, whole_seconds,
};
use time::OffsetDateTime;

use super::signature;
use crate::server::config::WebhookSettings;
use crate::server::state::AppState;

/// Deliveries claimed per round; they are sent concurrently.
const BATCH: u32 = 16;
/// A claim outlives one attempt by this much, so a slow attempt is not claimed twice.
const LEASE_MARGIN: Duration = Duration::from_secs(60);
/// Longest error text kept in the delivery log.
const MAX_ERROR_CHARS: usize = 300;

/// Runs until `stop` turns true; attempts in flight then finish (each is bounded by the
/// attempt timeout), so a graceful shutdown leaves no delivery claimed.
pub async fn run(state: Arc<AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let settings = state.webhooks.settings().clone();
    let client = match reqwest::Client::builder()
        .timeout(settings.attempt_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the webhook HTTP client; webhooks are off");
            return;
        }
    };
    loop {
        while !*stop.borrow() {
            match deliver_due(&state, &client, &settings).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "could not claim webhook deliveries");
                    break;
                }
            }
        }
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            () = state.webhooks.woken() => {}
            () = tokio::time::sleep(settings.poll_interval) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Claims one batch and delivers it; returns how many were claimed.
async fn deliver_due(
    state: &Arc<AppState>,
    client: &reqwest::Client,
    settings: &WebhookSettings,
) -> Result<usize, StoreError> {
    let now = whole_seconds(OffsetDateTime::now_utc());
    let lease = settings.attempt_timeout + LEASE_MARGIN;
    let lease_until = now + time::Duration::try_from(lease).unwrap_or(time::Duration::MINUTE);
    let claimed = state
        .store
        .claim_due_webhooks(now, lease_until, BATCH)
        .await?;
    let count = claimed.len();
    let mut attempts = tokio::task::JoinSet::new();
    for delivery in claimed {
        let (state, client, settings) = (Arc::clone(state), client.clone(), settings.clone());
        attempts.spawn(async move { attempt(&state, &client, &settings, delivery).await });
    }
    attempts.join_all().await;
    Ok(count)
}

async fn attempt(
    state: &Arc<AppState>,
    client: &reqwest::Client,
    settings: &WebhookSettings,
    delivery: WebhookDelivery,
) {
    let number = delivery.attempts.saturating_add(1);
    let (http_status, error) = match state.webhooks.endpoint(&delivery.endpoint) {
        None => (None, Some("endpoint no longer configured".to_owned())),
        Some(endpoint) => post(client, endpoint.secret.expose(), &delivery).await,
    };
    let at = whole_seconds(OffsetDateTime::now_utc());
    let configured = state.webhooks.endpoint(&delivery.endpoint).is_some();
    let next = if error.is_none() {
        NextAttempt::Delivered
    } else if number >= settings.max_attempts || !configured {
        NextAttempt::GiveUp
    } else {
        NextAttempt::RetryAt(at + backoff(settings, number))
    };
    let result = match next {
        NextAttempt::Delivered => "delivered",
        NextAttempt::RetryAt(_) => "retry",
        NextAttempt::GiveUp => "failed",
    };
    metrics::counter!("attestd_webhook_deliveries_total", "event" => delivery.event.clone(), "result" => result)
        .increment(1);
    if let Some(error) = &error {
        tracing::info!(
            id = delivery.id,
            event = %delivery.event,
            attempt = number,
            %error,
            result,
            "webhook attempt failed"
        );
    }
    let record = DeliveryAttempt {
        at,
        http_status,
        error,
        next,
    };
    if let Err(error) = state
        .store
        .record_webhook_attempt(delivery.id, &record)
        .await
    {
        tracing::warn!(%error, id = delivery.id, "could not record a webhook attempt");
    }
}

/// POSTs the delivery; `(status, None)` on 2xx, else the status (if any) and why it failed.
async fn post(
    client: &reqwest::Client,
    secret: &str,
    delivery: &WebhookDelivery,
) -> (Option<u16>, Option<String>) {
    let timestamp = OffsetDateTime::now_utc().unix_timestamp().to_string();
    let response = client
        .post(&delivery.endpoint)
        .header("content-type", "application/json")
        .header("user-agent", concat!("attestd/", env!("CARGO_PKG_VERSION")))
        .header("x-attestd-event", delivery.event.as_str())
        .header("x-attestd-event-id", delivery.event_id.as_str())
        .header("x-attestd-delivery", delivery.id.to_string())
        .header("x-attestd-timestamp", timestamp)
        .header(
            "x-attestd-signature",
            signature(secret, delivery.payload.as_bytes()),
        )
        .body(delivery.payload.clone())
        .send()
        .await;
    match response {
        Ok(response) if response.status().is_success() => (Some(response.status().as_u16()), None),
        Ok(response) => {
            let status = response.status().as_u16();
            (Some(status), Some(format!("HTTP {status}")))
        }
        Err(error) => {
            let text: String = error.to_string().chars().take(MAX_ERROR_CHARS).collect();
            (None, Some(text))
        }
    }
}

/// The wait after failed attempt `number` (1-based): `retry_base * 2^(number - 1)`, at most
/// `retry_max`, at least one second (the store keeps whole seconds).
pub fn backoff(settings: &WebhookSettings, number: u32) -> time::Duration {
    let factor = 2u32.saturating_pow(number.saturating_sub(1));
    let wait = settings
        .retry_base
        .saturating_mul(factor)
        .min(settings.retry_max)
        .max(Duration::from_secs(1));
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let settings = WebhookSettings {
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(60),
            ..WebhookSettings::default()
        };
        let waits: Vec<i64> = (1..=6)
            .map(|n| backoff(&settings, n).whole_seconds())
            .collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
        assert_eq!(backoff(&settings, u32::MAX).whole_seconds(), 60);
        let fast = WebhookSettings {
            retry_base: Duration::from_millis(100),
            ..settings
        };
        assert_eq!(backoff(&fast, 1).whole_seconds(), 1, "at least a second");
    }
}
