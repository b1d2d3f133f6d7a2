//! The platforms attestd verifies, and the one place they are registered.
//!
//! A request names its `(platform, format)`; [`Format::parse`] reads the pair once and every
//! later step dispatches on the [`Format`]. Each platform implements [`PlatformVerifier`] in a
//! module of its own (`server::apple::verify`, ...): it decodes its proofs from the request
//! body and checks them against the app's configuration, the stored key and the time, and it
//! answers in platform-neutral terms ([`VerifiedKey`], [`Signed`]). The flows
//! (`server::flows`) run the same steps for every platform on top of that: challenge, verifier,
//! lineage, risk, store, token.
//!
//! Adding a platform is a new module implementing the trait, and one arm per function below.

use attest_core::apple::KeyId;
use attest_store::{DeviceKey, Environment, Evidence, Platform};
use time::OffsetDateTime;

use super::android::verify::{KeyAttestation, MAX_CHAIN_CERTIFICATES};
use super::apple::verify::AppAttest;
use super::error::ApiError;
use super::extract::decode_base64;
use super::state::{App, AppState};

/// The `format` of App Attest attestations and assertions.
pub const APP_ATTEST_FORMAT: &str = "apple-app-attest";
/// The `format` of Android Key Attestation chains and the requests their keys sign.
pub const ANDROID_KEY_ATTESTATION_FORMAT: &str = "android-key-attestation";

/// A `(platform, format)` pair attestd accepts for attestations and assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `ios`, `apple-app-attest`: App Attest.
    AppleAppAttest,
    /// `android`, `android-key-attestation`: Key Attestation, then signed requests.
    AndroidKeyAttestation,
}

impl Format {
    /// Every format, in the order the API documents them.
    pub const ALL: [Self; 2] = [Self::AppleAppAttest, Self::AndroidKeyAttestation];

    /// The pair as a request names it: 400 `unsupported_platform` (naming the field) for a
    /// platform or a format attestd does not verify.
    pub fn parse(platform: &str, format: &str) -> Result<Self, ApiError> {
        let platform: Platform = platform
            .parse()
            .map_err(|_| ApiError::UnsupportedPlatform {
                field: "platform",
                value: platform.into(),
            })?;
        Self::ALL
            .into_iter()
            .find(|known| known.platform() == platform && known.as_str() == format)
            .ok_or_else(|| ApiError::UnsupportedPlatform {
                field: "format",
                value: format.into(),
            })
    }

    /// The platform the format belongs to.
    pub const fn platform(self) -> Platform {
        match self {
            Self::AppleAppAttest => Platform::Ios,
            Self::AndroidKeyAttestation => Platform::Android,
        }
    }

    /// The `format` text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AppleAppAttest => APP_ATTEST_FORMAT,
            Self::AndroidKeyAttestation => ANDROID_KEY_ATTESTATION_FORMAT,
        }
    }
}

/// `at` as the core's verification time (times before 1970 as 1970: certificates are checked
/// against it, and none is valid then).
pub fn unix_time(at: OffsetDateTime) -> attest_core::UnixTime {
    attest_core::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(at.unix_timestamp()).unwrap_or(0),
    ))
}

/// What a platform's verifier established about a new key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKey {
    /// The key as DER SubjectPublicKeyInfo.
    pub public_key_spki: Vec<u8>,
    /// The environment the key belongs to.
    pub environment: Environment,
    /// The platform's typed evidence.
    pub evidence: Evidence,
    /// The receipt the attestation carried (App Attest; empty otherwise).
    pub receipt: Vec<u8>,
    /// The risk metric of a verified receipt.
    pub receipt_risk_metric: Option<i64>,
}

/// What a platform's verifier made of a stored key's signature over a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed {
    /// The signature verifies; `counter` is the new sign counter on platforms that have one.
    Verified {
        /// The counter the signature carries (greater than the stored one).
        counter: Option<u32>,
    },
    /// The signature verifies but its counter does not move past the stored one: a replayed
    /// (equal) or regressed (lower) assertion, or a cloned key.
    CounterNotAdvanced {
        /// The counter the signature carries.
        counter: u32,
        /// The stored counter.
        stored: u32,
    },
}

/// One platform's verification, free of HTTP and of the store.
pub trait PlatformVerifier {
    /// A decoded proof of a new key.
    type Attestation: Send + 'static;
    /// A decoded signature over a request by a stored key.
    type Assertion;

    /// Verifies that `proof` attests key `key_id` of `app` over the challenge text
    /// `challenge` at `at`. Pure CPU work (certificate chains): the flow runs it off the async
    /// workers.
    fn verify_attestation(
        app: &App,
        key_id: KeyId,
        challenge: &str,
        proof: &Self::Attestation,
        at: OffsetDateTime,
    ) -> Result<VerifiedKey, ApiError>;

    /// Verifies that `proof` is `key`'s signature over `payload` (the exact client data),
    /// for `app`.
    fn verify_assertion(
        state: &AppState,
        app: &App,
        key: &DeviceKey,
        payload: &str,
        proof: &Self::Assertion,
    ) -> Result<Signed, ApiError>;
}

/// The proof fields of an attestation or assertion body, as sent (each platform reads its own).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProofFields<'a> {
    /// `token`: App Attest's attestation or assertion object (base64).
    pub token: Option<&'a str>,
    /// `x5c`: Android's certificate chain (base64 DER, leaf first).
    pub x5c: Option<&'a [String]>,
    /// `signature`: Android's signature over the payload (base64).
    pub signature: Option<&'a str>,
}

impl<'a> ProofFields<'a> {
    /// The field `name`, which `format` requires: 400 `malformed_request` without it.
    fn required<T: ?Sized>(
        value: Option<&'a T>,
        name: &'static str,
        format: Format,
    ) -> Result<&'a T, ApiError> {
        value.ok_or_else(|| ApiError::field(name, format!("{} requires {name}", format.as_str())))
    }

    /// App Attest's `token` (attestation or assertion object), decoded.
    fn token(&self, format: Format) -> Result<Vec<u8>, ApiError> {
        decode_base64("token", ProofFields::required(self.token, "token", format)?)
    }
}

/// A decoded attestation of any platform.
#[derive(Debug, Clone)]
pub enum AttestationProof {
    /// An App Attest attestation object.
    AppleAppAttest(<AppAttest as PlatformVerifier>::Attestation),
    /// An Android Key Attestation chain.
    AndroidKeyAttestation(<KeyAttestation as PlatformVerifier>::Attestation),
}

impl AttestationProof {
    /// Decodes the proof `format` carries in `fields`.
    pub fn decode(format: Format, fields: ProofFields<'_>) -> Result<Self, ApiError> {
        match format {
            Format::AppleAppAttest => Ok(Self::AppleAppAttest(fields.token(format)?)),
            Format::AndroidKeyAttestation => {
                let x5c = ProofFields::required(fields.x5c, "x5c", format)?;
                if x5c.is_empty() || x5c.len() > MAX_CHAIN_CERTIFICATES {
                    return Err(ApiError::field(
                        "x5c",
                        format!("x5c holds 1 to {MAX_CHAIN_CERTIFICATES} certificates"),
                    ));
                }
                let chain = x5c
                    .iter()
                    .map(|certificate| decode_base64("x5c", certificate))
                    .collect::<Result<_, _>>()?;
                Ok(Self::AndroidKeyAttestation(chain))
            }
        }
    }

    /// Runs the platform's [`PlatformVerifier::verify_attestation`].
    pub fn verify(
        &self,
        app: &App,
        key_id: KeyId,
        challenge: &str,
        at: OffsetDateTime,
    ) -> Result<VerifiedKey, ApiError> {
        match self {
            Self::AppleAppAttest(proof) => {
                AppAttest::verify_attestation(app, key_id, challenge, proof, at)
            }
            Self::AndroidKeyAttestation(chain) => {
                KeyAttestation::verify_attestation(app, key_id, challenge, chain, at)
            }
        }
    }
}

/// A decoded assertion of any platform.
#[derive(Debug, Clone)]
pub enum AssertionProof {
    /// An App Attest assertion object.
    AppleAppAttest(<AppAttest as PlatformVerifier>::Assertion),
    /// A signature by an Android Key Attestation key over the payload.
    AndroidKeyAttestation(<KeyAttestation as PlatformVerifier>::Assertion),
}

impl AssertionProof {
    /// Decodes the proof `format` carries in `fields`.
    pub fn decode(format: Format, fields: ProofFields<'_>) -> Result<Self, ApiError> {
        match format {
            Format::AppleAppAttest => Ok(Self::AppleAppAttest(fields.token(format)?)),
            Format::AndroidKeyAttestation => {
                let signature = ProofFields::required(fields.signature, "signature", format)?;
                Ok(Self::AndroidKeyAttestation(decode_base64(
                    "signature",
                    signature,
                )?))
            }
        }
    }

    /// The platform whose verifier checks it.
    pub const fn platform(&self) -> Platform {
        match self {
            Self::AppleAppAttest(_) => Platform::Ios,
            Self::AndroidKeyAttestation(_) => Platform::Android,
        }
    }

    /// Runs the platform's [`PlatformVerifier::verify_assertion`]. A key of another platform
    /// is refused as unknown: no key of this platform has its id.
    pub fn verify(
        &self,
        state: &AppState,
        app: &App,
        key: &DeviceKey,
        payload: &str,
    ) -> Result<Signed, ApiError> {
        if key.platform() != self.platform() {
            return Err(ApiError::KeyUnknown);
        }
        match self {
            Self::AppleAppAttest(proof) => {
                AppAttest::verify_assertion(state, app, key, payload, proof)
            }
            Self::AndroidKeyAttestation(signature) => {
                KeyAttestation::verify_assertion(state, app, key, payload, signature)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pair_is_parsed_once_and_each_half_is_named_when_refused() {
        assert_eq!(
            Format::parse("ios", "apple-app-attest").unwrap(),
            Format::AppleAppAttest
        );
        for (platform, format, field) in [
            ("windows", "apple-app-attest", "platform"),
            ("iOS", "apple-app-attest", "platform"),
            ("ios", "apple-devicecheck", "format"),
            ("ios", "android-key-attestation", "format"),
            ("android", "apple-app-attest", "format"),
            ("", "", "platform"),
        ] {
            match Format::parse(platform, format) {
                Err(ApiError::UnsupportedPlatform { field: named, .. }) => {
                    assert_eq!(named, field, "{platform} {format}");
                }
                other => panic!("{platform} {format}: {other:?}"),
            }
        }
        for format in Format::ALL {
            assert_eq!(
                Format::parse(format.platform().as_str(), format.as_str()).unwrap(),
                format
            );
        }
    }
}
