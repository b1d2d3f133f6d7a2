//! JWTs for attested devices: ES256 keys kept in the store, so every node signs with and
//! publishes the same keys, and a rotation on one node reaches the others at the next refresh.

use std::sync::RwLock;
use std::time::Duration;

use attest_store::{AnyStore, DeviceKey, SigningKey, Store, StoreError, whole_seconds};
use attest_token::{ALGORITHM, Claims, Keyring, SigningKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use time::OffsetDateTime;

use super::config::AppConfig;
use super::dto::RotatedKey;
use super::error::ApiError;
use super::state::App;

/// A signed token and its expiry.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWS.
    pub token: String,
    /// When it expires.
    pub expires_at: OffsetDateTime,
}

/// Why signing keys could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored key is not usable, or no key could be generated.
    #[error("signing key {kid}: {error}")]
    Key {
        /// The kid, when known.
        kid: String,
        /// What attest-token said.
        #[source]
        error: attest_token::TokenError,
    },
    /// The store holds no usable key (it was just created, so the database changed under us).
    #[error("no usable signing key in the store")]
    NoKey,
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Store(error) => error.into(),
            error => {
                tracing::error!(%error, "signing key failure");
                Self::Internal
            }
        }
    }
}

/// The signing keys in memory, as an attest-token [`Keyring`]: the newest unretired stored key
/// signs, the other unretired keys still verify and are published in the JWKS.
pub struct Tokens {
    keyring: RwLock<Keyring>,
}

impl Tokens {
    /// Loads the stored keys, creating the first one if there is none.
    pub async fn load_or_create(store: &AnyStore) -> Result<Self, TokenError> {
        let mut stored = store.signing_keys().await?;
        if !stored.iter().any(is_live) {
            insert_new_key(store, &stored).await?;
            stored = store.signing_keys().await?;
        }
        Ok(Self {
            keyring: RwLock::new(keyring_of(&stored)?),
        })
    }

    /// Re-reads the stored keys (picks up keys rotated by another node).
    pub async fn refresh(&self, store: &AnyStore) -> Result<(), TokenError> {
        let keyring = keyring_of(&store.signing_keys().await?)?;
        *self
            .keyring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = keyring;
        Ok(())
    }

    /// Stores a new signing key and makes it the active one. A key whose successor was created
    /// longer ago than the longest token lifetime is retired: every token it signed has expired.
    pub async fn rotate(
        &self,
        store: &AnyStore,
        longest_ttl: Duration,
    ) -> Result<RotatedKey, ApiError> {
        let kid = insert_new_key(store, &store.signing_keys().await?).await?;
        let now = whole_seconds(OffsetDateTime::now_utc());
        let stored = store.signing_keys().await?;
        let live = live_keys(&stored);
        for pair in live.windows(2) {
            if let [older, newer] = pair
                && newer.created_at + longest_ttl < now
            {
                store.retire_signing_key(&older.kid, now).await?;
            }
        }
        self.refresh(store).await?;
        let keyring = self.read();
        let published = std::iter::once(keyring.active())
            .chain(keyring.previous())
            .map(|key| key.kid().to_owned())
            .collect();
        Ok(RotatedKey { kid, published })
    }

    /// Signs a token for `device` of `app` with the `extra` claims (risk score, band,
    /// permissions...).
    pub fn issue(
        &self,
        issuer: &str,
        app: &App,
        device: &DeviceKey,
        now: OffsetDateTime,
        extra: serde_json::Map<String, Value>,
    ) -> Result<IssuedToken, ApiError> {
        let issued_at = whole_seconds(now);
        let expires_at = issued_at + app.config.token_ttl;
        let claims = Claims {
            iss: issuer.to_owned(),
            sub: device.device_id.clone(),
            aud: app.id().to_owned(),
            iat: issued_at,
            exp: expires_at,
            key_id: URL_SAFE_NO_PAD.encode(device.key_id),
            env: match device.environment {
                attest_store::Environment::Development => attest_token::Environment::Development,
                attest_store::Environment::Production => attest_token::Environment::Production,
            },
            extra,
        };
        let token = self.read().issue(&claims).map_err(|error| {
            tracing::error!(%error, "JWT signing failed");
            ApiError::Internal
        })?;
        Ok(IssuedToken { token, expires_at })
    }

    /// The JWK Set of every key that verifies tokens.
    pub fn jwks(&self) -> Value {
        self.read().jwks()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keyring> {
        self.keyring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keyring = self.read();
        f.debug_struct("Tokens")
            .field("active", &keyring.active().kid())
            .field("previous", &keyring.previous().len())
            .finish()
    }
}

fn is_live(key: &SigningKey) -> bool {
    key.retired_at.is_none() && key.algorithm == ALGORITHM
}

/// Unretired ES256 keys, oldest first.
fn live_keys(stored: &[SigningKey]) -> Vec<&SigningKey> {
    let mut live: Vec<&SigningKey> = stored.iter().filter(|key| is_live(key)).collect();
    live.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
    live
}

fn keyring_of(stored: &[SigningKey]) -> Result<Keyring, TokenError> {
    let mut pairs = live_keys(stored)
        .into_iter()
        .rev()
        .map(|key| {
            SigningKeyPair::from_pkcs8(&key.private_pkcs8).map_err(|error| TokenError::Key {
                kid: key.kid.clone(),
                error,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if pairs.is_empty() {
        return Err(TokenError::NoKey);
    }
    let active = pairs.remove(0);
    Ok(Keyring::with_previous(active, pairs))
}

/// Stores a new key. The store keeps whole seconds and orders keys by creation time, so the new
/// key is dated at least one second after every `existing` key: it is unambiguously the newest
/// even when rotated twice within a second.
async fn insert_new_key(store: &AnyStore, existing: &[SigningKey]) -> Result<String, TokenError> {
    let pair = SigningKeyPair::generate().map_err(|error| TokenError::Key {
        kid: String::new(),
        error,
    })?;
    let now = whole_seconds(OffsetDateTime::now_utc());
    let after_newest = existing
        .iter()
        .map(|key| key.created_at + Duration::from_secs(1))
        .max();
    let key = SigningKey {
        kid: pair.kid().to_owned(),
        algorithm: ALGORITHM.to_owned(),
        private_pkcs8: pair.pkcs8_der().to_vec(),
        created_at: after_newest.map_or(now, |after| after.max(now)),
        retired_at: None,
    };
    store.insert_signing_key(&key).await?;
    Ok(key.kid)
}

/// The longest token lifetime of any configured app.
pub fn longest_ttl(apps: &[AppConfig]) -> Duration {
    apps.iter()
        .map(|app| app.token_ttl)
        .max()
        .unwrap_or_default()
}
