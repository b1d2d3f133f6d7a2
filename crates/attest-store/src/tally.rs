//! Refusals counted per subject and time window (migration 0109), and the instances sharing the
//! database: plain data.

use time::OffsetDateTime;

use crate::{Decision, StoreError};

/// A refused request, as [`crate::Store::record_refusal`] counts and (sampled) logs it.
///
/// Every refusal counts against its **sender**: the address it came from
/// ([`Decision::client_ip`], or none) and the app it named ([`Decision::app_id`]). Only a
/// refusal that proved possession of a key counts against that key's **device** as well: which
/// refusals do is the caller's judgement (attestd: a valid signature over a challenge issued
/// for the key and not expired), passed as [`Refusal::proven_device`].
#[derive(Debug, Clone, Copy)]
pub struct Refusal<'a> {
    /// The decision, with a code other than `ok`. Logged in full only while the sender's count
    /// for its code in the window is at most [`Refusal::sample`].
    pub decision: &'a Decision,
    /// The device whose key the refused request proved possession of, if it did.
    pub proven_device: Option<&'a str>,
    /// The width of the counting windows, in seconds (at least 1): the refusal is counted in
    /// the window that starts at `decision.at` rounded down to a multiple of it.
    pub window_seconds: u32,
    /// How many refusals with the same sender, app and code are logged in full per window;
    /// the rest are only counted (0: none is logged).
    pub sample: u32,
}

impl Refusal<'_> {
    /// The start of the window `decision.at` falls in, unix seconds.
    pub fn window_start(&self) -> Result<i64, StoreError> {
        window_start(self.decision.at, self.window_seconds)
    }
}

/// The start of the window of width `window_seconds` that `at` falls in, unix seconds:
/// `at` rounded down to a multiple of the width. [`StoreError::Invalid`] for a width of 0.
pub fn window_start(at: OffsetDateTime, window_seconds: u32) -> Result<i64, StoreError> {
    if window_seconds == 0 {
        return Err(StoreError::Invalid(
            "a counting window of 0 seconds".to_owned(),
        ));
    }
    Ok(at.unix_timestamp().div_euclid(i64::from(window_seconds)) * i64::from(window_seconds))
}

/// What [`crate::Store::record_refusal`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalRecorded {
    /// The decision's log id, when it was logged in full.
    pub decision_id: Option<i64>,
    /// The sender's refusals with this code in this window, this one included.
    pub sender_failures: u64,
}

/// Whose tallied failures [`crate::Store::tallied_failures`] counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureSubject {
    /// Refusals that proved possession of a key of this device, in this app.
    Device {
        /// The App ID.
        app_id: String,
        /// The device.
        device_id: String,
    },
    /// Every refusal from this address naming this app (`""`: no app was known).
    Sender {
        /// The App ID.
        app_id: String,
        /// The address as stored (`None`: requests whose address was unknown).
        client_ip: Option<String>,
    },
}

/// One sender's refusals with one code, summed over windows by
/// [`crate::Store::sender_failures`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderFailures {
    /// The App ID the refusals named (`""`: none known).
    pub app_id: String,
    /// The address (`None`: unknown).
    pub client_ip: Option<String>,
    /// The failure code.
    pub code: String,
    /// How many refusals.
    pub failures: u64,
    /// How many of them were logged in full.
    pub logged: u64,
}

/// Which senders [`crate::Store::sender_failures`] reports: those of `app_id`, optionally one
/// address, with refusals in windows starting at or after `since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderFilter {
    /// The App ID (`""`: refusals that named no known app).
    pub app_id: String,
    /// Only this address.
    pub client_ip: Option<String>,
    /// Windows starting at or after this time.
    pub since: OffsetDateTime,
    /// At most this many (sender, code) lines, the senders with most refusals first (capped
    /// at [`crate::MAX_PAGE_SIZE`]).
    pub limit: u32,
}

/// A sender's address as stored in `failure_tallies.subject`: the text, or `""` when unknown.
pub(crate) fn sender_subject(client_ip: Option<&str>) -> &str {
    client_ip.unwrap_or("")
}

/// A stored sender subject as an address.
pub(crate) fn sender_address(subject: String) -> Option<String> {
    (!subject.is_empty()).then_some(subject)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_starts_at_a_multiple_of_its_width() {
        let at = OffsetDateTime::from_unix_timestamp(1_000_299).unwrap();
        assert_eq!(window_start(at, 300).unwrap(), 1_000_200);
        assert_eq!(window_start(at, 1).unwrap(), 1_000_299);
        let before_epoch = OffsetDateTime::from_unix_timestamp(-1).unwrap();
        assert_eq!(window_start(before_epoch, 60).unwrap(), -60);
        assert!(matches!(window_start(at, 0), Err(StoreError::Invalid(_))));
    }
}
