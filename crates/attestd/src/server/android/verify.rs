//! Android Key Attestation as a [`PlatformVerifier`]: a certificate chain registers a key
//! (checked by the core, `attest_core::android`, against the app's package, signing
//! certificates and policy, Google's status list and the time), and a signature by that key
//! over a request's payload is its assertion.
//!
//! Signed requests: the app signs the payload's UTF-8 bytes with the attested key,
//! `SHA256withECDSA` (DER signature) for EC P-256 keys, `SHA256withRSA` (PKCS#1 v1.5) or
//! `SHA256withRSA/PSS` for RSA keys. There is no counter: the payload's one-time challenge,
//! spent by the store, is the replay defence.

use std::sync::Arc;

use attest_core::android::key_description::purpose;
use attest_core::android::{
    AndroidPolicy, AndroidRequest, AndroidVerifier, ExpectedApp, Revocation,
};
use attest_core::apple::KeyId;
use attest_store::{DeviceKey, Environment};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, UnparsedPublicKey,
};
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::RevocationLists;
use crate::server::error::ApiError;
use crate::server::platform::{PlatformVerifier, Signed, VerifiedKey, unix_time};
use crate::server::state::{App, AppState};
use crate::server::telemetry::{Severity, server_failure};

/// An app's Android side as the verifier uses it.
#[derive(Debug)]
pub struct AndroidSide {
    /// Google's two root keys, plus the danger roots if any are configured.
    pub verifier: Arc<AndroidVerifier>,
    /// The package and signing certificates a chain must name.
    pub expected: ExpectedApp,
    /// Security level, verified boot, ATTEST_KEY.
    pub policy: AndroidPolicy,
    /// Google's status list, shared by every app.
    pub revocation: Arc<RevocationLists>,
}

/// Android Key Attestation (`android`, `android-key-attestation`).
#[derive(Debug)]
pub struct KeyAttestation;

/// The largest chain accepted in a request (the core refuses longer ones too).
pub const MAX_CHAIN_CERTIFICATES: usize = attest_core::android::MAX_CHAIN_LEN;

impl PlatformVerifier for KeyAttestation {
    /// The certificate chain (DER, leaf first).
    type Attestation = Vec<Vec<u8>>;
    /// The DER (EC) or raw (RSA) signature over the payload.
    type Assertion = Vec<u8>;

    fn verify_attestation(
        app: &App,
        key_id: KeyId,
        challenge: &str,
        chain: &Vec<Vec<u8>>,
        at: OffsetDateTime,
    ) -> Result<VerifiedKey, ApiError> {
        let side = app.android.as_ref().ok_or(ApiError::UnsupportedPlatform {
            field: "platform",
            value: "android".into(),
        })?;
        let list = side.revocation.for_verification();
        let request = AndroidRequest {
            challenge: Some(challenge.as_bytes()),
            app: Some(&side.expected),
            policy: side.policy,
            revocation: Revocation::Check {
                list: &list,
                max_age: side.revocation.max_age(),
            },
            time: unix_time(at),
        };
        let certificates: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
        let key = side.verifier.verify(&certificates, &request)?;
        if key.key_id() != key_id.as_bytes() {
            return Err(ApiError::KeyIdMismatch);
        }
        if !key.purposes().contains(&purpose::SIGN) {
            return Err(ApiError::KeyUnsupported { reason: "purpose" });
        }
        RequestKey::from_spki(key.public_key()).map_err(|_| ApiError::KeyUnsupported {
            reason: "algorithm",
        })?;
        Ok(VerifiedKey {
            public_key_spki: key.public_key().to_vec(),
            environment: Environment::Production,
            evidence: key.evidence().into(),
            receipt: Vec::new(),
            receipt_risk_metric: None,
        })
    }

    fn verify_assertion(
        state: &AppState,
        _app: &App,
        key: &DeviceKey,
        payload: &str,
        signature: &Vec<u8>,
    ) -> Result<Signed, ApiError> {
        let public_key = state
            .request_keys
            .get_or_parse(key.key_id, || RequestKey::from_spki(&key.public_key_spki))
            .map_err(|error| {
                server_failure(
                    Severity::Bug,
                    "stored Android public key does not parse",
                    &error,
                );
                ApiError::Internal
            })?;
        if public_key.verifies(payload.as_bytes(), signature) {
            Ok(Signed::Verified { counter: None })
        } else {
            Err(ApiError::SignatureInvalid)
        }
    }
}

/// A key that signs requests, parsed once from its SubjectPublicKeyInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKey {
    /// EC P-256: the uncompressed point.
    P256(Vec<u8>),
    /// RSA: the PKCS#1 RSAPublicKey.
    Rsa(Vec<u8>),
}

/// Why a key cannot sign requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnsupportedKey(&'static str);

const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

impl RequestKey {
    /// The key of `spki` (DER), if signed requests can use it.
    pub fn from_spki(spki: &[u8]) -> Result<Self, UnsupportedKey> {
        let (rest, info) = SubjectPublicKeyInfo::from_der(spki)
            .map_err(|_| UnsupportedKey("not a SubjectPublicKeyInfo"))?;
        if !rest.is_empty() {
            return Err(UnsupportedKey("trailing bytes after the key"));
        }
        let key = info.subject_public_key.data.to_vec();
        match info.algorithm.algorithm.to_id_string().as_str() {
            EC_PUBLIC_KEY => {
                let curve = info
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|parameters| parameters.as_oid().ok())
                    .map(|oid| oid.to_id_string());
                if curve.as_deref() == Some(P256) {
                    Ok(Self::P256(key))
                } else {
                    Err(UnsupportedKey("an EC key on a curve other than P-256"))
                }
            }
            RSA_ENCRYPTION => Ok(Self::Rsa(key)),
            _ => Err(UnsupportedKey("neither EC P-256 nor RSA")),
        }
    }

    /// Whether `signature` is this key's over `message` with SHA-256 (ECDSA DER; RSA PKCS#1
    /// v1.5 or PSS).
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::P256(point) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
                .verify(message, signature)
                .is_ok(),
            Self::Rsa(key) => [&RSA_PKCS1_2048_8192_SHA256, &RSA_PSS_2048_8192_SHA256]
                .into_iter()
                .any(|algorithm| {
                    UnparsedPublicKey::new(algorithm, key)
                        .verify(message, signature)
                        .is_ok()
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    };

    use super::*;

    /// SubjectPublicKeyInfo of an uncompressed EC point on `curve`.
    fn ec_spki(curve_oid: &[u8], point: &[u8]) -> Vec<u8> {
        let mut algorithm = vec![0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        algorithm.extend_from_slice(curve_oid);
        let mut bits = vec![0x00];
        bits.extend_from_slice(point);
        let mut body = vec![0x30, u8::try_from(algorithm.len()).unwrap()];
        body.extend(algorithm);
        body.extend([0x03, u8::try_from(bits.len()).unwrap()]);
        body.extend(bits);
        let mut spki = vec![0x30, u8::try_from(body.len()).unwrap()];
        spki.extend(body);
        spki
    }

    const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

    #[test]
    fn a_p256_key_verifies_its_own_der_signatures_only() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let key = RequestKey::from_spki(&ec_spki(P256_OID, pair.public_key().as_ref())).unwrap();
        let signature = pair.sign(&rng, b"payload").unwrap();
        assert!(key.verifies(b"payload", signature.as_ref()));
        assert!(!key.verifies(b"payload2", signature.as_ref()));
        let mut flipped = signature.as_ref().to_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(!key.verifies(b"payload", &flipped));
        assert!(!key.verifies(b"payload", b""));
    }

    #[test]
    fn keys_signed_requests_cannot_use_are_refused() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        assert!(RequestKey::from_spki(&ec_spki(P384_OID, pair.public_key().as_ref())).is_err());
        assert!(RequestKey::from_spki(b"").is_err());
        assert!(RequestKey::from_spki(&[0x30, 0x00]).is_err());
        let mut trailing = ec_spki(P256_OID, &[4; 65]);
        trailing.push(0);
        assert!(RequestKey::from_spki(&trailing).is_err());
    }
}
