//! Saving and reloading simulator material, as `attestd simulate` does.

mod common;

use attest_sim::{Device, Environment, ReceiptCa, SimError, TestCa};
use common::*;

#[test]
fn test_ca_round_trips_through_pem() {
    let ca = TestCa::generate();
    let text = ca.to_pem();
    assert_eq!(text.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    assert_eq!(text.matches("-----BEGIN PRIVATE KEY-----").count(), 2);
    let reloaded = TestCa::from_pem(&text).unwrap();
    assert_eq!(reloaded.root_der(), ca.root_der());
    assert_eq!(reloaded.intermediate_der(), ca.intermediate_der());
    assert!(ca.root_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));

    // A reloaded CA issues leaves that chain to the original root.
    let receipts = ReceiptCa::generate();
    let device = Device::new(Environment::Development);
    let built = device
        .attestation(&reloaded, &receipts, APP_ID, &CLIENT_DATA_HASH, NOW)
        .build();
    verify_chain(&built.x5c, ca.root_der(), NOW).unwrap();
    let leaf = parse_cert(&built.leaf);
    let intermediate = parse_cert(ca.intermediate_der());
    assert_eq!(leaf.issuer().as_raw(), intermediate.subject().as_raw());
}

#[test]
fn receipt_ca_round_trips_through_pem() {
    let ca = ReceiptCa::builder().apple_names().build();
    let reloaded = ReceiptCa::from_pem(&ca.to_pem()).unwrap();
    assert_eq!(reloaded.certificates(), ca.certificates());
    let receipt = reloaded.receipt().app_id(APP_ID).created_at(NOW).build();
    openssl_verify_receipt(&receipt, &ca.root_pem(), NOW).unwrap();
}

#[test]
fn device_round_trips_through_pkcs8() {
    let device = Device::new(Environment::Production);
    let reloaded = Device::from_pkcs8(Environment::Production, &device.to_pkcs8()).unwrap();
    assert_eq!(reloaded.key_id(), device.key_id());
    assert_eq!(reloaded.environment(), Environment::Production);
    let object = reloaded.assert(APP_ID, b"data", 1);
    let auth_data = cbor_map_bytes(&object, &["authenticatorData"]).unwrap();
    let signature = cbor_map_bytes(&object, &["signature"]).unwrap();
    let nonce = sha256(&[&auth_data, &sha256(&[b"data"])]);
    assert!(p256_verifies(
        &device.public_key_point(),
        &nonce,
        &signature
    ));
}

#[test]
fn loading_rejects_bad_material() {
    assert!(matches!(
        TestCa::from_pem("not pem"),
        Err(SimError::InvalidPem(_))
    ));
    assert_eq!(
        Device::from_pkcs8(Environment::Development, b"junk").unwrap_err(),
        SimError::InvalidKey
    );

    // Keys swapped between two CAs no longer match their certificates.
    let a = pem_blocks(&TestCa::generate().to_pem());
    let b = pem_blocks(&TestCa::generate().to_pem());
    assert_eq!(a.len(), 4);
    let mixed = [&a[0], &b[1], &a[2], &a[3]].map(String::as_str).concat();
    assert_eq!(TestCa::from_pem(&mixed).unwrap_err(), SimError::KeyMismatch);

    // A P-256 key where the P-384 root key belongs.
    let device = Device::new(Environment::Development);
    let p256 = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64_encode(&device.to_pkcs8())
    );
    let wrong_curve = [&a[0], &p256, &a[2], &a[3]].map(String::as_str).concat();
    assert_eq!(
        TestCa::from_pem(&wrong_curve).unwrap_err(),
        SimError::InvalidKey
    );

    // Blocks out of order.
    let reordered = [&a[1], &a[0], &a[2], &a[3]].map(String::as_str).concat();
    assert!(matches!(
        TestCa::from_pem(&reordered),
        Err(SimError::InvalidPem(_))
    ));
}

fn pem_blocks(text: &str) -> Vec<String> {
    text.split("-----BEGIN ")
        .filter(|s| !s.is_empty())
        .map(|s| format!("-----BEGIN {s}"))
        .collect()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
