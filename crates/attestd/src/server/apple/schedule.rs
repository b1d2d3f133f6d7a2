//! When a key's receipt is refreshed next: pure functions of the receipt's times, the settings
//! and a jitter in [0, 1] (random in production, fixed in tests).
//!
//! Apple's rules: a `RECEIPT` receipt carries a Not Before (field 19; Apple answers 304 before
//! it, one day after creation in practice) and an Expiration (field 21, 90 days after
//! creation). An `ATTEST` receipt (the attestation's) has neither Not Before nor risk metric.
//! So: the first refresh comes `first_delay` after the attestation receipt's creation, and each
//! later one `interval` after the previous answer but never before Not Before, always well
//! before Expiration; every time is spread by a random part of a window so that keys attested
//! together do not stay in lockstep.

use std::time::Duration;

use attest_core::apple::receipt::parse_receipt;
use time::OffsetDateTime;
use time::macros::datetime;

use super::config::RefreshSettings;

/// How long before a receipt's Expiration the next refresh is due at the latest.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Rejected exchanges (400, 401, 404) back off `rejected_backoff` × 2^n, n at most this.
const MAX_REJECTED_DOUBLINGS: u32 = 3;
/// The latest time ever scheduled (absurd settings saturate here rather than overflow).
const FAR_FUTURE: OffsetDateTime = datetime!(9999-01-01 0:00 UTC);

/// The times of a receipt that matter for scheduling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiptTimes {
    /// Field 12.
    pub created_at: Option<OffsetDateTime>,
    /// Field 19 (`RECEIPT` only).
    pub not_before: Option<OffsetDateTime>,
    /// Field 21.
    pub expires_at: Option<OffsetDateTime>,
}

impl ReceiptTimes {
    /// Reads the times of a stored receipt (parsed only; it was verified when stored). `None`
    /// if it is not a receipt at all.
    pub fn of(receipt: &[u8]) -> Option<Self> {
        let parsed = parse_receipt(receipt).ok()?;
        let receipt = parsed.receipt();
        Some(Self {
            created_at: Some(receipt.creation_time),
            not_before: receipt.not_before,
            expires_at: receipt.expiration_time,
        })
    }
}

/// `at + duration`, saturating at [`FAR_FUTURE`].
pub fn add(at: OffsetDateTime, duration: Duration) -> OffsetDateTime {
    time::Duration::try_from(duration)
        .ok()
        .and_then(|duration| at.checked_add(duration))
        .map_or(FAR_FUTURE, |sum| sum.min(FAR_FUTURE))
}

/// `jitter` clamped to [0, 1] (1 if not a number).
fn unit(jitter: f64) -> f64 {
    if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        1.0
    }
}

/// `jitter` of `window`.
fn spread(window: Duration, jitter: f64) -> Duration {
    window.mul_f64(unit(jitter))
}

/// `next`, or earlier if it would be too close to `expires_at` (never before `floor`).
fn before_expiry(
    next: OffsetDateTime,
    floor: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
) -> OffsetDateTime {
    match expires_at {
        Some(expires_at) => {
            let latest = expires_at
                .checked_sub(
                    time::Duration::try_from(EXPIRY_MARGIN).unwrap_or(time::Duration::ZERO),
                )
                .unwrap_or(expires_at);
            if next > latest {
                latest.max(floor)
            } else {
                next
            }
        }
        None => next,
    }
}

/// The first refresh of a newly seen key: after the receipt's Not Before if it has one,
/// otherwise `first_delay` after its creation (or the key's), plus up to `first_jitter`. A key
/// that would already be due (enrolled late, e.g. when refresh was just turned on) is spread
/// over `first_jitter` from now instead.
pub fn first_refresh(
    times: &ReceiptTimes,
    key_created_at: OffsetDateTime,
    now: OffsetDateTime,
    settings: &RefreshSettings,
    jitter: f64,
) -> OffsetDateTime {
    let base = match times.not_before {
        Some(not_before) => not_before,
        None => add(
            times.created_at.unwrap_or(key_created_at),
            settings.first_delay,
        ),
    };
    let spread = spread(settings.first_jitter, jitter);
    let next = if base < now {
        add(now, spread)
    } else {
        add(base, spread)
    };
    before_expiry(next, now, times.expires_at)
}

/// After Apple returned a new receipt at `received_at`: `interval` later, at least its Not
/// Before, plus up to `jitter`; at the latest [`EXPIRY_MARGIN`] before its Expiration.
pub fn after_refresh(
    receipt: &ReceiptTimes,
    received_at: OffsetDateTime,
    settings: &RefreshSettings,
    jitter: f64,
) -> OffsetDateTime {
    let floor = receipt.not_before.unwrap_or(received_at).max(received_at);
    let earliest = floor.max(add(received_at, settings.interval));
    before_expiry(
        add(earliest, spread(settings.jitter, jitter)),
        floor,
        receipt.expires_at,
    )
}

/// After a 304 (asked before Not Before): just after the stored receipt's Not Before if it is
/// still ahead, otherwise (unknown, or Apple's clock disagrees) `interval` later.
pub fn after_not_modified(
    not_before: Option<OffsetDateTime>,
    now: OffsetDateTime,
    settings: &RefreshSettings,
    jitter: f64,
) -> OffsetDateTime {
    let spread = spread(settings.jitter, jitter);
    match not_before {
        Some(not_before) if not_before > now => add(not_before, spread),
        _ => add(add(now, settings.interval), spread),
    }
}

/// The backoff after a 5xx or transport failure, `failures` counting this one (from 1):
/// `failure_backoff` × 2^(failures − 1), capped at `failure_backoff_max`, times a factor in
/// [½, 1].
pub fn failure_backoff(failures: u32, settings: &RefreshSettings, jitter: f64) -> Duration {
    let doubled = 2u32
        .checked_pow(failures.saturating_sub(1))
        .and_then(|factor| settings.failure_backoff.checked_mul(factor))
        .unwrap_or(settings.failure_backoff_max)
        .min(settings.failure_backoff_max);
    doubled.mul_f64(0.5 + unit(jitter) / 2.0)
}

/// After a 5xx or transport failure.
pub fn after_failure(
    failures: u32,
    now: OffsetDateTime,
    settings: &RefreshSettings,
    jitter: f64,
) -> OffsetDateTime {
    add(now, failure_backoff(failures, settings, jitter))
}

/// After a 429: exactly when Apple asked (plus up to a tenth more, so that the keys it stopped
/// do not all come back at once), or as after a failure when it did not say.
pub fn after_rate_limit(
    retry_after: Option<Duration>,
    failures: u32,
    now: OffsetDateTime,
    settings: &RefreshSettings,
    jitter: f64,
) -> OffsetDateTime {
    match retry_after {
        Some(wait) => add(add(now, wait), spread(wait / 10, jitter)),
        None => after_failure(failures, now, settings, jitter),
    }
}

/// After an answer that retrying soon will not change (400, 401, 404, a receipt that does not
/// verify): `rejected_backoff` × 2^(failures − 1) (at most 8 ×), plus up to a quarter more.
pub fn after_rejection(
    failures: u32,
    now: OffsetDateTime,
    settings: &RefreshSettings,
    jitter: f64,
) -> OffsetDateTime {
    let doublings = failures.saturating_sub(1).min(MAX_REJECTED_DOUBLINGS);
    let delay = settings
        .rejected_backoff
        .checked_mul(1 << doublings)
        .unwrap_or(settings.rejected_backoff);
    add(add(now, delay), spread(delay / 4, jitter))
}

/// A uniform value in [0, 1] from the system RNG (½ if it fails).
pub fn random_jitter() -> f64 {
    let mut bytes = [0u8; 4];
    match aws_lc_rs::rand::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_be_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration as Span;

    const T0: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
    const HOUR: Duration = Duration::from_secs(3600);
    const DAY: Duration = Duration::from_secs(86_400);

    fn attest_receipt() -> ReceiptTimes {
        ReceiptTimes {
            created_at: Some(T0),
            not_before: None,
            expires_at: Some(T0 + Span::days(90)),
        }
    }

    #[test]
    fn first_refresh_is_a_day_after_the_attest_receipt_spread_over_the_window() {
        let settings = RefreshSettings::default();
        let now = T0 + Span::minutes(1);
        let earliest = first_refresh(&attest_receipt(), T0, now, &settings, 0.0);
        let latest = first_refresh(&attest_receipt(), T0, now, &settings, 1.0);
        assert_eq!(earliest, T0 + Span::days(1));
        assert_eq!(latest, T0 + Span::days(1) + Span::hours(6));
        let middle = first_refresh(&attest_receipt(), T0, now, &settings, 0.5);
        assert_eq!(middle, T0 + Span::days(1) + Span::hours(3));
    }

    #[test]
    fn a_key_enrolled_late_is_spread_from_now() {
        let settings = RefreshSettings::default();
        let now = T0 + Span::days(30);
        assert_eq!(
            first_refresh(&attest_receipt(), T0, now, &settings, 0.5),
            now + Span::hours(3)
        );
        // A refreshed receipt's Not Before wins over the first delay.
        let refreshed = ReceiptTimes {
            not_before: Some(T0 + Span::hours(30)),
            ..attest_receipt()
        };
        assert_eq!(
            first_refresh(&refreshed, T0, T0, &settings, 0.0),
            T0 + Span::hours(30)
        );
        // Unreadable receipt: the key's own creation time.
        assert_eq!(
            first_refresh(&ReceiptTimes::default(), T0, T0, &settings, 0.0),
            T0 + Span::days(1)
        );
    }

    #[test]
    fn after_a_refresh_the_next_is_past_not_before_and_well_before_expiration() {
        let mut settings = RefreshSettings {
            interval: HOUR,
            jitter: HOUR,
            ..RefreshSettings::default()
        };
        let new = ReceiptTimes {
            created_at: Some(T0),
            not_before: Some(T0 + Span::days(1)),
            expires_at: Some(T0 + Span::days(90)),
        };
        // Interval shorter than Not Before: Not Before plus jitter.
        assert_eq!(
            after_refresh(&new, T0, &settings, 0.5),
            T0 + Span::days(1) + Span::minutes(30)
        );
        // Interval longer: the interval.
        settings.interval = 3 * DAY;
        assert_eq!(after_refresh(&new, T0, &settings, 0.0), T0 + Span::days(3));
        // Never later than 7 days before Expiration.
        settings.interval = 200 * DAY;
        assert_eq!(after_refresh(&new, T0, &settings, 1.0), T0 + Span::days(83));
    }

    #[test]
    fn not_modified_waits_for_not_before() {
        let settings = RefreshSettings {
            interval: DAY,
            jitter: HOUR,
            ..RefreshSettings::default()
        };
        let not_before = T0 + Span::hours(20);
        assert_eq!(
            after_not_modified(Some(not_before), T0, &settings, 0.0),
            not_before
        );
        assert_eq!(
            after_not_modified(None, T0, &settings, 1.0),
            T0 + Span::days(1) + Span::hours(1)
        );
        assert_eq!(
            after_not_modified(Some(T0 - Span::hours(1)), T0, &settings, 0.0),
            T0 + Span::days(1)
        );
    }

    #[test]
    fn failures_back_off_exponentially_with_jitter_and_a_cap() {
        let settings = RefreshSettings {
            failure_backoff: Duration::from_secs(60),
            failure_backoff_max: Duration::from_secs(600),
            ..RefreshSettings::default()
        };
        let full: Vec<u64> = (1..=6)
            .map(|n| failure_backoff(n, &settings, 1.0).as_secs())
            .collect();
        assert_eq!(full, [60, 120, 240, 480, 600, 600]);
        assert_eq!(failure_backoff(1, &settings, 0.0).as_secs(), 30);
        assert_eq!(failure_backoff(40, &settings, 1.0).as_secs(), 600);
        assert_eq!(
            after_failure(2, T0, &settings, 1.0),
            T0 + Span::seconds(120)
        );
    }

    #[test]
    fn rate_limits_honour_retry_after() {
        let settings = RefreshSettings::default();
        assert_eq!(
            after_rate_limit(Some(HOUR), 1, T0, &settings, 0.0),
            T0 + Span::hours(1)
        );
        assert_eq!(
            after_rate_limit(Some(HOUR), 1, T0, &settings, 1.0),
            T0 + Span::minutes(66)
        );
        assert_eq!(
            after_rate_limit(None, 1, T0, &settings, 1.0),
            T0 + Span::minutes(1)
        );
    }

    #[test]
    fn rejections_back_off_long() {
        let settings = RefreshSettings::default();
        assert_eq!(after_rejection(1, T0, &settings, 0.0), T0 + Span::days(1));
        assert_eq!(after_rejection(2, T0, &settings, 0.0), T0 + Span::days(2));
        assert_eq!(after_rejection(9, T0, &settings, 1.0), T0 + Span::days(10));
    }

    #[test]
    fn absurd_settings_saturate() {
        let settings = RefreshSettings {
            first_delay: Duration::from_secs(u64::MAX),
            ..RefreshSettings::default()
        };
        assert_eq!(
            first_refresh(&ReceiptTimes::default(), T0, T0, &settings, 0.0),
            FAR_FUTURE
        );
        assert_eq!(add(T0, Duration::MAX), FAR_FUTURE);
    }
}
