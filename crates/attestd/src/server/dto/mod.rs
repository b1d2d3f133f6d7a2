//! Request and response bodies (JSON, camelCase), documented for `/openapi.json`.

mod admin;
mod risk;
mod senders;
pub mod wire;

pub use admin::{
    DecisionList, DecisionLogView, DecisionQuery, DeliveryList, DeliveryQuery, DeliveryView,
    DeviceDetail, OutcomeCountView, ReasonCountView, SummaryQuery, SummaryView, check_text,
    history_order,
};
pub use risk::{
    DecisionView, DeviceCheckView, DeviceIntelligence, FactorView, ReasonView, RiskView,
};
pub use senders::{SenderList, SenderQuery, SenderView, senders_of};

use attest_store::DeviceKey;
use attest_types::Environment;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use super::extract::encode_key_id;
use super::flows::IssuedChallenge;
use super::link::{Link, LinkStatus};
use super::platform::ProofFields;

/// RFC 3339 UTC text of a time.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// What a challenge may be spent on.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PurposeBody {
    /// Registering a key (`attestKey`); the default.
    #[default]
    Attestation,
    /// Signing one request with an attested key (`generateAssertion`).
    Assertion,
}

/// `POST /v1/challenges` (the body is optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeRequest {
    /// App ID `TEAMID.bundle.id`; defaults to the only configured app (or `X-App-Id`).
    pub app_id: Option<String>,
    /// `attestation` (default) or `assertion`.
    #[serde(default)]
    pub purpose: PurposeBody,
    /// For `assertion` challenges only (with `attestation` it is 400 `malformed_request`):
    /// bind the challenge to this key.
    #[schema(value_type = Option<wire::KeyId>)]
    pub key_id: Option<String>,
}

/// A one-time challenge.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeResponse {
    /// Opaque, 56 characters of base64url (a random nonce, the expiry and an HMAC tag). Hash
    /// its UTF-8 text with SHA-256 to get the clientDataHash for `attestKey`, or send it as (or
    /// inside) the assertion payload.
    #[schema(example = "AQ4wYq1n0bJxkP2cT7vLhVQAAAAAaSNEiAF4l2n8W0pC1y2mZ6u3Qx9sRkA")]
    pub challenge: String,
    /// RFC 3339 expiry time.
    pub expires_at: String,
    /// Seconds until expiry.
    pub expires_in: u64,
}

impl From<&IssuedChallenge> for ChallengeResponse {
    fn from(challenge: &IssuedChallenge) -> Self {
        Self {
            challenge: challenge.value.clone(),
            expires_at: rfc3339(challenge.expires_at),
            expires_in: challenge.ttl.as_secs(),
        }
    }
}

/// `POST /v1/attestations`: the client plugin's registration payload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttestationBody {
    /// `ios` or `android` (else 400 `unsupported_platform`).
    #[schema(value_type = wire::Platform)]
    pub platform: String,
    /// `apple-app-attest` on iOS, `android-key-attestation` on Android (else 400
    /// `unsupported_platform`).
    #[schema(value_type = wire::AttestationFormat)]
    pub format: String,
    /// iOS: the key id from `generateKey`. Android: standard base64 of SHA-256 of the leaf
    /// certificate's SubjectPublicKeyInfo (checked: `key_id_mismatch`).
    #[schema(value_type = wire::KeyId)]
    pub key_id: String,
    /// iOS: the challenge the app hashed into clientDataHash. Android: the challenge whose
    /// UTF-8 bytes the app set as attestationChallenge.
    #[schema(value_type = wire::Challenge)]
    pub challenge: String,
    /// iOS (required): the attestation object from `attestKey`.
    #[schema(value_type = Option<wire::Base64>)]
    pub token: Option<String>,
    /// Android (required): the Key Attestation certificate chain, base64 DER, leaf first (1 to
    /// 16 certificates; the root may be left out).
    #[schema(value_type = Option<Vec<wire::Base64>>)]
    pub x5c: Option<Vec<String>>,
    /// The app: its App ID (iOS) or its package name (Android); defaults to the only
    /// configured app.
    pub app_id: Option<String>,
    /// Optional: a link token from the app's backend (compact HS256 JWT signed with the app's
    /// `link_secret`; claims `aud` = App ID, `sub` = user id, optional `device_id`, `key_id` =
    /// this keyId, `iat`, `exp` at most 600 s later). Only a valid one links the key: with
    /// `device_id`, to that device; with only `sub`, to the device of the user's newest active
    /// key in the same environment; the key then supersedes that device's key. An invalid one
    /// is 422 `link_token_invalid` (`details.reason`). See docs/api.md, "Linking".
    #[schema(value_type = Option<wire::LinkToken>)]
    pub link_token: Option<String>,
    /// Optional, informational: the user the app is signed in as. **Ignored** unless a
    /// `linkToken` vouches for it (then it must equal the token's `sub`): an id a client names
    /// links nothing (`link.status = "unverified"`).
    #[schema(value_type = Option<wire::ClientId>)]
    pub user_id: Option<String>,
    /// Optional, informational: the `deviceId` of an earlier key of this installation.
    /// **Ignored** unless a `linkToken` vouches for it (then it must equal the token's
    /// `device_id`).
    #[schema(value_type = Option<wire::ClientId>)]
    pub device_id: Option<String>,
    /// Optional, iOS only: a DeviceCheck token (`DCDevice.generateToken`) from the same device.
    /// With Apple credentials configured, attestd asks Apple about it (development service for
    /// development keys) and scores the answer (`device_check_invalid`,
    /// `device_check_flagged`); Apple being unreachable only leaves the signal out.
    #[schema(value_type = Option<wire::DeviceToken>)]
    pub device_check_token: Option<String>,
}

impl AttestationBody {
    /// The fields the platform's proof is read from.
    pub fn proof_fields(&self) -> ProofFields<'_> {
        ProofFields {
            token: self.token.as_deref(),
            x5c: self.x5c.as_deref(),
            signature: None,
        }
    }
}

/// `201` answer of `POST /v1/attestations`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttestationResponse {
    /// The server's id for the device.
    pub device_id: String,
    /// The key id (standard base64).
    pub key_id: String,
    /// ES256 JWT (`sub` = deviceId, `aud` = App ID); verify with `/.well-known/jwks.json`.
    pub token: String,
    /// RFC 3339 expiry of the token.
    pub expires_at: String,
    /// What the server knows about the device.
    pub device_intelligence: DeviceIntelligence,
    /// The key this one replaced (standard base64), when the attestation superseded one.
    pub supersedes: Vec<String>,
    /// What the key was linked with, and why (`unverified`: ids sent without a link token were
    /// ignored and the key is a new device).
    pub link: LinkView,
    /// A one-time challenge for the first assertion, bound to this key.
    pub next_challenge: ChallengeResponse,
    /// Risk score, band, factors, decision and permissions.
    #[serde(flatten)]
    pub risk: RiskView,
}

/// `link` of an attestation's answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkView {
    /// `none` (nothing asked: a new device), `unverified` (`userId`/`deviceId` sent without a
    /// link token: ignored, a new device) or `verified` (a link token vouched for the ids).
    pub status: LinkStatus,
    /// The user id the link token vouched for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The device id the link token vouched for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The fields sent without a link token, which were ignored (`userId`, `deviceId`);
    /// absent when none was.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub ignored: Vec<&'static str>,
}

impl From<&Link> for LinkView {
    fn from(link: &Link) -> Self {
        Self {
            status: link.status,
            user_id: link.user_id.clone(),
            device_id: link.device_id.clone(),
            ignored: link.ignored.clone(),
        }
    }
}

/// `POST /v1/assertions`: the client plugin's assertion payload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssertionBody {
    /// `ios` or `android` (else 400 `unsupported_platform`).
    #[schema(value_type = wire::Platform)]
    pub platform: String,
    /// `apple-app-attest` on iOS, `android-key-attestation` on Android (else 400
    /// `unsupported_platform`).
    #[schema(value_type = wire::AttestationFormat)]
    pub format: String,
    /// The attested key id.
    #[schema(value_type = wire::KeyId)]
    pub key_id: String,
    /// The exact client data the app signed (iOS: hashed into the assertion): a challenge, or
    /// a JSON object whose `challenge` field is one.
    pub payload: String,
    /// iOS (required): the assertion object from `generateAssertion`.
    #[schema(value_type = Option<wire::Base64>)]
    pub token: Option<String>,
    /// Android (required): the attested key's signature over the payload's UTF-8 bytes, base64
    /// (`SHA256withECDSA`, DER; or `SHA256withRSA`, PKCS#1 v1.5 or PSS).
    #[schema(value_type = Option<wire::Base64>)]
    pub signature: Option<String>,
}

impl AssertionBody {
    /// The fields the platform's proof is read from.
    pub fn proof_fields(&self) -> ProofFields<'_> {
        ProofFields {
            token: self.token.as_deref(),
            x5c: None,
            signature: self.signature.as_deref(),
        }
    }
}

/// `200` answer of `POST /v1/assertions`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssertionResponse {
    /// Always `true` (failures are error bodies).
    pub valid: bool,
    /// The server's id for the device.
    pub device_id: String,
    /// The new, stored counter; `null` for keys whose platform signs without one (Android).
    pub counter: Option<u32>,
    /// A one-time challenge for the next assertion, bound to this key.
    pub next_challenge: ChallengeResponse,
    /// Risk score, band, factors, decision and permissions.
    #[serde(flatten)]
    pub risk: RiskView,
}

/// `POST /v1/device-checks`: the DeviceCheck fallback for devices without App Attest.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceCheckBody {
    /// Must be `ios` (else 400 `unsupported_platform`).
    #[schema(value_type = wire::Platform)]
    pub platform: String,
    /// Must be `apple-devicecheck` (else 400 `unsupported_platform`).
    #[schema(value_type = wire::DeviceCheckFormat)]
    pub format: String,
    /// The token from `DCDevice.generateToken` (base64, line breaks allowed). Each token works
    /// once.
    #[schema(value_type = wire::DeviceToken)]
    pub device_token: String,
    /// `production` (default) or `development` (tokens from development-signed builds).
    #[serde(default = "super::apple::device_check::default_environment")]
    #[schema(value_type = wire::DeviceCheckEnvironment)]
    pub environment: Environment,
    /// App ID; defaults to `X-App-Id` or the only configured app.
    pub app_id: Option<String>,
    /// Optional, **ignored**: nothing authenticates it, and a device check links nothing
    /// (reported in `link.ignored`). Checked for form only.
    #[schema(value_type = Option<wire::ClientId>)]
    pub user_id: Option<String>,
    /// Optional, **ignored** (same).
    #[schema(value_type = Option<wire::ClientId>)]
    pub device_id: Option<String>,
}

/// `200` answer of `POST /v1/device-checks`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceCheckResponse {
    /// Always `true` (a token Apple refuses is a 422 `device_token_invalid`).
    pub valid: bool,
    /// The assurance this answer carries: always `device_check` (a genuine Apple device
    /// running one of the team's apps; not App Attest's proof of an untampered build).
    pub assurance: &'static str,
    /// The DeviceCheck service asked.
    #[schema(value_type = wire::DeviceCheckEnvironment)]
    pub environment: Environment,
    /// Bit 0 of the team's two per-device bits; `null` when never set.
    pub bit0: Option<bool>,
    /// Bit 1.
    pub bit1: Option<bool>,
    /// Always `none` or `unverified`: a device check links nothing; `ignored` lists the ids
    /// sent.
    pub link: LinkView,
    /// Risk score, band, factors, decision and permissions.
    #[serde(flatten)]
    pub risk: RiskView,
}

/// `POST /v1/tokens`: the assertion's answer and a fresh JWT.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// The new JWT (ES256), claims computed now.
    pub token: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// As `POST /v1/assertions` answers.
    #[serde(flatten)]
    pub assertion: AssertionResponse,
}

/// A device key as the admin API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceView {
    /// Key id (standard base64).
    pub key_id: String,
    /// The server's id for the device.
    pub device_id: String,
    /// App ID.
    pub app_id: String,
    /// `ios` or `android`: the platform whose attestation proved the key.
    pub platform: String,
    /// `development` or `production`.
    pub environment: String,
    /// Highest accepted sign counter; `null` on platforms whose keys sign without one
    /// (Android).
    pub counter: Option<u32>,
    /// Accepted attestations.
    pub attestation_count: u64,
    /// Accepted assertions.
    pub assertion_count: u64,
    /// RFC 3339 attestation time.
    pub first_seen: String,
    /// RFC 3339 time of the last accepted request.
    pub last_seen: String,
    /// RFC 3339 revocation time, if revoked.
    pub revoked_at: Option<String>,
    /// The key that replaced this one (standard base64), if any.
    pub superseded_by: Option<String>,
    /// Why the key is no longer accepted: `revoked`, `superseded` or `expired`.
    pub revocation_reason: Option<String>,
    /// Apple's fraud risk metric, when known.
    pub receipt_risk_metric: Option<i64>,
    /// The user id a link token (or the admin API) vouched for; never one a client merely named.
    pub user_id: Option<String>,
    /// Assertions with a counter below the stored one.
    pub counter_regressions: u64,
    /// Assertions replayed with the stored counter.
    pub replays: u64,
    /// What the platform's verifier proved at attestation. iOS: receipt status (and reason,
    /// creation time), iOS 27 bundle version and validation category, leaf expiry. Android:
    /// security levels, verified boot state and key, device locked, OS version and patch
    /// levels, packages and signing digests, provisioning and trust anchor.
    #[schema(value_type = Object)]
    pub metadata: attest_store::Evidence,
}

impl From<&DeviceKey> for DeviceView {
    fn from(device: &DeviceKey) -> Self {
        Self {
            key_id: encode_key_id(&device.key_id),
            device_id: device.device_id.clone(),
            app_id: device.app_id.clone(),
            platform: device.platform().as_str().to_owned(),
            environment: device.environment.as_str().to_owned(),
            counter: device.counter,
            attestation_count: device.attestation_count,
            assertion_count: device.assertion_count,
            first_seen: rfc3339(device.created_at),
            last_seen: rfc3339(device.last_seen_at),
            revoked_at: device.revoked_at.map(rfc3339),
            superseded_by: device.superseded_by.as_ref().map(encode_key_id),
            revocation_reason: device.revoked_at.map(|_| {
                device
                    .revocation_reason
                    .unwrap_or(attest_store::RevocationReason::Revoked)
                    .as_str()
                    .to_owned()
            }),
            receipt_risk_metric: device.receipt_risk_metric,
            user_id: device.user_id.clone(),
            counter_regressions: device.counter_regressions,
            replays: device.replays,
            metadata: device.evidence.clone(),
        }
    }
}

/// `POST /admin/v1/devices/{keyId}/link`: at least one of the two.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkKeyBody {
    /// The user the key belongs to. Alone, the key joins the device of the user's newest other
    /// active key in its environment (or keeps its device if there is none).
    #[schema(value_type = Option<wire::ClientId>)]
    pub user_id: Option<String>,
    /// The device the key belongs to (a `deviceId` attestd returned, or the app's own id).
    #[schema(value_type = Option<wire::ClientId>)]
    pub device_id: Option<String>,
}

/// `200` answer of `POST /admin/v1/devices/{keyId}/link`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkedKeyView {
    /// The key as stored now: on its new device, and itself superseded if that device had a
    /// key stored after it (the key stored last wins).
    #[serde(flatten)]
    pub key: DeviceView,
    /// The keys it superseded (standard base64).
    pub supersedes: Vec<String>,
}

/// `GET /admin/v1/devices`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceList {
    /// Keys, oldest first.
    pub devices: Vec<DeviceView>,
    /// The page size used.
    pub limit: u32,
    /// The offset used.
    pub offset: u64,
}

/// Query of `GET /admin/v1/devices`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DeviceQuery {
    /// Only keys of this App ID.
    #[param(value_type = Option<wire::FilterText>)]
    pub app_id: Option<String>,
    /// Only keys attested for this user id (across devices and environments).
    #[param(value_type = Option<wire::FilterText>)]
    pub user_id: Option<String>,
    /// Only keys of this device id.
    #[param(value_type = Option<wire::FilterText>)]
    pub device_id: Option<String>,
    /// Page size: 1 to 1000 (default 100); anything else is 400 `malformed_request`.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Keys to skip: 0 to 2^63 - 1 (default 0).
    #[param(maximum = 9_223_372_036_854_775_807_u64)]
    pub offset: Option<u64>,
}

/// `POST /admin/v1/signing-keys/rotate`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedKey {
    /// The new signing key's `kid`; new tokens carry it.
    pub kid: String,
    /// Every `kid` still published in the JWKS.
    pub published: Vec<String>,
}

/// `/healthz` and `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: &'static str,
    /// Apple's health, with Apple credentials only: `degraded` while calls to Apple fail. The
    /// server stays ready: verification never calls Apple; receipt refreshes wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apple: Option<crate::server::apple::AppleHealthView>,
}
