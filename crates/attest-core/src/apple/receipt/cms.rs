//! The CMS (PKCS#7) envelope of a receipt, decoded with rasn-cms in BER mode.
//!
//! Apple encodes most receipts in BER: indefinite lengths throughout and an eContent that is a
//! constructed OCTET STRING in 1000-byte chunks. rasn's BER decoder accepts that (and DER, which
//! is a subset) and reassembles the chunks. Nothing here is verified; this only takes the
//! envelope apart.

use rasn::prelude::*;
use rasn::types::{Any, ObjectIdentifier, Oid, SetOf};
use rasn_cms::{
    AlgorithmIdentifier, CONTENT_DATA, CONTENT_SIGNED_DATA, CONTENT_TYPE, CmsVersion, ContentInfo,
    DigestAlgorithmIdentifiers, EncapsulatedContentInfo, MESSAGE_DIGEST, SignedAttributes,
    SignerIdentifier, SignerInfos,
};

use super::ReceiptError;

/// SHA-256 (2.16.840.1.101.3.4.2.1), the only digest algorithm accepted.
const SHA256: &Oid =
    Oid::JOINT_ISO_ITU_T_COUNTRY_US_ORGANIZATION_GOV_CSOR_NIST_ALGORITHMS_HASH_SHA256;
/// ecdsa-with-SHA256 (1.2.840.10045.4.3.2), the only signature algorithm accepted.
const ECDSA_WITH_SHA256: &Oid = Oid::const_new(&[1, 2, 840, 10045, 4, 3, 2]);

/// The DER encoding of ASN.1 NULL, the parameters some encoders put after an algorithm OID.
const DER_NULL: &[u8] = &[0x05, 0x00];

/// rasn-cms's `SignedData`, except that the certificate and CRL sets keep each element's raw
/// encoding. rasn-cms would decode certificates into `rasn_pkix::Certificate`; re-encoding those
/// for webpki would cost time and is not guaranteed to reproduce the signed bytes, while `Any`
/// keeps the exact TLV (certificates are DER inside the BER envelope).
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq, Hash)]
pub(super) struct RawSignedData {
    pub(super) version: CmsVersion,
    pub(super) digest_algorithms: DigestAlgorithmIdentifiers,
    pub(super) encap_content_info: EncapsulatedContentInfo,
    #[rasn(tag(0))]
    pub(super) certificates: Option<SetOf<Any>>,
    #[rasn(tag(1))]
    pub(super) crls: Option<SetOf<Any>>,
    pub(super) signer_infos: SignerInfos,
}

/// How the SignerInfo names its certificate, re-encoded in DER for comparison with certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SignerId {
    /// `issuerAndSerialNumber`: the DER issuer Name (full TLV) and the serial's DER content octets.
    IssuerAndSerial { issuer: Vec<u8>, serial: Vec<u8> },
    /// `subjectKeyIdentifier`: the key identifier octets.
    SubjectKeyId(Vec<u8>),
}

/// The signed attributes of the SignerInfo, when present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SignedAttrs {
    /// The DER encoding of the attributes as a `SET OF` (tag 0x31): what RFC 5652 §5.4 signs.
    pub(super) der: Vec<u8>,
    /// The single value of the messageDigest attribute.
    pub(super) message_digest: Vec<u8>,
}

/// The envelope's pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Envelope {
    /// Each certificate's DER, in the order given.
    pub(super) certificates: Vec<Vec<u8>>,
    pub(super) signer: SignerId,
    pub(super) signed_attrs: Option<SignedAttrs>,
    pub(super) signature: OctetString,
    /// eContent, reassembled if it was a constructed OCTET STRING.
    pub(super) content: OctetString,
}

/// Most certificates a receipt may carry. Apple sends three (signer, intermediate, root).
const MAX_CERTIFICATES: usize = 8;

/// Decodes the ContentInfo / SignedData envelope (BER or DER) and checks its shape.
pub(super) fn decode(bytes: &[u8]) -> Result<Envelope, ReceiptError> {
    let malformed = ReceiptError::Malformed;
    let (info, rest) = rasn::ber::decode_with_remainder::<ContentInfo>(bytes)
        .map_err(|_| malformed("not a CMS ContentInfo"))?;
    if !rest.is_empty() {
        return Err(malformed("trailing bytes after the CMS ContentInfo"));
    }
    if *info.content_type != *CONTENT_SIGNED_DATA {
        return Err(malformed("CMS content is not SignedData"));
    }
    let (signed, rest) = rasn::ber::decode_with_remainder::<RawSignedData>(info.content.as_bytes())
        .map_err(|_| malformed("not a CMS SignedData"))?;
    if !rest.is_empty() {
        return Err(malformed("trailing bytes after the CMS SignedData"));
    }

    if *signed.encap_content_info.content_type != *CONTENT_DATA {
        return Err(malformed("eContentType is not id-data"));
    }
    let content = signed
        .encap_content_info
        .content
        .ok_or(malformed("SignedData has no eContent"))?;

    let certificates: Vec<Vec<u8>> = signed
        .certificates
        .ok_or(malformed("SignedData carries no certificates"))?
        .into_vec()
        .into_iter()
        .map(Any::into_bytes)
        .collect();
    if certificates.is_empty() {
        return Err(malformed("SignedData carries no certificates"));
    }
    if certificates.len() > MAX_CERTIFICATES {
        return Err(malformed("SignedData carries too many certificates"));
    }

    let mut signers = signed.signer_infos.into_vec().into_iter();
    let (Some(signer_info), None) = (signers.next(), signers.next()) else {
        return Err(malformed("SignedData must have exactly one SignerInfo"));
    };

    check_algorithm(&signer_info.digest_algorithm, SHA256)?;
    check_algorithm(&signer_info.signature_algorithm, ECDSA_WITH_SHA256)?;

    let signer = match signer_info.sid {
        SignerIdentifier::IssuerAndSerialNumber(id) => SignerId::IssuerAndSerial {
            issuer: rasn::der::encode(&id.issuer).map_err(|_| malformed("bad signer issuer"))?,
            serial: integer_content_octets(&id.serial_number)?,
        },
        SignerIdentifier::SubjectKeyIdentifier(ski) => SignerId::SubjectKeyId(ski.to_vec()),
    };

    let signed_attrs = signer_info
        .signed_attrs
        .map(|attrs| signed_attributes(&attrs))
        .transpose()?;

    Ok(Envelope {
        certificates,
        signer,
        signed_attrs,
        signature: signer_info.signature,
        content,
    })
}

/// The algorithm must be `expected`, with parameters absent or NULL.
fn check_algorithm(algorithm: &AlgorithmIdentifier, expected: &Oid) -> Result<(), ReceiptError> {
    let params_ok = algorithm
        .parameters
        .as_ref()
        .is_none_or(|p| p.as_bytes() == DER_NULL);
    if *algorithm.algorithm == *expected && params_ok {
        Ok(())
    } else {
        Err(ReceiptError::UnsupportedAlgorithm)
    }
}

/// The DER content octets of an INTEGER (what x509-parser's `raw_serial` returns).
fn integer_content_octets(value: &Integer) -> Result<Vec<u8>, ReceiptError> {
    let malformed = ReceiptError::Malformed("bad signer serial number");
    let tlv = rasn::der::encode(value).map_err(|_| malformed.clone())?;
    // A DER INTEGER of fewer than 128 content octets has a two-byte header; RFC 5280 caps
    // serial numbers at 20 octets, so anything longer cannot name a certificate.
    match tlv.as_slice() {
        [0x02, len, content @ ..] if usize::from(*len) == content.len() && *len < 0x80 => {
            Ok(content.to_vec())
        }
        _ => Err(malformed),
    }
}

/// Checks contentType and messageDigest (each exactly once, single-valued) and re-encodes the set.
fn signed_attributes(attrs: &SignedAttributes) -> Result<SignedAttrs, ReceiptError> {
    let malformed = ReceiptError::Malformed;
    let single_value = |oid: &Oid| -> Result<&Any, ReceiptError> {
        let mut matching = attrs.iter().filter(|a| *a.r#type == *oid);
        let (Some(attr), None) = (matching.next(), matching.next()) else {
            return Err(malformed(
                "signed attributes need exactly one contentType and messageDigest",
            ));
        };
        let mut values = attr.values.iter();
        match (values.next(), values.next()) {
            (Some(value), None) => Ok(value),
            _ => Err(malformed("a signed attribute must have exactly one value")),
        }
    };

    let content_type = single_value(CONTENT_TYPE)?;
    let content_type = rasn::der::decode::<ObjectIdentifier>(content_type.as_bytes())
        .map_err(|_| malformed("bad contentType attribute"))?;
    if *content_type != *CONTENT_DATA {
        return Err(malformed("contentType attribute is not id-data"));
    }
    let digest = single_value(MESSAGE_DIGEST)?;
    let message_digest = rasn::der::decode::<OctetString>(digest.as_bytes())
        .map_err(|_| malformed("bad messageDigest attribute"))?
        .to_vec();

    // RFC 5652 §5.4: the signature covers the DER encoding of the SignedAttributes as a
    // `SET OF` (tag 0x31, not the [0] IMPLICIT tag it carries in the SignerInfo). rasn's DER
    // encoder sorts the set's elements, as DER requires (and as OpenSSL does when verifying).
    let der = rasn::der::encode(attrs).map_err(|_| malformed("bad signed attributes"))?;
    Ok(SignedAttrs {
        der,
        message_digest,
    })
}
