//! The receipt refresh scheduler: one tokio task per instance, apart from request handling.
//!
//! Each round it enrols keys it has not seen (their first refresh follows their `ATTEST`
//! receipt, see [`super::schedule`]), claims due keys from the store (a lease: see
//! `attest_store::RefreshStore`, so that instances sharing a database never refresh the same
//! key twice), and exchanges their receipts with Apple, at most `concurrency` at once and
//! `rate_per_sec` new ones per second, each exchange within its own time budget. The outcome
//! decides the next time (success, 304, 429, 5xx, 4xx: see docs/apple.md) and is stored with
//! the key, so a restarted instance carries on where the last one stopped. On shutdown it
//! finishes (for a bounded time) the exchanges in flight and hands back the keys it claimed
//! but did not start.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use attest_apple::{Error, ReceiptRefresh, RetryPolicy};
use attest_core::UnixTime;
use attest_store::{
    AnyStore, ReceiptRefreshState, ReceiptUpdate, RefreshAttempt, RefreshEnrollment, RefreshStore,
    RefreshedReceipt, Store, StoreError,
};
use time::OffsetDateTime;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::config::RefreshSettings;
use super::schedule::{self, ReceiptTimes, random_jitter};
use crate::server::state::AppState;

/// `attestd_receipt_refresh_total{result}`: exchanges by outcome (`refreshed`,
/// `not_modified`, `key_revoked` or the error code).
pub const REFRESH_COUNTER: &str = "attestd_receipt_refresh_total";
/// `attestd_receipt_refresh_backlog`: keys due now (all instances).
pub const BACKLOG_GAUGE: &str = "attestd_receipt_refresh_backlog";

/// Keys looked at per enrolment query.
const ENROLL_PAGE: u32 = 500;
/// Enrolment queries per round at most (the rest waits for the next round).
const ENROLL_PAGES_PER_ROUND: usize = 20;
/// Keys created this long before the last round are looked at again (clocks of instances
/// differ a little); older stragglers are found by the hourly full sweep.
const ENROLL_OVERLAP: Duration = Duration::from_secs(5 * 60);
/// How often every key is checked for missing refresh state.
const FULL_SWEEP_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// Longest wait on shutdown for exchanges in flight.
const MAX_DRAIN: Duration = Duration::from_secs(15);

/// The running scheduler of one server.
#[derive(Debug)]
pub struct SchedulerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SchedulerHandle {
    /// Stops claiming, lets exchanges in flight finish (for a bounded time), hands back the
    /// keys claimed but not started, and waits for all that.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await
            && error.is_panic()
        {
            tracing::error!("the receipt refresh scheduler panicked");
        }
    }
}

/// Starts the scheduler if credentials are configured and refresh is not turned off; says at
/// start why it does not run otherwise.
pub fn start(state: &Arc<AppState>) -> Option<SchedulerHandle> {
    let config = state.apple.config();
    if !state.apple.is_configured() {
        tracing::info!(
            "receipt refresh disabled: no Apple credentials ([apple] team_id, key_id and \
             private_key_path); risk metrics will not be fetched"
        );
        return None;
    }
    if !config.refresh_active() {
        tracing::info!("receipt refresh turned off ([apple] refresh_enabled = false)");
        return None;
    }
    let owner: Arc<str> = Arc::from(instance_name());
    let settings = config.refresh.clone();
    tracing::info!(
        owner = %owner,
        concurrency = settings.concurrency,
        rate_per_sec = settings.rate_per_sec,
        "receipt refresh scheduler started"
    );
    metrics::describe_counter!(
        REFRESH_COUNTER,
        "Receipt exchanges with Apple by result (refreshed, not_modified, key_revoked or the \
         error code)"
    );
    metrics::describe_gauge!(BACKLOG_GAUGE, "Device keys whose receipt refresh is due");
    let (stop, stopped) = watch::channel(false);
    let worker = Arc::new(Worker {
        state: Arc::clone(state),
        owner,
        policy: config.retry,
        budget: config.exchange_budget(),
        settings,
    });
    let task = tokio::spawn(run(worker, stopped));
    Some(SchedulerHandle { stop, task })
}

/// `attestd-<pid>-<random>`: unique per process start, short enough for the lease column.
fn instance_name() -> String {
    let mut random = [0u8; 6];
    if aws_lc_rs::rand::fill(&mut random).is_err() {
        // Only uniqueness matters; should the system RNG fail, the clock will do.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        return format!("attestd-{}-{nanos:x}", std::process::id());
    }
    format!("attestd-{}-{}", std::process::id(), hex::encode(random))
}

/// What every exchange task shares.
struct Worker {
    state: Arc<AppState>,
    owner: Arc<str>,
    settings: RefreshSettings,
    policy: RetryPolicy,
    /// The longest one exchange may take, retries included.
    budget: Duration,
}

impl Worker {
    fn store(&self) -> &AnyStore {
        &self.state.store
    }
}

/// The loop: housekeeping, then claim and start exchanges as slots and the rate allow.
async fn run(worker: Arc<Worker>, mut stopped: watch::Receiver<bool>) {
    let settings = worker.settings.clone();
    let slots = Arc::new(Semaphore::new(settings.concurrency));
    let mut tasks = JoinSet::new();
    let mut queue: VecDeque<ReceiptRefreshState> = VecDeque::new();
    let mut enroller = Enroller::new();
    let mut pacer = Pacer::new(settings.rate_per_sec);
    let mut next_housekeeping = Instant::now();

    loop {
        while let Some(done) = tasks.try_join_next() {
            if let Err(error) = done
                && error.is_panic()
            {
                tracing::error!("a receipt refresh task panicked");
            }
        }
        if *stopped.borrow() {
            break;
        }
        if Instant::now() >= next_housekeeping {
            housekeeping(&worker, &mut enroller).await;
            next_housekeeping = Instant::now() + settings.poll_interval;
        }
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stopped.changed() => break,
        };
        if queue.is_empty() {
            let want = u32::try_from(slots.available_permits().saturating_add(1))
                .unwrap_or(u32::MAX)
                .min(settings.batch_size);
            let now = OffsetDateTime::now_utc();
            let lease_until = schedule::add(now, settings.lease);
            match worker
                .store()
                .claim_due_refreshes(now, want, lease_until, &worker.owner)
                .await
            {
                Ok(claimed) => queue.extend(claimed),
                Err(error) => tracing::warn!(%error, "could not claim due receipt refreshes"),
            }
        }
        if queue.is_empty() {
            drop(permit);
            let idle_until = next_housekeeping.max(Instant::now() + settings.poll_interval / 4);
            tokio::select! {
                () = tokio::time::sleep_until(idle_until) => {}
                _ = stopped.changed() => break,
            }
            continue;
        }
        if let Some(slot) = pacer.next_slot() {
            tokio::select! {
                () = tokio::time::sleep_until(slot) => {}
                _ = stopped.changed() => break,
            }
        }
        let Some(claim) = queue.pop_front() else {
            continue;
        };
        let worker = Arc::clone(&worker);
        tasks.spawn(async move {
            let _slot = permit;
            worker.refresh(claim).await;
        });
    }

    // Shutdown: let exchanges in flight end, but not for long (Apple may be down).
    let drain = worker.budget.min(MAX_DRAIN);
    let drained =
        tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            in_flight = tasks.len(),
            "receipt refreshes still running at shutdown were abandoned; their keys are due again"
        );
        tasks.shutdown().await;
    }
    match worker.store().release_refresh_claims(&worker.owner).await {
        Ok(0) => {}
        Ok(released) => tracing::info!(released, "unstarted receipt refreshes handed back"),
        Err(error) => tracing::warn!(
            %error,
            "could not hand back claimed receipt refreshes; they are due again when their \
             leases expire"
        ),
    }
    tracing::info!(owner = %worker.owner, "receipt refresh scheduler stopped");
}

/// Enrols new keys and publishes the backlog.
async fn housekeeping(worker: &Worker, enroller: &mut Enroller) {
    let now = OffsetDateTime::now_utc();
    match enroller.round(worker.store(), &worker.settings, now).await {
        Ok(0) => {}
        Ok(enrolled) => tracing::debug!(enrolled, "keys added to the receipt refresh schedule"),
        Err(error) => tracing::warn!(%error, "could not enrol new keys for receipt refresh"),
    }
    match worker.store().count_due_refreshes(now).await {
        Ok(due) => metrics::gauge!(BACKLOG_GAUGE).set(due as f64),
        Err(error) => tracing::debug!(%error, "could not count due receipt refreshes"),
    }
}

/// Finds keys without refresh state, newest part of the table first, all of it hourly.
struct Enroller {
    cursor: OffsetDateTime,
    next_full_sweep: OffsetDateTime,
}

impl Enroller {
    fn new() -> Self {
        Self {
            cursor: OffsetDateTime::UNIX_EPOCH,
            next_full_sweep: OffsetDateTime::UNIX_EPOCH,
        }
    }

    async fn round(
        &mut self,
        store: &AnyStore,
        settings: &RefreshSettings,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        if now >= self.next_full_sweep {
            self.cursor = OffsetDateTime::UNIX_EPOCH;
            self.next_full_sweep = schedule::add(now, FULL_SWEEP_INTERVAL);
        }
        let mut enrolled = 0;
        for _ in 0..ENROLL_PAGES_PER_ROUND {
            let page = store
                .unenrolled_device_keys(self.cursor, ENROLL_PAGE)
                .await?;
            for candidate in &page {
                let times = ReceiptTimes::of(&candidate.receipt);
                let next = times.map(|times| {
                    schedule::first_refresh(
                        &times,
                        candidate.created_at,
                        now,
                        settings,
                        random_jitter(),
                    )
                });
                if next.is_none() {
                    let key_id = hex::encode(candidate.key_id);
                    if candidate.receipt.is_empty() {
                        tracing::debug!(key_id, "key without a receipt: nothing to refresh");
                    } else {
                        tracing::warn!(
                            key_id,
                            "stored receipt is unreadable; this key's receipt is never refreshed"
                        );
                    }
                }
                let times = times.unwrap_or_default();
                let enrollment = RefreshEnrollment {
                    key_id: candidate.key_id,
                    next_refresh_at: next,
                    receipt_created_at: times.created_at,
                    receipt_not_before: times.not_before,
                    receipt_expires_at: times.expires_at,
                    enrolled_at: now,
                };
                match store.enroll_refresh(&enrollment).await {
                    Ok(true) => enrolled += 1,
                    // Enrolled by another instance meanwhile, or deleted.
                    Ok(false) | Err(StoreError::Invalid(_)) => {}
                    Err(error) => return Err(error),
                }
            }
            match page.last() {
                Some(last) if page.len() == ENROLL_PAGE as usize => self.cursor = last.created_at,
                _ => {
                    self.cursor = now
                        .checked_sub(time::Duration::try_from(ENROLL_OVERLAP).unwrap_or_default())
                        .unwrap_or(now);
                    break;
                }
            }
        }
        Ok(enrolled)
    }
}

/// Spaces exchange starts `1 / rate` apart.
struct Pacer {
    gap: Option<Duration>,
    next: Instant,
}

impl Pacer {
    fn new(rate_per_sec: f64) -> Self {
        let gap = (rate_per_sec > 0.0 && rate_per_sec.is_finite())
            .then(|| Duration::from_secs_f64((1.0 / rate_per_sec).min(86_400.0)));
        Self {
            gap,
            next: Instant::now(),
        }
    }

    /// When the next exchange may start, if that is later than now.
    fn next_slot(&mut self) -> Option<Instant> {
        let gap = self.gap?;
        let now = Instant::now();
        let slot = self.next.max(now);
        self.next = slot + gap;
        (slot > now).then_some(slot)
    }
}

/// How an exchange ended, for the store and the metric.
struct Outcome {
    status: &'static str,
    succeeded: bool,
    next: Option<OffsetDateTime>,
}

impl Worker {
    /// One key: read it, exchange its receipt, store the result, schedule the next exchange.
    async fn refresh(&self, claim: ReceiptRefreshState) {
        let key_id = claim.key_id;
        let device = match self.store().device_key(key_id).await {
            Ok(Some(device)) => device,
            // Deleted meanwhile: its refresh state went with it.
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "could not read a key to refresh; retried when its lease ends");
                return;
            }
        };
        if device.revoked_at.is_some() {
            let outcome = Outcome {
                status: "key_revoked",
                succeeded: true,
                next: None,
            };
            self.finish(key_id, outcome).await;
            return;
        }
        let Some(client) = self.state.apple.receipt_client(device.environment) else {
            return;
        };
        let receipt = match self.store().device_key_receipt(key_id).await {
            Ok(Some(receipt)) => receipt,
            // Deleted meanwhile, or not an App Attest key (never enrolled: no receipt).
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "could not read a receipt to refresh; retried when its lease ends");
                return;
            }
        };
        let health = self.state.apple.health();
        let exchange = self.policy.run(|| async {
            let result = client.refresh(&receipt, UnixTime::now()).await;
            health.observe(&result);
            result
        });
        let result = match tokio::time::timeout(self.budget, exchange).await {
            Ok(result) => result,
            Err(_) => {
                let timed_out: Result<ReceiptRefresh, Error> = Err(Error::Transport(
                    "the exchange took longer than its time budget".to_owned(),
                ));
                health.observe(&timed_out);
                timed_out
            }
        };

        let now = OffsetDateTime::now_utc();
        let jitter = random_jitter();
        let settings = &self.settings;
        let failures = claim.attempts.saturating_add(1);
        let outcome = match result {
            Ok(ReceiptRefresh::Refreshed { receipt, verified }) => {
                let fields = &verified.receipt;
                let times = ReceiptTimes {
                    created_at: Some(fields.creation_time),
                    not_before: fields.not_before,
                    expires_at: fields.expiration_time,
                };
                let new = RefreshedReceipt {
                    receipt,
                    created_at: fields.creation_time,
                    not_before: fields.not_before,
                    expires_at: fields.expiration_time,
                    risk_metric: fields.risk_metric.map(i64::from),
                    received_at: now,
                };
                match self.store().store_refreshed_receipt(key_id, &new).await {
                    Ok(ReceiptUpdate::Stored) => tracing::debug!(
                        key_id = %hex::encode(key_id),
                        risk_metric = ?new.risk_metric,
                        "receipt refreshed"
                    ),
                    Ok(ReceiptUpdate::Stale) => tracing::debug!(
                        key_id = %hex::encode(key_id),
                        "a newer receipt is already stored"
                    ),
                    Err(error) => {
                        tracing::warn!(%error, "could not store a refreshed receipt; retried when its lease ends");
                        return;
                    }
                }
                Outcome {
                    status: "refreshed",
                    succeeded: true,
                    next: Some(schedule::after_refresh(&times, now, settings, jitter)),
                }
            }
            Ok(ReceiptRefresh::NotModified) => Outcome {
                status: "not_modified",
                succeeded: true,
                next: Some(schedule::after_not_modified(
                    claim.receipt_not_before,
                    now,
                    settings,
                    jitter,
                )),
            },
            Err(error) => {
                let next = match &error {
                    Error::RateLimited { retry_after } => Some(schedule::after_rate_limit(
                        *retry_after,
                        failures,
                        now,
                        settings,
                        jitter,
                    )),
                    Error::ServerError { .. }
                    | Error::Transport(_)
                    | Error::UnexpectedStatus { .. }
                    | Error::MalformedResponse(_) => {
                        Some(schedule::after_failure(failures, now, settings, jitter))
                    }
                    // Nothing to send, ever: the stored receipt does not parse.
                    Error::InvalidPreviousReceipt(_) => None,
                    _ => Some(schedule::after_rejection(failures, now, settings, jitter)),
                };
                log_failure(key_id, &error, failures);
                Outcome {
                    status: error.code(),
                    succeeded: false,
                    next,
                }
            }
        };
        self.finish(key_id, outcome).await;
    }

    /// Counts the outcome and stores it with the next time; ends the lease.
    async fn finish(&self, key_id: attest_store::KeyId, outcome: Outcome) {
        metrics::counter!(REFRESH_COUNTER, "result" => outcome.status).increment(1);
        let attempt = RefreshAttempt {
            at: OffsetDateTime::now_utc(),
            status: outcome.status.to_owned(),
            succeeded: outcome.succeeded,
        };
        match self
            .store()
            .record_refresh(key_id, &self.owner, &attempt, outcome.next)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                key_id = %hex::encode(key_id),
                "receipt refresh outcome dropped: the lease ran out and another instance took \
                 the key over"
            ),
            Err(error) => tracing::warn!(%error, "could not record a receipt refresh"),
        }
    }
}

fn log_failure(key_id: attest_store::KeyId, error: &Error, failures: u32) {
    let key_id = hex::encode(key_id);
    match error {
        // Apple is unwell: the health state logs the outage once, not once per key.
        Error::ServerError { .. } | Error::Transport(_) | Error::RateLimited { .. } => {
            tracing::debug!(
                key_id,
                code = error.code(),
                failures,
                "receipt refresh failed"
            );
        }
        Error::Unauthorized | Error::Credentials(_) => tracing::error!(
            key_id,
            code = error.code(),
            "Apple refused our credentials: check [apple] team_id, key_id and that the key \
             has DeviceCheck enabled"
        ),
        _ => {
            tracing::warn!(key_id, code = error.code(), %error, failures, "receipt refresh rejected")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_are_unique_labels() {
        let a = instance_name();
        let b = instance_name();
        assert_ne!(a, b);
        assert!(a.starts_with("attestd-") && a.len() <= attest_store::MAX_REFRESH_LABEL_LEN);
    }

    #[test]
    fn the_pacer_spaces_starts() {
        let mut pacer = Pacer::new(4.0);
        assert_eq!(pacer.next_slot(), None, "the first start is immediate");
        let second = pacer.next_slot().expect("then wait");
        assert!(second > Instant::now());
        let third = pacer.next_slot().expect("and wait more");
        assert_eq!(third - second, Duration::from_millis(250));
        assert_eq!(Pacer::new(0.0).next_slot(), None, "0 = unlimited");
    }
}
