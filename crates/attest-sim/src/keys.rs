//! EC keys and their adapters to rcgen.

use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, KeyPair as _,
};
use rcgen::{PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PublicKeyData, SigningKey};

use crate::SimError;

/// Which curve and which hash a key signs with. The role fixes both, as in Apple's hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyRole {
    /// P-256 signing with SHA-256 (App Attest keys, receipt intermediate and signer).
    P256Sha256,
    /// P-384 signing with SHA-256 (App Attestation CA 1 signs leaves ecdsa-with-SHA256).
    P384Sha256,
    /// P-384 signing with SHA-384 (roots).
    P384Sha384,
}

impl KeyRole {
    fn algorithm(self) -> &'static EcdsaSigningAlgorithm {
        match self {
            KeyRole::P256Sha256 => &ECDSA_P256_SHA256_ASN1_SIGNING,
            // aws-lc-rs has no P-384/SHA-256 signing algorithm; see `EcKey::sign`.
            KeyRole::P384Sha256 | KeyRole::P384Sha384 => &ECDSA_P384_SHA384_ASN1_SIGNING,
        }
    }

    /// The rcgen algorithm whose SubjectPublicKeyInfo names this key's curve.
    fn spki_algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyRole::P256Sha256 => &PKCS_ECDSA_P256_SHA256,
            KeyRole::P384Sha256 | KeyRole::P384Sha384 => &PKCS_ECDSA_P384_SHA384,
        }
    }

    /// The rcgen algorithm whose AlgorithmIdentifier names this key's *signature* algorithm.
    /// rcgen only writes the OID (`ecdsa-with-SHA256` / `ecdsa-with-SHA384`, no parameters), so a
    /// P-384 key signing with SHA-256 borrows the P-256/SHA-256 identifier.
    fn signature_algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyRole::P256Sha256 | KeyRole::P384Sha256 => &PKCS_ECDSA_P256_SHA256,
            KeyRole::P384Sha384 => &PKCS_ECDSA_P384_SHA384,
        }
    }
}

/// An ECDSA key with its PKCS#8 form kept for saving.
pub(crate) struct EcKey {
    role: KeyRole,
    pkcs8: Vec<u8>,
    pair: EcdsaKeyPair,
}

impl fmt::Debug for EcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcKey")
            .field("role", &self.role)
            .field("public_key", &Hex(self.public_point()))
            .finish_non_exhaustive()
    }
}

impl Clone for EcKey {
    fn clone(&self) -> Self {
        EcKey::from_pkcs8(self.role, &self.pkcs8).expect("a key re-parses its own PKCS#8")
    }
}

impl EcKey {
    pub(crate) fn generate(role: KeyRole) -> EcKey {
        let document = EcdsaKeyPair::generate_pkcs8(role.algorithm(), &SystemRandom::new())
            .expect("EC key generation");
        EcKey::from_pkcs8(role, document.as_ref()).expect("freshly generated PKCS#8")
    }

    pub(crate) fn from_pkcs8(role: KeyRole, pkcs8: &[u8]) -> Result<EcKey, SimError> {
        let pair =
            EcdsaKeyPair::from_pkcs8(role.algorithm(), pkcs8).map_err(|_| SimError::InvalidKey)?;
        Ok(EcKey {
            role,
            pkcs8: pkcs8.to_vec(),
            pair,
        })
    }

    pub(crate) fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The uncompressed point `04 || X || Y`.
    pub(crate) fn public_point(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// ASN.1 DER ECDSA signature over `message` (hashed with the role's hash).
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature = match self.role {
            KeyRole::P256Sha256 | KeyRole::P384Sha384 => {
                self.pair.sign(&SystemRandom::new(), message)
            }
            KeyRole::P384Sha256 => {
                // ECDSA turns the digest into an integer by reading it big-endian (truncated to
                // the group order's 384 bits). A 48-byte value made of 16 zero bytes followed by
                // the 32-byte SHA-256 digest is therefore the same integer as the SHA-256 digest
                // itself, so signing it as a "SHA-384 digest" yields a standard
                // ecdsa-with-SHA256 signature by a P-384 key, which is what Apple's App
                // Attestation CA 1 produces and aws-lc-rs has no algorithm constant for.
                let mut widened = [0u8; 48];
                widened[16..].copy_from_slice(&sha256(&[message]));
                let digest = digest::Digest::import_less_safe(&widened, &digest::SHA384)
                    .expect("48-byte digest");
                self.pair.sign_digest(&digest)
            }
        };
        signature.expect("ECDSA signing").as_ref().to_vec()
    }

    /// RFC 5280 method-1 key identifier (SHA-1 of the subjectPublicKey bits), as Apple's CAs use.
    pub(crate) fn key_identifier(&self) -> Vec<u8> {
        digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, self.public_point())
            .as_ref()
            .to_vec()
    }

    /// This key as the subject of a certificate.
    pub(crate) fn as_subject(&self) -> SubjectKey<'_> {
        SubjectKey {
            point: self.public_point(),
            algorithm: self.role.spki_algorithm(),
        }
    }

    /// This key as the signer of a certificate.
    pub(crate) fn as_signer(&self) -> Signer<'_> {
        Signer { key: self }
    }
}

/// The public half of a key as rcgen wants it for a certificate's SubjectPublicKeyInfo.
pub(crate) struct SubjectKey<'a> {
    point: &'a [u8],
    algorithm: &'static rcgen::SignatureAlgorithm,
}

impl<'a> SubjectKey<'a> {
    /// A P-256 public key given as an uncompressed point.
    pub(crate) fn p256(point: &'a [u8]) -> SubjectKey<'a> {
        SubjectKey {
            point,
            algorithm: &PKCS_ECDSA_P256_SHA256,
        }
    }
}

impl PublicKeyData for SubjectKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.point
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.algorithm
    }
}

/// A key signing certificates through rcgen.
pub(crate) struct Signer<'a> {
    key: &'a EcKey,
}

impl PublicKeyData for Signer<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.key.public_point()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        // rcgen asks the signer for the signature AlgorithmIdentifier. For a self-signed root it
        // also writes the SubjectPublicKeyInfo from it; roots are P-384/SHA-384, where both agree.
        self.key.role.signature_algorithm()
    }
}

impl SigningKey for Signer<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(self.key.sign(msg))
    }
}

/// SHA-256 helper.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut context = digest::Context::new(&digest::SHA256);
    for part in parts {
        context.update(part);
    }
    context
        .finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// Lower-case hex for `Debug` output and Apple's leaf subject CN.
pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}
