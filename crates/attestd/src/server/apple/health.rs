//! Whether Apple answers: degraded after N consecutive 5xx or transport failures, healthy again
//! at the next answer. Shown by `/readyz`, `/healthz` and the `attestd_apple_degraded` gauge.

use std::sync::Mutex;

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::server::dto::rfc3339;

/// The gauge: 1 while Apple is degraded, 0 otherwise.
pub const DEGRADED_GAUGE: &str = "attestd_apple_degraded";

/// Apple's health as seen from this instance's calls.
#[derive(Debug)]
pub struct AppleHealth {
    threshold: u32,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    consecutive_failures: u32,
    degraded_since: Option<OffsetDateTime>,
    last_error: Option<&'static str>,
}

/// What a call to Apple says about Apple's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// Apple answered (any status but 5xx, including 4xx and 429).
    Answered,
    /// 5xx, or no answer at all (refused, reset, DNS, TLS, timeout).
    Failed(&'static str),
    /// The call never reached Apple (our credentials or configuration): says nothing.
    Irrelevant,
}

impl Observation {
    /// Classifies the result of one call.
    pub fn of<T>(result: &Result<T, attest_apple::Error>) -> Self {
        use attest_apple::Error;
        match result {
            Ok(_) => Self::Answered,
            Err(error @ (Error::ServerError { .. } | Error::Transport(_))) => {
                Self::Failed(error.code())
            }
            Err(
                Error::Credentials(_)
                | Error::InvalidConfiguration(_)
                | Error::InvalidPreviousReceipt(_),
            ) => Self::Irrelevant,
            Err(_) => Self::Answered,
        }
    }
}

/// `apple` in the `/readyz` and `/healthz` bodies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppleHealthView {
    /// `ok` or `degraded` (the last calls to Apple failed with 5xx or no answer; attestation
    /// and assertion verification are unaffected, receipt refreshes are queued).
    pub status: &'static str,
    /// RFC 3339 time the degraded state began.
    pub since: Option<String>,
    /// 5xx or transport failures in a row.
    pub consecutive_failures: u32,
    /// Code of the last such failure (`apple_unreachable`, `apple_server_error`).
    pub last_error: Option<&'static str>,
}

impl AppleHealth {
    /// Healthy; degraded after `threshold` (at least 1) failures in a row.
    pub fn new(threshold: u32) -> Self {
        metrics::describe_gauge!(
            DEGRADED_GAUGE,
            "1 while the last calls to Apple failed with 5xx or no answer"
        );
        // Registers the gauge at 0 without resetting it: every server of the process (tests run
        // several) adds 1 while it is degraded, so a process with one server shows 0 or 1.
        metrics::gauge!(DEGRADED_GAUGE).increment(0.0);
        Self {
            threshold: threshold.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Records one call's result.
    pub fn observe<T>(&self, result: &Result<T, attest_apple::Error>) {
        self.record(Observation::of(result), OffsetDateTime::now_utc());
    }

    /// Records one observation at `now`.
    pub fn record(&self, observation: Observation, now: OffsetDateTime) {
        let mut state = self.lock();
        match observation {
            Observation::Irrelevant => {}
            Observation::Answered => {
                state.consecutive_failures = 0;
                if let Some(since) = state.degraded_since.take() {
                    metrics::gauge!(DEGRADED_GAUGE).decrement(1.0);
                    tracing::info!(since = %rfc3339(since), "Apple answers again; refreshes resume");
                }
            }
            Observation::Failed(code) => {
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                state.last_error = Some(code);
                if state.consecutive_failures >= self.threshold && state.degraded_since.is_none() {
                    state.degraded_since = Some(now);
                    metrics::gauge!(DEGRADED_GAUGE).increment(1.0);
                    tracing::warn!(
                        failures = state.consecutive_failures,
                        code,
                        "Apple is unreachable or failing: receipt refreshes are queued; \
                         attestation and assertion verification are unaffected"
                    );
                }
            }
        }
    }

    /// Whether Apple counts as degraded.
    pub fn is_degraded(&self) -> bool {
        self.lock().degraded_since.is_some()
    }

    /// The health detail.
    pub fn view(&self) -> AppleHealthView {
        let state = self.lock();
        AppleHealthView {
            status: if state.degraded_since.is_some() {
                "degraded"
            } else {
                "ok"
            },
            since: state.degraded_since.map(rfc3339),
            consecutive_failures: state.consecutive_failures,
            last_error: state.last_error,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update is a few plain assignments: a poisoned lock holds consistent data.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for AppleHealth {
    fn drop(&mut self) {
        // A stopped server no longer counts as a degraded one.
        if self.lock().degraded_since.is_some() {
            metrics::gauge!(DEGRADED_GAUGE).decrement(1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attest_apple::Error;

    #[test]
    fn degraded_after_n_failures_in_a_row_and_healthy_at_the_next_answer() {
        let health = AppleHealth::new(3);
        let now = OffsetDateTime::UNIX_EPOCH;
        let down: Result<(), Error> = Err(Error::Transport("refused".into()));
        health.observe(&down);
        health.observe(&Err::<(), _>(Error::ServerError { status: 503 }));
        assert!(!health.is_degraded());
        health.record(Observation::Failed("apple_unreachable"), now);
        assert!(health.is_degraded());
        let view = health.view();
        assert_eq!(view.status, "degraded");
        assert_eq!(view.since.as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(view.consecutive_failures, 3);
        assert_eq!(view.last_error, Some("apple_unreachable"));

        // Credentials problems never reached Apple: no change.
        health.observe(&Err::<(), _>(Error::InvalidConfiguration("x")));
        assert!(health.is_degraded());
        // A 404 is an answer.
        health.observe(&Err::<(), _>(Error::NoData));
        assert!(!health.is_degraded());
        assert_eq!(health.view().consecutive_failures, 0);
        assert_eq!(health.view().status, "ok");
    }
}
