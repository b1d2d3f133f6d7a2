//! Android in attestd's server: Google's attestation status list (revocation), fetched on a
//! schedule, stored and held parsed for the verifiers ([`revocation`]); its settings
//! ([`config`], the `[android]` section); and its admin view ([`admin`]). See
//! docs/operations.md, "Android revocation list".

pub mod admin;
pub mod config;
pub mod revocation;

use std::sync::Arc;

pub use config::{AndroidArgs, AndroidConfig, FileAndroid, RevocationListSettings};
pub use revocation::{FetcherHandle, RevocationLists};

/// What the server state holds for Android.
#[derive(Debug)]
pub struct Android {
    /// Google's status list, as held by this instance.
    pub revocation: Arc<RevocationLists>,
}

impl Android {
    /// Nothing held yet; [`RevocationLists::load`] reads the stored list.
    pub fn new(config: &AndroidConfig) -> Self {
        Self {
            revocation: Arc::new(RevocationLists::new(config.revocation_list.clone())),
        }
    }
}
