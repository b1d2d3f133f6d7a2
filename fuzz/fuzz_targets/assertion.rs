//! Assertion objects: strict parse and signature verification with a fixed key.
//! Run: `cargo fuzz run assertion`.
#![no_main]

use std::sync::OnceLock;

use attest_core::apple::AppId;
use attest_core::apple::assertion::{
    AssertionObject, AssertionRequest, CredentialPublicKey, verify_assertion,
};
use libfuzzer_sys::fuzz_target;

/// A real device key and assertion (iOS 17), so the signature path is reachable.
const RECORD: &str =
    include_str!("../../tests/data/apple/assertions/warden-ios17-dev-2024-assertion.json");

fn key() -> &'static CredentialPublicKey {
    static KEY: OnceLock<CredentialPublicKey> = OnceLock::new();
    KEY.get_or_init(|| {
        use base64::Engine;
        let record: serde_json::Value = serde_json::from_str(RECORD).unwrap();
        let spki = base64::engine::general_purpose::STANDARD
            .decode(record["public_key"].as_str().unwrap())
            .unwrap();
        CredentialPublicKey::from_spki(&spki).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = AssertionObject::parse(data);
    let app_ids = [AppId::new("9CYHJNG644.at.asitplus.attestation.Test").unwrap()];
    let request = AssertionRequest {
        public_key: key(),
        client_data_hash: &[0u8; 32],
        app_ids: &app_ids,
        previous_counter: 0,
    };
    let _ = verify_assertion(data, &request);
});
