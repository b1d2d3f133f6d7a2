//! A simulated device holding one App Attest key.

use std::fmt;

use time::OffsetDateTime;

use crate::assertion::AssertionBuilder;
use crate::attestation::AttestationBuilder;
use crate::ca::{ReceiptCa, TestCa};
use crate::keys::{EcKey, Hex, KeyRole, sha256};
use attest_types::KeyId;

use crate::{Environment, SimError};

/// One App Attest key (P-256) on a simulated device in a given environment.
#[derive(Clone)]
pub struct Device {
    pub(crate) key: EcKey,
    environment: Environment,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("environment", &self.environment)
            .field("key_id", &Hex(self.key_id().as_slice()))
            .finish_non_exhaustive()
    }
}

impl Device {
    /// A device with a fresh random key.
    pub fn new(environment: Environment) -> Device {
        Device {
            key: EcKey::generate(KeyRole::P256Sha256),
            environment,
        }
    }

    /// Restores a device saved with [`Device::to_pkcs8`].
    pub fn from_pkcs8(environment: Environment, pkcs8: &[u8]) -> Result<Device, SimError> {
        Ok(Device {
            key: EcKey::from_pkcs8(KeyRole::P256Sha256, pkcs8)?,
            environment,
        })
    }

    /// The private key as unencrypted PKCS#8 DER (test material).
    pub fn to_pkcs8(&self) -> Vec<u8> {
        self.key.pkcs8().to_vec()
    }

    /// The device's environment.
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// The uncompressed public point `04 || X || Y` (65 bytes).
    pub fn public_key_point(&self) -> [u8; 65] {
        self.key
            .public_point()
            .try_into()
            .expect("P-256 uncompressed point is 65 bytes")
    }

    /// The key identifier: SHA-256 of the uncompressed point.
    pub fn key_id(&self) -> KeyId {
        KeyId(sha256(&[self.key.public_point()]))
    }

    /// The public key as SubjectPublicKeyInfo DER.
    pub fn public_key_spki(&self) -> Vec<u8> {
        // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING point }
        let algorithm = crate::der::sequence(&[
            &crate::der::oid(&[1, 2, 840, 10_045, 2, 1]),
            &crate::der::oid(&[1, 2, 840, 10_045, 3, 1, 7]),
        ]);
        crate::der::sequence(&[&algorithm, &crate::der::bit_string(self.key.public_point())])
    }

    /// ECDSA P-256 / SHA-256 signature (ASN.1 DER) over `message`; the message is hashed once
    /// more by the signature algorithm, as the Secure Enclave does with the assertion nonce.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(message)
    }

    /// A correct attestation object (CBOR) for `app_id` and `client_data_hash` at `now`, with an
    /// embedded ATTEST receipt. Same as `self.attestation(..).build().object`.
    pub fn attest(
        &self,
        ca: &TestCa,
        receipts: &ReceiptCa,
        app_id: &str,
        client_data_hash: &[u8],
        now: OffsetDateTime,
    ) -> Vec<u8> {
        self.attestation(ca, receipts, app_id, client_data_hash, now)
            .build()
            .object
    }

    /// An attestation builder with every field overridable, for negative tests.
    pub fn attestation<'a>(
        &'a self,
        ca: &'a TestCa,
        receipts: &'a ReceiptCa,
        app_id: &str,
        client_data_hash: &[u8],
        now: OffsetDateTime,
    ) -> AttestationBuilder<'a> {
        AttestationBuilder::new(self, ca, receipts, app_id, client_data_hash, now)
    }

    /// A correct assertion object (CBOR) over `client_data` with sign count `counter`.
    pub fn assert(&self, app_id: &str, client_data: &[u8], counter: u32) -> Vec<u8> {
        self.assertion(app_id, client_data, counter).build().object
    }

    /// An assertion builder with every field overridable, for negative tests.
    pub fn assertion(
        &self,
        app_id: &str,
        client_data: &[u8],
        counter: u32,
    ) -> AssertionBuilder<'_> {
        AssertionBuilder::new(self, app_id, client_data, counter)
    }
}
