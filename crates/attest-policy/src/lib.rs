#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod decision;
mod error;
mod policy;
mod risk;
mod signals;
mod weights;

pub use decision::{Decision, HostedCode, Outcome, Reason, ReasonCode, decide};
pub use error::ConfigError;
pub use policy::{
    ClockTime, Day, MAX_UTC_OFFSET_MINUTES, PermissionsByBand, Policy, PolicyMode, TimeWindow,
};
pub use risk::{Band, FactorName, MAX_SCORE, RiskAssessment, RiskFactor, assess};
pub use signals::{
    AndroidSignals, DeviceCheck, Environment, FailureCounts, ReceiptStatus, Signals, Verification,
    WindowCount,
};
pub use weights::RiskWeights;
