//! Every real-device record in `tests/data/apple` passes with exactly its expected result.
//!
//! The records come from real devices (see `tests/data/apple/README.md`); each is verified at
//! its own `verify_at`, since every certificate in the set has long expired.

use std::path::{Path, PathBuf};

use attest_core::UnixTime;
use attest_core::apple::assertion::{
    AssertionRequest, CredentialPublicKey, hash_client_data, verify_assertion,
};
use attest_core::apple::attestation::{
    AttestationObject, AttestationRequest, AttestationVerifier, ReceiptCheck, ReceiptPolicy,
};
use attest_core::apple::authenticator_data::{AuthenticatorData, Context, ExtensionValue};
use attest_core::apple::{AppId, AppleError, EnvironmentPolicy, KeyId};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

fn data_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/apple")
        .join(kind)
}

fn records(kind: &str) -> Vec<Value> {
    let mut paths: Vec<_> = std::fs::read_dir(data_dir(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

fn b64(value: &Value) -> Vec<u8> {
    B64.decode(value.as_str().unwrap()).unwrap()
}

fn time(value: &Value) -> UnixTime {
    let at = time::OffsetDateTime::parse(
        value.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.unix_timestamp() as u64))
}

fn policy(record: &Value) -> EnvironmentPolicy {
    record["environment"].as_str().unwrap().parse().unwrap()
}

/// The vector set's failure names, as attestd's stable codes.
fn code_for(failure: &str) -> &'static str {
    match failure {
        "format" => "malformed",
        "chain" => "certificate_chain_invalid",
        "expired" => "certificate_expired",
        "nonce" => "nonce_mismatch",
        "key_id" => "key_id_mismatch",
        "app_id" => "app_id_mismatch",
        "counter" => "counter_invalid",
        "aaguid" => "environment_mismatch",
        "credential_id" => "credential_id_mismatch",
        "signature" => "signature_invalid",
        other => panic!("unknown failure name {other}"),
    }
}

fn expected_extensions(record: &Value) -> Option<Vec<(String, ExtensionValue)>> {
    let map = record["authdata_extensions"].as_object()?;
    Some(
        map.iter()
            .map(|(key, value)| {
                let value = match value {
                    Value::String(s) => ExtensionValue::Text(s.clone()),
                    Value::Object(o) => ExtensionValue::Bytes(b64(&o["b64"])),
                    other => panic!("unexpected extension value {other}"),
                };
                (key.clone(), value)
            })
            .collect(),
    )
}

#[test]
fn every_real_attestation_has_its_expected_result() {
    check_every_real_attestation(&AttestationVerifier::apple());
}

#[test]
fn every_real_attestation_has_its_expected_result_when_extra_roots_are_trusted_too() {
    // Extra roots vouch for development keys only; Apple's root still vouches for production.
    let ca = attest_sim::TestCa::generate();
    let receipts = attest_sim::ReceiptCa::generate();
    let verifier = AttestationVerifier::with_extra_roots(
        vec![ca.root_der().to_vec()],
        vec![receipts.root_der().to_vec()],
    )
    .unwrap();
    check_every_real_attestation(&verifier);
}

fn check_every_real_attestation(verifier: &AttestationVerifier) {
    let records = records("attestations");
    assert_eq!(records.len(), 36, "the vector set has 36 attestations");
    let mut failures = Vec::new();
    for record in &records {
        let id = record["id"].as_str().unwrap();
        let attestation = b64(&record["attestation"]);
        let key_id = KeyId::from_slice(&b64(&record["key_id"])).unwrap();
        let client_data_hash = hex::decode(record["client_data_hash"].as_str().unwrap()).unwrap();
        let app_ids = [AppId::new(record["app_id"].as_str().unwrap()).unwrap()];
        let mut request = AttestationRequest::new(
            key_id,
            &client_data_hash,
            &app_ids,
            time(&record["verify_at"]),
        );
        request.environment = policy(record);
        let result = verifier.verify(&attestation, &request);

        let expect = &record["expect"];
        if expect["valid"].as_bool().unwrap() {
            match result {
                Ok(verified) => {
                    assert_eq!(verified.public_key(), b64(&record["public_key"]), "{id}");
                    assert_eq!(
                        verified.environment().as_str(),
                        record["environment"],
                        "{id}"
                    );
                    assert_eq!(verified.key_id(), &key_id, "{id}");
                    assert_eq!(
                        verified.receipt_bytes().is_empty(),
                        record["receipt"].is_null()
                    );
                    assert!(
                        matches!(verified.receipt(), ReceiptCheck::Verified(_)),
                        "{id}"
                    );
                    let validity = &record["leaf_validity"];
                    assert_eq!(
                        verified.leaf_not_after().unix_timestamp(),
                        time(&validity["not_after"]).as_secs() as i64,
                        "{id}"
                    );
                    assert_eq!(
                        verified.extensions().map(|e| e.entries.clone()),
                        expected_extensions(record),
                        "{id}"
                    );
                    let evidence = verified.evidence();
                    assert_eq!(
                        evidence.leaf_not_after,
                        Some(verified.leaf_not_after().unix_timestamp()),
                        "{id}"
                    );
                    assert_eq!(
                        evidence.receipt_status,
                        Some(attest_types::evidence::ReceiptStatus::Valid),
                        "{id}"
                    );
                    assert!(evidence.receipt_created_at.is_some(), "{id}");
                    assert_eq!(
                        evidence.bundle_version.as_deref(),
                        verified.bundle_version(),
                        "{id}"
                    );
                }
                Err(error) => failures.push(format!("{id}: expected valid, got {error}")),
            }
        } else {
            let expected = code_for(expect["failure"].as_str().unwrap());
            match result {
                Err(error) if error.code() == expected => {}
                Err(error) => failures.push(format!("{id}: expected {expected}, got {error}")),
                Ok(_) => failures.push(format!("{id}: expected {expected}, got valid")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} records failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_real_assertion_has_its_expected_result() {
    let records = records("assertions");
    assert_eq!(records.len(), 26, "the vector set has 26 assertions");
    let mut failures = Vec::new();
    for record in &records {
        let id = record["id"].as_str().unwrap();
        let public_key = CredentialPublicKey::from_spki(&b64(&record["public_key"])).unwrap();
        assert_eq!(
            public_key.key_id().as_bytes().as_slice(),
            b64(&record["key_id"]),
            "{id}"
        );
        let client_data_hash = hash_client_data(&b64(&record["client_data"]));
        let app_ids = [AppId::new(record["app_id"].as_str().unwrap()).unwrap()];
        let request = AssertionRequest {
            public_key: &public_key,
            client_data_hash: &client_data_hash,
            app_ids: &app_ids,
            previous_counter: record["previous_counter"].as_u64().unwrap() as u32,
        };
        let result = verify_assertion(&b64(&record["assertion"]), &request);
        let expect = &record["expect"];
        if expect["valid"].as_bool().unwrap() {
            match result {
                Ok(verified) => {
                    assert_eq!(
                        u64::from(verified.counter()),
                        expect["counter"].as_u64().unwrap()
                    )
                }
                Err(error) => failures.push(format!("{id}: expected valid, got {error}")),
            }
        } else {
            let expected = code_for(expect["failure"].as_str().unwrap());
            match result {
                Err(error) if error.code() == expected => {}
                Err(error) => failures.push(format!("{id}: expected {expected}, got {error}")),
                Ok(_) => failures.push(format!("{id}: expected {expected}, got valid")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} records failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_real_authenticator_data_record_parses_and_checks_as_expected() {
    let verifier = AttestationVerifier::apple();
    for record in records("authdata") {
        let id = record["id"].as_str().unwrap();
        let raw = b64(&record["authdata"]);
        let parsed = AuthenticatorData::parse(&raw, Context::Attestation).unwrap();
        let expected = &record["parsed"];
        assert_eq!(
            parsed.rp_id_hash.as_slice(),
            b64(&expected["rp_id_hash"]),
            "{id}"
        );
        assert_eq!(
            u64::from(parsed.flags),
            expected["flags"].as_u64().unwrap(),
            "{id}"
        );
        assert_eq!(
            u64::from(parsed.counter),
            expected["sign_count"].as_u64().unwrap(),
            "{id}"
        );
        let credential = parsed.attested_credential.as_ref().unwrap();
        assert_eq!(
            credential.credential_id,
            b64(&expected["credential_id"]),
            "{id}"
        );

        let key_id = KeyId::from_slice(&b64(&record["key_id"])).unwrap();
        let app_ids = [AppId::new(record["app_id"].as_str().unwrap()).unwrap()];
        let result = match record["x5c"].as_array() {
            // With certificates: every step but the receipt, through the object verifier.
            Some(x5c) => {
                let x5c: Vec<Vec<u8>> = x5c.iter().map(b64).collect();
                let client_data_hash =
                    hex::decode(record["client_data_hash"].as_str().unwrap()).unwrap();
                let object = AttestationObject {
                    format: "apple-appattest",
                    x5c: x5c.iter().map(Vec::as_slice).collect(),
                    receipt: None,
                    auth_data: parsed.clone(),
                };
                let mut request = AttestationRequest::new(
                    key_id,
                    &client_data_hash,
                    &app_ids,
                    time(&record["verify_at"]),
                );
                request.environment = policy(&record);
                request.receipt = ReceiptPolicy::Report;
                verifier.verify_object(&object, &request).map(|_| ())
            }
            // Without: the authenticator-data steps 6–9 alone.
            None => attest_core::apple::attestation::check_attested_auth_data(
                &parsed,
                &key_id,
                &app_ids,
                policy(&record),
            )
            .map(|_| ()),
        };
        match (&record["expect"]["failure"], result) {
            (Value::Null, Ok(())) => {}
            (Value::String(failure), Err(error)) => {
                assert_eq!(error.code(), code_for(failure), "{id}: {error}")
            }
            (expected, got) => panic!("{id}: expected {expected}, got {got:?}"),
        }
    }
}

#[test]
fn apple_2026_sample_carries_ios27_extensions() {
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(data_dir("attestations").join("apple-doc-prod-2026.json"))
            .unwrap(),
    )
    .unwrap();
    let attestation = b64(&record["attestation"]);
    let object = AttestationObject::parse(&attestation).unwrap();
    assert_eq!(object.auth_data.raw.len(), 226);
    assert_eq!(object.auth_data.flags, 0x40, "AT set, ED clear");
    let extensions = object.auth_data.extensions.as_ref().unwrap();
    assert_eq!(extensions.bundle_version(), Some("1"));
    assert_eq!(extensions.validation_category(), Some(&[1, 0, 0, 0][..]));
}

#[test]
fn apple_samples_fail_with_nonce_mismatch_when_the_challenge_is_hashed() {
    // Quirk 1: Apple's samples passed the raw challenge as clientDataHash.
    let verifier = AttestationVerifier::apple();
    for id in ["apple-doc-prod-2024", "apple-doc-prod-2026"] {
        let record: Value = serde_json::from_str(
            &std::fs::read_to_string(data_dir("attestations").join(format!("{id}.json"))).unwrap(),
        )
        .unwrap();
        let raw = hex::decode(record["client_data_hash"].as_str().unwrap()).unwrap();
        let hashed = attest_core::apple::attestation::hash_challenge(&raw);
        let app_ids = [AppId::new(record["app_id"].as_str().unwrap()).unwrap()];
        let key_id = KeyId::from_slice(&b64(&record["key_id"])).unwrap();
        let request =
            AttestationRequest::new(key_id, &hashed, &app_ids, time(&record["verify_at"]));
        assert_eq!(
            verifier
                .verify(&b64(&record["attestation"]), &request)
                .unwrap_err(),
            AppleError::NonceMismatch
        );
    }
}
