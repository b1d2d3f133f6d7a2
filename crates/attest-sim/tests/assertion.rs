//! Assertions checked with aws-lc-rs and against real Apple samples.

mod common;

use attest_sim::{Cbor, Device, Environment};
use common::*;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

const CLIENT_DATA: &[u8] = br#"{"challenge":"c2ltdWxhdGVk","action":"login"}"#;

fn signature_valid(point: &[u8], object: &[u8], client_data: &[u8]) -> bool {
    let auth_data = cbor_map_bytes(object, &["authenticatorData"]).unwrap();
    let signature = cbor_map_bytes(object, &["signature"]).unwrap();
    let nonce = sha256(&[&auth_data, &sha256(&[client_data])]);
    p256_verifies(point, &nonce, &signature)
}

#[test]
fn valid_assertion_matches_apples_layout_and_verifies() {
    let device = Device::new(Environment::Development);
    let object = device.assert(APP_ID, CLIENT_DATA, 7);

    let apple = sample_bytes("assertions", "uebelack-2024-assertion", "assertion");
    assert_eq!(cbor_shape(&object), cbor_shape(&apple));
    assert_eq!(
        cbor_shape(&object),
        r#"{"signature":bytes,"authenticatorData":bytes}"#
    );

    let auth_data = cbor_map_bytes(&object, &["authenticatorData"]).unwrap();
    let apple_auth_data = cbor_map_bytes(&apple, &["authenticatorData"]).unwrap();
    assert_eq!(auth_data.len(), 37);
    assert_eq!(auth_data.len(), apple_auth_data.len());
    assert_eq!(auth_data[..32], sha256(&[APP_ID.as_bytes()])[..]);
    assert_eq!(
        auth_data[32], apple_auth_data[32],
        "flags as Apple's (0x40)"
    );
    assert_eq!(auth_data[33..], [0, 0, 0, 7]);

    assert!(signature_valid(
        &device.public_key_point(),
        &object,
        CLIENT_DATA
    ));
    let signature = cbor_map_bytes(&object, &["signature"]).unwrap();
    assert_eq!(signature[0], 0x30, "ASN.1 DER ECDSA signature, as Apple's");
}

#[test]
fn the_checker_accepts_a_real_apple_assertion() {
    let record = sample_json("assertions", "uebelack-2024-assertion");
    let object = sample_bytes("assertions", "uebelack-2024-assertion", "assertion");
    let client_data = sample_bytes("assertions", "uebelack-2024-assertion", "client_data");
    let spki = sample_bytes("assertions", "uebelack-2024-assertion", "public_key");
    let (_, spki) = SubjectPublicKeyInfo::from_der(&spki).unwrap();
    assert!(record["expect"]["valid"].as_bool().unwrap());
    assert!(signature_valid(
        &spki.subject_public_key.data,
        &object,
        &client_data
    ));
}

#[test]
fn public_key_spki_has_apples_shape() {
    let device = Device::new(Environment::Production);
    let spki = device.public_key_spki();
    let apple = sample_bytes("assertions", "uebelack-2024-assertion", "public_key");
    assert_eq!(spki.len(), apple.len());
    assert_eq!(spki[..27], apple[..27], "same algorithm header");
    let (rest, parsed) = SubjectPublicKeyInfo::from_der(&spki).unwrap();
    assert!(rest.is_empty());
    assert_eq!(&*parsed.subject_public_key.data, device.public_key_point());
    assert_eq!(
        sha256(&[&parsed.subject_public_key.data]),
        device.key_id().as_slice()
    );
}

#[test]
fn negative_knobs_break_one_thing() {
    let device = Device::new(Environment::Development);
    let other = Device::new(Environment::Development);
    let point = device.public_key_point();
    let base = || device.assertion(APP_ID, CLIENT_DATA, 2);

    let counter = base().counter(1).build();
    assert!(signature_valid(&point, &counter.object, CLIENT_DATA));
    assert_eq!(counter.auth_data[33..], [0, 0, 0, 1]);

    let wrong_app = base().rp_id_for("OTHERTEAM.other").build();
    assert!(signature_valid(&point, &wrong_app.object, CLIENT_DATA));
    assert_eq!(wrong_app.auth_data[..32], sha256(&[b"OTHERTEAM.other"])[..]);

    let stranger = base().signed_by(&other).build();
    assert!(!signature_valid(&point, &stranger.object, CLIENT_DATA));
    assert!(signature_valid(
        &other.public_key_point(),
        &stranger.object,
        CLIENT_DATA
    ));

    let corrupted = base().corrupt_signature().build();
    assert!(!signature_valid(&point, &corrupted.object, CLIENT_DATA));

    let other_data = base().sign_client_data(b"something else").build();
    assert!(!signature_valid(&point, &other_data.object, CLIENT_DATA));
    assert!(signature_valid(
        &point,
        &other_data.object,
        b"something else"
    ));

    // Signing authData || clientDataHash without the outer hash (a classic client bug).
    let mut unhashed = base().build().auth_data;
    unhashed.extend_from_slice(&sha256(&[CLIENT_DATA]));
    let single_hash = base().sign_message(&unhashed).build();
    assert!(!signature_valid(&point, &single_hash.object, CLIENT_DATA));

    let verbatim_signature = base().signature(vec![0x30, 0x00]).build();
    assert_eq!(
        cbor_map_bytes(&verbatim_signature.object, &["signature"]).unwrap(),
        [0x30, 0x00]
    );

    let flags = base().flags(0x41).build();
    assert!(signature_valid(&point, &flags.object, CLIENT_DATA));
    assert_eq!(flags.auth_data[32], 0x41);

    let extended = base()
        .flags(0xc0)
        .auth_data_extensions(&attest_sim::ios27_auth_data_extensions())
        .build();
    assert!(signature_valid(&point, &extended.object, CLIENT_DATA));
    assert_eq!(extended.auth_data.len(), 37 + 62);

    let short = base().auth_data(vec![0u8; 36]).build();
    assert!(signature_valid(&point, &short.object, CLIENT_DATA));
    assert_eq!(short.auth_data.len(), 36);
}

#[test]
fn cbor_knobs() {
    let device = Device::new(Environment::Development);
    let base = || device.assertion(APP_ID, CLIENT_DATA, 2);

    let dup = base().duplicate_key("signature").build();
    assert_eq!(
        cbor_shape(&dup.object),
        r#"{"signature":bytes,"authenticatorData":bytes,"signature":bytes}"#
    );
    let dup_other = base()
        .duplicate_key_with("authenticatorData", Cbor::bytes(vec![1u8; 37]))
        .build();
    assert_eq!(dup_other.object[0], 0xa3);

    let reordered = base()
        .reorder_keys(&["authenticatorData", "signature"])
        .build();
    assert_eq!(
        cbor_shape(&reordered.object),
        r#"{"authenticatorData":bytes,"signature":bytes}"#
    );
    assert!(signature_valid(
        &device.public_key_point(),
        &reordered.object,
        CLIENT_DATA
    ));

    let indefinite = base().indefinite_lengths().build();
    assert_eq!(indefinite.object[0], 0xbf);
    assert_eq!(indefinite.object[1], 0x7f, "chunked text key");

    let trailing = base().trailing_bytes(b"\x00\x01").build();
    assert_eq!(&trailing.object[trailing.object.len() - 2..], b"\x00\x01");

    let missing = base().remove_key("signature").build();
    assert_eq!(
        cbor_shape(&missing.object),
        r#"{"authenticatorData":bytes}"#
    );

    let as_text = base()
        .tamper_cbor(|item| {
            *item.get_mut("signature").unwrap() = Cbor::text("not bytes");
        })
        .build();
    assert_eq!(
        cbor_shape(&as_text.object),
        r#"{"signature":"not bytes","authenticatorData":bytes}"#
    );
}
