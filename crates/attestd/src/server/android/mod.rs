//! Android in attestd's server: Key Attestation chains register a key and requests signed by
//! it are its assertions ([`verify`], the platform's verifier); each app's Android side
//! ([`app`]: package, signing certificates, policy). Google's attestation status list
//! (revocation) is fetched on a schedule, stored and held parsed for the verifier
//! ([`revocation`]); its settings ([`config`], the `[android]` section); its admin view
//! ([`admin`]). See docs/android.md and docs/operations.md, "Android revocation list".
//!
//! There is no sign counter on Android: the one-time challenge a signed request carries is its
//! replay defence, spent atomically by the store like an App Attest assertion's.

pub mod admin;
pub mod app;
pub mod config;
pub mod revocation;
pub mod verify;

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
