//! One ES256 signing key pair and its public JWK.

use std::fmt;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde_json::json;

use crate::TokenError;

/// The JWS algorithm of every key: ECDSA on P-256 with SHA-256.
pub const ALGORITHM: &str = "ES256";

/// A P-256 key pair that signs tokens, named by its RFC 7638 thumbprint.
///
/// `Debug` shows only the kid: the private key never reaches logs.
#[derive(Clone)]
pub struct SigningKeyPair {
    kid: String,
    pkcs8: Vec<u8>,
    /// Affine coordinates of the public point, base64url without padding, as the JWK has them.
    x: String,
    y: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl SigningKeyPair {
    /// Generates a new random key pair.
    pub fn generate() -> Result<Self, TokenError> {
        let document =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| TokenError::KeyGeneration)?;
        Self::from_pkcs8(document.as_ref())
    }

    /// Loads a key pair from its PKCS#8 DER (as [`pkcs8_der`](Self::pkcs8_der) returned it).
    /// The kid is recomputed from the public key, so it always matches the key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, TokenError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| TokenError::InvalidKey)?;
        // An uncompressed P-256 point: 0x04, then X and Y of 32 bytes each.
        let (x, y) = match pair.public_key().as_ref().split_first() {
            Some((0x04, coordinates)) if coordinates.len() == 64 => coordinates.split_at(32),
            _ => return Err(TokenError::InvalidKey),
        };
        let x = URL_SAFE_NO_PAD.encode(x);
        let y = URL_SAFE_NO_PAD.encode(y);
        let decoding =
            DecodingKey::from_ec_components(&x, &y).map_err(|_| TokenError::InvalidKey)?;
        Ok(Self {
            kid: thumbprint(&x, &y),
            pkcs8: der.to_vec(),
            x,
            y,
            encoding: EncodingKey::from_ec_der(der),
            decoding,
        })
    }

    /// The key id: the base64url SHA-256 JWK thumbprint (RFC 7638) of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key as PKCS#8 DER, for storage. Secret.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as a JWK: `kty`, `crv`, `x`, `y`, `kid`, `use`, `alg`.
    pub fn public_jwk(&self) -> serde_json::Value {
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": self.x,
            "y": self.y,
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
        })
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }
}

impl fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyPair")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// RFC 7638 §3: SHA-256 over the required members of the EC JWK (`crv`, `kty`, `x`, `y`), in
/// lexicographic order, without whitespace; then base64url.
fn thumbprint(x: &str, y: &str) -> String {
    // x and y are base64url text, which needs no JSON escaping.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloading_the_pkcs8_gives_the_same_key() {
        let key = SigningKeyPair::generate().expect("generate");
        let reloaded = SigningKeyPair::from_pkcs8(key.pkcs8_der()).expect("reload");
        assert_eq!(reloaded.kid(), key.kid());
        assert_eq!(reloaded.public_jwk(), key.public_jwk());
    }

    #[test]
    fn kid_is_a_full_sha256_thumbprint() {
        let key = SigningKeyPair::generate().expect("generate");
        assert_eq!(
            URL_SAFE_NO_PAD.decode(key.kid()).expect("base64url").len(),
            32
        );
    }

    #[test]
    fn rejects_bytes_that_are_not_a_p256_pkcs8_key() {
        assert_eq!(
            SigningKeyPair::from_pkcs8(b"not a key").err(),
            Some(TokenError::InvalidKey)
        );
        assert_eq!(
            SigningKeyPair::from_pkcs8(&[]).err(),
            Some(TokenError::InvalidKey)
        );
    }

    #[test]
    fn debug_shows_the_kid_and_not_the_private_key() {
        let key = SigningKeyPair::generate().expect("generate");
        let text = format!("{key:?}");
        assert!(text.contains(key.kid()));
        assert!(!text.contains("pkcs8"), "{text}");
    }
}
