//! Assertions: `{ "signature": bstr, "authenticatorData": bstr }`, verified per request.
//!
//! The hot path of a server. The stored key is parsed once into a [`CredentialPublicKey`]
//! (cache it next to the key id); each verification then decodes a ~100-byte CBOR map without
//! copying, hashes twice and checks one P-256 signature.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ParsedPublicKey};
use x509_parser::der_parser::oid;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::authenticator_data::{AuthenticatorData, Context, Extensions};
use super::cbor::Value;
use super::error::{AppleError, CounterExpectation};
use super::types::AppId;
use attest_types::KeyId;

/// Upper bound on an assertion object: a ~72-byte DER signature and 37 bytes of authenticator
/// data (plus an iOS 27 extension map) need a few hundred bytes; 8 KiB is generous.
pub const MAX_ASSERTION_LEN: usize = 8 * 1024;

/// A DER ECDSA P-256 signature is at most 72 bytes.
const MAX_SIGNATURE_LEN: usize = 80;

const WHAT: &str = "assertion";

/// The parts of an assertion object, parsed but not verified.
#[derive(Debug, Clone, PartialEq)]
pub struct AssertionObject<'a> {
    /// DER-encoded ECDSA signature.
    pub signature: &'a [u8],
    /// The authenticator data, parsed.
    pub auth_data: AuthenticatorData<'a>,
}

impl<'a> AssertionObject<'a> {
    /// Parses the CBOR assertion object strictly (no verification).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, AppleError> {
        let malformed = |reason| AppleError::malformed(WHAT, reason);
        if bytes.len() > MAX_ASSERTION_LEN {
            return Err(malformed("larger than 8 KiB"));
        }
        let root = Value::decode_exact(bytes).map_err(malformed)?;
        root.as_map().ok_or(malformed("not a CBOR map"))?;
        let signature = root
            .get("signature")
            .ok_or(malformed("missing signature"))?
            .as_bytes()
            .ok_or(malformed("signature is not a byte string"))?;
        if signature.is_empty() || signature.len() > MAX_SIGNATURE_LEN {
            return Err(malformed(
                "signature length is not that of a P-256 signature",
            ));
        }
        let auth_data = root
            .get("authenticatorData")
            .ok_or(malformed("missing authenticatorData"))?
            .as_bytes()
            .ok_or(malformed("authenticatorData is not a byte string"))?;
        let auth_data = AuthenticatorData::parse(auth_data, Context::Assertion)?;
        Ok(Self {
            signature,
            auth_data,
        })
    }
}

/// A stored credential public key, parsed once for fast verification.
#[derive(Clone)]
pub struct CredentialPublicKey {
    spki: Vec<u8>,
    point: [u8; 65],
    parsed: ParsedPublicKey,
}

impl std::fmt::Debug for CredentialPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialPublicKey")
            .field("key_id", &self.key_id())
            .finish()
    }
}

impl CredentialPublicKey {
    /// Parses a P-256 SubjectPublicKeyInfo (DER), as [`VerifiedAttestation::public_key`]
    /// returns it.
    ///
    /// [`VerifiedAttestation::public_key`]: super::attestation::VerifiedAttestation::public_key
    pub fn from_spki(der: &[u8]) -> Result<Self, AppleError> {
        let invalid = AppleError::InvalidArgument("not a P-256 SubjectPublicKeyInfo");
        let (rest, spki) = SubjectPublicKeyInfo::from_der(der).map_err(|_| invalid.clone())?;
        let is_p256 = spki.algorithm.algorithm == oid!(1.2.840.10045.2.1)
            && spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .is_some_and(|curve| curve == oid!(1.2.840.10045.3.1.7));
        if !rest.is_empty() || !is_p256 {
            return Err(invalid);
        }
        Self::from_point_and_spki(&spki.subject_public_key.data, der.to_vec())
    }

    fn from_point_and_spki(point: &[u8], spki: Vec<u8>) -> Result<Self, AppleError> {
        let invalid = AppleError::InvalidArgument("not an uncompressed P-256 point");
        let point: [u8; 65] = point.try_into().map_err(|_| invalid.clone())?;
        if point[0] != 0x04 {
            return Err(invalid);
        }
        let parsed = ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point).map_err(|_| invalid)?;
        Ok(Self {
            spki,
            point,
            parsed,
        })
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// The key id of this key: SHA-256 of the uncompressed point.
    pub fn key_id(&self) -> KeyId {
        KeyId::of_public_point(&self.point)
    }
}

/// The inputs of an assertion verification besides the object itself.
#[derive(Debug, Clone, Copy)]
pub struct AssertionRequest<'a> {
    /// The key stored at attestation.
    pub public_key: &'a CredentialPublicKey,
    /// The exact clientDataHash the app passed to `generateAssertion` (SHA-256 of the client
    /// data it sent; see [`hash_client_data`]).
    pub client_data_hash: &'a [u8],
    /// App IDs accepted (at least one).
    pub app_ids: &'a [AppId],
    /// The counter stored for this key (0 right after attestation).
    pub previous_counter: u32,
}

/// SHA-256 of client data: the clientDataHash an app computes before `generateAssertion`.
pub fn hash_client_data(client_data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, client_data).as_ref());
    out
}

/// A verified assertion. Only [`verify_assertion`] constructs one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    counter: u32,
    app_id_index: usize,
    extensions: Option<Extensions>,
}

impl VerifiedAssertion {
    /// The new counter: store it (only if it is still greater than the stored one).
    pub fn counter(&self) -> u32 {
        self.counter
    }
    /// Index into [`AssertionRequest::app_ids`] of the App ID that matched.
    pub fn app_id_index(&self) -> usize {
        self.app_id_index
    }
    /// The authenticator data extension map (iOS 27 and later).
    pub fn extensions(&self) -> Option<&Extensions> {
        self.extensions.as_ref()
    }
}

/// Verifies `assertion` (CBOR bytes) for `request`, following Apple's steps in order.
///
/// Step 6 — the client data carries a challenge the server issued — is the caller's: only
/// it knows what it put in the client data.
pub fn verify_assertion(
    assertion: &[u8],
    request: &AssertionRequest<'_>,
) -> Result<VerifiedAssertion, AppleError> {
    if request.app_ids.is_empty() {
        return Err(AppleError::InvalidArgument("no App ID to accept"));
    }
    let object = AssertionObject::parse(assertion)?;

    // Steps 1–2 — nonce = SHA256(authenticatorData ‖ clientDataHash).
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(object.auth_data.raw);
    context.update(request.client_data_hash);
    let nonce = context.finish();

    // Step 3 — the signature verifies over the nonce with the stored key. ECDSA_P256_SHA256
    // hashes its message once more, exactly as the Secure Enclave did when signing the nonce.
    request
        .public_key
        .parsed
        .verify_sig(nonce.as_ref(), object.signature)
        .map_err(|_| AppleError::SignatureInvalid)?;

    // Step 4 — rpIdHash is SHA256 of an accepted App ID.
    let app_id_index = request
        .app_ids
        .iter()
        .position(|app| app.rp_id_hash() == &object.auth_data.rp_id_hash)
        .ok_or(AppleError::AppIdMismatch)?;

    // Step 5 — the counter is strictly greater than the stored one.
    if object.auth_data.counter <= request.previous_counter {
        return Err(AppleError::CounterInvalid {
            counter: object.auth_data.counter,
            expectation: CounterExpectation::GreaterThan(request.previous_counter),
        });
    }

    Ok(VerifiedAssertion {
        counter: object.auth_data.counter,
        app_id_index,
        extensions: object.auth_data.extensions,
    })
}
