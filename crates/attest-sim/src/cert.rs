//! Certificate issuance on top of rcgen, with every extension supplied by the caller so the
//! order, criticality and bytes match Apple's certificates exactly.

use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue, IsCa, Issuer,
    PublicKeyData, SerialNumber,
};
use time::OffsetDateTime;

use crate::SimError;
use crate::der;
use crate::keys::EcKey;

/// One X.509v3 extension: OID arcs, criticality and the DER of `extnValue`'s content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    /// The extension's OID, e.g. `[1, 2, 840, 113635, 100, 8, 2]`.
    pub oid: Vec<u64>,
    /// The `critical` flag.
    pub critical: bool,
    /// The DER inside the `extnValue` OCTET STRING.
    pub value: Vec<u8>,
}

impl Extension {
    /// A non-critical extension.
    pub fn new(oid: &[u64], value: Vec<u8>) -> Extension {
        Extension {
            oid: oid.to_vec(),
            critical: false,
            value,
        }
    }

    /// A critical extension.
    pub fn critical(oid: &[u64], value: Vec<u8>) -> Extension {
        Extension {
            oid: oid.to_vec(),
            critical: true,
            value,
        }
    }
}

pub(crate) mod oids {
    pub(crate) const BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
    pub(crate) const KEY_USAGE: &[u64] = &[2, 5, 29, 15];
    pub(crate) const EXTENDED_KEY_USAGE: &[u64] = &[2, 5, 29, 37];
    pub(crate) const SUBJECT_KEY_IDENTIFIER: &[u64] = &[2, 5, 29, 14];
    pub(crate) const AUTHORITY_KEY_IDENTIFIER: &[u64] = &[2, 5, 29, 35];
    pub(crate) const CRL_DISTRIBUTION_POINTS: &[u64] = &[2, 5, 29, 31];
    pub(crate) const CERTIFICATE_POLICIES: &[u64] = &[2, 5, 29, 32];
    pub(crate) const AUTHORITY_INFO_ACCESS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
    pub(crate) const OCSP: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1];
    pub(crate) const POLICY_QUALIFIER_CPS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 2, 1];
    pub(crate) const POLICY_QUALIFIER_UNOTICE: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 2, 2];
    /// Apple certificate policy.
    pub(crate) const APPLE_POLICY: &[u64] = &[1, 2, 840, 113_635, 100, 5, 1];
}

/// `BasicConstraints` value: `cA` flag and optional path length.
pub(crate) fn basic_constraints(ca: bool, path_len: Option<u8>) -> Vec<u8> {
    let mut parts = Vec::new();
    if ca {
        parts.push(der::boolean(true));
    }
    if let Some(len) = path_len {
        parts.push(der::uint(u64::from(len)));
    }
    der::tlv(der::SEQUENCE, &parts.concat())
}

/// `KeyUsage` BIT STRING from the first byte of flags (bit 7 = digitalSignature), written with
/// the unused-bit count DER requires.
pub(crate) fn key_usage(flags: u8) -> Vec<u8> {
    let unused = if flags == 0 {
        0
    } else {
        flags.trailing_zeros() as u8
    };
    der::tlv(der::BIT_STRING, &[unused, flags])
}

pub(crate) fn subject_key_identifier(key: &EcKey) -> Vec<u8> {
    der::octet_string(&key.key_identifier())
}

pub(crate) fn authority_key_identifier(issuer_key: &EcKey) -> Vec<u8> {
    der::sequence(&[&der::context(0, false, &issuer_key.key_identifier())])
}

/// `ExtKeyUsageSyntax` from OIDs.
pub(crate) fn extended_key_usage(oids: &[Vec<u64>]) -> Vec<u8> {
    let encoded: Vec<Vec<u8>> = oids.iter().map(|o| der::oid(o)).collect();
    let parts: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
    der::sequence(&parts)
}

/// `AuthorityInfoAccess` with one OCSP URI.
pub(crate) fn ocsp_access(uri: &str) -> Vec<u8> {
    let description = der::sequence(&[
        &der::oid(oids::OCSP),
        &der::context(6, false, uri.as_bytes()),
    ]);
    der::sequence(&[&description])
}

/// `CRLDistributionPoints` with one full-name URI.
pub(crate) fn crl_distribution_point(uri: &str) -> Vec<u8> {
    let general_names = der::context(0, true, &der::context(6, false, uri.as_bytes()));
    let point = der::sequence(&[&der::context(0, true, &general_names)]);
    der::sequence(&[&point])
}

/// Apple's `CertificatePolicies`: policy 1.2.840.113635.100.5.1 with a user notice and a CPS URI.
pub(crate) fn apple_certificate_policies(notice: &str, cps: &str) -> Vec<u8> {
    let unotice = der::sequence(&[
        &der::oid(oids::POLICY_QUALIFIER_UNOTICE),
        &der::sequence(&[&der::utf8_string(notice)]),
    ]);
    let cps = der::sequence(&[&der::oid(oids::POLICY_QUALIFIER_CPS), &der::ia5_string(cps)]);
    let info = der::sequence(&[
        &der::oid(oids::APPLE_POLICY),
        &der::sequence(&[&unotice, &cps]),
    ]);
    der::sequence(&[&info])
}

/// `NULL`-valued marker extension content, as Apple's receipt-chain markers carry.
pub(crate) fn marker() -> Vec<u8> {
    der::null()
}

/// What goes into one certificate.
#[derive(Clone, Debug)]
pub(crate) struct CertSpec {
    pub(crate) subject: DistinguishedName,
    pub(crate) serial: Vec<u8>,
    pub(crate) not_before: OffsetDateTime,
    pub(crate) not_after: OffsetDateTime,
    pub(crate) extensions: Vec<Extension>,
}

impl CertSpec {
    fn params(&self) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name = self.subject.clone();
        params.serial_number = Some(SerialNumber::from_slice(&self.serial));
        params.not_before = self.not_before;
        params.not_after = self.not_after;
        params.is_ca = IsCa::NoCa;
        params.custom_extensions = self
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

    /// A self-signed certificate.
    pub(crate) fn self_signed(&self, key: &EcKey) -> Vec<u8> {
        self.params()
            .self_signed(&key.as_signer())
            .expect("certificate assembly")
            .der()
            .to_vec()
    }

    /// A certificate for `subject_key`, signed by `issuer_key` in the name of `issuer_name`.
    pub(crate) fn signed_by(
        &self,
        subject_key: &impl PublicKeyData,
        issuer_name: &DistinguishedName,
        issuer_key: &EcKey,
    ) -> Vec<u8> {
        let mut issuer_params = CertificateParams::default();
        issuer_params.distinguished_name = issuer_name.clone();
        let issuer = Issuer::new(issuer_params, issuer_key.as_signer());
        self.params()
            .signed_by(subject_key, &issuer)
            .expect("certificate assembly")
            .der()
            .to_vec()
    }
}

/// A CA certificate with its key: it can issue certificates.
#[derive(Clone, Debug)]
pub(crate) struct Authority {
    pub(crate) der: Vec<u8>,
    pub(crate) key: EcKey,
    pub(crate) name: DistinguishedName,
}

impl Authority {
    pub(crate) fn issue(&self, spec: &CertSpec, subject_key: &impl PublicKeyData) -> Vec<u8> {
        spec.signed_by(subject_key, &self.name, &self.key)
    }

    /// Rebuilds an authority from a saved certificate and key.
    pub(crate) fn from_parts(der: Vec<u8>, key: EcKey) -> Result<Authority, SimError> {
        let parts = der::certificate_parts(&der).ok_or(SimError::InvalidCertificate)?;
        let spki = parts.subject_public_key_info;
        // The saved key must be the certificate's key (the BIT STRING ends with the point).
        if !spki.content.ends_with(key.public_point()) {
            return Err(SimError::KeyMismatch);
        }
        let name = distinguished_name_from_der(parts.subject.content)?;
        Ok(Authority { der, key, name })
    }
}

/// Builds an rcgen name keeping order and string types.
pub(crate) fn name(entries: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (ty, value) in entries {
        let value = if *ty == DnType::CountryName {
            DnValue::PrintableString((*value).try_into().expect("printable country code"))
        } else {
            DnValue::Utf8String((*value).to_owned())
        };
        dn.push(ty.clone(), value);
    }
    dn
}

/// Reads a `Name` (the content of its SEQUENCE) back into an rcgen name, keeping string types so
/// that re-issued certificates name their issuer with identical bytes.
fn distinguished_name_from_der(content: &[u8]) -> Result<DistinguishedName, SimError> {
    let mut dn = DistinguishedName::new();
    for rdn in der::children(content).ok_or(SimError::InvalidCertificate)? {
        let attributes = der::children(rdn.content).ok_or(SimError::InvalidCertificate)?;
        let [attribute] = attributes.as_slice() else {
            return Err(SimError::InvalidCertificate);
        };
        let fields = der::children(attribute.content).ok_or(SimError::InvalidCertificate)?;
        let [oid, value] = fields.as_slice() else {
            return Err(SimError::InvalidCertificate);
        };
        let arcs = der::oid_arcs(oid.content).ok_or(SimError::InvalidCertificate)?;
        let text = std::str::from_utf8(value.content)
            .map_err(|_| SimError::InvalidCertificate)?
            .to_owned();
        let value = match value.tag {
            der::UTF8_STRING => DnValue::Utf8String(text),
            der::PRINTABLE_STRING => {
                DnValue::PrintableString(text.try_into().map_err(|_| SimError::InvalidCertificate)?)
            }
            _ => return Err(SimError::InvalidCertificate),
        };
        dn.push(DnType::from_oid(&arcs), value);
    }
    Ok(dn)
}

/// `count` random bytes with the top bit cleared (a positive serial of exactly that length).
pub(crate) fn random_serial(count: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; count];
    aws_lc_rs::rand::fill(&mut bytes).expect("system RNG");
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    bytes
}
