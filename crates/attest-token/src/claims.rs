//! The claims of an attestd token.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::TokenError;

/// Claim names defined by [`Claims`] (and by RFC 7519, even when unused), which
/// [`Claims::extra`] must not repeat: a JSON object with the same name twice means different
/// things to different parsers.
pub const RESERVED_CLAIMS: [&str; 10] = [
    "iss", "sub", "aud", "iat", "exp", "nbf", "jti", "key_id", "env", "platform",
];

pub use attest_types::{Environment, Platform};

/// What an attestd token says: this device's attested key passed verification for this app.
///
/// `iat` and `exp` are JWT NumericDates (unix seconds); sub-second parts are dropped when the
/// token is issued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer: the attestd deployment's URL or name.
    pub iss: String,
    /// The device id.
    pub sub: String,
    /// The app the token is for: its App ID (`TEAMID.bundle.id`), or the package name of an
    /// Android-only app.
    pub aud: String,
    /// When the token was issued.
    #[serde(with = "time::serde::timestamp")]
    pub iat: OffsetDateTime,
    /// When the token stops being valid.
    #[serde(with = "time::serde::timestamp")]
    pub exp: OffsetDateTime,
    /// The attested key's id, base64url without padding.
    pub key_id: String,
    /// The environment the key was attested in.
    pub env: Environment,
    /// The platform whose attestation proved the key (`ios`, `android`).
    pub platform: Platform,
    /// Further claims (risk score, permissions...). Names must not be in [`RESERVED_CLAIMS`].
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Claims {
    /// Fails with [`TokenError::ReservedClaim`] if an extra claim repeats a registered name.
    pub fn check_extra(&self) -> Result<(), TokenError> {
        match self
            .extra
            .keys()
            .find(|name| RESERVED_CLAIMS.contains(&name.as_str()))
        {
            Some(name) => Err(TokenError::ReservedClaim(name.clone())),
            None => Ok(()),
        }
    }
}
