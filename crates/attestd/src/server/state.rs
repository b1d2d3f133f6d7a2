//! What every handler shares: the store, the configured apps with their verifiers, the JWT
//! keyring and the parsed-key cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use attest_core::apple::assertion::CredentialPublicKey;
use attest_core::apple::attestation::AttestationVerifier;
use attest_core::apple::{AppId, AppleError, EnvironmentPolicy, KeyId};
use attest_store::AnyStore;
use metrics_exporter_prometheus::PrometheusHandle;

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
    /// Parsed credential keys by key id.
    pub keys: KeyCache,
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

/// One accepted app and the verifier that applies to it.
#[derive(Debug)]
pub struct App {
    /// Its configuration.
    pub config: AppConfig,
    /// The App ID as the one-element list the core takes.
    pub ids: [AppId; 1],
    /// Apple's roots, plus the danger roots (development keys only) when the app accepts
    /// development keys.
    pub verifier: Arc<AttestationVerifier>,
}

impl App {
    /// The App ID text.
    pub fn id(&self) -> &str {
        self.config.id.as_str()
    }
}

/// The configured apps.
#[derive(Debug)]
pub struct Apps {
    by_id: HashMap<String, Arc<App>>,
}

impl Apps {
    /// Builds one verifier for production-only apps (Apple's roots only) and, if danger roots
    /// are configured, one more for apps that accept development keys: Apple's roots plus the
    /// extra ones, which the core lets vouch for development keys only (a production AAGUID
    /// under an extra root is `environment_mismatch`, whatever the app accepts).
    pub fn new(config: &Config) -> Result<Self, AppleError> {
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
        let by_id = config
            .apps
            .iter()
            .map(|app| {
                let verifier = if app.environment == EnvironmentPolicy::Production {
                    Arc::clone(&apple)
                } else {
                    Arc::clone(&extended)
                };
                let entry = App {
                    config: app.clone(),
                    ids: [app.id.clone()],
                    verifier,
                };
                (app.id.as_str().to_owned(), Arc::new(entry))
            })
            .collect();
        Ok(Self { by_id })
    }

    /// The app with this App ID.
    pub fn get(&self, app_id: &str) -> Option<&Arc<App>> {
        self.by_id.get(app_id)
    }

    /// The app a request names, or the only configured app when it names none.
    pub fn resolve(&self, app_id: Option<&str>) -> Result<&Arc<App>, ApiError> {
        match app_id {
            Some(app_id) => self
                .get(app_id)
                .ok_or_else(|| ApiError::UnknownApp(app_id.into())),
            None if self.by_id.len() == 1 => self.by_id.values().next().ok_or(ApiError::Internal),
            None => Err(ApiError::field(
                "appId",
                "several apps are configured: name one with appId or the X-App-Id header",
            )),
        }
    }

    /// Every configured App ID, sorted.
    pub fn ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.by_id.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }
}

/// Parsed credential public keys, so an assertion costs one signature check and no DER parse.
/// Keys are immutable once attested (the store never overwrites one), so an entry never goes
/// stale; the map is bounded and evicts an arbitrary entry when full.
pub struct KeyCache {
    capacity: usize,
    keys: Mutex<HashMap<KeyId, Arc<CredentialPublicKey>>>,
}

impl KeyCache {
    /// An empty cache holding at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The parsed key for `key_id`, parsing `spki` on a miss.
    pub fn get_or_parse(
        &self,
        key_id: KeyId,
        spki: &[u8],
    ) -> Result<Arc<CredentialPublicKey>, AppleError> {
        if let Some(key) = self.lock().get(&key_id) {
            return Ok(Arc::clone(key));
        }
        let key = Arc::new(CredentialPublicKey::from_spki(spki)?);
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<KeyId, Arc<CredentialPublicKey>>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts
        // and removes), so a poisoned lock is still usable.
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("capacity", &self.capacity)
            .field("len", &self.lock().len())
            .finish()
    }
}
