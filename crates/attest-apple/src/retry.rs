//! Retrying calls to Apple: jittered exponential backoff for 5xx and transport failures,
//! `Retry-After` for 429, no retry for anything else.

use std::future::Future;
use std::time::Duration;

use crate::error::Error;

/// Waits between attempts. [`TokioSleeper`] is the real one (it follows
/// `tokio::time::pause()`); tests can record the delays instead of waiting.
pub trait Sleeper: Send + Sync {
    /// Waits for `duration`.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// [`Sleeper`] backed by `tokio::time::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}

/// When and how often to try again.
///
/// After a failed attempt `n` (counting from 1), the call is tried again if `n < max_attempts`
/// and the error is [retryable](Error::is_retryable):
/// - 429 with `Retry-After`: after exactly that delay, unless it is longer than `max_delay`, in
///   which case the 429 is returned at once so the caller can reschedule the work;
/// - 5xx, transport failures and 429 without `Retry-After`: after
///   `min(max_delay, base_delay · 2^(n-1))`, scaled by a random factor in [½, 1] ("equal
///   jitter", so that many servers retrying at once spread out).
///
/// 4xx answers other than 429, 304, and receipts that fail verification are never retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 is treated as 1).
    pub max_attempts: u32,
    /// Backoff before the first retry (before jitter).
    pub base_delay: Duration,
    /// Cap on any one backoff, and the longest `Retry-After` waited for.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, 500 ms base, 30 s cap: about 0.5 + 1 + 2 s of backoff before giving up on a
    /// 5xx, which rides out a short blip without holding a request for long.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub const NO_RETRY: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    /// The backoff before retry number `retry` (0 for the first retry), with `jitter` in [0, 1]
    /// choosing between half (0) and all (1) of the exponential delay.
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let exponential = 2u32
            .checked_pow(retry)
            .and_then(|factor| self.base_delay.checked_mul(factor))
            .unwrap_or(self.max_delay);
        let capped = exponential.min(self.max_delay);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            1.0
        };
        capped.mul_f64((1.0 + jitter) / 2.0)
    }

    /// What to do after `error` ended attempt `attempt` (counting from 1): wait the returned
    /// delay and try again, or give up (`None`).
    pub fn next_delay(&self, error: &Error, attempt: u32, jitter: f64) -> Option<Duration> {
        if attempt >= self.max_attempts.max(1) || !error.is_retryable() {
            return None;
        }
        match error.retry_after() {
            Some(wait) => (wait <= self.max_delay).then_some(wait),
            None => Some(self.backoff(attempt.saturating_sub(1), jitter)),
        }
    }

    /// Runs `operation` until it succeeds or the policy gives up, sleeping with tokio.
    pub async fn run<T, F, Fut>(&self, operation: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        self.run_with(&TokioSleeper, operation).await
    }

    /// Runs `operation` until it succeeds or the policy gives up, waiting with `sleeper`.
    /// Returns the last error when giving up.
    pub async fn run_with<T, F, Fut, S>(&self, sleeper: &S, mut operation: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
        S: Sleeper,
    {
        let mut attempt = 1;
        loop {
            let error = match operation().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let Some(delay) = self.next_delay(&error, attempt, random_jitter()) else {
                return Err(error);
            };
            tracing::debug!(
                target: "attest_apple",
                attempt,
                code = error.code(),
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "retrying Apple call"
            );
            sleeper.sleep(delay).await;
            attempt += 1;
        }
    }
}

/// A uniform value in [0, 1] from the system RNG (1 if the RNG fails: the full delay).
fn random_jitter() -> f64 {
    let mut bytes = [0u8; 4];
    match aws_lc_rs::rand::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_be_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(1000),
    };

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_halves_at_most() {
        let full: Vec<u128> = (0..6).map(|n| POLICY.backoff(n, 1.0).as_millis()).collect();
        assert_eq!(full, [100, 200, 400, 800, 1000, 1000]);
        let least: Vec<u128> = (0..6).map(|n| POLICY.backoff(n, 0.0).as_millis()).collect();
        assert_eq!(least, [50, 100, 200, 400, 500, 500]);
        assert_eq!(POLICY.backoff(40, 1.0), POLICY.max_delay);
        assert_eq!(POLICY.backoff(1, f64::NAN), Duration::from_millis(200));
        assert_eq!(POLICY.backoff(1, 7.0), Duration::from_millis(200));
    }

    #[test]
    fn gives_up_on_non_retryable_errors_and_after_the_last_attempt() {
        let server = Error::ServerError { status: 503 };
        assert_eq!(
            POLICY.next_delay(&server, 1, 1.0),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            POLICY.next_delay(&server, 4, 1.0),
            Some(Duration::from_millis(800))
        );
        assert_eq!(POLICY.next_delay(&server, 5, 1.0), None);
        assert_eq!(POLICY.next_delay(&Error::Unauthorized, 1, 1.0), None);
        assert_eq!(POLICY.next_delay(&Error::BadPayload, 1, 1.0), None);
        assert_eq!(RetryPolicy::NO_RETRY.next_delay(&server, 1, 1.0), None);
        let zero = RetryPolicy {
            max_attempts: 0,
            ..POLICY
        };
        assert_eq!(zero.next_delay(&server, 1, 1.0), None);
    }

    #[test]
    fn retry_after_is_honoured_exactly_unless_longer_than_the_cap() {
        let asked = |secs: f64| Error::RateLimited {
            retry_after: Some(Duration::from_secs_f64(secs)),
        };
        assert_eq!(
            POLICY.next_delay(&asked(0.7), 1, 0.0),
            Some(Duration::from_millis(700))
        );
        assert_eq!(POLICY.next_delay(&asked(2.0), 1, 0.0), None);
        assert_eq!(
            POLICY.next_delay(&Error::RateLimited { retry_after: None }, 2, 1.0),
            Some(Duration::from_millis(200))
        );
    }

    #[test]
    fn jitter_is_in_range() {
        for _ in 0..100 {
            let j = random_jitter();
            assert!((0.0..=1.0).contains(&j));
        }
    }
}
