//! Rate limits: per client address on every route but `/healthz`, `/readyz` and `/metrics`,
//! and per key on assertions. A refused request is answered 429 `rate_limited` with
//! `Retry-After` and costs no database round trip.
//!
//! **Per address** (`rate_limits.address`): one token per request, taken before the request is
//! read. IPv6 addresses are limited by their /64, which one subscriber usually holds whole.
//! Requests whose address is unknown are not limited (the server always knows the connection's).
//!
//! **Per key** (`rate_limits.key`): assertions (`/v1/assertions`, `/v1/tokens`) of one key. A
//! key's bucket is only *charged* by assertions that proved possession of the key (see
//! `flows::Proof`), and only *checked* before the work starts: a stranger who knows a keyId
//! and sends garbage in its name cannot drain the bucket of the device that holds it (the
//! address limit bounds the stranger). It bounds how often one genuine key signs, e.g. a
//! jailbroken device serving signatures to many clients.
//!
//! **Across instances** the limits are split: with `share = "instances"` (the default) each
//! instance enforces `1/N` of each rate and burst, `N` being the instances that wrote their
//! heartbeat row in the shared database within the last three heartbeats (background task; no
//! request waits for it). See docs/operations.md, "Rate limits", for the error bound.

mod buckets;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use attest_core::apple::KeyId;
use attest_store::Store;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use buckets::{BucketTable, Rate};

use super::config::{LimitShare, RateLimitSettings};
use super::context::ClientIp;
use super::error::ApiError;
use super::routes::hosted::HostedError;
use super::state::AppState;

/// Routes never limited: probes and scrapes must answer while a flood is refused.
pub const EXEMPT: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The limiter of one instance.
#[derive(Debug)]
pub struct RateLimits {
    settings: RateLimitSettings,
    addresses: BucketTable<IpAddr>,
    keys: BucketTable<[u8; 32]>,
    /// The instances sharing the limits (at least 1).
    instances: AtomicU32,
    /// This instance's row in the `instances` table.
    instance_id: String,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `rate_limits.address`.
    Address,
    /// `rate_limits.key`.
    Key,
}

impl Limit {
    /// `address` or `key`, in `details.limit` and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Address => "address",
            Self::Key => "key",
        }
    }
}

impl RateLimits {
    /// Limits as configured, for one instance until the first heartbeat says otherwise.
    pub fn new(settings: &RateLimitSettings) -> Self {
        let mut id = [0u8; 12];
        // An id only tells instances apart; a failed RNG leaves zeros and, at worst, two
        // instances counted as one.
        let _ = SystemRandom::new().fill(&mut id);
        Self {
            addresses: BucketTable::new(settings.max_tracked),
            keys: BucketTable::new(settings.max_tracked),
            settings: settings.clone(),
            instances: AtomicU32::new(1),
            instance_id: format!("attestd-{}", hex::encode(id)),
        }
    }

    /// The instances the limits are split between.
    pub fn instances(&self) -> u32 {
        self.instances.load(Ordering::Relaxed)
    }

    fn rate(&self, configured: Option<Rate>) -> Option<Rate> {
        let rate = configured?;
        Some(match self.settings.share {
            LimitShare::Instances => rate.share(self.instances()),
            LimitShare::None => rate,
        })
    }

    /// Takes a token for a request from `ip`.
    pub fn check_address(&self, ip: IpAddr, now: Instant) -> Result<(), ApiError> {
        let Some(rate) = self.rate(self.settings.address) else {
            return Ok(());
        };
        self.addresses
            .take(limited_address(ip), rate, now)
            .map_err(|wait| refused(Limit::Address, wait))
    }

    /// Whether `key_id` may assert now (nothing is taken: see [`charge_key`](Self::charge_key)).
    pub fn check_key(&self, key_id: KeyId, now: Instant) -> Result<(), ApiError> {
        let Some(rate) = self.rate(self.settings.key) else {
            return Ok(());
        };
        self.keys
            .peek(key_id.0, rate, now)
            .map_err(|wait| refused(Limit::Key, wait))
    }

    /// Counts an assertion that proved possession of `key_id`.
    pub fn charge_key(&self, key_id: KeyId, now: Instant) {
        if let Some(rate) = self.rate(self.settings.key) {
            self.keys.charge(key_id.0, rate, now);
        }
    }

    /// Forgets the buckets that refilled (bounded anyway; this returns their memory sooner).
    fn sweep(&self, now: Instant) {
        if let Some(rate) = self.rate(self.settings.address) {
            self.addresses.sweep(rate, now);
        }
        if let Some(rate) = self.rate(self.settings.key) {
            self.keys.sweep(rate, now);
        }
    }

    /// Whether the instances must find each other.
    fn shared(&self) -> bool {
        self.settings.share == LimitShare::Instances
            && (self.settings.address.is_some() || self.settings.key.is_some())
    }

    /// Writes this instance's heartbeat and reads how many instances share the limits.
    pub async fn heartbeat(&self, store: &impl Store) {
        if !self.shared() {
            return;
        }
        let now = super::flows::now();
        let interval =
            time::Duration::try_from(self.settings.heartbeat).unwrap_or(time::Duration::MINUTE);
        match store
            .heartbeat(&self.instance_id, now, now - interval * 3)
            .await
        {
            Ok(live) => {
                let live = u32::try_from(live.max(1)).unwrap_or(u32::MAX);
                let before = self.instances.swap(live, Ordering::Relaxed);
                if before != live {
                    tracing::info!(instances = live, "rate limits now split between instances");
                }
                metrics::gauge!("attestd_rate_limit_instances").set(f64::from(live));
            }
            Err(error) => {
                // The last count stands: limits stay as split as they were.
                tracing::warn!(%error, "could not write the rate-limit heartbeat");
            }
        }
    }

    /// Removes this instance's heartbeat (it is stopping).
    pub async fn leave(&self, store: &impl Store) {
        if self.shared()
            && let Err(error) = store.leave(&self.instance_id).await
        {
            tracing::debug!(%error, "could not remove the rate-limit heartbeat");
        }
    }
}

/// The key an address is limited by: itself, or its /64 for IPv6.
fn limited_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(prefix.into())
        }
    }
}

fn refused(limit: Limit, wait: Duration) -> ApiError {
    metrics::counter!("attestd_rate_limited_total", "limit" => limit.as_str()).increment(1);
    // Whole seconds, rounded up, at least one (Retry-After has no fractions).
    let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::RateLimited {
        limit: limit.as_str(),
        retry_after_seconds: retry_after.max(1),
    }
}

/// Middleware: the per-address limit, before anything of the request is read.
pub async fn limit_addresses(
    State(state): State<Arc<AppState>>,
    ClientIp(client_ip): ClientIp,
    request: Request,
    next: Next,
) -> Response {
    if let Some(ip) = client_ip
        && !EXEMPT.contains(&request.uri().path())
        && let Err(error) = state.limits.check_address(ip, Instant::now())
    {
        // The hosted-compatible routes answer their own error shape, this refusal included.
        if request.uri().path().starts_with("/api/v1/") {
            return HostedError(error).into_response();
        }
        return error.into_response();
    }
    next.run(request).await
}

/// Background: the heartbeat (when the limits are shared) and a sweep of idle buckets, every
/// `heartbeat` interval, until aborted.
pub async fn maintain(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(state.limits.settings.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        state.limits.heartbeat(&state.store).await;
        state.limits.sweep(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_are_limited_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(limited_address(a), limited_address(b));
        assert_ne!(limited_address(a), limited_address(c));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(limited_address(v4), v4);
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let seconds = |wait| match refused(Limit::Key, wait) {
            ApiError::RateLimited {
                retry_after_seconds,
                ..
            } => retry_after_seconds,
            _ => unreachable!(),
        };
        assert_eq!(seconds(Duration::from_millis(100)), 1);
        assert_eq!(seconds(Duration::from_millis(1000)), 1);
        assert_eq!(seconds(Duration::from_millis(1001)), 2);
        assert_eq!(seconds(Duration::ZERO), 1);
    }
}
