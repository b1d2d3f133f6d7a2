//! Apple App Attest: attestation objects, assertions and receipts.
//!
//! Verification follows Apple's numbered steps ("Validating apps that connect to your server");
//! each step's failure is one [`AppleError`] variant with a stable code.

pub mod assertion;
pub mod attestation;
pub mod authenticator_data;
mod cbor;
mod chain;
mod error;
pub mod receipt;
pub mod roots;
mod types;

pub use attest_types::{Environment, KeyId};
pub use error::{AppleError, ChainFailure, CounterExpectation, ValidityFailure};
pub use types::{Aaguid, AppId, EnvironmentPolicy, InvalidAppId};
