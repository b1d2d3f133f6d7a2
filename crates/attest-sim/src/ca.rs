//! Test certificate authorities shaped like Apple's: the App Attestation root and CA 1, and the
//! receipt-signing hierarchy under a stand-in for Apple Root CA - G3.

use std::fmt;

use rcgen::DnType;
use time::OffsetDateTime;
use time::macros::datetime;

use crate::SimError;
use crate::cert::{self, Authority, CertSpec, Extension, oids};
use crate::keys::{EcKey, KeyRole};
use crate::pem;
use crate::receipt::ReceiptBuilder;

const APPLE_INC: &str = "Apple Inc.";
const CALIFORNIA: &str = "California";
const APPLE_CA_UNIT: &str = "Apple Certification Authority";

/// OID of the marker extension on Apple's receipt intermediate ("Apple Application Integration
/// CA 5 - G1").
pub const RECEIPT_INTERMEDIATE_MARKER_OID: &[u64] = &[1, 2, 840, 113_635, 100, 6, 2, 3];
/// OID of the marker extension on Apple's receipt-signing certificate.
pub const RECEIPT_SIGNER_MARKER_OID: &[u64] = &[1, 2, 840, 113_635, 100, 12, 15];

/// Validity window `[not_before, not_after]`.
type Validity = (OffsetDateTime, OffsetDateTime);

const DEFAULT_ROOT_VALIDITY: Validity = (
    datetime!(2020-01-01 0:00 UTC),
    datetime!(2050-01-01 0:00 UTC),
);
const DEFAULT_INTERMEDIATE_VALIDITY: Validity = (
    datetime!(2020-01-01 0:00 UTC),
    datetime!(2049-01-01 0:00 UTC),
);
const DEFAULT_SIGNER_VALIDITY: Validity = (
    datetime!(2020-01-01 0:00 UTC),
    datetime!(2048-01-01 0:00 UTC),
);

/// The App Attest attestation CA: a P-384 root and a P-384 intermediate, like "Apple App
/// Attestation Root CA" and "Apple App Attestation CA 1". The intermediate issues the P-256 leaf
/// certificates (ecdsa-with-SHA256); the root signs the intermediate (ecdsa-with-SHA384).
#[derive(Clone)]
pub struct TestCa {
    pub(crate) root: Authority,
    pub(crate) intermediate: Authority,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa")
            .field("root", &self.root.name)
            .field("intermediate", &self.intermediate.name)
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// A fresh CA with random keys, test names ("attestd Test App Attestation Root CA" / "... CA
    /// 1", O = Apple Inc., ST = California), root valid 2020-01-01 to 2050-01-01 and intermediate
    /// to 2049-01-01.
    pub fn generate() -> TestCa {
        TestCa::builder().build()
    }

    /// Options for a CA, e.g. Apple's exact names or an expired intermediate.
    pub fn builder() -> TestCaBuilder {
        TestCaBuilder {
            root_common_name: "attestd Test App Attestation Root CA".to_owned(),
            intermediate_common_name: "attestd Test App Attestation CA 1".to_owned(),
            root_validity: DEFAULT_ROOT_VALIDITY,
            intermediate_validity: DEFAULT_INTERMEDIATE_VALIDITY,
            intermediate_is_ca: true,
        }
    }

    /// The root certificate (DER): the trust anchor to configure in a verifier.
    pub fn root_der(&self) -> &[u8] {
        &self.root.der
    }

    /// The root certificate as PEM.
    pub fn root_pem(&self) -> String {
        pem::encode(pem::CERTIFICATE, &self.root.der)
    }

    /// The intermediate certificate (DER), the second `x5c` entry.
    pub fn intermediate_der(&self) -> &[u8] {
        &self.intermediate.der
    }

    /// The intermediate certificate as PEM.
    pub fn intermediate_pem(&self) -> String {
        pem::encode(pem::CERTIFICATE, &self.intermediate.der)
    }

    /// The whole CA, private keys included, as PEM blocks: root certificate, root key (PKCS#8),
    /// intermediate certificate, intermediate key. Test material only.
    pub fn to_pem(&self) -> String {
        [
            pem::encode(pem::CERTIFICATE, &self.root.der),
            pem::encode(pem::PRIVATE_KEY, self.root.key.pkcs8()),
            pem::encode(pem::CERTIFICATE, &self.intermediate.der),
            pem::encode(pem::PRIVATE_KEY, self.intermediate.key.pkcs8()),
        ]
        .concat()
    }

    /// Loads a CA saved with [`TestCa::to_pem`].
    pub fn from_pem(text: &str) -> Result<TestCa, SimError> {
        let mut blocks = pem::decode_all(text)?.into_iter();
        let root_der = pem::expect_block(&mut blocks, pem::CERTIFICATE, "root certificate")?;
        let root_key = pem::expect_block(&mut blocks, pem::PRIVATE_KEY, "root key")?;
        let int_der = pem::expect_block(&mut blocks, pem::CERTIFICATE, "intermediate certificate")?;
        let int_key = pem::expect_block(&mut blocks, pem::PRIVATE_KEY, "intermediate key")?;
        Ok(TestCa {
            root: Authority::from_parts(
                root_der,
                EcKey::from_pkcs8(KeyRole::P384Sha384, &root_key)?,
            )?,
            intermediate: Authority::from_parts(
                int_der,
                EcKey::from_pkcs8(KeyRole::P384Sha256, &int_key)?,
            )?,
        })
    }
}

/// Options for [`TestCa`].
#[derive(Clone, Debug)]
pub struct TestCaBuilder {
    root_common_name: String,
    intermediate_common_name: String,
    root_validity: Validity,
    intermediate_validity: Validity,
    intermediate_is_ca: bool,
}

impl TestCaBuilder {
    /// Use Apple's exact subject names ("Apple App Attestation Root CA", "Apple App Attestation CA
    /// 1"): a look-alike chain that only the pinned root key tells apart.
    pub fn apple_names(mut self) -> Self {
        self.root_common_name = "Apple App Attestation Root CA".to_owned();
        self.intermediate_common_name = "Apple App Attestation CA 1".to_owned();
        self
    }

    /// Root subject CN.
    pub fn root_common_name(mut self, cn: impl Into<String>) -> Self {
        self.root_common_name = cn.into();
        self
    }

    /// Intermediate subject CN.
    pub fn intermediate_common_name(mut self, cn: impl Into<String>) -> Self {
        self.intermediate_common_name = cn.into();
        self
    }

    /// Root validity.
    pub fn root_validity(mut self, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        self.root_validity = (not_before, not_after);
        self
    }

    /// Intermediate validity (e.g. already expired, for negative tests).
    pub fn intermediate_validity(
        mut self,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Self {
        self.intermediate_validity = (not_before, not_after);
        self
    }

    /// Negative knob: the intermediate's basicConstraints says `cA = FALSE`.
    pub fn intermediate_not_ca(mut self) -> Self {
        self.intermediate_is_ca = false;
        self
    }

    /// Generates the keys and certificates.
    pub fn build(self) -> TestCa {
        let root_key = EcKey::generate(KeyRole::P384Sha384);
        let root_name = cert::name(&[
            (DnType::CommonName, &self.root_common_name),
            (DnType::OrganizationName, APPLE_INC),
            (DnType::StateOrProvinceName, CALIFORNIA),
        ]);
        let root_spec = CertSpec {
            subject: root_name.clone(),
            serial: cert::random_serial(16),
            not_before: self.root_validity.0,
            not_after: self.root_validity.1,
            extensions: vec![
                Extension::critical(oids::BASIC_CONSTRAINTS, cert::basic_constraints(true, None)),
                Extension::new(
                    oids::SUBJECT_KEY_IDENTIFIER,
                    cert::subject_key_identifier(&root_key),
                ),
                Extension::critical(oids::KEY_USAGE, cert::key_usage(0x06)),
            ],
        };
        let root = Authority {
            der: root_spec.self_signed(&root_key),
            key: root_key,
            name: root_name,
        };

        let int_key = EcKey::generate(KeyRole::P384Sha256);
        let int_name = cert::name(&[
            (DnType::CommonName, &self.intermediate_common_name),
            (DnType::OrganizationName, APPLE_INC),
            (DnType::StateOrProvinceName, CALIFORNIA),
        ]);
        let int_spec = CertSpec {
            subject: int_name.clone(),
            serial: cert::random_serial(16),
            not_before: self.intermediate_validity.0,
            not_after: self.intermediate_validity.1,
            extensions: vec![
                Extension::critical(
                    oids::BASIC_CONSTRAINTS,
                    if self.intermediate_is_ca {
                        cert::basic_constraints(true, Some(0))
                    } else {
                        cert::basic_constraints(false, None)
                    },
                ),
                Extension::new(
                    oids::AUTHORITY_KEY_IDENTIFIER,
                    cert::authority_key_identifier(&root.key),
                ),
                Extension::new(
                    oids::SUBJECT_KEY_IDENTIFIER,
                    cert::subject_key_identifier(&int_key),
                ),
                Extension::critical(oids::KEY_USAGE, cert::key_usage(0x06)),
            ],
        };
        let intermediate = Authority {
            der: root.issue(&int_spec, &int_key.as_subject()),
            key: int_key,
            name: int_name,
        };
        TestCa { root, intermediate }
    }
}

/// The receipt-signing hierarchy: a P-384 root standing in for Apple Root CA - G3, a P-256
/// intermediate like "Apple Application Integration CA 5 - G1" (marker extension
/// 1.2.840.113635.100.6.2.3) and a P-256 "Application Attestation Fraud Receipt Signing"
/// certificate (marker extension 1.2.840.113635.100.12.15).
#[derive(Clone)]
pub struct ReceiptCa {
    pub(crate) root: Authority,
    pub(crate) intermediate: Authority,
    pub(crate) signer: Authority,
}

impl fmt::Debug for ReceiptCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiptCa")
            .field("root", &self.root.name)
            .field("intermediate", &self.intermediate.name)
            .field("signer", &self.signer.name)
            .finish_non_exhaustive()
    }
}

impl ReceiptCa {
    /// A fresh receipt CA with random keys and test names; everything valid from 2020-01-01 to
    /// 2048 or later.
    pub fn generate() -> ReceiptCa {
        ReceiptCa::builder().build()
    }

    /// Options for a receipt CA, e.g. an expired signer or a signer without Apple's marker.
    pub fn builder() -> ReceiptCaBuilder {
        ReceiptCaBuilder {
            root_common_name: "attestd Test Root CA - G3".to_owned(),
            intermediate_common_name: "attestd Test Application Integration CA 5 - G1".to_owned(),
            root_validity: DEFAULT_ROOT_VALIDITY,
            intermediate_validity: DEFAULT_INTERMEDIATE_VALIDITY,
            signer_validity: DEFAULT_SIGNER_VALIDITY,
            intermediate_marker: true,
            signer_marker: true,
        }
    }

    /// Starts a receipt signed by this CA (see [`ReceiptBuilder`] for the defaults).
    pub fn receipt(&self) -> ReceiptBuilder<'_> {
        ReceiptBuilder::new(self)
    }

    /// The root certificate (DER): the receipt trust anchor.
    pub fn root_der(&self) -> &[u8] {
        &self.root.der
    }

    /// The root certificate as PEM.
    pub fn root_pem(&self) -> String {
        pem::encode(pem::CERTIFICATE, &self.root.der)
    }

    /// The intermediate certificate (DER).
    pub fn intermediate_der(&self) -> &[u8] {
        &self.intermediate.der
    }

    /// The receipt-signing certificate (DER).
    pub fn signer_der(&self) -> &[u8] {
        &self.signer.der
    }

    /// The certificates a receipt carries, in Apple's order: signer, intermediate, root.
    pub fn certificates(&self) -> Vec<Vec<u8>> {
        vec![
            self.signer.der.clone(),
            self.intermediate.der.clone(),
            self.root.der.clone(),
        ]
    }

    /// The whole CA, private keys included, as PEM blocks (root, intermediate, signer; each
    /// certificate followed by its PKCS#8 key). Test material only.
    pub fn to_pem(&self) -> String {
        [&self.root, &self.intermediate, &self.signer]
            .iter()
            .flat_map(|a| {
                [
                    pem::encode(pem::CERTIFICATE, &a.der),
                    pem::encode(pem::PRIVATE_KEY, a.key.pkcs8()),
                ]
            })
            .collect()
    }

    /// Loads a CA saved with [`ReceiptCa::to_pem`].
    pub fn from_pem(text: &str) -> Result<ReceiptCa, SimError> {
        let mut blocks = pem::decode_all(text)?.into_iter();
        let mut next = |role: KeyRole, what: &'static str| -> Result<Authority, SimError> {
            let der = pem::expect_block(&mut blocks, pem::CERTIFICATE, what)?;
            let key = pem::expect_block(&mut blocks, pem::PRIVATE_KEY, what)?;
            Authority::from_parts(der, EcKey::from_pkcs8(role, &key)?)
        };
        Ok(ReceiptCa {
            root: next(KeyRole::P384Sha384, "receipt root")?,
            intermediate: next(KeyRole::P256Sha256, "receipt intermediate")?,
            signer: next(KeyRole::P256Sha256, "receipt signer")?,
        })
    }
}

/// Options for [`ReceiptCa`].
#[derive(Clone, Debug)]
pub struct ReceiptCaBuilder {
    root_common_name: String,
    intermediate_common_name: String,
    root_validity: Validity,
    intermediate_validity: Validity,
    signer_validity: Validity,
    intermediate_marker: bool,
    signer_marker: bool,
}

impl ReceiptCaBuilder {
    /// Use Apple's exact names ("Apple Root CA - G3", "Apple Application Integration CA 5 - G1").
    pub fn apple_names(mut self) -> Self {
        self.root_common_name = "Apple Root CA - G3".to_owned();
        self.intermediate_common_name = "Apple Application Integration CA 5 - G1".to_owned();
        self
    }

    /// Root validity.
    pub fn root_validity(mut self, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        self.root_validity = (not_before, not_after);
        self
    }

    /// Intermediate validity.
    pub fn intermediate_validity(
        mut self,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Self {
        self.intermediate_validity = (not_before, not_after);
        self
    }

    /// Signing-certificate validity (Apple rotates it yearly; use this to model rotation or an
    /// expired signer).
    pub fn signer_validity(
        mut self,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Self {
        self.signer_validity = (not_before, not_after);
        self
    }

    /// Negative knob: leave out 1.2.840.113635.100.6.2.3 from the intermediate.
    pub fn without_intermediate_marker(mut self) -> Self {
        self.intermediate_marker = false;
        self
    }

    /// Negative knob: leave out 1.2.840.113635.100.12.15 from the signing certificate.
    pub fn without_signer_marker(mut self) -> Self {
        self.signer_marker = false;
        self
    }

    /// Generates the keys and certificates.
    pub fn build(self) -> ReceiptCa {
        let root_key = EcKey::generate(KeyRole::P384Sha384);
        let root_name = cert::name(&[
            (DnType::CommonName, &self.root_common_name),
            (DnType::OrganizationalUnitName, APPLE_CA_UNIT),
            (DnType::OrganizationName, APPLE_INC),
            (DnType::CountryName, "US"),
        ]);
        let root_spec = CertSpec {
            subject: root_name.clone(),
            serial: cert::random_serial(8),
            not_before: self.root_validity.0,
            not_after: self.root_validity.1,
            extensions: vec![
                Extension::new(
                    oids::SUBJECT_KEY_IDENTIFIER,
                    cert::subject_key_identifier(&root_key),
                ),
                Extension::critical(oids::BASIC_CONSTRAINTS, cert::basic_constraints(true, None)),
                Extension::critical(oids::KEY_USAGE, cert::key_usage(0x06)),
            ],
        };
        let root = Authority {
            der: root_spec.self_signed(&root_key),
            key: root_key,
            name: root_name,
        };

        let int_key = EcKey::generate(KeyRole::P256Sha256);
        let int_name = cert::name(&[
            (DnType::CommonName, &self.intermediate_common_name),
            (DnType::OrganizationalUnitName, APPLE_CA_UNIT),
            (DnType::OrganizationName, APPLE_INC),
            (DnType::CountryName, "US"),
        ]);
        let mut int_extensions = vec![
            Extension::critical(oids::BASIC_CONSTRAINTS, cert::basic_constraints(true, None)),
            Extension::new(
                oids::AUTHORITY_KEY_IDENTIFIER,
                cert::authority_key_identifier(&root.key),
            ),
            Extension::new(
                oids::AUTHORITY_INFO_ACCESS,
                cert::ocsp_access("http://ocsp.attestd.invalid/ocsp03-testrootg3"),
            ),
            Extension::new(
                oids::CRL_DISTRIBUTION_POINTS,
                cert::crl_distribution_point("http://crl.attestd.invalid/testrootg3.crl"),
            ),
            Extension::new(
                oids::SUBJECT_KEY_IDENTIFIER,
                cert::subject_key_identifier(&int_key),
            ),
            Extension::critical(oids::KEY_USAGE, cert::key_usage(0x06)),
        ];
        if self.intermediate_marker {
            int_extensions.push(Extension::new(
                RECEIPT_INTERMEDIATE_MARKER_OID,
                cert::marker(),
            ));
        }
        let int_spec = CertSpec {
            subject: int_name.clone(),
            serial: cert::random_serial(16),
            not_before: self.intermediate_validity.0,
            not_after: self.intermediate_validity.1,
            extensions: int_extensions,
        };
        let intermediate = Authority {
            der: root.issue(&int_spec, &int_key.as_subject()),
            key: int_key,
            name: int_name,
        };

        let signer_key = EcKey::generate(KeyRole::P256Sha256);
        let signer_name = cert::name(&[
            (
                DnType::CommonName,
                "Application Attestation Fraud Receipt Signing",
            ),
            (DnType::OrganizationName, APPLE_INC),
            (DnType::CountryName, "US"),
        ]);
        let mut signer_extensions = vec![
            Extension::critical(
                oids::BASIC_CONSTRAINTS,
                cert::basic_constraints(false, None),
            ),
            Extension::new(
                oids::AUTHORITY_KEY_IDENTIFIER,
                cert::authority_key_identifier(&intermediate.key),
            ),
            Extension::new(
                oids::AUTHORITY_INFO_ACCESS,
                cert::ocsp_access("http://ocsp.attestd.invalid/ocsp03-aaica5g101"),
            ),
            Extension::new(
                oids::CERTIFICATE_POLICIES,
                cert::apple_certificate_policies(
                    "Test certificate minted by attest-sim. Not issued by Apple; trust it only in tests.",
                    "http://www.attestd.invalid/certificateauthority",
                ),
            ),
            Extension::new(
                oids::SUBJECT_KEY_IDENTIFIER,
                cert::subject_key_identifier(&signer_key),
            ),
            Extension::critical(oids::KEY_USAGE, cert::key_usage(0x80)),
        ];
        if self.signer_marker {
            signer_extensions.push(Extension::new(RECEIPT_SIGNER_MARKER_OID, cert::marker()));
        }
        let signer_spec = CertSpec {
            subject: signer_name.clone(),
            serial: cert::random_serial(16),
            not_before: self.signer_validity.0,
            not_after: self.signer_validity.1,
            extensions: signer_extensions,
        };
        let signer = Authority {
            der: intermediate.issue(&signer_spec, &signer_key.as_subject()),
            key: signer_key,
            name: signer_name,
        };
        ReceiptCa {
            root,
            intermediate,
            signer,
        }
    }
}
