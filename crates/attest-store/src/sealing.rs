//! Secrets at rest, sealed with the operator's key-encryption key.
//!
//! The store keeps two kinds of secret: the private halves of the JWT signing keys
//! (`signing_keys.private_pkcs8`) and the server secrets (`server_secrets.secret`, the challenge
//! MAC key). Whoever reads them can mint tokens that verify against the live JWKS, or forge
//! challenges. With a [`KeyEncryptionKey`] in [`StoreOptions`](crate::StoreOptions), the store
//! seals each one before it is written and opens it when it is read, so a copy of the database
//! (a stolen file, a backup, a read-only SQL role) holds no usable secret without the key.
//!
//! # Stored form (version 1)
//!
//! ```text
//! "attestd-sealed:v1:" | key id (8 bytes) | nonce (12 bytes) | AES-256-GCM ciphertext and tag
//! ```
//!
//! - AES-256-GCM (aws-lc-rs), a fresh random nonce per seal.
//! - The additional authenticated data is the header (prefix and key id) followed by the
//!   secret's identity, `signing_keys` and the kid or `server_secrets` and the name: a sealed
//!   value copied into another row does not open.
//! - The key id is the first 8 bytes of HMAC-SHA-256(key, "attestd key-encryption key id"),
//!   so a wrong key is named as such before any decryption, without revealing the key.
//! - A value without the prefix is plaintext, written before a key was configured: it is read
//!   as it is, and sealed in place when a store with a key connects (see
//!   [`impl_sealing_for`]). A PKCS#8 key starts with `0x30`; the chance that a random 32-byte
//!   server secret starts with the 18-byte prefix is 2^-144.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::StoreError;

/// The first bytes of every sealed value: recognisable in a hex dump, and versioned.
pub const SEALED_PREFIX: &[u8] = b"attestd-sealed:v1:";

const KEY_ID_LEN: usize = 8;
/// AES-GCM's tag.
const TAG_LEN: usize = 16;
/// What the key id is the MAC of.
const KEY_ID_LABEL: &[u8] = b"attestd key-encryption key id";

/// The operator's 256-bit key that seals the secrets in the database. `Debug` shows its id
/// only.
#[derive(Clone)]
pub struct KeyEncryptionKey {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    key: LessSafeKey,
    id: [u8; KEY_ID_LEN],
}

impl KeyEncryptionKey {
    /// Its length in bytes.
    pub const LEN: usize = 32;

    /// A key from exactly [`LEN`](Self::LEN) random bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, InvalidKeyEncryptionKey> {
        let invalid = InvalidKeyEncryptionKey {
            length: bytes.len(),
        };
        if bytes.len() != Self::LEN {
            return Err(invalid);
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| invalid)?;
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, bytes), KEY_ID_LABEL);
        let id = tag
            .as_ref()
            .first_chunk::<KEY_ID_LEN>()
            .copied()
            .ok_or(invalid)?;
        Ok(Self {
            inner: Arc::new(KeyInner {
                key: LessSafeKey::new(key),
                id,
            }),
        })
    }

    /// The key's id, as logs and errors show it: 16 hex digits, derived from the key.
    pub fn id(&self) -> String {
        hex(&self.inner.id)
    }
}

impl PartialEq for KeyEncryptionKey {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
    }
}

impl Eq for KeyEncryptionKey {}

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyEncryptionKey")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

/// The bytes given are not a 256-bit key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a key-encryption key is 32 random bytes, not {length}")]
pub struct InvalidKeyEncryptionKey {
    length: usize,
}

/// Why a sealed secret could not be opened. The store never falls back to another key or to
/// a fresh secret: a server that cannot open its secrets must not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The secret is sealed and no key-encryption key is configured.
    #[error(
        "the database's secrets are encrypted ({secret} is sealed with key-encryption key \
         {key_id}); set ATTESTD_KEY_ENCRYPTION_KEY or key_encryption_key_file"
    )]
    KeyMissing {
        /// Which secret.
        secret: String,
        /// The id of the key it is sealed with.
        key_id: String,
    },
    /// The secret is sealed with another key than the configured one.
    #[error(
        "{secret} is sealed with key-encryption key {stored_key_id}, but the configured key is \
         {configured_key_id}: wrong ATTESTD_KEY_ENCRYPTION_KEY?"
    )]
    WrongKey {
        /// Which secret.
        secret: String,
        /// The id of the key it is sealed with.
        stored_key_id: String,
        /// The id of the configured key.
        configured_key_id: String,
    },
    /// The sealed value does not open with the right key: it was altered or truncated.
    #[error(
        "{secret} does not open with key-encryption key {key_id}: the stored value was altered"
    )]
    Altered {
        /// Which secret.
        secret: String,
        /// The configured key's id.
        key_id: String,
    },
}

/// The secret a value is, bound into its seal.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SecretName<'a> {
    /// `signing_keys.private_pkcs8` of this kid.
    SigningKey(&'a str),
    /// `server_secrets.secret` of this name.
    ServerSecret(&'a str),
}

impl SecretName<'_> {
    fn table(self) -> &'static str {
        match self {
            Self::SigningKey(_) => "signing_keys",
            Self::ServerSecret(_) => "server_secrets",
        }
    }

    fn describe(self) -> String {
        match self {
            Self::SigningKey(kid) => format!("signing key {kid:?}"),
            Self::ServerSecret(name) => format!("server secret {name:?}"),
        }
    }

    /// The row's key: the kid or the name.
    pub(crate) fn row_key(&self) -> &str {
        match self {
            Self::SigningKey(row) | Self::ServerSecret(row) => row,
        }
    }
}

/// Seals and opens the store's secrets, with the configured key if there is one.
#[derive(Clone, Default)]
pub(crate) struct Sealer {
    key: Option<KeyEncryptionKey>,
}

impl Sealer {
    pub(crate) fn new(key: Option<KeyEncryptionKey>) -> Self {
        Self { key }
    }

    /// Whether new secrets are sealed (a key is configured).
    pub(crate) fn seals(&self) -> bool {
        self.key.is_some()
    }

    /// What to store for `secret`: sealed with the key, or as it is without one.
    pub(crate) fn seal(&self, name: SecretName<'_>, secret: &[u8]) -> Result<Vec<u8>, StoreError> {
        let Some(key) = &self.key else {
            return Ok(secret.to_vec());
        };
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| StoreError::Unavailable("the system random generator failed".into()))?;
        let mut sealed = Vec::with_capacity(
            SEALED_PREFIX.len() + KEY_ID_LEN + NONCE_LEN + secret.len() + TAG_LEN,
        );
        sealed.extend_from_slice(SEALED_PREFIX);
        sealed.extend_from_slice(&key.inner.id);
        sealed.extend_from_slice(&nonce);
        let mut body = secret.to_vec();
        key.inner
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(additional_data(&key.inner.id, name)),
                &mut body,
            )
            .map_err(|_| StoreError::Invalid(format!("{} cannot be sealed", name.describe())))?;
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    /// The secret stored as `stored`: opened if sealed, as it is if plaintext.
    pub(crate) fn open(&self, name: SecretName<'_>, stored: &[u8]) -> Result<Vec<u8>, StoreError> {
        let Some(rest) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(stored.to_vec());
        };
        let (stored_id, rest) = rest
            .split_first_chunk::<KEY_ID_LEN>()
            .ok_or_else(|| self.altered(name))?;
        let Some(key) = &self.key else {
            return Err(StoreError::Sealing(SealError::KeyMissing {
                secret: name.describe(),
                key_id: hex(stored_id),
            }));
        };
        if *stored_id != key.inner.id {
            return Err(StoreError::Sealing(SealError::WrongKey {
                secret: name.describe(),
                stored_key_id: hex(stored_id),
                configured_key_id: key.id(),
            }));
        }
        let (nonce, ciphertext) = rest
            .split_first_chunk::<NONCE_LEN>()
            .ok_or_else(|| self.altered(name))?;
        let mut body = ciphertext.to_vec();
        let opened = key
            .inner
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(additional_data(stored_id, name)),
                &mut body,
            )
            .map_err(|_| self.altered(name))?;
        Ok(opened.to_vec())
    }

    fn altered(&self, name: SecretName<'_>) -> StoreError {
        StoreError::Sealing(SealError::Altered {
            secret: name.describe(),
            key_id: self
                .key
                .as_ref()
                .map(KeyEncryptionKey::id)
                .unwrap_or_default(),
        })
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer").field("key", &self.key).finish()
    }
}

/// Whether `stored` is a sealed value (rather than a plaintext secret).
pub(crate) fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// The header, then the table and the row's key.
fn additional_data(key_id: &[u8; KEY_ID_LEN], name: SecretName<'_>) -> Vec<u8> {
    let mut data = Vec::with_capacity(SEALED_PREFIX.len() + KEY_ID_LEN + 64);
    data.extend_from_slice(SEALED_PREFIX);
    data.extend_from_slice(key_id);
    data.extend_from_slice(name.table().as_bytes());
    data.push(0);
    data.extend_from_slice(name.row_key().as_bytes());
    data
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Writes `settle_secrets`, run when a store connects: every plaintext secret is sealed in
/// place when a key is configured, and every sealed secret must open. Each row is sealed by
/// one compare-and-swap `UPDATE ... WHERE <key> = $1 AND <secret> = <the plaintext read>`, so
/// instances starting together on the same database each try, exactly one wins per row, and
/// the others check that what won opens with their key. The store type needs `writer` and
/// `secrets` fields.
macro_rules! impl_sealing_for {
    ($store:ty) => {
        impl $store {
            pub(crate) async fn settle_secrets(&self) -> Result<(), $crate::StoreError> {
                let keys = sqlx::query_as::<_, (String, Vec<u8>)>($crate::sql::STORED_SIGNING_KEYS)
                    .fetch_all(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                for (kid, stored) in &keys {
                    self.settle_secret(
                        $crate::sealing::SecretName::SigningKey(kid),
                        stored,
                        $crate::sql::SEAL_SIGNING_KEY,
                        $crate::sql::STORED_SIGNING_KEY,
                    )
                    .await?;
                }
                let secrets =
                    sqlx::query_as::<_, (String, Vec<u8>)>($crate::sql::STORED_SERVER_SECRETS)
                        .fetch_all(&self.writer)
                        .await
                        .map_err($crate::StoreError::from_sqlx)?;
                for (name, stored) in &secrets {
                    self.settle_secret(
                        $crate::sealing::SecretName::ServerSecret(name),
                        stored,
                        $crate::sql::SEAL_SERVER_SECRET,
                        $crate::sql::SERVER_SECRET,
                    )
                    .await?;
                }
                Ok(())
            }

            async fn settle_secret(
                &self,
                name: $crate::sealing::SecretName<'_>,
                stored: &[u8],
                seal: &'static str,
                reread: &'static str,
            ) -> Result<(), $crate::StoreError> {
                let row = name.row_key();
                if $crate::sealing::is_sealed(stored) || !self.secrets.seals() {
                    self.secrets.open(name, stored)?;
                    return Ok(());
                }
                let sealed = self.secrets.seal(name, stored)?;
                let done = sqlx::query(seal)
                    .bind(row)
                    .bind(stored)
                    .bind(sealed)
                    .execute(&self.writer)
                    .await
                    .map_err($crate::StoreError::from_sqlx)?;
                if done.rows_affected() == 0 {
                    // Another instance sealed it first: what it stored must open with our key.
                    let now = sqlx::query_scalar::<_, Vec<u8>>(reread)
                        .bind(row)
                        .fetch_optional(&self.writer)
                        .await
                        .map_err($crate::StoreError::from_sqlx)?;
                    if let Some(now) = now {
                        self.secrets.open(name, &now)?;
                    }
                }
                Ok(())
            }
        }
    };
}

pub(crate) use impl_sealing_for;

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> KeyEncryptionKey {
        KeyEncryptionKey::new(&[byte; 32]).unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_with_its_key_and_row_only() {
        let sealer = Sealer::new(Some(key(7)));
        let secret = b"a PKCS#8 document, say";
        let sealed = sealer.seal(SecretName::SigningKey("k1"), secret).unwrap();
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.windows(secret.len()).any(|part| part == secret));
        assert_eq!(
            sealer.open(SecretName::SigningKey("k1"), &sealed).unwrap(),
            secret
        );
        // Another row, another table: the same bytes do not open.
        for other in [SecretName::SigningKey("k2"), SecretName::ServerSecret("k1")] {
            assert!(matches!(
                sealer.open(other, &sealed),
                Err(StoreError::Sealing(SealError::Altered { .. }))
            ));
        }
        // A fresh nonce each time.
        assert_ne!(
            sealed,
            sealer.seal(SecretName::SigningKey("k1"), secret).unwrap()
        );
    }

    #[test]
    fn the_wrong_key_no_key_and_altered_bytes_are_refused_by_name() {
        let sealed = Sealer::new(Some(key(1)))
            .seal(SecretName::ServerSecret("challenge"), &[9; 32])
            .unwrap();
        let name = SecretName::ServerSecret("challenge");
        assert!(matches!(
            Sealer::new(Some(key(2))).open(name, &sealed),
            Err(StoreError::Sealing(SealError::WrongKey { .. }))
        ));
        let error = Sealer::new(None).open(name, &sealed).unwrap_err();
        assert!(matches!(
            error,
            StoreError::Sealing(SealError::KeyMissing { .. })
        ));
        assert!(
            error.to_string().contains("secrets are encrypted")
                && error.to_string().contains("ATTESTD_KEY_ENCRYPTION_KEY"),
            "{error}"
        );
        let sealer = Sealer::new(Some(key(1)));
        for cut in [SEALED_PREFIX.len() + 3, sealed.len() - 1] {
            assert!(matches!(
                sealer.open(name, &sealed[..cut]),
                Err(StoreError::Sealing(SealError::Altered { .. }))
            ));
        }
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(sealer.open(name, &flipped).is_err());
    }

    #[test]
    fn plaintext_passes_through_and_is_kept_without_a_key() {
        let plain = [0x30, 0x81, 0x87];
        assert_eq!(
            Sealer::new(None)
                .seal(SecretName::SigningKey("k"), &plain)
                .unwrap(),
            plain
        );
        for sealer in [Sealer::new(None), Sealer::new(Some(key(3)))] {
            assert_eq!(
                sealer.open(SecretName::SigningKey("k"), &plain).unwrap(),
                plain
            );
        }
    }

    #[test]
    fn keys_must_be_32_bytes_and_debug_shows_only_the_id() {
        assert!(KeyEncryptionKey::new(&[0; 16]).is_err());
        assert!(KeyEncryptionKey::new(&[0; 33]).is_err());
        let key = key(0xAB);
        assert_eq!(key.id().len(), 16);
        let text = format!("{key:?}");
        assert!(text.contains(&key.id()) && !text.contains("171"), "{text}");
        assert_ne!(key.id(), self::key(0xAC).id());
    }
}
