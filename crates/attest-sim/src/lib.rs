#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod android;
mod assertion;
mod attestation;
mod ca;
mod cbor;
mod cert;
mod der;
mod device;
mod keys;
mod pem;
mod receipt;

pub use assertion::{Assertion, AssertionBuilder};
pub use attestation::{
    APPLE_EKU_OID, Attestation, AttestationBuilder, LeafProfile, NONCE_EXTENSION_OID,
    NonceExtension, ios27_auth_data_extensions,
};
pub use ca::{
    RECEIPT_INTERMEDIATE_MARKER_OID, RECEIPT_SIGNER_MARKER_OID, ReceiptCa, ReceiptCaBuilder,
    TestCa, TestCaBuilder,
};
pub use cbor::{Cbor, IndefiniteScope};
pub use cert::Extension;
pub use device::Device;
pub use receipt::{
    CmsEncoding, ReceiptBuilder, ReceiptField, ReceiptType, SignedAttributes, apple_timestamp,
    field,
};

/// The environment a simulated device runs in.
pub use attest_types::Environment;

/// The 16-byte AAGUID Apple writes into attestation authenticator data for `environment`:
/// `appattestdevelop`, or `appattest` + 7 zero bytes.
pub fn aaguid(environment: Environment) -> [u8; 16] {
    match environment {
        Environment::Development => *b"appattestdevelop",
        Environment::Production => *b"appattest\0\0\0\0\0\0\0",
    }
}

/// The receipt field 7 value for `environment`: `sandbox` or `production`.
pub fn receipt_environment(environment: Environment) -> &'static str {
    match environment {
        Environment::Development => "sandbox",
        Environment::Production => "production",
    }
}

/// Errors loading saved simulator material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The PEM text is malformed or its blocks are not the expected ones.
    #[error("invalid PEM: {0}")]
    InvalidPem(&'static str),
    /// A private key is not an unencrypted PKCS#8 EC key on the expected curve.
    #[error("invalid or unsupported private key")]
    InvalidKey,
    /// A certificate could not be read.
    #[error("invalid certificate")]
    InvalidCertificate,
    /// A private key does not belong to the certificate saved with it.
    #[error("private key does not match its certificate")]
    KeyMismatch,
}
