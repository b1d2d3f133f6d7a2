//! What every handler shares: the store, the configured apps with their verifiers, the JWT
//! keyring and the parsed-key cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use attest_core::android::{AndroidError, AndroidVerifier};
use attest_core::apple::assertion::CredentialPublicKey;
use attest_core::apple::attestation::AttestationVerifier;
use attest_core::apple::{AppId, AppleError, EnvironmentPolicy, KeyId};
use attest_store::AnyStore;
use metrics_exporter_prometheus::PrometheusHandle;

use super::android::RevocationLists;
use super::android::verify::{AndroidSide, RequestKey};
use super::config::{AppConfig, Config};
use super::error::ApiError;
use super::tokens::Tokens;
use super::webhooks::Webhooks;

/// Shared server state, behind an `Arc`.
#[derive(Debug)]
pub struct AppState {
    /// The resolved configuration.
    pub config: Config,
    /// The database.
    pub store: AnyStore,
    /// Configured apps by App ID.
    pub apps: Apps,
    /// JWT signing keys.
    pub tokens: Tokens,
    /// Parsed App Attest credential keys by key id.
    pub keys: KeyCache<CredentialPublicKey>,
    /// Parsed Android request-signing keys by key id.
    pub request_keys: KeyCache<RequestKey>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Apple's APIs: receipt refresh, DeviceCheck, Apple's health (see `server::apple`).
    pub apple: super::apple::Apple,
    /// Android: Google's attestation status list (see `server::android`).
    pub android: super::android::Android,
    /// Webhook endpoints and event detection.
    pub webhooks: Webhooks,
    /// Issues and checks challenge values.
    pub challenges: super::challenge::Challenges,
    /// `/readyz`: the last write probe.
    pub readiness: super::readiness::Readiness,
    /// Per-address and per-key rate limits.
    pub limits: super::limits::RateLimits,
}

/// One accepted app and the verifiers of its platforms.
#[derive(Debug)]
pub struct App {
    /// Its configuration.
    pub config: AppConfig,
    /// Its iOS side, if it has one.
    pub apple: Option<AppleSide>,
    /// Its Android side, if it has one.
    pub android: Option<AndroidSide>,
}

/// An app's iOS side as the App Attest verifier uses it.
#[derive(Debug)]
pub struct AppleSide {
    /// The App ID as the one-element list the core takes.
    pub ids: [AppId; 1],
    /// Apple's roots, plus the danger roots (development keys only) when the app accepts
    /// development keys.
    pub verifier: Arc<AttestationVerifier>,
}

impl App {
    /// The app's name (its App ID, or its Android package for an Android-only app).
    pub fn id(&self) -> &str {
        self.config.id.as_str()
    }
}

/// The configured apps.
#[derive(Debug)]
pub struct Apps {
    by_id: HashMap<String, Arc<App>>,
    /// Android packages of apps named otherwise (an iOS App ID), to the same apps.
    by_package: HashMap<String, Arc<App>>,
}

impl Apps {
    /// Builds one App Attest verifier for production-only apps (Apple's roots only) and, if
    /// danger roots are configured, one more for apps that accept development keys: Apple's
    /// roots plus the extra ones, which the core lets vouch for development keys only (a
    /// production AAGUID under an extra root is `environment_mismatch`, whatever the app
    /// accepts). Android apps share one Key Attestation verifier: Google's two keys, plus the
    /// danger Android roots, and `revocation`, Google's status list.
    pub fn new(config: &Config, revocation: &Arc<RevocationLists>) -> Result<Self, StateError> {
        let apple = Arc::new(AttestationVerifier::apple());
        let has_danger_roots = !config.danger_extra_attestation_roots.is_empty()
            || !config.danger_extra_receipt_roots.is_empty();
        let ders = |roots: &[super::config::TrustRoot]| -> Vec<Vec<u8>> {
            roots.iter().map(|root| root.der.clone()).collect()
        };
        let extended = if has_danger_roots {
            Arc::new(AttestationVerifier::with_extra_roots(
                ders(&config.danger_extra_attestation_roots),
                ders(&config.danger_extra_receipt_roots),
            )?)
        } else {
            Arc::clone(&apple)
        };
        let android = Arc::new(if config.danger_extra_android_roots.is_empty() {
            AndroidVerifier::google()
        } else {
            AndroidVerifier::with_extra_roots(ders(&config.danger_extra_android_roots))?
        });
        let mut by_id = HashMap::new();
        let mut by_package = HashMap::new();
        for app in &config.apps {
            let apple_side = app.apple.as_ref().map(|id| AppleSide {
                ids: [id.clone()],
                verifier: if app.environment == EnvironmentPolicy::Production {
                    Arc::clone(&apple)
                } else {
                    Arc::clone(&extended)
                },
            });
            let android_side = app.android.as_ref().map(|side| AndroidSide {
                verifier: Arc::clone(&android),
                expected: side.expected_app(),
                policy: side.policy(),
                revocation: Arc::clone(revocation),
            });
            let entry = Arc::new(App {
                config: app.clone(),
                apple: apple_side,
                android: android_side,
            });
            for name in app.names().skip(1) {
                by_package.insert(name.to_owned(), Arc::clone(&entry));
            }
            by_id.insert(app.id.as_str().to_owned(), entry);
        }
        Ok(Self { by_id, by_package })
    }

    /// The app with this name (as keys and decisions record it).
    pub fn get(&self, app_id: &str) -> Option<&Arc<App>> {
        self.by_id.get(app_id)
    }

    /// The app a request names (by its name or its Android package), or the only configured
    /// app when it names none.
    pub fn resolve(&self, app_id: Option<&str>) -> Result<&Arc<App>, ApiError> {
        match app_id {
            Some(app_id) => self
                .get(app_id)
                .or_else(|| self.by_package.get(app_id))
                .ok_or_else(|| ApiError::UnknownApp(app_id.into())),
            None if self.by_id.len() == 1 => self.by_id.values().next().ok_or(ApiError::Internal),
            None => Err(ApiError::field(
                "appId",
                "several apps are configured: name one with appId or the X-App-Id header",
            )),
        }
    }

    /// Every configured app name, sorted.
    pub fn ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.by_id.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }
}

/// Why the apps' verifiers cannot be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A danger App Attest root does not parse.
    #[error("{0}")]
    Apple(#[from] AppleError),
    /// A danger Android root does not parse.
    #[error("{0}")]
    Android(#[from] AndroidError),
}

/// Parsed credential public keys, so an assertion costs one signature check and no DER parse.
/// Keys are immutable once attested (the store never overwrites one), so an entry never goes
/// stale; the map is bounded and evicts an arbitrary entry when full.
pub struct KeyCache<T> {
    capacity: usize,
    keys: Mutex<HashMap<KeyId, Arc<T>>>,
}

impl<T> KeyCache<T> {
    /// An empty cache holding at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The parsed key for `key_id`, running `parse` on a miss.
    pub fn get_or_parse<E>(
        &self,
        key_id: KeyId,
        parse: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        if let Some(key) = self.lock().get(&key_id) {
            return Ok(Arc::clone(key));
        }
        let key = Arc::new(parse()?);
        let mut keys = self.lock();
        if keys.len() >= self.capacity
            && let Some(evicted) = keys.keys().next().copied()
        {
            keys.remove(&evicted);
        }
        if self.capacity > 0 {
            keys.insert(key_id, Arc::clone(&key));
        }
        Ok(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<KeyId, Arc<T>>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts
        // and removes), so a poisoned lock is still usable.
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<T> fmt::Debug for KeyCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("capacity", &self.capacity)
            .field("len", &self.lock().len())
            .finish()
    }
}
