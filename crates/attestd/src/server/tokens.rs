//! JWTs for attested devices: ES256 keys kept in the store, so every node signs with and
//! publishes the same keys, and a rotation on one node reaches the others at the next refresh.
//!
//! A key stops signing when a newer one appears, and stays published until every token it
//! signed has expired: its successor's creation, plus the longest token lifetime, plus
//! [`RETIREMENT_MARGIN`]. Then it is retired (it leaves the JWKS) and, a day later, deleted
//! with its private key. Every refresh does this, not only a rotation, so the JWKS holds the
//! active key and the keys whose tokens may still be in use, however often keys rotate.

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
use super::telemetry::{Severity, server_failure};

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
                server_failure(Severity::Bug, "signing key failure", &error);
                Self::Internal
            }
        }
    }
}

/// How long, beyond the longest token lifetime after its successor appeared, a key stays
/// published: other nodes go on signing with it until their next refresh (30 s), node clocks
/// differ (tokens allow 60 s of skew), and verifiers allow some leeway of their own.
pub const RETIREMENT_MARGIN: time::Duration = time::Duration::minutes(5);

/// How long a retired key (out of the JWKS, its tokens all expired) is kept before it is
/// deleted with its private key.
pub const RETIRED_KEY_RETENTION: time::Duration = time::Duration::DAY;

/// The signing keys in memory, as an attest-token [`Keyring`]: the newest unretired stored key
/// signs, the other unretired keys still verify and are published in the JWKS.
pub struct Tokens {
    keyring: RwLock<Keyring>,
    /// The longest token lifetime of any configured app: how long tokens of a replaced key
    /// live on.
    longest_ttl: Duration,
}

impl Tokens {
    /// Loads the stored keys, creating the first one if there is none, and retires the keys
    /// whose tokens have all expired. `longest_ttl` is the longest token lifetime of any app.
    pub async fn load_or_create(
        store: &AnyStore,
        longest_ttl: Duration,
    ) -> Result<Self, TokenError> {
        let stored = store.signing_keys().await?;
        if !stored.iter().any(is_live) {
            insert_new_key(store, &stored).await?;
        }
        let keyring = settle(store, longest_ttl, OffsetDateTime::now_utc()).await?;
        Ok(Self {
            keyring: RwLock::new(keyring),
            longest_ttl,
        })
    }

    /// Re-reads the stored keys (picks up keys rotated by another node), retiring and deleting
    /// the keys that are done.
    pub async fn refresh(&self, store: &AnyStore) -> Result<(), TokenError> {
        self.refresh_at(store, OffsetDateTime::now_utc()).await
    }

    /// [`refresh`](Self::refresh) as of `now`.
    pub async fn refresh_at(
        &self,
        store: &AnyStore,
        now: OffsetDateTime,
    ) -> Result<(), TokenError> {
        let keyring = settle(store, self.longest_ttl, now).await?;
        *self
            .keyring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = keyring;
        Ok(())
    }

    /// Stores a new signing key and makes it the active one; the keys whose tokens have all
    /// expired are retired.
    pub async fn rotate(&self, store: &AnyStore) -> Result<RotatedKey, ApiError> {
        let kid = insert_new_key(store, &store.signing_keys().await?).await?;
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
            env: device.environment,
            platform: device.platform(),
            extra,
        };
        let token = self.read().issue(&claims).map_err(|error| {
            server_failure(Severity::Bug, "JWT signing failed", &error);
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

/// The kids of the live keys whose tokens have all expired at `now`: a key stopped signing
/// when the next key (by creation) appeared, so its last tokens expire `longest_ttl` after
/// that, and [`RETIREMENT_MARGIN`] later it is retired. The newest key is never retired.
pub fn due_for_retirement(
    stored: &[SigningKey],
    longest_ttl: Duration,
    now: OffsetDateTime,
) -> Vec<String> {
    let mut keys: Vec<&SigningKey> = stored
        .iter()
        .filter(|key| key.algorithm == ALGORITHM)
        .collect();
    keys.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
    keys.windows(2)
        .filter_map(|pair| match pair {
            [older, successor]
                if older.retired_at.is_none()
                    && successor.created_at + longest_ttl + RETIREMENT_MARGIN <= now =>
            {
                Some(older.kid.clone())
            }
            _ => None,
        })
        .collect()
}

/// Unretired ES256 keys, oldest first.
fn live_keys(stored: &[SigningKey]) -> Vec<&SigningKey> {
    let mut live: Vec<&SigningKey> = stored.iter().filter(|key| is_live(key)).collect();
    live.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
    live
}

/// Retires the keys whose tokens have all expired at `now`, deletes the keys retired longer
/// than [`RETIRED_KEY_RETENTION`] ago, and returns the keyring of what is left. Retiring and
/// deleting are best effort: a database that refuses writes leaves the keys published a while
/// longer, which is harmless, and must not stop this node picking up a rotation.
async fn settle(
    store: &AnyStore,
    longest_ttl: Duration,
    now: OffsetDateTime,
) -> Result<Keyring, TokenError> {
    let now = whole_seconds(now);
    let mut stored = store.signing_keys().await?;
    let due = due_for_retirement(&stored, longest_ttl, now);
    let mut retired = Vec::with_capacity(due.len());
    for kid in due {
        match store.retire_signing_key(&kid, now).await {
            Ok(()) => retired.push(kid),
            Err(error) => tracing::warn!(%error, kid, "could not retire a signing key"),
        }
    }
    if !retired.is_empty() {
        tracing::info!(
            ?retired,
            "signing keys retired: every token they signed has expired"
        );
        stored = store.signing_keys().await?;
    }
    let forget_before = now - RETIRED_KEY_RETENTION;
    if stored
        .iter()
        .any(|key| key.retired_at.is_some_and(|at| at < forget_before))
    {
        match store.delete_retired_signing_keys(forget_before).await {
            Ok(deleted) => tracing::info!(
                deleted,
                "retired signing keys deleted with their private keys"
            ),
            Err(error) => tracing::warn!(%error, "could not delete retired signing keys"),
        }
    }
    keyring_of(&stored)
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

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);
    const HOUR: Duration = Duration::from_secs(3600);

    fn stored(kid: &str, created_at: OffsetDateTime) -> SigningKey {
        let pair = SigningKeyPair::generate().unwrap();
        SigningKey {
            kid: kid.to_owned(),
            algorithm: ALGORITHM.to_owned(),
            private_pkcs8: pair.pkcs8_der().to_vec(),
            created_at,
            retired_at: None,
        }
    }

    #[test]
    fn a_key_is_retired_once_its_successor_has_been_signing_for_the_longest_lifetime() {
        let keys = [
            stored("a", T0),
            stored("b", T0 + time::Duration::hours(2)),
            stored("c", T0 + time::Duration::hours(10)),
        ];
        let due = |now| due_for_retirement(&keys, HOUR, now);
        // a's last tokens were signed when b appeared (T0 + 2 h): they expire at T0 + 3 h.
        assert!(due(T0 + time::Duration::hours(3)).is_empty(), "the margin");
        assert_eq!(
            due(T0 + time::Duration::hours(3) + RETIREMENT_MARGIN),
            ["a"]
        );
        assert_eq!(
            due(T0 + time::Duration::hours(11) + RETIREMENT_MARGIN),
            ["a", "b"]
        );
        assert_eq!(
            due(T0 + time::Duration::days(365)),
            ["a", "b"],
            "never the newest"
        );
        // A retired key is not retired again; the next one still counts from its successor.
        let mut keys = keys;
        keys[0].retired_at = Some(T0);
        assert_eq!(
            due_for_retirement(&keys, HOUR, T0 + time::Duration::days(1)),
            ["b"]
        );
    }

    #[tokio::test]
    async fn refreshing_retires_keys_whose_tokens_expired_and_deletes_them_a_day_later() {
        let store = AnyStore::connect("sqlite::memory:").await.unwrap();
        for key in [
            stored("old", T0),
            stored("previous", T0 + time::Duration::hours(2)),
            stored("active", T0 + time::Duration::hours(4)),
        ] {
            store.insert_signing_key(&key).await.unwrap();
        }
        let tokens = Tokens::load_or_create(&store, HOUR).await.unwrap();
        let published = |tokens: &Tokens| -> Vec<String> {
            tokens.jwks()["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|key| key["kid"].as_str().unwrap().to_owned())
                .collect()
        };
        // Loaded today: every key but the newest has long expired tokens.
        let active = tokens.read().active().kid().to_owned();
        assert_eq!(published(&tokens), [active]);
        assert_eq!(
            store.signing_keys().await.unwrap().len(),
            3,
            "retired, kept a day"
        );

        // As of times injected: before the first retirement was due, and after.
        let store = AnyStore::connect("sqlite::memory:").await.unwrap();
        for key in [
            stored("old", T0),
            stored("new", T0 + time::Duration::hours(2)),
        ] {
            store.insert_signing_key(&key).await.unwrap();
        }
        let tokens = Tokens {
            keyring: RwLock::new(Keyring::generate().unwrap()),
            longest_ttl: HOUR,
        };
        tokens
            .refresh_at(&store, T0 + time::Duration::hours(3))
            .await
            .unwrap();
        assert_eq!(
            published(&tokens).len(),
            2,
            "old tokens may still be in use"
        );
        let after = T0 + time::Duration::hours(3) + RETIREMENT_MARGIN;
        tokens.refresh_at(&store, after).await.unwrap();
        assert_eq!(published(&tokens).len(), 1);
        let kept = store.signing_keys().await.unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].retired_at, Some(after));
        tokens
            .refresh_at(
                &store,
                after + RETIRED_KEY_RETENTION + time::Duration::SECOND,
            )
            .await
            .unwrap();
        let kept = store.signing_keys().await.unwrap();
        assert_eq!(kept.len(), 1, "deleted with its private key");
        assert_eq!(published(&tokens).len(), 1);
    }
}
