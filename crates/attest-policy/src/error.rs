//! Configuration errors.

use thiserror::Error;

/// A policy or weights configuration that cannot be right.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A time of day that is not `HH:MM` (00:00 to 23:59).
    #[error("invalid time of day {0:?}: expected HH:MM between 00:00 and 23:59")]
    InvalidClockTime(String),
    /// `max_risk_score` above 100 would never deny anything.
    #[error("max_risk_score {0} is above 100, so it would never deny")]
    MaxRiskScoreAbove100(u8),
    /// An empty `allowed_environments` would deny every request.
    #[error("allowed_environments is empty, so every request would be denied")]
    NoAllowedEnvironments,
    /// A time window's UTC offset beyond ±18 hours.
    #[error("time window {index}: utc_offset_minutes {minutes} is outside -1080..=1080")]
    UtcOffsetOutOfRange {
        /// The window's position in `time_windows`.
        index: usize,
        /// The offending offset.
        minutes: i16,
    },
    /// A time window with `days = []`, which would never match.
    #[error(
        "time window {index}: days is empty, so the window never matches (omit it for every day)"
    )]
    NoDays {
        /// The window's position in `time_windows`.
        index: usize,
    },
    /// A factor weight above 100, more than the whole scale.
    #[error("weight {field} = {value} is above 100")]
    WeightAbove100 {
        /// The weight's field name.
        field: &'static str,
        /// The offending value.
        value: u8,
    },
    /// An expected validation category that is not an even-length, non-empty hex string.
    #[error("expected validation category {0:?} is not hex")]
    InvalidHex(String),
    /// A DeviceCheck flag bit other than 0 or 1.
    #[error("device_check_flag_bits: {0} is not a DeviceCheck bit (0 or 1)")]
    InvalidDeviceCheckBit(u8),
}
