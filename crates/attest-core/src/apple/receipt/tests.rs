//! Unit tests: hostile and tampered envelopes (built from real receipts), and a test CA that
//! exercises the signature forms, the signer marker and the legacy-form cutoff.

use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use rasn::prelude::*;
use rasn::types::{Any, SetOf};
use rasn_cms::{
    AlgorithmIdentifier, Attribute, CONTENT_DATA, CONTENT_SIGNED_DATA, CONTENT_TYPE, ContentInfo,
    EncapsulatedContentInfo, IssuerAndSerialNumber, MESSAGE_DIGEST, SignerIdentifier, SignerInfo,
};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use time::OffsetDateTime;
use time::macros::datetime;

use super::cms::RawSignedData;
use super::payload::ReceiptAttribute;
use super::*;

// ---------------------------------------------------------------------------------------------
// Real vectors

const RECEIPTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/apple/receipts"
);

/// A 2021 receipt: BER, no signed attributes (signature over eContent).
const MODERN: &str = "veehaitch-ios14-4-dev-2021-receipt-r1";
/// A 2020 receipt: signed attributes present, signature over eContent (the quirk).
const QUIRK: &str = "veehaitch-hist-0c50d7e-dev-2020-receipt-r1";
/// A DER receipt.
const DER_RECEIPT: &str = "veehaitch-ios14-2-dev-2020-receipt-r1";

fn vector(id: &str) -> (Vec<u8>, UnixTime) {
    let text = std::fs::read_to_string(format!("{RECEIPTS}/{id}.json")).unwrap();
    let record: serde_json::Value = serde_json::from_str(&text).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(record["receipt"].as_str().unwrap())
        .unwrap();
    let at = OffsetDateTime::parse(
        record["verify_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    (bytes, unix(at))
}

fn unix(t: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(t.unix_timestamp()).unwrap(),
    ))
}

/// Decodes a receipt's SignedData, lets `edit` change it, and re-encodes the whole (DER).
fn reencode(bytes: &[u8], edit: impl FnOnce(&mut RawSignedData)) -> Vec<u8> {
    let info: ContentInfo = rasn::ber::decode(bytes).unwrap();
    let mut signed: RawSignedData = rasn::ber::decode(info.content.as_bytes()).unwrap();
    edit(&mut signed);
    wrap(&signed)
}

fn wrap(signed: &RawSignedData) -> Vec<u8> {
    let info = ContentInfo {
        content_type: CONTENT_SIGNED_DATA.into(),
        content: Any::new(rasn::der::encode(signed).unwrap()),
    };
    rasn::der::encode(&info).unwrap()
}

#[test]
fn parses_ber_and_der_receipts() {
    for id in [MODERN, QUIRK, DER_RECEIPT] {
        let (bytes, _) = vector(id);
        let parsed = parse_receipt(&bytes).unwrap();
        assert_eq!(parsed.certificates().len(), 3, "{id}");
        assert_eq!(
            parsed.receipt().app_id,
            "6MURL8TA57.de.vincent-haupert.apple-appattest-poc",
            "{id}"
        );
    }
    assert_eq!(
        bytes_of(MODERN).get(..2),
        Some(&[0x30, 0x80][..]),
        "BER, indefinite length"
    );
    assert_ne!(bytes_of(DER_RECEIPT).get(1), Some(&0x80), "DER");
}

fn bytes_of(id: &str) -> Vec<u8> {
    vector(id).0
}

#[test]
fn reassembles_chunked_econtent() {
    let (bytes, _) = vector(MODERN);
    let parsed = parse_receipt(&bytes).unwrap();
    // The payload is one DER SET; chunk headers would break its length.
    assert_eq!(parsed.content().first(), Some(&0x31));
    assert!(Receipt::from_payload(parsed.content()).is_ok());
}

#[test]
fn rejects_every_truncation_of_a_receipt() {
    for id in [MODERN, QUIRK, DER_RECEIPT] {
        let (bytes, at) = vector(id);
        let verifier = ReceiptVerifier::apple();
        for len in 0..bytes.len() {
            let truncated = bytes.get(..len).unwrap();
            assert!(
                parse_receipt(truncated).is_err(),
                "{id}: prefix of {len} bytes parsed"
            );
            assert!(verifier.verify(truncated, at).is_err());
        }
    }
}

#[test]
fn rejects_trailing_bytes() {
    let (mut bytes, _) = vector(MODERN);
    bytes.push(0);
    assert!(matches!(
        parse_receipt(&bytes),
        Err(ReceiptError::Malformed(_))
    ));
}

#[test]
fn rejects_garbage() {
    let mut inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x30],
        vec![0x30, 0x80],
        vec![0x30, 0x80, 0x00, 0x00],
        vec![0x30, 0x00],
        vec![0xff; 64],
        b"not a receipt".to_vec(),
        // Deep nesting of indefinite-length SEQUENCEs, and of definite ones.
        [0x30, 0x80].repeat(20_000),
        [0x24, 0x80].repeat(20_000),
    ];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for len in [1, 2, 7, 100, 4000] {
        let random: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        inputs.push(random);
    }
    let verifier = ReceiptVerifier::apple();
    for input in inputs {
        assert!(parse_receipt(&input).is_err());
        assert!(
            verifier
                .verify(&input, UnixTime::since_unix_epoch(Duration::ZERO))
                .is_err()
        );
    }
}

#[test]
fn survives_random_corruption_of_real_receipts() {
    let verifier = ReceiptVerifier::apple();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for id in [MODERN, QUIRK, DER_RECEIPT] {
        let (bytes, at) = vector(id);
        for _ in 0..3000 {
            let mut corrupted = bytes.clone();
            for _ in 0..=(next() % 3) {
                let index = usize::try_from(next() % corrupted.len() as u64).unwrap();
                corrupted[index] = next().to_le_bytes()[0];
            }
            // Any outcome but a panic; a changed receipt never verifies with another payload.
            if let Ok(verified) = verifier.verify(&corrupted, at) {
                assert_eq!(
                    verified.receipt,
                    parse_receipt(&bytes).unwrap().into_receipt()
                );
            }
        }
    }
}

#[test]
fn rejects_receipt_larger_than_the_bound() {
    let (bytes, at) = vector(MODERN);
    let mut padded = bytes.clone();
    padded.resize(MAX_RECEIPT_LEN + 1, 0);
    assert_eq!(
        parse_receipt(&padded).map(|_| ()),
        Err(ReceiptError::TooLarge)
    );
    assert_eq!(
        ReceiptVerifier::apple().verify(&padded, at).map(|_| ()),
        Err(ReceiptError::TooLarge)
    );
    assert_eq!(ReceiptError::TooLarge.reason(), "receipt_too_large");
}

#[test]
fn accepts_a_receipt_reencoded_in_der() {
    let (bytes, at) = vector(MODERN);
    let der = reencode(&bytes, |_| {});
    assert_ne!(der, bytes);
    let verified = ReceiptVerifier::apple().verify(&der, at).unwrap();
    assert_eq!(verified.signature_form, SignatureForm::Content);
}

#[test]
fn rejects_receipt_with_wrong_digest_algorithm() {
    let (bytes, at) = vector(MODERN);
    let sha384 = Oid::JOINT_ISO_ITU_T_COUNTRY_US_ORGANIZATION_GOV_CSOR_NIST_ALGORITHMS_HASH_SHA384;
    let tampered = edit_signer(&bytes, |signer| {
        signer.digest_algorithm.algorithm = sha384.into()
    });
    assert_eq!(
        parse_receipt(&tampered).map(|_| ()),
        Err(ReceiptError::UnsupportedAlgorithm)
    );
    let result = ReceiptVerifier::apple().verify(&tampered, at).map(|_| ());
    assert_eq!(result, Err(ReceiptError::UnsupportedAlgorithm));
}

#[test]
fn rejects_receipt_with_wrong_signature_algorithm() {
    let (bytes, _) = vector(MODERN);
    let ecdsa_sha384 = Oid::const_new(&[1, 2, 840, 10045, 4, 3, 3]);
    let tampered = edit_signer(&bytes, |signer| {
        signer.signature_algorithm.algorithm = ecdsa_sha384.into()
    });
    assert_eq!(
        parse_receipt(&tampered).map(|_| ()),
        Err(ReceiptError::UnsupportedAlgorithm)
    );
}

#[test]
fn rejects_receipt_with_two_signers() {
    let (bytes, at) = vector(MODERN);
    let tampered = reencode(&bytes, |signed| {
        let mut infos = std::mem::replace(&mut signed.signer_infos, SetOf::new()).into_vec();
        let copy = infos.first().unwrap().clone();
        infos.push(copy);
        signed.signer_infos = SetOf::from_vec(infos);
    });
    assert!(matches!(
        parse_receipt(&tampered),
        Err(ReceiptError::Malformed(_))
    ));
    assert!(matches!(
        ReceiptVerifier::apple().verify(&tampered, at),
        Err(ReceiptError::Malformed(_))
    ));
}

#[test]
fn rejects_receipt_with_no_signer() {
    let (bytes, _) = vector(MODERN);
    let tampered = reencode(&bytes, |signed| signed.signer_infos = SetOf::new());
    assert!(matches!(
        parse_receipt(&tampered),
        Err(ReceiptError::Malformed(_))
    ));
}

#[test]
fn rejects_receipt_with_tampered_payload() {
    let (bytes, at) = vector(MODERN);
    // Change one letter of the App ID inside the (chunked) eContent of the original BER bytes.
    let needle = b"6MURL8TA57";
    let at_index = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    let mut tampered = bytes.clone();
    tampered[at_index] = b'7';
    assert_eq!(
        parse_receipt(&tampered).unwrap().receipt().app_id.get(..1),
        Some("7")
    );
    let result = ReceiptVerifier::apple().verify(&tampered, at).map(|_| ());
    assert_eq!(result, Err(ReceiptError::SignatureInvalid));
}

#[test]
fn rejects_quirk_receipt_with_tampered_payload_by_its_digest() {
    let (bytes, at) = vector(QUIRK);
    let needle = b"6MURL8TA57";
    let at_index = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    let mut tampered = bytes.clone();
    tampered[at_index] = b'7';
    let result = ReceiptVerifier::apple().verify(&tampered, at).map(|_| ());
    assert_eq!(result, Err(ReceiptError::DigestMismatch));
}

#[test]
fn rejects_receipt_with_tampered_message_digest() {
    let (bytes, at) = vector(QUIRK);
    let tampered = edit_signer(&bytes, |signer| {
        let attrs = signer.signed_attrs.take().unwrap().into_vec();
        let attrs = attrs
            .into_iter()
            .map(|mut attr| {
                if *attr.r#type == *MESSAGE_DIGEST {
                    let digest = OctetString::from(vec![0u8; 32]);
                    attr.values =
                        SetOf::from_vec(vec![Any::new(rasn::der::encode(&digest).unwrap())]);
                }
                attr
            })
            .collect();
        signer.signed_attrs = Some(SetOf::from_vec(attrs));
    });
    let result = ReceiptVerifier::apple().verify(&tampered, at).map(|_| ());
    assert_eq!(result, Err(ReceiptError::DigestMismatch));
    assert_eq!(
        ReceiptError::DigestMismatch.reason(),
        "receipt_digest_mismatch"
    );
}

#[test]
fn rejects_receipt_with_tampered_signature() {
    let (bytes, at) = vector(MODERN);
    let tampered = edit_signer(&bytes, |signer| {
        let mut signature = signer.signature.to_vec();
        let last = signature.last_mut().unwrap();
        *last ^= 1;
        signer.signature = signature.into();
    });
    let result = ReceiptVerifier::apple().verify(&tampered, at).map(|_| ());
    assert_eq!(result, Err(ReceiptError::SignatureInvalid));
}

#[test]
fn rejects_receipt_without_its_intermediate() {
    let (bytes, at) = vector(MODERN);
    let tampered = reencode(&bytes, |signed| {
        let certs = signed.certificates.take().unwrap().into_vec();
        let kept: Vec<Any> = certs
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, c)| c)
            .collect();
        signed.certificates = Some(SetOf::from_vec(kept));
    });
    let result = ReceiptVerifier::apple().verify(&tampered, at).map(|_| ());
    assert_eq!(
        result,
        Err(ReceiptError::ChainInvalid(ChainFailure::UnknownIssuer))
    );
}

#[test]
fn rejects_receipt_whose_signer_certificate_is_missing() {
    let (bytes, at) = vector(MODERN);
    let tampered = reencode(&bytes, |signed| {
        let certs = signed.certificates.take().unwrap().into_vec();
        signed.certificates = Some(SetOf::from_vec(certs.into_iter().skip(1).collect()));
    });
    let result = ReceiptVerifier::apple().verify(&tampered, at);
    assert!(
        matches!(result, Err(ReceiptError::Malformed(_))),
        "{result:?}"
    );
}

#[test]
fn rejects_receipt_before_its_signer_is_valid_and_after_it_expired() {
    let (bytes, _) = vector(MODERN);
    let verifier = ReceiptVerifier::apple();
    // Signer valid 2020-05-19 -> 2021-06-18. Check twice: uncached, then cached chain.
    for _ in 0..2 {
        let early = verifier
            .verify(&bytes, unix(datetime!(2020-05-01 0:00 UTC)))
            .map(|_| ());
        assert_eq!(
            early,
            Err(ReceiptError::CertificateExpired(
                ValidityFailure::NotYetValid
            ))
        );
        let late = verifier
            .verify(&bytes, unix(datetime!(2021-07-01 0:00 UTC)))
            .map(|_| ());
        assert_eq!(
            late,
            Err(ReceiptError::CertificateExpired(ValidityFailure::Expired))
        );
        assert!(
            verifier
                .verify(&bytes, unix(datetime!(2021-02-01 0:00 UTC)))
                .is_ok()
        );
    }
}

#[test]
fn rejects_apple_receipt_when_only_a_test_root_is_trusted() {
    let ca = TestCa::new();
    let (bytes, at) = vector(MODERN);
    let verifier = ReceiptVerifier::with_roots(vec![ca.root.clone()]).unwrap();
    let result = verifier.verify(&bytes, at).map(|_| ());
    assert_eq!(
        result,
        Err(ReceiptError::ChainInvalid(ChainFailure::UnknownIssuer))
    );
}

#[test]
fn pinned_root_loads() {
    assert!(ReceiptVerifier::apple().chain.is_some());
}

#[test]
fn every_reason_is_listed_once() {
    let errors = [
        ReceiptError::Malformed("x"),
        ReceiptError::TooLarge,
        ReceiptError::UnsupportedAlgorithm,
        ReceiptError::ChainInvalid(ChainFailure::Other),
        ReceiptError::CertificateExpired(ValidityFailure::Expired),
        ReceiptError::NotReceiptSigner,
        ReceiptError::DigestMismatch,
        ReceiptError::SignatureInvalid,
        ReceiptError::CreatedInFuture,
        ReceiptError::CreatedOutsideCertificateValidity,
        ReceiptError::WrongType,
        ReceiptError::AppIdMismatch,
        ReceiptError::PublicKeyMismatch,
    ];
    let reasons: Vec<&str> = errors.iter().map(ReceiptError::reason).collect();
    assert_eq!(reasons, ReceiptError::ALL_REASONS);
}

/// Applies `edit` to the only SignerInfo.
fn edit_signer(bytes: &[u8], edit: impl FnOnce(&mut SignerInfo)) -> Vec<u8> {
    reencode(bytes, |signed| {
        let mut infos = std::mem::replace(&mut signed.signer_infos, SetOf::new()).into_vec();
        edit(infos.first_mut().unwrap());
        signed.signer_infos = SetOf::from_vec(infos);
    })
}

// ---------------------------------------------------------------------------------------------
// Payload

fn attribute(field: u32, value: &[u8]) -> ReceiptAttribute {
    ReceiptAttribute {
        field: field.into(),
        version: 1.into(),
        value: value.to_vec().into(),
    }
}

fn payload(attributes: Vec<ReceiptAttribute>) -> Vec<u8> {
    rasn::der::encode(&SetOf::from_vec(attributes)).unwrap()
}

fn standard_attributes(creation: &str) -> Vec<ReceiptAttribute> {
    let (bytes, _) = vector(MODERN);
    let real = parse_receipt(&bytes).unwrap().into_receipt();
    vec![
        attribute(2, b"TEAMID1234.com.example.app"),
        attribute(3, &real.attested_certificate),
        attribute(4, &[7; 32]),
        attribute(5, b"token"),
        attribute(6, b"RECEIPT"),
        attribute(7, b"sandbox"),
        attribute(12, creation.as_bytes()),
        attribute(17, b"4"),
        attribute(19, b"2025-06-02T10:00:00.5Z"),
        attribute(21, b"2025-08-30T10:00:00.5Z"),
    ]
}

#[test]
fn decodes_every_known_payload_field() {
    let receipt =
        Receipt::from_payload(&payload(standard_attributes("2025-06-01T10:00:00.5Z"))).unwrap();
    assert_eq!(receipt.app_id, "TEAMID1234.com.example.app");
    assert_eq!(receipt.client_hash, vec![7; 32]);
    assert_eq!(receipt.token, "token");
    assert_eq!(receipt.receipt_type, ReceiptType::Receipt);
    assert_eq!(receipt.environment.as_deref(), Some("sandbox"));
    assert_eq!(receipt.creation_time, datetime!(2025-06-01 10:00:00.5 UTC));
    assert_eq!(receipt.risk_metric, Some(4));
    assert_eq!(
        receipt.not_before,
        Some(datetime!(2025-06-02 10:00:00.5 UTC))
    );
    assert_eq!(
        receipt.expiration_time,
        Some(datetime!(2025-08-30 10:00:00.5 UTC))
    );
    assert!(receipt.attested_public_key().is_some());
}

#[test]
fn skips_unknown_payload_fields() {
    let mut attributes = standard_attributes("2025-06-01T10:00:00Z");
    attributes.push(attribute(99, b"something new"));
    attributes.push(ReceiptAttribute {
        field: Integer::from(1_i128 << 70),
        version: 1.into(),
        value: OctetString::from(vec![1]),
    });
    let receipt = Receipt::from_payload(&payload(attributes)).unwrap();
    assert_eq!(receipt.app_id, "TEAMID1234.com.example.app");
}

#[test]
fn rejects_payload_missing_a_mandatory_field() {
    for missing in [2, 3, 6, 12] {
        let attributes: Vec<_> = standard_attributes("2025-06-01T10:00:00Z")
            .into_iter()
            .filter(|a| a.field != Integer::from(missing))
            .collect();
        let result = Receipt::from_payload(&payload(attributes));
        assert!(
            matches!(result, Err(ReceiptError::Malformed(_))),
            "field {missing}: {result:?}"
        );
    }
}

#[test]
fn treats_missing_optional_fields_as_absent() {
    let attributes: Vec<_> = standard_attributes("2025-06-01T10:00:00Z")
        .into_iter()
        .filter(|a| [2, 3, 6, 12].iter().any(|f| a.field == Integer::from(*f)))
        .collect();
    let receipt = Receipt::from_payload(&payload(attributes)).unwrap();
    assert!(receipt.client_hash.is_empty() && receipt.token.is_empty());
    assert_eq!((receipt.environment, receipt.risk_metric), (None, None));
    assert_eq!((receipt.not_before, receipt.expiration_time), (None, None));
}

#[test]
fn rejects_payload_with_a_duplicate_field() {
    for duplicate in [2, 4, 99] {
        let mut attributes = standard_attributes("2025-06-01T10:00:00Z");
        attributes.push(attribute(duplicate, b"again"));
        attributes.push(attribute(duplicate, b"and again"));
        let result = Receipt::from_payload(&payload(attributes));
        assert!(
            matches!(result, Err(ReceiptError::Malformed(_))),
            "field {duplicate}"
        );
    }
}

#[test]
fn rejects_payload_with_bad_values() {
    for (field, value) in [
        (12, &b"yesterday"[..]),
        (12, b"2025-06-01 10:00:00"),
        (19, b"2025-13-01T10:00:00Z"),
        (17, b"-1"),
        (17, b"+3"),
        (17, b"3.5"),
        (17, b"99999999999"),
        (2, b"\xff\xfe"),
    ] {
        let mut attributes: Vec<_> = standard_attributes("2025-06-01T10:00:00Z")
            .into_iter()
            .filter(|a| a.field != Integer::from(field))
            .collect();
        attributes.push(attribute(field, value));
        let result = Receipt::from_payload(&payload(attributes));
        assert!(
            matches!(result, Err(ReceiptError::Malformed(_))),
            "field {field} = {value:?}"
        );
    }
}

#[test]
fn rejects_payload_that_is_not_a_der_set() {
    let good = payload(standard_attributes("2025-06-01T10:00:00Z"));
    let mut trailing = good.clone();
    trailing.push(0);
    let mut indefinite = vec![0x31, 0x80];
    indefinite.extend_from_slice(good.get(4..).unwrap());
    indefinite.extend_from_slice(&[0, 0]);
    for bad in [
        vec![],
        vec![0x30, 0x00],
        trailing,
        indefinite,
        b"garbage".to_vec(),
    ] {
        assert!(matches!(
            Receipt::from_payload(&bad),
            Err(ReceiptError::Malformed(_))
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Test CA

struct TestCa {
    root: Vec<u8>,
    intermediate: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

impl TestCa {
    fn new() -> Self {
        let root_key = KeyPair::generate().unwrap();
        let mut root = CertificateParams::new(Vec::<String>::new()).unwrap();
        root.distinguished_name = name("Test Root CA");
        root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        root.not_before = datetime!(2019-01-01 0:00 UTC);
        root.not_after = datetime!(2040-01-01 0:00 UTC);
        let root_der = root.self_signed(&root_key).unwrap().der().to_vec();
        let root_issuer = Issuer::new(root, root_key);

        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = name("Test Integration CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        params.not_before = datetime!(2019-01-01 0:00 UTC);
        params.not_after = datetime!(2035-01-01 0:00 UTC);
        let intermediate = params.signed_by(&key, &root_issuer).unwrap().der().to_vec();
        Self {
            root: root_der,
            intermediate,
            issuer: Issuer::new(params, key),
        }
    }

    /// A receipt-signing certificate (with the marker unless `marker` is false).
    fn signer(&self, not_before: OffsetDateTime, marker: bool) -> TestSigner {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = name("Test Fraud Receipt Signing");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = not_before;
        params.not_after = not_before + time::Duration::days(400);
        if marker {
            params.custom_extensions = vec![CustomExtension::from_oid_content(
                &[1, 2, 840, 113_635, 100, 12, 15],
                vec![0x05, 0x00],
            )];
        }
        let ski = params.key_identifier(&key);
        let der = params.signed_by(&key, &self.issuer).unwrap().der().to_vec();
        let signing =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &key.serialize_der())
                .unwrap();
        TestSigner {
            der,
            ski,
            key: signing,
        }
    }

    fn verifier(&self) -> ReceiptVerifier {
        ReceiptVerifier::with_extra_roots(vec![self.root.clone()]).unwrap()
    }
}

struct TestSigner {
    der: Vec<u8>,
    ski: Vec<u8>,
    key: EcdsaKeyPair,
}

#[derive(Clone, Copy, PartialEq)]
enum Form {
    /// No signed attributes, signature over eContent.
    Content,
    /// Standard signed attributes.
    SignedAttributes,
    /// Signed attributes present, signature over eContent (the 2020 quirk).
    Legacy,
}

#[derive(Clone, Copy, PartialEq)]
enum Sid {
    IssuerAndSerial,
    SubjectKeyId,
}

fn sign_receipt(ca: &TestCa, signer: &TestSigner, payload: &[u8], form: Form, sid: Sid) -> Vec<u8> {
    let sid = match sid {
        Sid::IssuerAndSerial => {
            let cert: rasn_cms::Certificate = rasn::der::decode(&signer.der).unwrap();
            SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: cert.tbs_certificate.issuer,
                serial_number: cert.tbs_certificate.serial_number,
            })
        }
        Sid::SubjectKeyId => SignerIdentifier::SubjectKeyIdentifier(signer.ski.clone().into()),
    };
    let value = |bytes: Vec<u8>| SetOf::from_vec(vec![Any::new(bytes)]);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, payload);
    let signed_attrs = (form != Form::Content).then(|| {
        let content_type = rasn::der::encode(&ObjectIdentifier::from(CONTENT_DATA)).unwrap();
        let message_digest =
            rasn::der::encode(&OctetString::from(digest.as_ref().to_vec())).unwrap();
        SetOf::from_vec(vec![
            Attribute {
                r#type: CONTENT_TYPE.into(),
                values: value(content_type),
            },
            Attribute {
                r#type: MESSAGE_DIGEST.into(),
                values: value(message_digest),
            },
        ])
    });
    let signed_bytes = match (&signed_attrs, form) {
        (Some(attrs), Form::SignedAttributes) => rasn::der::encode(attrs).unwrap(),
        _ => payload.to_vec(),
    };
    let signature = signer
        .key
        .sign(&SystemRandom::new(), &signed_bytes)
        .unwrap();
    let sha256 = Oid::JOINT_ISO_ITU_T_COUNTRY_US_ORGANIZATION_GOV_CSOR_NIST_ALGORITHMS_HASH_SHA256;
    let info = SignerInfo {
        version: 1.into(),
        sid,
        digest_algorithm: AlgorithmIdentifier {
            algorithm: sha256.into(),
            parameters: Some(Any::new(vec![0x05, 0x00])),
        },
        signed_attrs,
        signature_algorithm: AlgorithmIdentifier {
            algorithm: Oid::const_new(&[1, 2, 840, 10045, 4, 3, 2]).into(),
            parameters: None,
        },
        signature: signature.as_ref().to_vec().into(),
        unsigned_attrs: None,
    };
    let signed = RawSignedData {
        version: 1.into(),
        digest_algorithms: SetOf::from_vec(vec![info.digest_algorithm.clone()]),
        encap_content_info: EncapsulatedContentInfo {
            content_type: CONTENT_DATA.into(),
            content: Some(payload.to_vec().into()),
        },
        certificates: Some(SetOf::from_vec(vec![
            Any::new(signer.der.clone()),
            Any::new(ca.intermediate.clone()),
            Any::new(ca.root.clone()),
        ])),
        crls: None,
        signer_infos: SetOf::from_vec(vec![info]),
    };
    wrap(&signed)
}

const CREATED: &str = "2025-06-01T10:00:00.250Z";

fn test_payload() -> Vec<u8> {
    payload(standard_attributes(CREATED))
}

fn june_2025() -> UnixTime {
    unix(datetime!(2025-06-01 10:00:00 UTC))
}

#[test]
fn accepts_standard_signed_attributes_from_a_test_ca() {
    let ca = TestCa::new();
    let signer = ca.signer(datetime!(2025-01-01 0:00 UTC), true);
    let receipt = sign_receipt(
        &ca,
        &signer,
        &test_payload(),
        Form::SignedAttributes,
        Sid::IssuerAndSerial,
    );
    let verifier = ca.verifier();
    for _ in 0..2 {
        let verified = verifier.verify(&receipt, june_2025()).unwrap();
        assert_eq!(verified.signature_form, SignatureForm::SignedAttributes);
        assert_eq!(verified.receipt.app_id, "TEAMID1234.com.example.app");
    }
    // The Apple-only verifier does not trust the test CA.
    let result = ReceiptVerifier::apple()
        .verify(&receipt, june_2025())
        .map(|_| ());
    assert_eq!(
        result,
        Err(ReceiptError::ChainInvalid(ChainFailure::UnknownIssuer))
    );
}

#[test]
fn accepts_content_signature_from_a_test_ca() {
    let ca = TestCa::new();
    let signer = ca.signer(datetime!(2025-01-01 0:00 UTC), true);
    let receipt = sign_receipt(
        &ca,
        &signer,
        &test_payload(),
        Form::Content,
        Sid::IssuerAndSerial,
    );
    let verified = ca.verifier().verify(&receipt, june_2025()).unwrap();
    assert_eq!(verified.signature_form, SignatureForm::Content);
}

#[test]
fn finds_the_signer_by_subject_key_identifier() {
    let ca = TestCa::new();
    let signer = ca.signer(datetime!(2025-01-01 0:00 UTC), true);
    let receipt = sign_receipt(
        &ca,
        &signer,
        &test_payload(),
        Form::SignedAttributes,
        Sid::SubjectKeyId,
    );
    let verified = ca.verifier().verify(&receipt, june_2025()).unwrap();
    assert_eq!(verified.signature_form, SignatureForm::SignedAttributes);
}

#[test]
fn rejects_a_chained_signer_without_the_receipt_marker() {
    let ca = TestCa::new();
    let signer = ca.signer(datetime!(2025-01-01 0:00 UTC), false);
    let receipt = sign_receipt(
        &ca,
        &signer,
        &test_payload(),
        Form::SignedAttributes,
        Sid::IssuerAndSerial,
    );
    let result = ca.verifier().verify(&receipt, june_2025()).map(|_| ());
    assert_eq!(result, Err(ReceiptError::NotReceiptSigner));
    assert_eq!(
        ReceiptError::NotReceiptSigner.reason(),
        "receipt_not_receipt_signer"
    );
}

#[test]
fn accepts_the_legacy_form_only_from_a_signer_issued_before_2021() {
    let ca = TestCa::new();
    let old = ca.signer(datetime!(2020-05-19 0:00 UTC), true);
    let legacy_payload = payload(standard_attributes("2020-09-16T05:58:31.094Z"));
    let receipt = sign_receipt(
        &ca,
        &old,
        &legacy_payload,
        Form::Legacy,
        Sid::IssuerAndSerial,
    );
    let verified = ca
        .verifier()
        .verify(&receipt, unix(datetime!(2020-09-16 6:00 UTC)))
        .unwrap();
    assert_eq!(
        verified.signature_form,
        SignatureForm::LegacyContentWithSignedAttributes
    );

    let new = ca.signer(datetime!(2025-01-01 0:00 UTC), true);
    let receipt = sign_receipt(
        &ca,
        &new,
        &test_payload(),
        Form::Legacy,
        Sid::IssuerAndSerial,
    );
    let result = ca.verifier().verify(&receipt, june_2025()).map(|_| ());
    assert_eq!(result, Err(ReceiptError::SignatureInvalid));
}

#[test]
fn rejects_a_receipt_signed_by_another_key() {
    let ca = TestCa::new();
    let signer = ca.signer(datetime!(2025-01-01 0:00 UTC), true);
    let other = ca.signer(datetime!(2025-01-01 0:00 UTC), true);
    let mut forged = sign_receipt(
        &ca,
        &other,
        &test_payload(),
        Form::SignedAttributes,
        Sid::IssuerAndSerial,
    );
    // Present the genuine signer's certificate (and name it) with the other key's signature.
    let genuine = sign_receipt(
        &ca,
        &signer,
        &test_payload(),
        Form::SignedAttributes,
        Sid::IssuerAndSerial,
    );
    let forged_signature = parse_receipt(&forged).unwrap().signature().to_vec();
    forged = edit_signer(&genuine, |info| info.signature = forged_signature.into());
    let result = ca.verifier().verify(&forged, june_2025()).map(|_| ());
    assert_eq!(result, Err(ReceiptError::SignatureInvalid));
}

#[test]
fn verifies_at_creation_time_and_rejects_future_receipts() {
    let ca = TestCa::new();
    let signer = ca.signer(datetime!(2025-01-01 0:00 UTC), true);
    let receipt = sign_receipt(
        &ca,
        &signer,
        &test_payload(),
        Form::Content,
        Sid::IssuerAndSerial,
    );
    let verifier = ca.verifier();
    // Long after the signer expired, the receipt still verifies at its creation time.
    let years_later = unix(datetime!(2030-01-01 0:00 UTC));
    assert!(verifier.verify(&receipt, years_later).is_err());
    assert!(
        verifier
            .verify_at_creation(&receipt, years_later, 0)
            .is_ok()
    );
    // Created 10:00:00.25; "latest" 09:59:00 with 60 s skew is to the second.
    let early = unix(datetime!(2025-06-01 9:59:00 UTC));
    assert!(verifier.verify_at_creation(&receipt, early, 60).is_ok());
    assert_eq!(
        verifier.verify_at_creation(&receipt, early, 59).map(|_| ()),
        Err(ReceiptError::CreatedInFuture)
    );
}
