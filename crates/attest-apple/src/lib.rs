#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod credentials;
mod device_check;
mod error;
mod http;
mod receipt;
mod retry;

#[cfg(feature = "fake")]
pub mod fake;

pub use credentials::{AppleCredentials, CredentialsError, TOKEN_REUSE_SECS};
pub use device_check::{
    BIT_STATE_NOT_FOUND_TEXTS, BitState, DEVICE_CHECK_DEVELOPMENT_URL, DEVICE_CHECK_PRODUCTION_URL,
    DeviceCheckClient, DeviceCheckClientBuilder, QUERY_TWO_BITS_PATH, TwoBits,
    UPDATE_TWO_BITS_PATH, VALIDATE_DEVICE_TOKEN_PATH, device_check_base_url,
};
pub use error::Error;
pub use http::{AuthorizationScheme, HttpOptions, MAX_ANSWER_LEN, parse_retry_after};
pub use receipt::{
    ATTESTATION_DATA_PATH, RECEIPT_DEVELOPMENT_URL, RECEIPT_PRODUCTION_URL, ReceiptClient,
    ReceiptClientBuilder, ReceiptRefresh, receipt_base_url,
};
pub use retry::{RetryPolicy, Sleeper, TokioSleeper};
