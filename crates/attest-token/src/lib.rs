#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod claims;
mod error;
mod key;
mod keyring;

pub use claims::{Claims, Environment, Platform, RESERVED_CLAIMS};
pub use error::TokenError;
pub use key::{ALGORITHM, SigningKeyPair};
pub use keyring::{Keyring, MAX_CLOCK_SKEW, MAX_TOKEN_BYTES};
