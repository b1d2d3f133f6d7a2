//! What the server knows about a request when it scores it: plain data, gathered elsewhere.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// The outcome of verifying the request's own attestation or assertion.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Verification {
    /// Every verification step passed.
    #[default]
    Ok,
    /// Verification failed with this stable code (`nonce_mismatch`, `signature_invalid`, ...).
    Failed(String),
}

impl Verification {
    /// A failure with `code`.
    pub fn failed(code: impl Into<String>) -> Self {
        Self::Failed(code.into())
    }

    /// The form [`crate::decide`] takes: `Ok(())` or `Err(code)`.
    pub fn as_result(&self) -> Result<(), &str> {
        match self {
            Self::Ok => Ok(()),
            Self::Failed(code) => Err(code),
        }
    }
}

/// What became of the App Attest receipt that belongs to the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// The receipt verified (signature, chain, App ID, attested key).
    Valid,
    /// The receipt is present but failed validation, with the stable reason
    /// (`receipt_signature_invalid`, `receipt_app_id_mismatch`, ...).
    Invalid(String),
    /// There is no receipt.
    Missing,
}

pub use attest_types::Environment;

/// A count of events in a sliding window that ends now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    /// How many events the window holds.
    pub count: u32,
    /// The window's length (named in evidence, e.g. "in 24h").
    pub window: Duration,
}

/// Verification failures seen recently for the same key or device, by stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureCounts {
    /// The window's length (named in evidence, e.g. "in 1h").
    pub window: Duration,
    /// Failures by code; a `BTreeMap` so that evidence lists codes in a stable order.
    pub by_code: BTreeMap<String, u32>,
}

impl FailureCounts {
    /// All failures in the window, whatever their code.
    pub fn total(&self) -> u64 {
        self.by_code.values().map(|&n| u64::from(n)).sum()
    }
}

/// What Apple's DeviceCheck service said about a device token sent with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceCheck {
    /// Apple recognised the token as coming from a genuine Apple device running one of the
    /// team's apps.
    pub valid: bool,
    /// The team's two per-device bits, when the token is valid and they were ever set.
    pub bits: Option<[bool; 2]>,
}

/// Everything [`crate::assess`] looks at. Unknown facts stay `None` (or `0` for the counter
/// anomaly counts) and never trigger a factor.
///
/// Start from [`Signals::new`], which knows nothing but the time, and fill in what the server has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signals {
    /// The server's time for this request; every age and skew is measured against it.
    pub now: OffsetDateTime,
    /// The outcome of verifying this request's attestation or assertion.
    pub verification: Verification,
    /// The status of the key's App Attest receipt; `None` when not known.
    pub receipt: Option<ReceiptStatus>,
    /// Apple's risk metric from the latest receipt (receipt field 17): the number of attested
    /// keys for this device over the 30 days before the receipt was issued.
    pub apple_risk_metric: Option<u32>,
    /// How old the receipt carrying [`Signals::apple_risk_metric`] is; `None` = fresh or unknown.
    pub apple_risk_metric_age: Option<Duration>,
    /// The environment the key was attested in.
    pub environment: Option<Environment>,
    /// Whether the app is published (App Store, TestFlight, Enterprise) and should only ever see
    /// production keys.
    pub app_production_only: bool,
    /// When the server first saw this device (or installation).
    pub device_first_seen: Option<OffsetDateTime>,
    /// How many attestations the server accepted for this device (normally 1).
    pub attestation_count: Option<u32>,
    /// New keys attested for the same user id in a window.
    pub new_keys_for_user: Option<WindowCount>,
    /// New keys attested from the same client IP in a window.
    pub new_keys_from_ip: Option<WindowCount>,
    /// Assertions whose counter was lower than the stored one (0 = none seen or unknown).
    pub counter_regressions: u32,
    /// Assertions replayed with the stored counter (0 = none seen or unknown).
    pub replays: u32,
    /// Recent verification failures for this key or device.
    pub recent_failures: Option<FailureCounts>,
    /// The time the client says it is (e.g. a signed timestamp in the client data).
    pub client_time: Option<OffsetDateTime>,
    /// iOS 27 `apple_validation_category_01`, the raw bytes Apple wrote.
    pub validation_category: Option<Vec<u8>>,
    /// iOS 27 `apple_bundle_version_01` (CFBundleVersion). Carried for the record and named in
    /// evidence; not scored.
    pub bundle_version: Option<String>,
    /// Apple's answer about a DeviceCheck token the request carried; `None` when it carried
    /// none or Apple could not be asked (an unreachable Apple is not evidence either way).
    pub device_check: Option<DeviceCheck>,
    /// What an Android key's attestation said about the device; `None` on other platforms.
    pub android: Option<AndroidSignals>,
}

/// The Android signals of a key, from its Key Attestation evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AndroidSignals {
    /// Whether KeyMint keeps the key in software (no TEE or StrongBox).
    pub software_backed: bool,
    /// The boot state the bootloader reported, when the chain carried a root of trust.
    pub verified_boot_state: Option<attest_types::evidence::VerifiedBootState>,
    /// Whether the bootloader was locked, when known.
    pub device_locked: Option<bool>,
    /// The OS patch level (`YYYYMM`), when the chain carried one.
    pub os_patch_level: Option<u64>,
}

impl Signals {
    /// Signals for a request at `now` that verified and about which nothing else is known.
    pub fn new(now: OffsetDateTime) -> Self {
        Self {
            now,
            verification: Verification::Ok,
            receipt: None,
            apple_risk_metric: None,
            apple_risk_metric_age: None,
            environment: None,
            app_production_only: false,
            device_first_seen: None,
            attestation_count: None,
            new_keys_for_user: None,
            new_keys_from_ip: None,
            counter_regressions: 0,
            replays: 0,
            recent_failures: None,
            client_time: None,
            validation_category: None,
            bundle_version: None,
            device_check: None,
            android: None,
        }
    }
}

/// `86400s` → `1d`, `3600s` → `1h`, `90s` → `90s`: the largest unit that divides exactly.
pub(crate) fn fmt_duration(d: Duration) -> String {
    let secs = d.whole_seconds().unsigned_abs();
    let sign = if d.is_negative() { "-" } else { "" };
    if secs == 0 {
        "0s".to_owned()
    } else if secs.is_multiple_of(86_400) {
        format!("{sign}{}d", secs / 86_400)
    } else if secs.is_multiple_of(3_600) {
        format!("{sign}{}h", secs / 3_600)
    } else if secs.is_multiple_of(60) {
        format!("{sign}{}m", secs / 60)
    } else {
        format!("{sign}{secs}s")
    }
}

/// Lowercase hex, for validation category bytes.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_the_largest_exact_unit() {
        assert_eq!(fmt_duration(Duration::ZERO), "0s");
        assert_eq!(fmt_duration(Duration::days(30)), "30d");
        assert_eq!(fmt_duration(Duration::hours(25)), "25h");
        assert_eq!(fmt_duration(Duration::minutes(90)), "90m");
        assert_eq!(fmt_duration(Duration::seconds(301)), "301s");
        assert_eq!(fmt_duration(Duration::seconds(-120)), "-2m");
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(to_hex(&[0x01, 0xab, 0x00, 0xff]), "01ab00ff");
        assert_eq!(to_hex(&[]), "");
    }

    #[test]
    fn verification_as_result() {
        assert_eq!(Verification::Ok.as_result(), Ok(()));
        assert_eq!(
            Verification::failed("nonce_mismatch").as_result(),
            Err("nonce_mismatch")
        );
    }

    #[test]
    fn failure_total_sums_codes() {
        let f = FailureCounts {
            window: Duration::hours(1),
            by_code: [("a".to_owned(), 2), ("b".to_owned(), u32::MAX)].into(),
        };
        assert_eq!(f.total(), 2 + u64::from(u32::MAX));
    }
}
