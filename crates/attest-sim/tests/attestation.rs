//! Attestation objects checked with independent tools and against real Apple samples.

mod common;

use attest_sim::{
    Cbor, Device, Environment, Extension, NonceExtension, ReceiptCa, TestCa, apple_timestamp, field,
};
use common::*;
use time::Duration;

struct Fixture {
    ca: TestCa,
    receipts: ReceiptCa,
    device: Device,
}

fn fixture(environment: Environment) -> Fixture {
    Fixture {
        ca: TestCa::generate(),
        receipts: ReceiptCa::generate(),
        device: Device::new(environment),
    }
}

fn expected_nonce(auth_data: &[u8]) -> Vec<u8> {
    sha256(&[auth_data, &CLIENT_DATA_HASH])
}

#[test]
fn valid_attestation_passes_every_independent_check() {
    let f = fixture(Environment::Development);
    let object = f
        .device
        .attest(&f.ca, &f.receipts, APP_ID, &CLIENT_DATA_HASH, NOW);

    // Same CBOR layout as a real development attestation (key order, types, fmt value).
    let apple = sample_bytes("attestations", "uebelack-dev-2024", "attestation");
    assert_eq!(cbor_shape(&object), cbor_shape(&apple));
    assert_eq!(
        cbor_shape(&object),
        r#"{"fmt":"apple-appattest","attStmt":{"x5c":[bytes,bytes],"receipt":bytes},"authData":bytes}"#
    );

    // Step 1: the chain validates to the test root.
    let x5c = cbor_x5c(&object);
    verify_chain(&x5c, f.ca.root_der(), NOW).expect("chain verifies");

    // Steps 2-4: nonce.
    let auth_data = cbor_map_bytes(&object, &["authData"]).unwrap();
    assert_eq!(leaf_nonce(&x5c[0]).unwrap(), expected_nonce(&auth_data));

    // Step 5: key id = SHA256(leaf point), and the device reports the same.
    let point = leaf_point(&x5c[0]);
    assert_eq!(sha256(&[&point]), f.device.key_id().as_slice());
    assert_eq!(point, f.device.public_key_point());

    // Steps 6-9: authData fields.
    assert_eq!(
        auth_data.len(),
        164,
        "same size as Apple's classic authData"
    );
    assert_eq!(auth_data[..32], sha256(&[APP_ID.as_bytes()])[..]);
    assert_eq!(auth_data[32], 0x40);
    assert_eq!(auth_data[33..37], [0, 0, 0, 0]);
    assert_eq!(&auth_data[37..53], b"appattestdevelop");
    assert_eq!(auth_data[53..55], [0, 32]);
    assert_eq!(auth_data[55..87], f.device.key_id().as_bytes()[..]);
    let cose = &auth_data[87..];
    assert_eq!(cbor_shape(cose), "{1:2,3:-7,-1:1,-2:bytes,-3:bytes}");
    let apple_auth_data = cbor_map_bytes(&apple, &["authData"]).unwrap();
    assert_eq!(cbor_shape(cose), cbor_shape(&apple_auth_data[87..]));
    assert_eq!(
        cose[..10],
        apple_auth_data[87..97],
        "COSE header bytes as Apple's"
    );
    assert_eq!(&cose[10..42], &point[1..33]);
    assert_eq!(&cose[45..77], &point[33..65]);

    // Receipt: verifies with openssl against the receipt root, payload as Apple's.
    let receipt = cbor_map_bytes(&object, &["attStmt", "receipt"]).unwrap();
    assert_eq!(
        receipt[..2],
        [0x30, 0x80],
        "BER like every embedded Apple receipt"
    );
    let payload = openssl_verify_receipt(&receipt, &f.receipts.root_pem(), NOW).unwrap();
    let fields = payload_fields(&payload);
    let kinds: Vec<u64> = fields.iter().map(|f| f.0).collect();
    assert_eq!(kinds, [2, 3, 4, 5, 6, 7, 12, 21]);
    assert!(fields.iter().all(|f| f.1 == 1));
    let value = |kind| fields.iter().find(|f| f.0 == kind).unwrap().2.clone();
    assert_eq!(value(field::APP_ID), APP_ID.as_bytes());
    assert_eq!(value(field::ATTESTED_PUBLIC_KEY), x5c[0]);
    assert_eq!(value(field::CLIENT_HASH), CLIENT_DATA_HASH);
    assert_eq!(value(field::TOKEN).len(), 88);
    assert_eq!(value(field::RECEIPT_TYPE), b"ATTEST");
    assert_eq!(value(field::ENVIRONMENT), b"sandbox");
    assert_eq!(value(field::CREATION_TIME), b"2026-05-01T12:00:00.25Z");
    assert_eq!(
        value(field::EXPIRATION_TIME),
        apple_timestamp(NOW + Duration::days(90)).as_bytes()
    );
    // rasn-cms reads the same payload and carries signer, intermediate and root.
    let parsed = rasn_parse_receipt(&receipt);
    assert_eq!(parsed.econtent, payload);
    assert_eq!(parsed.certificates.len(), 3);
    assert!(!parsed.has_signed_attrs);
}

#[test]
fn production_device_uses_production_aaguid_and_receipt_environment() {
    let f = fixture(Environment::Production);
    let built = f
        .device
        .attestation(&f.ca, &f.receipts, APP_ID, &CLIENT_DATA_HASH, NOW)
        .build();
    assert_eq!(&built.auth_data[37..53], b"appattest\0\0\0\0\0\0\0");
    let apple = sample_bytes("attestations", "uebelack-prod-2024", "attestation");
    let apple_auth_data = cbor_map_bytes(&apple, &["authData"]).unwrap();
    assert_eq!(built.auth_data[37..53], apple_auth_data[37..53]);
    let payload =
        openssl_verify_receipt(built.receipt.as_ref().unwrap(), &f.receipts.root_pem(), NOW)
            .unwrap();
    let fields = payload_fields(&payload);
    assert!(fields.contains(&(7, 1, b"production".to_vec())));
}

#[test]
fn the_checkers_accept_a_real_apple_attestation() {
    // Validates the test helpers themselves on Apple's bytes (at the record's verify_at).
    let record = sample_json("attestations", "uebelack-prod-2024");
    let object = sample_bytes("attestations", "uebelack-prod-2024", "attestation");
    let at = time::OffsetDateTime::parse(
        record["verify_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let root = std::fs::read_to_string(data_dir().join("roots/apple_app_attestation_root_ca.pem"))
        .unwrap();
    let root_der = base64_body(&root);
    let x5c = cbor_x5c(&object);
    verify_chain(&x5c, &root_der, at).expect("real chain verifies");
    let auth_data = cbor_map_bytes(&object, &["authData"]).unwrap();
    let cdh = hex_decode(record["client_data_hash"].as_str().unwrap());
    assert_eq!(
        leaf_nonce(&x5c[0]).unwrap(),
        sha256(&[&auth_data, &cdh]),
        "nonce = SHA256(authData || clientDataHash)"
    );
}

#[test]
fn leaf_mirrors_apples_classic_leaf() {
    let f = fixture(Environment::Production);
    let built = f
        .device
        .attestation(&f.ca, &f.receipts, APP_ID, &CLIENT_DATA_HASH, NOW)
        .build();
    let apple_x5c = cbor_x5c(&sample_bytes(
        "attestations",
        "uebelack-prod-2024",
        "attestation",
    ));
    let ours = parse_cert(&built.leaf);
    let apple = parse_cert(&apple_x5c[0]);

    assert_eq!(extension_list(&ours), extension_list(&apple));
    assert_eq!(
        extension_list(&ours),
        [
            ("2.5.29.19".to_owned(), true),
            ("2.5.29.15".to_owned(), true),
            ("1.2.840.113635.100.8.5".to_owned(), false),
            ("1.2.840.113635.100.8.7".to_owned(), false),
            ("1.2.840.113635.100.8.2".to_owned(), false),
        ]
    );
    for oid in ["2.5.29.19", "2.5.29.15"] {
        assert_eq!(extension_value(&ours, oid), extension_value(&apple, oid));
    }
    assert_eq!(name_layout(ours.subject()), name_layout(apple.subject()));
    assert_eq!(name_layout(ours.issuer()), name_layout(apple.issuer()));
    assert_eq!(
        ours.signature_algorithm.algorithm,
        apple.signature_algorithm.algorithm
    );
    assert_eq!(
        ours.public_key().algorithm.parameters,
        apple.public_key().algorithm.parameters,
        "P-256"
    );
    assert_eq!(ours.version(), apple.version());

    // CN = hex(key id), OU = AAA Certification, as Apple's.
    let cn = ours
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    let key_id_hex: String = f
        .device
        .key_id()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(cn, key_id_hex);
    let ou = ours
        .subject()
        .iter_organizational_unit()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert_eq!(ou, "AAA Certification");

    // Validity: now - 1 day .. now + 2 days; serial = creation time in milliseconds.
    assert_eq!(
        ours.validity().not_before.timestamp(),
        (NOW - Duration::days(1)).unix_timestamp()
    );
    assert_eq!(
        ours.validity().not_after.timestamp(),
        (NOW + Duration::days(2)).unix_timestamp()
    );
    assert_eq!(
        ours.raw_serial(),
        &((NOW.unix_timestamp_nanos() / 1_000_000) as u64).to_be_bytes()[2..]
    );
}

#[test]
fn ca_certificates_mirror_apples() {
    let ca = TestCa::generate();
    let apple_x5c = cbor_x5c(&sample_bytes(
        "attestations",
        "uebelack-prod-2024",
        "attestation",
    ));
    let ours = parse_cert(ca.intermediate_der());
    let apple = parse_cert(&apple_x5c[1]);
    assert_eq!(extension_list(&ours), extension_list(&apple));
    for oid in ["2.5.29.19", "2.5.29.15"] {
        assert_eq!(extension_value(&ours, oid), extension_value(&apple, oid));
    }
    assert_eq!(name_layout(ours.subject()), name_layout(apple.subject()));
    assert_eq!(
        ours.signature_algorithm.algorithm,
        apple.signature_algorithm.algorithm
    );
    assert_eq!(
        ours.public_key().algorithm.parameters,
        apple.public_key().algorithm.parameters,
        "P-384"
    );

    let apple_root_pem =
        std::fs::read_to_string(data_dir().join("roots/apple_app_attestation_root_ca.pem"))
            .unwrap();
    let apple_root_der = base64_body(&apple_root_pem);
    let apple_root = parse_cert(&apple_root_der);
    let our_root = parse_cert(ca.root_der());
    assert_eq!(extension_list(&our_root), extension_list(&apple_root));
    assert_eq!(
        name_layout(our_root.subject()),
        name_layout(apple_root.subject())
    );
    assert_eq!(
        our_root.signature_algorithm.algorithm,
        apple_root.signature_algorithm.algorithm
    );
}

#[test]
fn ios27_attestation_mirrors_apples_2026_sample() {
    let f = fixture(Environment::Production);
    let built = f
        .device
        .attestation(&f.ca, &f.receipts, APP_ID, &CLIENT_DATA_HASH, NOW)
        .ios27()
        .build();
    let apple = sample_bytes("attestations", "apple-doc-prod-2026", "attestation");
    assert_eq!(cbor_shape(&built.object), cbor_shape(&apple));
    let apple_auth_data = cbor_map_bytes(&apple, &["authData"]).unwrap();
    assert_eq!(built.auth_data.len(), 226);
    assert_eq!(built.auth_data.len(), apple_auth_data.len());
    assert_eq!(built.auth_data[32], 0x40, "ED flag clear, as Apple's");
    assert_eq!(
        built.auth_data[164..],
        apple_auth_data[164..],
        "extension map bytes"
    );

    let ours = parse_cert(&built.leaf);
    let apple_leaf = cbor_x5c(&apple)[0].clone();
    let apple_cert = parse_cert(&apple_leaf);
    assert_eq!(extension_list(&ours), extension_list(&apple_cert));
    for oid in [
        "2.5.29.19",
        "2.5.29.15",
        "2.5.29.37",
        "1.2.840.113635.100.8.6",
    ] {
        assert_eq!(
            extension_value(&ours, oid),
            extension_value(&apple_cert, oid),
            "{oid}"
        );
    }
    // webpki with Apple's EKU "required if present" accepts it.
    verify_chain(&built.x5c, f.ca.root_der(), NOW).unwrap();
    assert_eq!(
        leaf_nonce(&built.leaf).unwrap(),
        expected_nonce(&built.auth_data)
    );
}

// ---- negative knobs: each breaks exactly one thing ---------------------------------------------

#[test]
fn omit_nonce_extension_breaks_only_the_nonce() {
    let f = fixture(Environment::Development);
    let built = f
        .device
        .attestation(&f.ca, &f.receipts, APP_ID, &CLIENT_DATA_HASH, NOW)
        .omit_nonce_extension()
        .build();
    verify_chain(&built.x5c, f.ca.root_der(), NOW).unwrap();
    assert!(extension_value(&parse_cert(&built.leaf), "1.2.840.113635.100.8.2").is_none());
}

#[test]
fn nonce_knobs() {
    let f = fixture(Environment::Development);
    let base = || {
        f.device
            .attestation(&f.ca, &f.receipts, APP_ID, &CLIENT_DATA_HASH, NOW)
    };

    let wrong = base().nonce(vec![0u8; 32]).build();
    verify_chain(&wrong.x5c, f.ca.root_der(), NOW).unwrap();
    assert_eq!(leaf_nonce(&wrong.leaf).unwrap(), [0u8; 32]);
    assert_ne!(
        leaf_nonce(&wrong.leaf).unwrap(),
        expected_nonce(&wrong.auth_data)
    );

    let short = base().nonce(vec![1u8; 31]).build();
    assert!(
        leaf_nonce(&short.leaf).is_none(),
        "31-byte nonce is not Apple's form"
    );

    // [2] instead of [1]: a malformed wrapper.
    let mut raw = vec![0x30, 0x24, 0xa2, 0x22, 0x04, 0x20];
    raw.extend_from_slice(&expected_nonce(&short.auth_data));
    let malformed = base().nonce_extension(NonceExtension::Raw(raw)).build();
    verify_chain(&malformed.x5c, f.ca.root_der(), NOW).unwrap();
    assert!(leaf_nonce(&malformed.leaf).is_none());

    let critical = base().nonce_extension(NonceExtension::Critical).build();
    assert_eq!(
        verify_chain(&critical.x5c, f.ca.root_der(), NOW),
        Err(webpki::Error::UnsupportedCriticalExtension)
    );

    let duplicated = base().nonce_extension(NonceExtension::Duplicated).build();
    let oid = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x63, 0x64, 0x08, 0x02,
    ];
    let count = duplicated
        .leaf
        .windows(oid.len())
        .filter(|w| *w == oid)
        .count();
    assert_eq!(count, 2);
}

#[test]
fn issuer_and_x5c_knobs_break_only_the_chain() {
    let f = fixture(Environment::Development);
    let other = TestCa::generate();
    let base = || {
        f.device
            .attestation(&f.ca, &f.receipts, APP_ID, &CLIENT_DATA_HASH, NOW)
    };

    // Both CAs carry the same names, so the path is found and its signature fails.
    let foreign = base().leaf_issuer(&other).build();
    assert_eq!(
        verify_chain(&foreign.x5c, f.ca.root_der(), NOW),
        Err(webpki::Error::InvalidSignatureForPublicKey)
    );
    verify_chain(&foreign.x5c, other.root_der(), NOW).unwrap();
    assert_eq!(
        leaf_nonce(&foreign.leaf).unwrap(),
        expected_nonce(&foreign.auth_data)
    );

    let swapped = base().x5c_intermediate(other.intermediate_der()).build();
    assert!(verify_chain(&swapped.x5c, f.ca.root_der(), NOW).is_err());

    let leaf_only = base().x5c_leaf_only().build();
    assert_eq!(leaf_only.x5c.len(), 1);
    assert_eq!(
        verify_chain(&leaf_only.x5c, f.ca.root_der(), NOW),
        Err(webpki::Error::UnknownIssuer)
    );

    let reversed = base().x5c_reversed().build();
    assert_eq!(cbor_x5c(&reversed.object)[0], f.ca.intermediate_der());

    let with_root = base().x5c_with_root().build();
    assert_eq!(cbor_x5c(&with_root.object).len(), 3);
    verify_chain(&with_root.x5c, f.ca.root_der(), NOW).unwrap();

    let no_x5c = base().omit_x5c().build();
    assert_eq!(
        cbor_shape(&no_x5c.object),
        r#"{"fmt":"apple-appattest","attStmt":{"receipt":bytes},"authData":bytes}"#
    );

    let expired = base()
        .leaf_validity(NOW - Duration::days(4), NOW - Duration::days(1))
        .build();
    assert!(matches!(
        verify_chain(&expired.x5c, f.ca.root_der(), NOW),
        Err(webpki::Error::CertExpired { .. })
    ));

    let server_auth = base()
        .leaf_eku(vec![vec![1, 3, 6, 1, 5, 5, 7, 3, 1]])
        .build();
    assert!(matches!(
        verify_chain(&server_auth.x5c, f.ca.root_der(), NOW),
        Err(webpki::Error::RequiredEkuNotFoundContext(_))
    ));
}

#[test]
fn ca_knobs() {
    let device = Device::new(Environment::Development);
    let receipts = ReceiptCa::generate();

    let expired = TestCa::builder()
        .intermediate_validity(NOW - Duration::days(400), NOW - Duration::days(1))
        .build();
    let built = device
        .attestation(&expired, &receipts, APP_ID, &CLIENT_DATA_HASH, NOW)
        .build();
    assert!(matches!(
        verify_chain(&built.x5c, expired.root_der(), NOW),
        Err(webpki::Error::CertExpired { .. })
    ));

    let not_ca = TestCa::builder().intermediate_not_ca().build();
    let built = device
        .attestation(&not_ca, &receipts, APP_ID, &CLIENT_DATA_HASH, NOW)
        .build();
    assert!(verify_chain(&built.x5c, not_ca.root_der(), NOW).is_err());

    // A look-alike with Apple's exact names is still rejected by the real Apple root.
    let lookalike = TestCa::builder().apple_names().build();
    let built = device
        .attestation(&lookalike, &receipts, APP_ID, &CLIENT_DATA_HASH, NOW)
        .build();
    verify_chain(&built.x5c, lookalike.root_der(), NOW).unwrap();
    let apple_root = base64_body(
        &std::fs::read_to_string(data_dir().join("roots/apple_app_attestation_root_ca.pem"))
            .unwrap(),
    );
    assert!(verify_chain(&built.x5c, &apple_root, NOW).is_err());
    let int = parse_cert(lookalike.intermediate_der());
    assert_eq!(
        int.subject().to_string(),
        "CN=Apple App Attestation CA 1, O=Apple Inc., ST=California"
    );
}

#[test]
fn auth_data_knobs_keep_the_nonce_consistent() {
    let f = fixture(Environment::Development);
    let other = Device::new(Environment::Development);
    let base = || {
        f.device
            .attestation(&f.ca, &f.receipts, APP_ID, &CLIENT_DATA_HASH, NOW)
    };
    let check = |built: &attest_sim::Attestation| {
        verify_chain(&built.x5c, f.ca.root_der(), NOW).unwrap();
        assert_eq!(
            leaf_nonce(&built.leaf).unwrap(),
            expected_nonce(&built.auth_data)
        );
        assert_eq!(
            cbor_map_bytes(&built.object, &["authData"]).unwrap(),
            built.auth_data
        );
    };

    let wrong_app = base().rp_id_for("OTHERTEAM.com.example.other").build();
    check(&wrong_app);
    assert_eq!(
        wrong_app.auth_data[..32],
        sha256(&[b"OTHERTEAM.com.example.other"])[..]
    );

    let counter = base().counter(1).build();
    check(&counter);
    assert_eq!(counter.auth_data[33..37], [0, 0, 0, 1]);

    let aaguid = base()
        .aaguid(attest_sim::aaguid(Environment::Production))
        .build();
    check(&aaguid);
    assert_eq!(&aaguid.auth_data[37..53], b"appattest\0\0\0\0\0\0\0");

    let cred = base().credential_id(vec![9u8; 32]).build();
    check(&cred);
    assert_eq!(cred.auth_data[55..87], [9u8; 32]);

    let cose = base().cose_key_of(&other).build();
    check(&cose);
    assert_eq!(&cose.auth_data[97..129], &other.public_key_point()[1..33]);
    assert_ne!(leaf_point(&cose.leaf), other.public_key_point());

    let leaf_key = base().leaf_key_of(&other).build();
    check(&leaf_key);
    assert_eq!(
        sha256(&[&leaf_point(&leaf_key.leaf)]),
        other.key_id().as_slice()
    );
    assert_ne!(
        sha256(&[&leaf_point(&leaf_key.leaf)]),
        f.device.key_id().as_slice()
    );

    let ed = base().ios27().flags(0xc0).build();
    check(&ed);
    assert_eq!(ed.auth_data[32], 0xc0);

    let trailing = base().ios27().extra_auth_data(&[0xff]).build();
    check(&trailing);
    assert_eq!(trailing.auth_data.len(), 227);

    let no_map = base().ios27().without_auth_data_extensions().build();
    check(&no_map);
    assert_eq!(no_map.auth_data.len(), 164);

    let liar = base().credential_id_length(64).build();
    check(&liar);
    assert_eq!(liar.auth_data[53..55], [0, 64]);

    let verbatim = base().auth_data(vec![1, 2, 3]).build();
    check(&verbatim);
}

#[test]
fn cbor_knobs() {
    let f = fixture(Environment::Development);
    let base = || {
        f.device
            .attestation(&f.ca, &f.receipts, APP_ID, &CLIENT_DATA_HASH, NOW)
    };

    let packed = base().fmt("packed").build();
    assert!(cbor_shape(&packed.object).starts_with(r#"{"fmt":"packed","#));

    let no_fmt = base().remove_key("fmt").build();
    assert!(cbor_shape(&no_fmt.object).starts_with(r#"{"attStmt":"#));

    let bytes_fmt = base()
        .fmt_value(Cbor::bytes(b"apple-appattest".to_vec()))
        .build();
    assert!(cbor_shape(&bytes_fmt.object).starts_with(r#"{"fmt":bytes,"#));

    let duplicate = base().duplicate_key("authData").build();
    assert!(cbor_shape(&duplicate.object).ends_with(r#""authData":bytes,"authData":bytes}"#));
    assert_eq!(duplicate.object[0], 0xa4);

    let other_auth_data = base()
        .duplicate_key_with("authData", Cbor::bytes(vec![0u8; 37]))
        .build();
    assert_eq!(
        cbor_map_bytes(&other_auth_data.object, &["authData"]).unwrap(),
        other_auth_data.auth_data,
        "first entry is the real one"
    );

    let reordered = base().reorder_keys(&["authData", "attStmt", "fmt"]).build();
    assert!(cbor_shape(&reordered.object).starts_with(r#"{"authData":bytes,"attStmt":"#));

    let indefinite = base().indefinite_lengths().build();
    assert_eq!(indefinite.object[0], 0xbf);
    assert_eq!(cbor_shape(&indefinite.object), "indef");
    let outer = base().indefinite_outer_map().build();
    assert_eq!(outer.object[0], 0xbf);
    assert_eq!(outer.object.last(), Some(&0xff));

    let trailing = base().trailing_bytes(&[0x00]).build();
    let mut decoder = minicbor::Decoder::new(&trailing.object);
    decoder.skip().unwrap();
    assert_eq!(decoder.position(), trailing.object.len() - 1);

    let hooked = base()
        .tamper_cbor(|item| {
            item.get_mut("attStmt").unwrap().remove("receipt");
        })
        .build();
    assert_eq!(
        cbor_shape(&hooked.object),
        r#"{"fmt":"apple-appattest","attStmt":{"x5c":[bytes,bytes]},"authData":bytes}"#
    );

    let extra = base()
        .leaf_extension(Extension::new(&[1, 2, 3, 4], vec![0x05, 0x00]))
        .build();
    let cert = parse_cert(&extra.leaf);
    assert_eq!(extension_list(&cert).last().unwrap().0, "1.2.3.4");
    verify_chain(&extra.x5c, f.ca.root_der(), NOW).unwrap();
}

#[test]
fn receipt_knobs_inside_attestations() {
    let f = fixture(Environment::Development);
    let base = || {
        f.device
            .attestation(&f.ca, &f.receipts, APP_ID, &CLIENT_DATA_HASH, NOW)
    };

    let none = base().omit_receipt().build();
    assert!(none.receipt.is_none());
    assert_eq!(
        cbor_shape(&none.object),
        r#"{"fmt":"apple-appattest","attStmt":{"x5c":[bytes,bytes]},"authData":bytes}"#
    );

    let corrupted = base().receipt_with(|r| r.corrupt_signature()).build();
    verify_chain(&corrupted.x5c, f.ca.root_der(), NOW).unwrap();
    assert!(
        openssl_verify_receipt(
            corrupted.receipt.as_ref().unwrap(),
            &f.receipts.root_pem(),
            NOW
        )
        .is_err()
    );

    let other_app = base()
        .receipt_with(|r| r.app_id("OTHERTEAM.other"))
        .receipt_with(|r| r.risk_metric(3))
        .build();
    let payload = openssl_verify_receipt(
        other_app.receipt.as_ref().unwrap(),
        &f.receipts.root_pem(),
        NOW,
    )
    .unwrap();
    assert_eq!(payload_fields(&payload)[0].2, b"OTHERTEAM.other");

    let verbatim = base().receipt_bytes(vec![0x30, 0x00]).build();
    assert_eq!(
        cbor_map_bytes(&verbatim.object, &["attStmt", "receipt"]).unwrap(),
        [0x30, 0x00]
    );

    // A RECEIPT receipt for the same key, as the fraud-metric endpoint would return.
    let attestation = base().build();
    let refreshed = attestation
        .refresh_receipt(&f.receipts)
        .created_at(NOW + Duration::hours(1))
        .risk_metric(4)
        .build();
    let payload =
        openssl_verify_receipt(&refreshed, &f.receipts.root_pem(), NOW + Duration::hours(1))
            .unwrap();
    let fields = payload_fields(&payload);
    assert_eq!(fields[0], (17, 1, b"4".to_vec()));
    assert_eq!(fields[1], (6, 1, b"RECEIPT".to_vec()));
    assert_eq!(fields[3].2, attestation.leaf);
}

fn base64_body(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}
