//! Receipts checked with openssl and rasn-cms, and compared with real Apple receipts.

mod common;

use attest_sim::{CmsEncoding, Environment, ReceiptCa, ReceiptType, SignedAttributes, field};
use common::*;
use time::Duration;

fn sample_leaf() -> Vec<u8> {
    cbor_x5c(&sample_bytes(
        "attestations",
        "uebelack-prod-2024",
        "attestation",
    ))[0]
        .clone()
}

#[test]
fn der_receipt_verifies_with_openssl_and_rasn() {
    let ca = ReceiptCa::generate();
    let builder = ca
        .receipt()
        .app_id(APP_ID)
        .attested_certificate(sample_leaf())
        .client_hash(CLIENT_DATA_HASH.to_vec())
        .token("dG9rZW4=")
        .environment(Environment::Production)
        .created_at(NOW);
    let receipt = builder.build();
    assert_eq!(receipt[..2], [0x30, 0x82], "definite length");
    let payload = openssl_verify_receipt(&receipt, &ca.root_pem(), NOW).unwrap();
    assert_eq!(payload, builder.build_payload());
    let parsed = rasn_parse_receipt(&receipt);
    assert_eq!(parsed.econtent, payload);
    assert_eq!(parsed.certificates.len(), 3);
    // rasn-cms parses it as a strict DER decoder too.
    let _: rasn_cms::ContentInfo = rasn::der::decode(&receipt).expect("valid DER");

    let fields = payload_fields(&payload);
    assert_eq!(
        fields,
        vec![
            (2, 1, APP_ID.as_bytes().to_vec()),
            (3, 1, sample_leaf()),
            (4, 1, CLIENT_DATA_HASH.to_vec()),
            (5, 1, b"dG9rZW4=".to_vec()),
            (6, 1, b"ATTEST".to_vec()),
            (7, 1, b"production".to_vec()),
            (12, 1, b"2026-05-01T12:00:00.25Z".to_vec()),
            (21, 1, b"2026-07-30T12:00:00.25Z".to_vec()),
        ]
    );
    // Valid only while the signer certificate is (openssl checks the chain at -attime).
    assert!(
        openssl_verify_receipt(&receipt, &ca.root_pem(), NOW + Duration::days(365 * 30)).is_err()
    );
}

#[test]
fn ber_receipt_has_apples_envelope() {
    let ca = ReceiptCa::generate();
    let builder = ca
        .receipt()
        .app_id(APP_ID)
        .attested_certificate(sample_leaf())
        .client_hash(CLIENT_DATA_HASH.to_vec())
        .created_at(NOW)
        .encoding(CmsEncoding::Ber);
    let receipt = builder.build();
    let payload = builder.build_payload();
    assert!(payload.len() > 1000, "chunked like Apple's");

    // Apple's embedded receipt, byte for byte up to the first chunk's length.
    let object = sample_bytes("attestations", "uebelack-prod-2024", "attestation");
    let apple = cbor_map_bytes(&object, &["attStmt", "receipt"]).unwrap();
    let prefix = 58; // ... a0 80 24 80 04 82 03 e8
    assert_eq!(receipt[..prefix], apple[..prefix]);
    assert_eq!(
        receipt[50..prefix],
        [0xa0, 0x80, 0x24, 0x80, 0x04, 0x82, 0x03, 0xe8],
        "constructed eContent, first chunk 1000 bytes"
    );
    // The remainder chunk follows the first; the envelope ends with end-of-contents octets.
    assert_eq!(receipt[prefix + 1000], 0x04);
    assert_eq!(receipt[receipt.len() - 6..], [0, 0, 0, 0, 0, 0]);

    assert_eq!(
        openssl_verify_receipt(&receipt, &ca.root_pem(), NOW).unwrap(),
        payload
    );
    let parsed = rasn_parse_receipt(&receipt);
    assert_eq!(parsed.econtent, payload);
    assert!(
        rasn::der::decode::<rasn_cms::ContentInfo>(&receipt).is_err(),
        "not DER"
    );
}

#[test]
fn receipt_type_receipt_mirrors_apples_field_order() {
    let ca = ReceiptCa::generate();
    let receipt = ca
        .receipt()
        .receipt_type(ReceiptType::Receipt)
        .app_id(APP_ID)
        .attested_certificate(sample_leaf())
        .client_hash("\u{fffd}\u{fffd}")
        .created_at(NOW)
        .risk_metric(12)
        .build();
    let payload = openssl_verify_receipt(&receipt, &ca.root_pem(), NOW).unwrap();
    let fields = payload_fields(&payload);
    let kinds: Vec<u64> = fields.iter().map(|f| f.0).collect();

    let apple = sample_bytes(
        "receipts",
        "veehaitch-ios14-4-dev-2021-receipt-r1",
        "receipt",
    );
    let apple_fields = payload_fields(&rasn_parse_receipt(&apple).econtent);
    let apple_kinds: Vec<u64> = apple_fields.iter().map(|f| f.0).collect();
    assert_eq!(kinds, apple_kinds);
    assert_eq!(kinds, [17, 6, 2, 3, 4, 5, 7, 12, 19, 21]);

    let value = |kind| fields.iter().find(|f| f.0 == kind).unwrap().2.clone();
    assert_eq!(value(field::RISK_METRIC), b"12");
    assert_eq!(value(field::RECEIPT_TYPE), b"RECEIPT");
    assert_eq!(value(field::ENVIRONMENT), b"sandbox");
    assert_eq!(value(field::NOT_BEFORE), b"2026-05-02T12:00:00.25Z");
    assert_eq!(value(field::EXPIRATION_TIME), b"2026-07-30T12:00:00.25Z");
    assert_eq!(value(field::CLIENT_HASH), "\u{fffd}\u{fffd}".as_bytes());
}

#[test]
fn quirk_2020_fails_standard_cms_but_verifies_over_econtent() {
    let ca = ReceiptCa::generate();
    let builder = ca
        .receipt()
        .app_id(APP_ID)
        .created_at(NOW)
        .encoding(CmsEncoding::Ber)
        .signed_attributes(SignedAttributes::Quirk2020);
    let receipt = builder.build();
    assert!(openssl_verify_receipt(&receipt, &ca.root_pem(), NOW).is_err());
    let parsed = rasn_parse_receipt(&receipt);
    assert!(parsed.has_signed_attrs);
    let signer_point = leaf_point(ca.signer_der());
    assert!(p256_verifies(
        &signer_point,
        &parsed.econtent,
        &parsed.signature
    ));

    // The checker behaves the same on Apple's 2020 receipt (kayak-prod-2020).
    let object = sample_bytes("attestations", "kayak-prod-2020", "attestation");
    let apple = cbor_map_bytes(&object, &["attStmt", "receipt"]).unwrap();
    let apple_parsed = rasn_parse_receipt(&apple);
    assert!(apple_parsed.has_signed_attrs);
    let apple_signer = leaf_point(&apple_parsed.certificates[0]);
    assert!(p256_verifies(
        &apple_signer,
        &apple_parsed.econtent,
        &apple_parsed.signature
    ));

    // Standard signed attributes verify normally.
    let standard = ca
        .receipt()
        .app_id(APP_ID)
        .created_at(NOW)
        .signed_attributes(SignedAttributes::Standard)
        .build();
    openssl_verify_receipt(&standard, &ca.root_pem(), NOW).unwrap();
    let wrong_digest = ca
        .receipt()
        .created_at(NOW)
        .signed_attributes(SignedAttributes::Standard)
        .message_digest(vec![0u8; 32])
        .build();
    assert!(openssl_verify_receipt(&wrong_digest, &ca.root_pem(), NOW).is_err());
}

#[test]
fn tamper_knobs() {
    let ca = ReceiptCa::generate();
    let base = || ca.receipt().app_id(APP_ID).created_at(NOW);

    assert!(
        openssl_verify_receipt(&base().corrupt_signature().build(), &ca.root_pem(), NOW).is_err()
    );
    assert!(
        openssl_verify_receipt(
            &base().tamper_payload_after_signing().build(),
            &ca.root_pem(),
            NOW
        )
        .is_err()
    );
    assert!(
        openssl_verify_receipt(&base().certificates(vec![]).build(), &ca.root_pem(), NOW).is_err()
    );

    let other = ReceiptCa::generate();
    assert!(openssl_verify_receipt(&base().build(), &other.root_pem(), NOW).is_err());

    let no_env = base().remove_field(field::ENVIRONMENT).build();
    let fields = payload_fields(&openssl_verify_receipt(&no_env, &ca.root_pem(), NOW).unwrap());
    assert!(fields.iter().all(|f| f.0 != 7));

    let edited = base()
        .set_field(field::ENVIRONMENT, "staging")
        .field_version(field::APP_ID, 2)
        .append_field(field::APP_ID, 1, "second")
        .set_field(99, "new")
        .build();
    let fields = payload_fields(&openssl_verify_receipt(&edited, &ca.root_pem(), NOW).unwrap());
    assert!(fields.contains(&(7, 1, b"staging".to_vec())));
    assert_eq!(fields[0], (2, 2, APP_ID.as_bytes().to_vec()));
    assert_eq!(fields[fields.len() - 2], (2, 1, b"second".to_vec()));
    assert_eq!(fields[fields.len() - 1], (99, 1, b"new".to_vec()));

    let raw = base().payload(vec![0x31, 0x00]).build();
    assert_eq!(
        openssl_verify_receipt(&raw, &ca.root_pem(), NOW).unwrap(),
        [0x31, 0x00]
    );

    let expired = ReceiptCa::builder()
        .signer_validity(NOW - Duration::days(400), NOW - Duration::days(1))
        .build();
    let receipt = expired.receipt().created_at(NOW).build();
    assert!(openssl_verify_receipt(&receipt, &expired.root_pem(), NOW).is_err());
    openssl_verify_receipt(&receipt, &expired.root_pem(), NOW - Duration::days(2)).unwrap();
}

#[test]
fn receipt_ca_mirrors_apples_certificates() {
    let ca = ReceiptCa::generate();
    let object = sample_bytes("attestations", "uebelack-prod-2024", "attestation");
    let apple = rasn_parse_receipt(&cbor_map_bytes(&object, &["attStmt", "receipt"]).unwrap());
    let ours = ca.certificates();
    assert_eq!(apple.certificates.len(), ours.len());
    for (mine, theirs) in ours.iter().zip(&apple.certificates) {
        let mine = parse_cert(mine);
        let theirs = parse_cert(theirs);
        assert_eq!(
            extension_list(&mine),
            extension_list(&theirs),
            "{}",
            theirs.subject()
        );
        assert_eq!(name_layout(mine.subject()), name_layout(theirs.subject()));
        assert_eq!(
            mine.signature_algorithm.algorithm,
            theirs.signature_algorithm.algorithm
        );
        assert_eq!(
            mine.public_key().algorithm.parameters,
            theirs.public_key().algorithm.parameters
        );
        for oid in [
            "2.5.29.19",
            "2.5.29.15",
            "1.2.840.113635.100.6.2.3",
            "1.2.840.113635.100.12.15",
        ] {
            assert_eq!(
                extension_value(&mine, oid),
                extension_value(&theirs, oid),
                "{oid}"
            );
        }
    }
    let signer = parse_cert(ca.signer_der());
    assert_eq!(
        signer.subject().to_string(),
        "CN=Application Attestation Fraud Receipt Signing, O=Apple Inc., C=US"
    );

    let unmarked = ReceiptCa::builder()
        .without_signer_marker()
        .without_intermediate_marker()
        .build();
    assert!(
        extension_value(
            &parse_cert(unmarked.signer_der()),
            "1.2.840.113635.100.12.15"
        )
        .is_none()
    );
    assert!(
        extension_value(
            &parse_cert(unmarked.intermediate_der()),
            "1.2.840.113635.100.6.2.3"
        )
        .is_none()
    );
}
