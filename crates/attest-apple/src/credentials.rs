//! The provider authentication token (JWT) both of Apple's APIs take.
//!
//! Apple: "use the same procedure you use to create a provider authentication token for APNs",
//! with a key that has DeviceCheck enabled. That is ES256, header `{alg: ES256, kid: <key id>}`,
//! claims `{iss: <team id>, iat: <seconds>}`, no expiry claim: Apple rejects tokens whose `iat` is
//! more than one hour old.

use std::fmt;
use std::sync::Mutex;

use attest_core::UnixTime;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// How long a signed token is reused. Apple rejects tokens older than one hour, and APNs (whose
/// procedure DeviceCheck borrows) refuses tokens refreshed more often than every 20 minutes, so
/// a token is signed at most once per 20 minutes and never used past a third of its lifetime.
pub const TOKEN_REUSE_SECS: u64 = 20 * 60;

/// Length of Apple key ids and team ids ("2X9R4HXF34", "ABCDE12345").
const APPLE_ID_LEN: usize = 10;

/// Why credentials could not be loaded or a token not signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The team id is not 10 ASCII letters or digits.
    #[error("team id must be 10 ASCII letters or digits")]
    InvalidTeamId,
    /// The key id is not 10 ASCII letters or digits.
    #[error("key id must be 10 ASCII letters or digits")]
    InvalidKeyId,
    /// The text is not a PEM `PRIVATE KEY` block (the format of Apple's `.p8` files).
    #[error("not a PEM PRIVATE KEY block (an Apple .p8 file)")]
    InvalidPem,
    /// The key is not an unencrypted PKCS#8 P-256 private key.
    #[error("not an unencrypted PKCS#8 P-256 private key")]
    InvalidPrivateKey,
    /// Signing failed (the system RNG or the crypto library refused).
    #[error("signing the authorization token failed")]
    SigningFailed,
}

impl CredentialsError {
    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidTeamId => "credentials_invalid_team_id",
            Self::InvalidKeyId => "credentials_invalid_key_id",
            Self::InvalidPem => "credentials_invalid_pem",
            Self::InvalidPrivateKey => "credentials_invalid_private_key",
            Self::SigningFailed => "credentials_signing_failed",
        }
    }
}

/// A team's DeviceCheck key: team id, key id and the P-256 private key from the `.p8` file.
///
/// Signs the `Authorization` token of both APIs and reuses it for up to
/// [`TOKEN_REUSE_SECS`]. Share one instance (in an `Arc`) between clients. `Debug` shows the ids
/// only, never the key or a token.
pub struct AppleCredentials {
    team_id: String,
    key_id: String,
    key: EcdsaKeyPair,
    cached: Mutex<Option<CachedToken>>,
}

struct CachedToken {
    issued_at: u64,
    token: String,
}

impl fmt::Debug for AppleCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppleCredentials")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .field("private_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize)]
struct Header<'a> {
    alg: &'static str,
    kid: &'a str,
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: u64,
}

impl AppleCredentials {
    /// Credentials from the contents of a `.p8` file (PEM `PRIVATE KEY`, PKCS#8 P-256).
    pub fn from_p8_pem(
        team_id: impl Into<String>,
        key_id: impl Into<String>,
        pem: &str,
    ) -> Result<Self, CredentialsError> {
        let der = pem_private_key(pem)?;
        Self::from_pkcs8_der(team_id, key_id, &der)
    }

    /// Credentials from a PKCS#8 DER P-256 private key.
    pub fn from_pkcs8_der(
        team_id: impl Into<String>,
        key_id: impl Into<String>,
        pkcs8: &[u8],
    ) -> Result<Self, CredentialsError> {
        let team_id = team_id.into();
        let key_id = key_id.into();
        if !is_apple_id(&team_id) {
            return Err(CredentialsError::InvalidTeamId);
        }
        if !is_apple_id(&key_id) {
            return Err(CredentialsError::InvalidKeyId);
        }
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
            .map_err(|_| CredentialsError::InvalidPrivateKey)?;
        Ok(Self {
            team_id,
            key_id,
            key,
            cached: Mutex::new(None),
        })
    }

    /// The team id (the token's `iss`).
    pub fn team_id(&self) -> &str {
        &self.team_id
    }

    /// The key id (the token's `kid`).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key as an uncompressed P-256 point (65 bytes), e.g. to configure a fake.
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    /// The token for an `Authorization` header at `now`: the cached one if it was issued no more
    /// than [`TOKEN_REUSE_SECS`] before `now` (and not after it), otherwise a new one.
    pub fn authorization_jwt(&self, now: UnixTime) -> Result<String, CredentialsError> {
        let now = now.as_secs();
        // A poisoned lock only means another thread panicked mid-update; the cache is then
        // simply ignored and rebuilt.
        let mut cached = match self.cached.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(token) = cached.as_ref()
            && token.issued_at <= now
            && now - token.issued_at < TOKEN_REUSE_SECS
        {
            return Ok(token.token.clone());
        }
        let token = self.sign_jwt(now)?;
        *cached = Some(CachedToken {
            issued_at: now,
            token: token.clone(),
        });
        Ok(token)
    }

    /// Signs a new token with `iat` = `issued_at` (no caching).
    fn sign_jwt(&self, issued_at: u64) -> Result<String, CredentialsError> {
        let header = serde_json::to_vec(&Header {
            alg: "ES256",
            kid: &self.key_id,
        })
        .map_err(|_| CredentialsError::SigningFailed)?;
        let claims = serde_json::to_vec(&Claims {
            iss: &self.team_id,
            iat: issued_at,
        })
        .map_err(|_| CredentialsError::SigningFailed)?;
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims));
        // ES256 (RFC 7518 §3.4): the signature is r ‖ s, 32 bytes each ("FIXED"), not DER.
        let signature = self
            .key
            .sign(&SystemRandom::new(), token.as_bytes())
            .map_err(|_| CredentialsError::SigningFailed)?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
        Ok(token)
    }
}

fn is_apple_id(id: &str) -> bool {
    id.len() == APPLE_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The DER inside the first `-----BEGIN PRIVATE KEY-----` block.
fn pem_private_key(pem: &str) -> Result<Vec<u8>, CredentialsError> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    let start = pem.find(BEGIN).ok_or(CredentialsError::InvalidPem)? + BEGIN.len();
    let rest = pem.get(start..).ok_or(CredentialsError::InvalidPem)?;
    let end = rest.find(END).ok_or(CredentialsError::InvalidPem)?;
    let body: String = rest
        .get(..end)
        .ok_or(CredentialsError::InvalidPem)?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(body)
        .map_err(|_| CredentialsError::InvalidPem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn credentials() -> AppleCredentials {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        AppleCredentials::from_pkcs8_der("ABCDE12345", "2X9R4HXF34", pkcs8.as_ref()).unwrap()
    }

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    fn claims_of(token: &str) -> serde_json::Value {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    #[test]
    fn token_is_reused_for_twenty_minutes_then_renewed() {
        let credentials = credentials();
        let first = credentials.authorization_jwt(at(1_000_000)).unwrap();
        let later = credentials
            .authorization_jwt(at(1_000_000 + TOKEN_REUSE_SECS - 1))
            .unwrap();
        assert_eq!(first, later);
        let renewed = credentials
            .authorization_jwt(at(1_000_000 + TOKEN_REUSE_SECS))
            .unwrap();
        assert_ne!(first, renewed);
        assert_eq!(
            claims_of(&renewed)["iat"],
            serde_json::json!(1_000_000 + TOKEN_REUSE_SECS)
        );
    }

    #[test]
    fn token_is_renewed_when_the_clock_goes_back() {
        let credentials = credentials();
        let first = credentials.authorization_jwt(at(2_000_000)).unwrap();
        let earlier = credentials.authorization_jwt(at(1_999_990)).unwrap();
        assert_ne!(first, earlier);
        assert_eq!(claims_of(&earlier)["iat"], serde_json::json!(1_999_990));
    }

    #[test]
    fn header_and_claims_are_apples() {
        let token = credentials().authorization_jwt(at(1_700_000_000)).unwrap();
        let mut parts = token.split('.');
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap())
                .unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "ES256", "kid": "2X9R4HXF34"})
        );
        assert_eq!(
            claims_of(&token),
            serde_json::json!({"iss": "ABCDE12345", "iat": 1_700_000_000})
        );
        parts.next();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap().len(),
            64
        );
    }

    #[test]
    fn debug_redacts_the_key_and_the_token() {
        let credentials = credentials();
        let token = credentials.authorization_jwt(at(1_700_000_000)).unwrap();
        let debug = format!("{credentials:?}");
        assert!(debug.contains("ABCDE12345") && debug.contains("<redacted>"));
        assert!(!debug.contains(&token));
        assert!(!debug.contains(token.split('.').next_back().unwrap()));
    }

    #[test]
    fn rejects_bad_ids_and_keys() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let load = |team: &str, key: &str, der: &[u8]| {
            AppleCredentials::from_pkcs8_der(team, key, der).map(|_| ())
        };
        assert_eq!(
            load("ABCDE1234", "2X9R4HXF34", pkcs8.as_ref()),
            Err(CredentialsError::InvalidTeamId)
        );
        assert_eq!(
            load("ABCDE12345", "2X9R4HXF3-", pkcs8.as_ref()),
            Err(CredentialsError::InvalidKeyId)
        );
        assert_eq!(
            load("ABCDE12345", "2X9R4HXF34", b"not a key"),
            Err(CredentialsError::InvalidPrivateKey)
        );
        assert_eq!(
            AppleCredentials::from_p8_pem(
                "ABCDE12345",
                "2X9R4HXF34",
                "-----BEGIN EC PRIVATE KEY-----"
            )
            .map(|_| ()),
            Err(CredentialsError::InvalidPem)
        );
    }
}
