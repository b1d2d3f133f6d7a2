//! The active signing key, the keys still accepted for verification, and the JWKS.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::Deserialize;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::key::ALGORITHM;
use crate::{Claims, SigningKeyPair, TokenError};

/// The longest token [`Keyring::verify`] reads. Issued tokens are about 600 bytes plus their
/// extra claims; anything near this size did not come from this crate.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How far in the future `iat` may be, to absorb clock differences between server nodes.
pub const MAX_CLOCK_SKEW: Duration = Duration::seconds(60);

/// Signs tokens with the active key and verifies tokens of the active and previous keys.
///
/// After [`rotate`](Keyring::rotate), tokens of the old key keep verifying until the caller
/// [`retire`](Keyring::retire)s it, which it should do once the longest token lifetime has
/// passed.
#[derive(Debug, Clone)]
pub struct Keyring {
    active: SigningKeyPair,
    previous: Vec<SigningKeyPair>,
}

impl Keyring {
    /// A keyring with one key.
    pub fn new(active: SigningKeyPair) -> Self {
        Self::with_previous(active, Vec::new())
    }

    /// A keyring signing with `active` and also accepting `previous` keys (newest first).
    /// Keys with the kid of an earlier key are dropped.
    pub fn with_previous(active: SigningKeyPair, previous: Vec<SigningKeyPair>) -> Self {
        let mut keyring = Self {
            active,
            previous: Vec::with_capacity(previous.len()),
        };
        for key in previous {
            if keyring.key(key.kid()).is_none() {
                keyring.previous.push(key);
            }
        }
        keyring
    }

    /// A keyring with one freshly generated key.
    pub fn generate() -> Result<Self, TokenError> {
        SigningKeyPair::generate().map(Self::new)
    }

    /// The key new tokens are signed with.
    pub fn active(&self) -> &SigningKeyPair {
        &self.active
    }

    /// Keys still accepted for verification, newest first.
    pub fn previous(&self) -> &[SigningKeyPair] {
        &self.previous
    }

    /// Makes a new active key; the old active key stays available for verification.
    /// Returns the new key, for the caller to persist.
    pub fn rotate(&mut self) -> Result<&SigningKeyPair, TokenError> {
        let new = SigningKeyPair::generate()?;
        let old = std::mem::replace(&mut self.active, new);
        self.previous.insert(0, old);
        Ok(&self.active)
    }

    /// Stops accepting a previous key; its tokens fail with [`TokenError::UnknownKey`] from
    /// then on. Returns the key, or `None` if no previous key has this kid (the active key
    /// cannot be retired: rotate first).
    pub fn retire(&mut self, kid: &str) -> Option<SigningKeyPair> {
        let position = self.previous.iter().position(|key| key.kid() == kid)?;
        Some(self.previous.remove(position))
    }

    /// The JWKS (RFC 7517) of every key accepted for verification, active key first.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = self.keys().map(SigningKeyPair::public_jwk).collect();
        json!({ "keys": keys })
    }

    /// Signs `claims` with the active key; the header names the key (`kid`).
    pub fn issue(&self, claims: &Claims) -> Result<String, TokenError> {
        claims.check_extra()?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.active.kid().to_owned());
        jsonwebtoken::encode(&header, claims, self.active.encoding_key())
            .map_err(|_| TokenError::Signing)
    }

    /// Verifies a token issued by [`issue`](Self::issue) with any key of this keyring and
    /// returns its claims.
    pub fn verify(
        &self,
        token: &str,
        expected_audience: &str,
        now: OffsetDateTime,
    ) -> Result<Claims, TokenError> {
        // Step 1 — bound the input before decoding anything.
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        // Step 2 — the header must name ES256 and a key of this keyring.
        let header = ProtectedHeader::parse(token)?;
        if header.alg != ALGORITHM {
            return Err(TokenError::UnsupportedAlgorithm);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.key(kid))
            .ok_or(TokenError::UnknownKey)?;
        // Step 3 — the signature, then the claims' shape. Times are checked below against the
        // caller's `now`, never the system clock.
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["iss", "sub", "aud", "iat", "exp"]);
        let claims = jsonwebtoken::decode::<Claims>(token, key.decoding_key(), &validation)
            .map_err(|error| verification_error(error.kind()))?
            .claims;
        // Step 4 — the audience is the App ID the caller serves.
        if claims.aud != expected_audience {
            return Err(TokenError::WrongAudience);
        }
        // Step 5 — valid from `iat` (give or take the clock skew) until just before `exp`.
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        if claims.iat > now + MAX_CLOCK_SKEW {
            return Err(TokenError::IssuedInFuture);
        }
        Ok(claims)
    }

    fn keys(&self) -> impl Iterator<Item = &SigningKeyPair> {
        std::iter::once(&self.active).chain(&self.previous)
    }

    fn key(&self, kid: &str) -> Option<&SigningKeyPair> {
        self.keys().find(|key| key.kid() == kid)
    }
}

/// The header members verification needs, read before any key is chosen.
#[derive(Deserialize)]
struct ProtectedHeader {
    alg: String,
    kid: Option<String>,
}

impl ProtectedHeader {
    /// Decodes the first of the token's three dot-separated parts.
    fn parse(token: &str) -> Result<Self, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(_payload), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let json = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| TokenError::Malformed)?;
        serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)
    }
}

fn verification_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => {
            TokenError::UnsupportedAlgorithm
        }
        ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::Json(_) => TokenError::InvalidClaims,
        _ => TokenError::Malformed,
    }
}
