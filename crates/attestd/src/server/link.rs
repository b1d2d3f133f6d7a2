//! Linking a new key to a user or a device: only what the customer's backend vouches for.
//!
//! In the plugin flow the app calls attestd directly, so a `userId` or `deviceId` in an
//! attestation body is whatever the caller wrote: anyone with one genuine device could name
//! another user's id and take over their device (join it, supersede its key). So a key is
//! linked only through a **link token**: a compact HS256 JWT the app's backend signs with the
//! app's `link_secret` for one user and one key, after checking the user's session:
//!
//! ```text
//! header  {"alg": "HS256", "typ": "JWT"}
//! claims  {"aud": "TEAMID.bundle.id", "sub": "alice", "device_id": "dev_…" (optional),
//!          "key_id": "<the keyId being attested, base64>", "iat": 1767225600, "exp": 1767225900}
//! ```
//!
//! `key_id` binds the vouch to one key: a leaked token cannot link any other key, and the key
//! it names can be attested once only. Its lifetime (`exp - iat`) is at most
//! [`MAX_LINK_TOKEN_LIFETIME`]; [`CLOCK_LEEWAY`] absorbs clock differences with the backend.
//!
//! `userId`/`deviceId` sent without a link token (or to an app without a `link_secret`) are
//! ignored: the key is a new device, stored without a user id (so that it neither joins nor
//! supersedes anyone's device and does not count in anyone's `user_key_churn`), and the answer
//! says so (`link.status = "unverified"`). A link token that does not verify is refused
//! (422 `link_token_invalid`, with the reason).

use std::time::Duration;

use attest_core::apple::KeyId;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use time::OffsetDateTime;

use super::context::client_id;
use super::error::ApiError;
use super::extract::decode_base64;

/// The shortest accepted `link_secret`: 256 bits, HS256's key size.
pub const MIN_LINK_SECRET_LEN: usize = 32;

/// The longest a link token may live (`exp - iat`): long enough for the app to fetch a token,
/// then a challenge, then run `attestKey`; short enough that a leaked token is soon useless.
pub const MAX_LINK_TOKEN_LIFETIME: Duration = Duration::from_secs(600);

/// How far `iat`, `nbf` and `exp` may be off between the backend's clock and attestd's.
pub const CLOCK_LEEWAY: Duration = Duration::from_secs(30);

/// The longest link token accepted. Its claims are a few ids (at most 128 characters each) and
/// four numbers: 4 KiB is ample and bounds the work of a hostile token.
const MAX_LINK_TOKEN_LEN: usize = 4096;

/// What an attestation body asked to link, before anything is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkRequest {
    /// No `userId`, `deviceId` or `linkToken`.
    Nothing,
    /// `userId` and/or `deviceId` without a link token: not authenticated, so ignored.
    Unsigned {
        /// The fields that were sent (`userId`, `deviceId`).
        ignored: Vec<&'static str>,
    },
    /// A link token, and the plain ids sent next to it (which must agree with it).
    Token {
        /// The compact JWT.
        token: String,
        /// `userId` of the body, if any.
        user_id: Option<String>,
        /// `deviceId` of the body, if any.
        device_id: Option<String>,
    },
}

impl LinkRequest {
    /// What a body's `userId`, `deviceId` and `linkToken` ask for. The ids are checked as
    /// before (trimmed, 1 to 128 printable characters: a bad one is 400 `malformed_request`);
    /// an empty token is no token.
    pub fn from_body(
        user_id: Option<&str>,
        device_id: Option<&str>,
        link_token: Option<&str>,
    ) -> Result<Self, ApiError> {
        let user_id = client_id("userId", user_id)?;
        let device_id = client_id("deviceId", device_id)?;
        if let Some(token) = link_token.map(str::trim).filter(|t| !t.is_empty()) {
            return Ok(Self::Token {
                token: token.to_owned(),
                user_id,
                device_id,
            });
        }
        let ignored: Vec<&'static str> = [
            user_id.as_ref().map(|_| "userId"),
            device_id.as_ref().map(|_| "deviceId"),
        ]
        .into_iter()
        .flatten()
        .collect();
        Ok(if ignored.is_empty() {
            Self::Nothing
        } else {
            Self::Unsigned { ignored }
        })
    }

    /// The link of a request that links nothing, whatever it sent (a device check): every id
    /// sent is ignored.
    pub fn ignored(&self) -> Link {
        let ignored = match self {
            Self::Nothing => return Link::default(),
            Self::Unsigned { ignored } => ignored.clone(),
            Self::Token {
                user_id, device_id, ..
            } => [
                user_id.as_ref().map(|_| "userId"),
                device_id.as_ref().map(|_| "deviceId"),
                Some("linkToken"),
            ]
            .into_iter()
            .flatten()
            .collect(),
        };
        Link {
            status: LinkStatus::Unverified,
            ignored,
            ..Link::default()
        }
    }
}

/// What a key is linked with once the request is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    /// `none`, `unverified` or `verified`.
    pub status: LinkStatus,
    /// The user id the backend vouched for.
    pub user_id: Option<String>,
    /// The device id the backend vouched for.
    pub device_id: Option<String>,
    /// Fields sent without a link token, ignored.
    pub ignored: Vec<&'static str>,
}

/// How a key came to be linked (`link.status` of the answer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LinkStatus {
    /// Nothing was asked: the key is a new device.
    #[default]
    None,
    /// Ids were sent without a (valid) vouch and ignored: the key is a new device.
    Unverified,
    /// A link token vouched for the ids: the key joins (and may supersede) as they say.
    Verified,
}

/// Why a link token was refused: `details.reason` of 422 `link_token_invalid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkTokenRejection {
    /// The app has no `link_secret`, so no token can be checked.
    #[error("this app has no link_secret: it cannot check link tokens")]
    NotConfigured,
    /// Not a compact JWT with the expected claims (or larger than 4 KiB).
    #[error("the link token is not a JWT with aud, key_id, iat and exp")]
    Malformed,
    /// `alg` is not HS256.
    #[error("the link token is not signed with HS256")]
    WrongAlgorithm,
    /// The HMAC does not verify with the app's secret.
    #[error("the link token's signature does not verify with the app's link_secret")]
    BadSignature,
    /// `aud` does not name this app.
    #[error("the link token's aud is not this app's App ID")]
    WrongAudience,
    /// `key_id` is not the key being attested.
    #[error("the link token's key_id is not the attested keyId")]
    WrongKey,
    /// `exp` has passed.
    #[error("the link token has expired")]
    Expired,
    /// `iat` or `nbf` is in the future.
    #[error("the link token is not valid yet (iat or nbf in the future)")]
    NotYetValid,
    /// `exp - iat` is longer than [`MAX_LINK_TOKEN_LIFETIME`] (or not positive).
    #[error("the link token's lifetime (exp - iat) is not between 1 and 600 seconds")]
    LifetimeTooLong,
    /// Neither `sub` nor `device_id`: nothing to link.
    #[error("the link token names neither a user (sub) nor a device (device_id)")]
    NothingToLink,
    /// `sub` or `device_id` is not an acceptable id (empty, over 128 characters, control
    /// characters).
    #[error("the link token's sub or device_id is not a valid id")]
    InvalidId,
    /// The body's `userId` differs from the token's `sub`.
    #[error("userId differs from the link token's sub")]
    UserMismatch,
    /// The body's `deviceId` differs from the token's `device_id`.
    #[error("deviceId differs from the link token's device_id")]
    DeviceMismatch,
}

impl LinkTokenRejection {
    /// The stable reason code.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotConfigured => "not_configured",
            Self::Malformed => "malformed",
            Self::WrongAlgorithm => "wrong_algorithm",
            Self::BadSignature => "bad_signature",
            Self::WrongAudience => "wrong_audience",
            Self::WrongKey => "wrong_key",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::NothingToLink => "nothing_to_link",
            Self::InvalidId => "invalid_id",
            Self::UserMismatch => "user_mismatch",
            Self::DeviceMismatch => "device_mismatch",
        }
    }

    /// Every reason, for docs/api.md.
    pub const REASONS: &'static [&'static str] = &[
        "not_configured",
        "malformed",
        "wrong_algorithm",
        "bad_signature",
        "wrong_audience",
        "wrong_key",
        "expired",
        "not_yet_valid",
        "lifetime_too_long",
        "nothing_to_link",
        "invalid_id",
        "user_mismatch",
        "device_mismatch",
    ];
}

/// `aud`: one App ID or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Several(Vec<String>),
}

impl Audience {
    fn names(&self, app_id: &str) -> bool {
        match self {
            Self::One(aud) => aud == app_id,
            Self::Several(auds) => auds.iter().any(|aud| aud == app_id),
        }
    }
}

/// The claims of a link token (other claims, such as `iss` or `jti`, are allowed and ignored).
#[derive(Debug, Deserialize)]
struct LinkClaims {
    aud: Audience,
    sub: Option<String>,
    device_id: Option<String>,
    key_id: String,
    iat: i64,
    exp: i64,
    nbf: Option<i64>,
}

/// Resolves what `request` links for `key_id` of app `app_id` (whose `link_secret` is
/// `secret`) at `now`.
pub fn resolve(
    request: &LinkRequest,
    secret: Option<&[u8]>,
    app_id: &str,
    key_id: &KeyId,
    now: OffsetDateTime,
) -> Result<Link, LinkTokenRejection> {
    match request {
        LinkRequest::Nothing => Ok(Link::default()),
        LinkRequest::Unsigned { ignored } => Ok(Link {
            status: LinkStatus::Unverified,
            ignored: ignored.clone(),
            ..Link::default()
        }),
        LinkRequest::Token {
            token,
            user_id,
            device_id,
        } => {
            let secret = secret.ok_or(LinkTokenRejection::NotConfigured)?;
            let link = verify_link_token(token, secret, app_id, key_id, now)?;
            if user_id.is_some() && user_id != &link.user_id {
                return Err(LinkTokenRejection::UserMismatch);
            }
            if device_id.is_some() && device_id != &link.device_id {
                return Err(LinkTokenRejection::DeviceMismatch);
            }
            Ok(link)
        }
    }
}

/// Verifies a link token: HS256 with `secret`, `aud` naming `app_id`, `key_id` naming
/// `key_id`, issued no later than `now` and alive at `now` (both within [`CLOCK_LEEWAY`]),
/// for at most [`MAX_LINK_TOKEN_LIFETIME`]. Time comes in as an argument.
pub fn verify_link_token(
    token: &str,
    secret: &[u8],
    app_id: &str,
    key_id: &KeyId,
    now: OffsetDateTime,
) -> Result<Link, LinkTokenRejection> {
    if token.len() > MAX_LINK_TOKEN_LEN {
        return Err(LinkTokenRejection::Malformed);
    }
    // The signature and the algorithm only: the claims are checked below against `now`.
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims =
        jsonwebtoken::decode::<LinkClaims>(token, &DecodingKey::from_secret(secret), &validation)
            .map_err(|error| match error.kind() {
                ErrorKind::InvalidSignature => LinkTokenRejection::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    LinkTokenRejection::WrongAlgorithm
                }
                _ => LinkTokenRejection::Malformed,
            })?
            .claims;

    if !claims.aud.names(app_id) {
        return Err(LinkTokenRejection::WrongAudience);
    }
    let vouched_key =
        decode_base64("key_id", &claims.key_id).map_err(|_| LinkTokenRejection::WrongKey)?;
    if vouched_key.as_slice() != key_id.as_bytes() {
        return Err(LinkTokenRejection::WrongKey);
    }
    let lifetime = claims.exp.checked_sub(claims.iat).unwrap_or(i64::MAX);
    if lifetime <= 0 || lifetime.unsigned_abs() > MAX_LINK_TOKEN_LIFETIME.as_secs() {
        return Err(LinkTokenRejection::LifetimeTooLong);
    }
    let now = now.unix_timestamp();
    let leeway = i64::try_from(CLOCK_LEEWAY.as_secs()).unwrap_or(0);
    let not_before = claims.nbf.map_or(claims.iat, |nbf| nbf.max(claims.iat));
    if not_before > now.saturating_add(leeway) {
        return Err(LinkTokenRejection::NotYetValid);
    }
    if claims.exp.saturating_add(leeway) < now {
        return Err(LinkTokenRejection::Expired);
    }
    let id = |field, value: Option<&str>| match value {
        // An id present but empty is a bad id, not an absent one.
        Some(text) if text.trim().is_empty() => Err(LinkTokenRejection::InvalidId),
        value => client_id(field, value).map_err(|_| LinkTokenRejection::InvalidId),
    };
    let user_id = id("sub", claims.sub.as_deref())?;
    let device_id = id("device_id", claims.device_id.as_deref())?;
    if user_id.is_none() && device_id.is_none() {
        return Err(LinkTokenRejection::NothingToLink);
    }
    Ok(Link {
        status: LinkStatus::Verified,
        user_id,
        device_id,
        ignored: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const APP: &str = "TEAM.com.example";
    const NOW: i64 = 1_780_000_000;
    const KEY: KeyId = KeyId([7; 32]);

    fn sign(claims: &Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn claims() -> Value {
        json!({
            "aud": APP,
            "sub": "alice",
            "key_id": base64::engine::general_purpose::STANDARD.encode(KEY.0),
            "iat": NOW - 10,
            "exp": NOW + 290,
        })
    }

    fn with(edit: Value) -> String {
        let mut claims = claims();
        for (name, value) in edit.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        sign(&claims)
    }

    fn check(token: &str) -> Result<Link, LinkTokenRejection> {
        let now = OffsetDateTime::from_unix_timestamp(NOW).unwrap();
        verify_link_token(token, SECRET, APP, &KEY, now)
    }

    #[test]
    fn a_valid_token_vouches_for_its_ids() {
        let link = check(&sign(&claims())).unwrap();
        assert_eq!(link.status, LinkStatus::Verified);
        assert_eq!(link.user_id.as_deref(), Some("alice"));
        assert_eq!(link.device_id, None);
        let link = check(&with(json!({ "device_id": "dev_x", "sub": null }))).unwrap();
        assert_eq!(
            (link.user_id, link.device_id.as_deref()),
            (None, Some("dev_x"))
        );
        // URL-safe key ids, audience lists and extra claims are fine.
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(KEY.0);
        assert!(
            check(&with(
                json!({ "key_id": key, "aud": ["x", APP], "iss": "b" })
            ))
            .is_ok()
        );
        // Within the leeway on both sides.
        assert!(check(&with(json!({ "iat": NOW + 20, "exp": NOW + 300 }))).is_ok());
        assert!(check(&with(json!({ "iat": NOW - 320, "exp": NOW - 20 }))).is_ok());
    }

    #[test]
    fn every_broken_claim_has_its_reason() {
        use LinkTokenRejection as R;
        let other_key = base64::engine::general_purpose::STANDARD.encode([8; 32]);
        let cases = [
            (with(json!({ "aud": "TEAM.com.other" })), R::WrongAudience),
            (with(json!({ "aud": null })), R::Malformed),
            (with(json!({ "key_id": other_key })), R::WrongKey),
            (with(json!({ "key_id": "not base64!" })), R::WrongKey),
            (with(json!({ "key_id": null })), R::Malformed),
            (
                with(json!({ "iat": NOW - 400, "exp": NOW - 100 })),
                R::Expired,
            ),
            (
                with(json!({ "iat": NOW + 60, "exp": NOW + 300 })),
                R::NotYetValid,
            ),
            (with(json!({ "nbf": NOW + 60 })), R::NotYetValid),
            (
                with(json!({ "iat": NOW, "exp": NOW + 601 })),
                R::LifetimeTooLong,
            ),
            (with(json!({ "exp": NOW - 10 })), R::LifetimeTooLong),
            (with(json!({ "iat": i64::MIN })), R::LifetimeTooLong),
            (with(json!({ "exp": null })), R::Malformed),
            (with(json!({ "iat": 1.5 })), R::Malformed),
            (with(json!({ "sub": null })), R::NothingToLink),
            (with(json!({ "sub": "" })), R::InvalidId),
            (with(json!({ "sub": "a\u{0}b" })), R::InvalidId),
            (with(json!({ "device_id": "x".repeat(129) })), R::InvalidId),
            ("not.a.jwt".to_owned(), R::Malformed),
            ("x".repeat(MAX_LINK_TOKEN_LEN + 1), R::Malformed),
        ];
        for (token, expected) in cases {
            assert_eq!(check(&token).unwrap_err(), expected, "{token}");
        }
    }

    #[test]
    fn only_hs256_with_the_apps_secret_verifies() {
        let foreign = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(b"another secret of thirty-two bytes!"),
        )
        .unwrap();
        assert_eq!(
            check(&foreign).unwrap_err(),
            LinkTokenRejection::BadSignature
        );
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(
            check(&hs512).unwrap_err(),
            LinkTokenRejection::WrongAlgorithm
        );
        // alg "none" with the signature stripped.
        let unsigned = {
            let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let header = engine.encode(br#"{"alg":"none","typ":"JWT"}"#);
            let payload = engine.encode(claims().to_string());
            format!("{header}.{payload}.")
        };
        assert!(matches!(
            check(&unsigned).unwrap_err(),
            LinkTokenRejection::WrongAlgorithm | LinkTokenRejection::Malformed
        ));
        let tampered = {
            let token = sign(&claims());
            let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            let mut forged = claims();
            forged["sub"] = json!("mallory");
            parts[1] = engine.encode(forged.to_string());
            parts.join(".")
        };
        assert_eq!(
            check(&tampered).unwrap_err(),
            LinkTokenRejection::BadSignature
        );
    }

    #[test]
    fn requests_resolve_to_links() {
        let now = OffsetDateTime::from_unix_timestamp(NOW).unwrap();
        let resolve = |request: &LinkRequest, secret| resolve(request, secret, APP, &KEY, now);
        let nothing = LinkRequest::from_body(None, Some("  "), Some("")).unwrap();
        assert_eq!(nothing, LinkRequest::Nothing);
        assert_eq!(resolve(&nothing, Some(SECRET)).unwrap(), Link::default());
        let unsigned = LinkRequest::from_body(Some("alice"), Some("dev_a"), None).unwrap();
        let link = resolve(&unsigned, Some(SECRET)).unwrap();
        assert_eq!(link.status, LinkStatus::Unverified);
        assert_eq!(link.ignored, ["userId", "deviceId"]);
        assert_eq!((link.user_id, link.device_id), (None, None));

        let token = sign(&claims());
        let signed = LinkRequest::from_body(Some("alice"), None, Some(&token)).unwrap();
        assert_eq!(
            resolve(&signed, Some(SECRET)).unwrap().user_id.as_deref(),
            Some("alice")
        );
        assert_eq!(
            resolve(&signed, None).unwrap_err(),
            LinkTokenRejection::NotConfigured
        );
        let other_user = LinkRequest::from_body(Some("bob"), None, Some(&token)).unwrap();
        assert_eq!(
            resolve(&other_user, Some(SECRET)).unwrap_err(),
            LinkTokenRejection::UserMismatch
        );
        let other_device = LinkRequest::from_body(None, Some("dev_b"), Some(&token)).unwrap();
        assert_eq!(
            resolve(&other_device, Some(SECRET)).unwrap_err(),
            LinkTokenRejection::DeviceMismatch
        );
        assert!(LinkRequest::from_body(Some(&"x".repeat(129)), None, None).is_err());
    }

    #[test]
    fn reasons_are_listed() {
        use LinkTokenRejection as R;
        for rejection in [
            R::NotConfigured,
            R::Malformed,
            R::WrongAlgorithm,
            R::BadSignature,
            R::WrongAudience,
            R::WrongKey,
            R::Expired,
            R::NotYetValid,
            R::LifetimeTooLong,
            R::NothingToLink,
            R::InvalidId,
            R::UserMismatch,
            R::DeviceMismatch,
        ] {
            assert!(LinkTokenRejection::REASONS.contains(&rejection.reason()));
        }
    }
}
