//! A simulated Android device: Key Attestation certificate chains shaped like real ones, under a
//! test root that plays Google's, with a KeyDescription encoded here byte by byte so that every
//! field (and every quirk: tag order, BOOLEAN `01`, unknown tags) can be set or broken.
//!
//! - [`AndroidCa`]: the test root (P-384, like Google's "Key Attestation CA1").
//! - [`KeyDescriptionSpec`]: the KeyDescription, field by field ([`AuthTag`] entries in the
//!   order they are written).
//! - [`AndroidChainBuilder`]: leaf, attestation certificate and the intermediates of a factory
//!   (batch intermediate with a serialNumber subject) or remotely provisioned (Droid CA3, Droid
//!   CA2) chain; each certificate's subject, serial, validity, basic constraints and extensions
//!   can be changed before [`build`](AndroidChainBuilder::build).
//!
//! Test material only: nothing here is trusted unless a verifier is configured with the root.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::cert::Extension;
use crate::{SimError, der, pem};

/// The KeyDescription extension, 1.3.6.1.4.1.11129.2.1.17.
pub const KEY_DESCRIPTION_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 1, 17];
/// RKP's ProvisioningInfo extension, 1.3.6.1.4.1.11129.2.1.30.
pub const PROVISIONING_INFO_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 1, 30];

const SERIAL_NUMBER: &[u64] = &[2, 5, 4, 5];
const TITLE: &[u64] = &[2, 5, 4, 12];
const COMMON_NAME: &[u64] = &[2, 5, 4, 3];
const ORGANIZATION: &[u64] = &[2, 5, 4, 10];

/// KeyMint SecurityLevel values.
pub mod level {
    /// SOFTWARE.
    pub const SOFTWARE: u64 = 0;
    /// TRUSTED_ENVIRONMENT.
    pub const TEE: u64 = 1;
    /// STRONG_BOX.
    pub const STRONG_BOX: u64 = 2;
}

/// One AuthorizationList entry: `[tag] EXPLICIT value`, `value` being DER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthTag {
    /// The tag number.
    pub tag: u32,
    /// The DER inside the EXPLICIT tag.
    pub value: Vec<u8>,
}

impl AuthTag {
    /// `[tag] INTEGER value`.
    pub fn integer(tag: u32, value: u64) -> Self {
        Self {
            tag,
            value: der::uint(value),
        }
    }

    /// `[tag] SET OF INTEGER`.
    pub fn set_of(tag: u32, values: &[u64]) -> Self {
        let items: Vec<Vec<u8>> = values.iter().map(|v| der::uint(*v)).collect();
        let parts: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
        Self {
            tag,
            value: der::set(&parts),
        }
    }

    /// `[tag] NULL` (a flag).
    pub fn flag(tag: u32) -> Self {
        Self {
            tag,
            value: der::null(),
        }
    }

    /// `[tag] OCTET STRING`.
    pub fn octets(tag: u32, bytes: &[u8]) -> Self {
        Self {
            tag,
            value: der::octet_string(bytes),
        }
    }

    /// `[tag]` with any DER inside (to break a field on purpose).
    pub fn raw(tag: u32, value: Vec<u8>) -> Self {
        Self { tag, value }
    }

    /// `[1] purpose`.
    pub fn purpose(purposes: &[u64]) -> Self {
        Self::set_of(1, purposes)
    }

    /// `[2] algorithm` (1 RSA, 3 EC, 4 ML-DSA).
    pub fn algorithm(algorithm: u64) -> Self {
        Self::integer(2, algorithm)
    }

    /// `[702] origin` (0 GENERATED, 2 IMPORTED, ...).
    pub fn origin(origin: u64) -> Self {
        Self::integer(702, origin)
    }

    /// `[704] rootOfTrust`.
    pub fn root_of_trust(root: &RootOfTrustSpec) -> Self {
        let mut parts = vec![
            der::octet_string(&root.verified_boot_key),
            der::tlv(der::BOOLEAN, &[root.boolean_byte(root.device_locked)]),
            der::tlv(0x0a, &[root.verified_boot_state]),
        ];
        if let Some(hash) = &root.verified_boot_hash {
            parts.push(der::octet_string(hash));
        }
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        Self {
            tag: 704,
            value: der::sequence(&parts),
        }
    }

    /// `[709] attestationApplicationId`: packages (name, versionCode) and signing-certificate
    /// digests.
    pub fn application_id(packages: &[(&str, u64)], digests: &[Vec<u8>]) -> Self {
        let infos: Vec<Vec<u8>> = packages
            .iter()
            .map(|(name, version)| {
                der::sequence(&[&der::octet_string(name.as_bytes()), &der::uint(*version)])
            })
            .collect();
        let infos: Vec<&[u8]> = infos.iter().map(Vec::as_slice).collect();
        let digests: Vec<Vec<u8>> = digests.iter().map(|d| der::octet_string(d)).collect();
        let digests: Vec<&[u8]> = digests.iter().map(Vec::as_slice).collect();
        let inner = der::sequence(&[&der::set(&infos), &der::set(&digests)]);
        Self::octets(709, &inner)
    }
}

/// What `[704] rootOfTrust` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootOfTrustSpec {
    /// verifiedBootKey.
    pub verified_boot_key: Vec<u8>,
    /// deviceLocked.
    pub device_locked: bool,
    /// verifiedBootState (0 VERIFIED, 1 SELF_SIGNED, 2 UNVERIFIED, 3 FAILED).
    pub verified_boot_state: u8,
    /// verifiedBootHash.
    pub verified_boot_hash: Option<Vec<u8>>,
    /// The byte written for `true` (`FF` in DER; Google's test chain writes `01`).
    pub true_byte: u8,
}

impl RootOfTrustSpec {
    /// A locked, verified device.
    pub fn verified_locked() -> Self {
        Self {
            verified_boot_key: vec![0x5a; 32],
            device_locked: true,
            verified_boot_state: 0,
            verified_boot_hash: Some(vec![0x3c; 32]),
            true_byte: 0xff,
        }
    }

    /// An unlocked bootloader: UNVERIFIED, unlocked, all-zero boot key.
    pub fn unlocked() -> Self {
        Self {
            verified_boot_key: vec![0; 32],
            device_locked: false,
            verified_boot_state: 2,
            ..Self::verified_locked()
        }
    }

    fn boolean_byte(&self, value: bool) -> u8 {
        if value { self.true_byte } else { 0 }
    }
}

/// A KeyDescription, field by field. AuthorizationList entries are written in the order of
/// the vectors (callers may reorder them to test the tolerance for unordered tags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDescriptionSpec {
    /// attestationVersion.
    pub attestation_version: u64,
    /// attestationSecurityLevel ([`level`]).
    pub attestation_security_level: u64,
    /// keyMintVersion.
    pub keymint_version: u64,
    /// keyMintSecurityLevel.
    pub keymint_security_level: u64,
    /// attestationChallenge.
    pub challenge: Vec<u8>,
    /// uniqueId.
    pub unique_id: Vec<u8>,
    /// softwareEnforced.
    pub software_enforced: Vec<AuthTag>,
    /// hardwareEnforced.
    pub hardware_enforced: Vec<AuthTag>,
}

impl KeyDescriptionSpec {
    /// A KeyMint 3 (attestation version 300) TEE key: EC P-256, SIGN and VERIFY, generated in
    /// hardware, on a verified locked device running Android 14, for `package` signed by the
    /// certificate whose SHA-256 is `signing_digest`.
    pub fn new(challenge: &[u8], package: &str, signing_digest: &[u8]) -> Self {
        Self {
            attestation_version: 300,
            attestation_security_level: level::TEE,
            keymint_version: 300,
            keymint_security_level: level::TEE,
            challenge: challenge.to_vec(),
            unique_id: Vec::new(),
            software_enforced: vec![
                AuthTag::integer(701, 1_767_225_600_000),
                AuthTag::application_id(&[(package, 1)], &[signing_digest.to_vec()]),
            ],
            hardware_enforced: vec![
                AuthTag::purpose(&[2, 3]),
                AuthTag::algorithm(3),
                AuthTag::integer(3, 256),
                AuthTag::set_of(5, &[4]),
                AuthTag::integer(10, 1),
                AuthTag::flag(503),
                AuthTag::origin(0),
                AuthTag::root_of_trust(&RootOfTrustSpec::verified_locked()),
                AuthTag::integer(705, 140_000),
                AuthTag::integer(706, 202_409),
                AuthTag::integer(718, 20_240_905),
                AuthTag::integer(719, 20_240_905),
            ],
        }
    }

    /// Sets (replaces, or appends) `entry` in hardwareEnforced (`hardware`) or softwareEnforced.
    pub fn set(&mut self, hardware: bool, entry: AuthTag) -> &mut Self {
        let list = self.list(hardware);
        match list.iter_mut().find(|e| e.tag == entry.tag) {
            Some(existing) => *existing = entry,
            None => list.push(entry),
        }
        self
    }

    /// Removes tag `tag` from hardwareEnforced (`hardware`) or softwareEnforced.
    pub fn remove(&mut self, hardware: bool, tag: u32) -> &mut Self {
        self.list(hardware).retain(|e| e.tag != tag);
        self
    }

    fn list(&mut self, hardware: bool) -> &mut Vec<AuthTag> {
        if hardware {
            &mut self.hardware_enforced
        } else {
            &mut self.software_enforced
        }
    }

    /// The DER of the extension value.
    pub fn encode(&self) -> Vec<u8> {
        let list = |entries: &[AuthTag]| {
            let fields: Vec<Vec<u8>> = entries
                .iter()
                .map(|e| der::explicit(e.tag, &e.value))
                .collect();
            let fields: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
            der::sequence(&fields)
        };
        der::sequence(&[
            &der::uint(self.attestation_version),
            &der::tlv(0x0a, &[self.attestation_security_level as u8]),
            &der::uint(self.keymint_version),
            &der::tlv(0x0a, &[self.keymint_security_level as u8]),
            &der::octet_string(&self.challenge),
            &der::octet_string(&self.unique_id),
            &list(&self.software_enforced),
            &list(&self.hardware_enforced),
        ])
    }
}

/// How the simulated device got its attestation key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AndroidProvisioning {
    /// Leaf, attestation certificate, batch intermediate (subject with serialNumber and title),
    /// root. The attestation certificate is `CA:FALSE` without keyCertSign, as on real Sony and
    /// Pixel factory chains.
    Factory,
    /// Leaf, attestation certificate (`O=TEE, CN=<hex>` with ProvisioningInfo), Droid CA3,
    /// Droid CA2, root.
    Remote,
}

/// Basic constraints of a simulated certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Constraints {
    /// No basicConstraints extension (leaves, ATTEST_KEY certificates).
    Absent,
    /// `CA:FALSE` (critical), no keyCertSign: what factory attestation certificates carry.
    EndEntity,
    /// `CA:TRUE` with keyCertSign.
    Ca,
}

/// One certificate of a simulated chain, editable before the chain is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AndroidCert {
    /// Subject attributes (OID arcs, text), in order, one per RDN.
    pub subject: Vec<(Vec<u64>, String)>,
    /// Name written as the issuer instead of the real issuer's subject (to break chaining).
    pub issuer_override: Option<Vec<(Vec<u64>, String)>>,
    /// Serial number bytes (big-endian magnitude).
    pub serial: Vec<u8>,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
    /// Basic constraints.
    pub constraints: Constraints,
    /// Extensions besides basic constraints and key usage, in order.
    pub extensions: Vec<Extension>,
}

impl AndroidCert {
    fn new(subject: Vec<(Vec<u64>, String)>, validity: (OffsetDateTime, OffsetDateTime)) -> Self {
        Self {
            subject,
            issuer_override: None,
            serial: random_serial(),
            not_before: validity.0,
            not_after: validity.1,
            constraints: Constraints::Ca,
            extensions: Vec::new(),
        }
    }
}

/// A simulated chain: certificates (DER, leaf first) and the leaf's private key.
#[derive(Clone, Debug)]
pub struct AndroidAttestation {
    /// The chain, leaf first (the root last unless left out).
    pub chain: Vec<Vec<u8>>,
    /// The attested (leaf) key, PKCS#8 DER (P-256), for signing requests.
    pub leaf_key_pkcs8: Vec<u8>,
}

impl AndroidAttestation {
    /// The chain as borrowed slices, as verifiers take it.
    pub fn x5c(&self) -> Vec<&[u8]> {
        self.chain.iter().map(Vec::as_slice).collect()
    }

    /// Signs `message` with the attested key: DER ECDSA P-256 / SHA-256, what Android's
    /// `SHA256withECDSA` produces.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &self.leaf_key_pkcs8)
            .expect("the simulator's own PKCS#8");
        key.sign(&SystemRandom::new(), message)
            .expect("ECDSA signing")
            .as_ref()
            .to_vec()
    }
}

/// A test root playing Google's (P-384, like "Key Attestation CA1").
#[derive(Debug)]
pub struct AndroidCa {
    key: KeyPair,
    subject: Vec<(Vec<u64>, String)>,
    der: Vec<u8>,
}

impl AndroidCa {
    /// A fresh root, valid 2020 to 2045.
    pub fn generate() -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).expect("P-384 key generation");
        let subject = vec![
            (
                COMMON_NAME.to_vec(),
                "Simulated Key Attestation Root".to_owned(),
            ),
            (ORGANIZATION.to_vec(), "attestd test".to_owned()),
        ];
        let mut cert = AndroidCert::new(
            subject.clone(),
            (
                time::macros::datetime!(2020-01-01 00:00 UTC),
                time::macros::datetime!(2045-01-01 00:00 UTC),
            ),
        );
        cert.serial = vec![0x01];
        let der = params(&cert)
            .self_signed(&key)
            .expect("certificate assembly")
            .der()
            .to_vec();
        Self { key, subject, der }
    }

    /// The root certificate (DER): configure verifiers with it.
    pub fn root_der(&self) -> &[u8] {
        &self.der
    }

    /// The root certificate as PEM, for `--danger-extra-android-root`.
    pub fn root_pem(&self) -> String {
        pem::encode(pem::CERTIFICATE, &self.der)
    }

    /// The whole CA, private key included, as PEM blocks: root certificate, root key (PKCS#8).
    /// Test material only.
    pub fn to_pem(&self) -> String {
        [
            pem::encode(pem::CERTIFICATE, &self.der),
            pem::encode(pem::PRIVATE_KEY, &self.key.serialize_der()),
        ]
        .concat()
    }

    /// Loads a CA saved with [`AndroidCa::to_pem`]: the key must be a P-384 key, the
    /// certificate's own.
    pub fn from_pem(text: &str) -> Result<Self, SimError> {
        let mut blocks = pem::decode_all(text)?.into_iter();
        let der = pem::expect_block(&mut blocks, pem::CERTIFICATE, "root certificate")?;
        let pkcs8 = pem::expect_block(&mut blocks, pem::PRIVATE_KEY, "root key")?;
        if blocks.next().is_some() {
            return Err(SimError::InvalidPem("a block after the root key"));
        }
        let key = KeyPair::try_from(pkcs8.as_slice()).map_err(|_| SimError::InvalidKey)?;
        if key.algorithm() != &PKCS_ECDSA_P384_SHA384 {
            return Err(SimError::InvalidKey);
        }
        let parts = der::certificate_parts(&der).ok_or(SimError::InvalidCertificate)?;
        // The saved key must be the certificate's key (the BIT STRING ends with the point).
        if !parts
            .subject_public_key_info
            .content
            .ends_with(key.public_key_raw())
        {
            return Err(SimError::KeyMismatch);
        }
        let subject = subject_from_der(parts.subject.content)?;
        Ok(Self { key, subject, der })
    }

    /// A chain builder for a key attested at `now` with `key_description`.
    pub fn chain(
        &self,
        provisioning: AndroidProvisioning,
        key_description: &KeyDescriptionSpec,
        now: OffsetDateTime,
    ) -> AndroidChainBuilder<'_> {
        AndroidChainBuilder::new(self, provisioning, key_description.encode(), now)
    }
}

/// Builds one chain. Certificates are indexed as in the chain: 0 is the leaf.
#[derive(Debug, Clone)]
pub struct AndroidChainBuilder<'a> {
    ca: &'a AndroidCa,
    /// The certificates from the leaf up (the root is the CA's).
    pub certs: Vec<AndroidCert>,
    /// Whether the root certificate ends the chain.
    pub include_root: bool,
    /// DER certificates appended after the root (to extend a chain).
    pub trailing: Vec<Vec<u8>>,
}

impl<'a> AndroidChainBuilder<'a> {
    fn new(
        ca: &'a AndroidCa,
        provisioning: AndroidProvisioning,
        key_description: Vec<u8>,
        now: OffsetDateTime,
    ) -> Self {
        let leaf_validity = (
            time::macros::datetime!(1970-01-01 00:00 UTC),
            time::macros::datetime!(2048-01-01 00:00 UTC),
        );
        let mut leaf = AndroidCert::new(
            vec![(COMMON_NAME.to_vec(), "Android Keystore Key".to_owned())],
            leaf_validity,
        );
        leaf.serial = vec![0x01];
        leaf.constraints = Constraints::Absent;
        leaf.extensions
            .push(Extension::new(KEY_DESCRIPTION_OID, key_description));
        let mut certs = vec![leaf];
        match provisioning {
            AndroidProvisioning::Factory => {
                let years = (now - Duration::days(365), now + Duration::days(3650));
                let mut attestation = AndroidCert::new(
                    vec![
                        (SERIAL_NUMBER.to_vec(), hex(&random_serial()[..8])),
                        (TITLE.to_vec(), "TEE".to_owned()),
                    ],
                    years,
                );
                attestation.constraints = Constraints::EndEntity;
                certs.push(attestation);
                certs.push(AndroidCert::new(
                    vec![
                        (SERIAL_NUMBER.to_vec(), hex(&random_serial()[..8])),
                        (TITLE.to_vec(), "TEE".to_owned()),
                    ],
                    years,
                ));
            }
            AndroidProvisioning::Remote => {
                let mut attestation = AndroidCert::new(
                    vec![
                        (ORGANIZATION.to_vec(), "TEE".to_owned()),
                        (COMMON_NAME.to_vec(), hex(&random_serial())),
                    ],
                    (now - Duration::days(2), now + Duration::days(14)),
                );
                attestation.constraints = Constraints::EndEntity;
                // ProvisioningInfoMap {1: certificatesIssued} as CBOR in an OCTET STRING.
                attestation.extensions.push(Extension::new(
                    PROVISIONING_INFO_OID,
                    der::octet_string(&[0xa1, 0x01, 0x05]),
                ));
                certs.push(attestation);
                certs.push(AndroidCert::new(
                    vec![
                        (COMMON_NAME.to_vec(), "Droid CA3".to_owned()),
                        (ORGANIZATION.to_vec(), "Google LLC".to_owned()),
                    ],
                    (now - Duration::days(3), now + Duration::days(60)),
                ));
                certs.push(AndroidCert::new(
                    vec![
                        (COMMON_NAME.to_vec(), "Droid CA2".to_owned()),
                        (ORGANIZATION.to_vec(), "Google LLC".to_owned()),
                    ],
                    (now - Duration::days(365), now + Duration::days(3650)),
                ));
            }
        }
        Self {
            ca,
            certs,
            include_root: true,
            trailing: Vec::new(),
        }
    }

    /// Certificate `index` (0 = leaf), to edit.
    pub fn cert(&mut self, index: usize) -> &mut AndroidCert {
        &mut self.certs[index]
    }

    /// Replaces the leaf's KeyDescription extension value (`None` removes it).
    pub fn key_description(&mut self, value: Option<Vec<u8>>) -> &mut Self {
        let leaf = &mut self.certs[0];
        leaf.extensions
            .retain(|e| e.oid.as_slice() != KEY_DESCRIPTION_OID);
        if let Some(value) = value {
            leaf.extensions
                .push(Extension::new(KEY_DESCRIPTION_OID, value));
        }
        self
    }

    /// Inserts an ATTEST_KEY attestation right above the leaf: a certificate whose
    /// KeyDescription says `key_description` (by default hardware purpose exactly ATTEST_KEY),
    /// without basic constraints, as Android 12+ writes them.
    pub fn attest_key(&mut self, key_description: &KeyDescriptionSpec) -> &mut Self {
        let mut cert = AndroidCert::new(
            vec![(COMMON_NAME.to_vec(), "Android Keystore Key".to_owned())],
            (
                time::macros::datetime!(1970-01-01 00:00 UTC),
                time::macros::datetime!(2048-01-01 00:00 UTC),
            ),
        );
        cert.constraints = Constraints::Absent;
        cert.extensions.push(Extension::new(
            KEY_DESCRIPTION_OID,
            key_description.encode(),
        ));
        self.certs.insert(1, cert);
        self
    }

    /// Signs every certificate: the top one with the root's key, each other with the key of
    /// the certificate above it.
    pub fn build(&self) -> AndroidAttestation {
        let keys: Vec<KeyPair> = self
            .certs
            .iter()
            .map(|_| KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("P-256 key generation"))
            .collect();
        let mut chain = vec![Vec::new(); self.certs.len()];
        for index in (0..self.certs.len()).rev() {
            let (issuer_subject, issuer_key) = match self.certs.get(index + 1) {
                Some(above) => (&above.subject, &keys[index + 1]),
                None => (&self.ca.subject, &self.ca.key),
            };
            let cert = &self.certs[index];
            let issuer_name = cert.issuer_override.as_ref().unwrap_or(issuer_subject);
            let mut issuer_params = CertificateParams::default();
            issuer_params.distinguished_name = name(issuer_name);
            let issuer = Issuer::new(issuer_params, issuer_key);
            chain[index] = params(cert)
                .signed_by(&keys[index], &issuer)
                .expect("certificate assembly")
                .der()
                .to_vec();
        }
        if self.include_root {
            chain.push(self.ca.der.clone());
        }
        chain.extend(self.trailing.iter().cloned());
        AndroidAttestation {
            chain,
            leaf_key_pkcs8: keys[0].serialize_der(),
        }
    }
}

fn params(cert: &AndroidCert) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&cert.subject);
    params.serial_number = Some(SerialNumber::from_slice(&cert.serial));
    params.not_before = cert.not_before;
    params.not_after = cert.not_after;
    params.use_authority_key_identifier_extension = false;
    params.key_identifier_method = rcgen::KeyIdMethod::Sha256;
    match cert.constraints {
        Constraints::Absent => params.is_ca = IsCa::NoCa,
        Constraints::EndEntity => {
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        }
        Constraints::Ca => {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        }
    }
    params.custom_extensions = cert
        .extensions
        .iter()
        .map(|e| {
            let mut ext = CustomExtension::from_oid_content(&e.oid, e.value.clone());
            ext.set_criticality(e.critical);
            ext
        })
        .collect();
    params
}

fn name(attributes: &[(Vec<u64>, String)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (oid, value) in attributes {
        let value = if oid.as_slice() == SERIAL_NUMBER {
            DnValue::PrintableString(value.clone().try_into().expect("printable serialNumber"))
        } else {
            DnValue::Utf8String(value.clone())
        };
        dn.push(DnType::CustomDnType(oid.clone()), value);
    }
    dn
}

/// Reads a `Name` (the content of its SEQUENCE) written by [`name`] back into its attributes:
/// one attribute per RDN, UTF8String or PrintableString values.
fn subject_from_der(content: &[u8]) -> Result<Vec<(Vec<u64>, String)>, SimError> {
    let mut subject = Vec::new();
    for rdn in der::children(content).ok_or(SimError::InvalidCertificate)? {
        let attributes = der::children(rdn.content).ok_or(SimError::InvalidCertificate)?;
        let [attribute] = attributes.as_slice() else {
            return Err(SimError::InvalidCertificate);
        };
        let fields = der::children(attribute.content).ok_or(SimError::InvalidCertificate)?;
        let [oid, value] = fields.as_slice() else {
            return Err(SimError::InvalidCertificate);
        };
        if value.tag != der::UTF8_STRING && value.tag != der::PRINTABLE_STRING {
            return Err(SimError::InvalidCertificate);
        }
        let arcs = der::oid_arcs(oid.content).ok_or(SimError::InvalidCertificate)?;
        let text = std::str::from_utf8(value.content).map_err(|_| SimError::InvalidCertificate)?;
        subject.push((arcs, text.to_owned()));
    }
    Ok(subject)
}

fn random_serial() -> Vec<u8> {
    let mut bytes = vec![0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("system RNG");
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_ca_loads_back_and_signs_chains_under_the_same_root() {
        let ca = AndroidCa::generate();
        let loaded = AndroidCa::from_pem(&ca.to_pem()).unwrap();
        assert_eq!(loaded.root_der(), ca.root_der());
        assert_eq!(loaded.subject, ca.subject);
        assert_eq!(loaded.key.serialize_der(), ca.key.serialize_der());
        assert_eq!(loaded.to_pem(), ca.to_pem());

        // The top certificate of a chain from the loaded CA names the root as its issuer.
        let description = KeyDescriptionSpec::new(b"challenge", "dev.attestd.demo", &[0x11; 32]);
        let chain = loaded
            .chain(
                AndroidProvisioning::Factory,
                &description,
                OffsetDateTime::now_utc(),
            )
            .build();
        let top = der::certificate_parts(&chain.chain[chain.chain.len() - 2]).unwrap();
        let root = der::certificate_parts(ca.root_der()).unwrap();
        assert_eq!(top.issuer.content, root.subject.content);
    }

    #[test]
    fn from_pem_refuses_a_key_of_another_ca_and_missing_blocks() {
        let ca = AndroidCa::generate();
        let other = AndroidCa::generate();
        let mismatched = [
            pem::encode(pem::CERTIFICATE, ca.root_der()),
            pem::encode(pem::PRIVATE_KEY, &other.key.serialize_der()),
        ]
        .concat();
        assert_eq!(
            AndroidCa::from_pem(&mismatched).unwrap_err(),
            SimError::KeyMismatch
        );
        let root_only = ca.root_pem();
        assert_eq!(
            AndroidCa::from_pem(&root_only).unwrap_err(),
            SimError::InvalidPem("root key")
        );
        let p256 = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let wrong_curve = [
            ca.root_pem(),
            pem::encode(pem::PRIVATE_KEY, &p256.serialize_der()),
        ]
        .concat();
        assert_eq!(
            AndroidCa::from_pem(&wrong_curve).unwrap_err(),
            SimError::InvalidKey
        );
    }
}
