//! Verification throughput on real device samples, with in-process baselines.
//!
//! `cargo bench -p attest-core --bench verify`
//!
//! Baselines: one bare ECDSA P-256 verify (the floor of an assertion) and one P-384 verify
//! (the floor of an attestation chain check with a cached intermediate). docs/benchmarks.md
//! reports each operation as a ratio to them, measured in the same run.

use std::path::Path;
use std::time::Duration;

use attest_core::UnixTime;
use attest_core::apple::assertion::{
    AssertionRequest, CredentialPublicKey, hash_client_data, verify_assertion,
};
use attest_core::apple::attestation::{AttestationObject, AttestationRequest, AttestationVerifier};
use attest_core::apple::receipt::ReceiptVerifier;
use attest_core::apple::{AppId, EnvironmentPolicy, KeyId};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1,
    ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair, ParsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;

fn record(kind: &str, id: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/apple")
        .join(kind)
        .join(format!("{id}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn b64(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().unwrap()).unwrap()
}

fn time(v: &Value) -> UnixTime {
    let at = time::OffsetDateTime::parse(
        v.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    UnixTime::since_unix_epoch(Duration::from_secs(at.unix_timestamp() as u64))
}

fn baselines(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let mut group = c.benchmark_group("baseline");
    group.throughput(Throughput::Elements(1));
    let p256 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let signature = p256.sign(&rng, &[7u8; 32]).unwrap();
    let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, p256.public_key().as_ref()).unwrap();
    group.bench_function("ecdsa_p256_verify", |b| {
        b.iter(|| {
            key.verify_sig(black_box(&[7u8; 32]), signature.as_ref())
                .unwrap()
        })
    });
    let p384 = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING).unwrap();
    let signature = p384.sign(&rng, &[7u8; 32]).unwrap();
    let key = ParsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, p384.public_key().as_ref()).unwrap();
    group.bench_function("ecdsa_p384_verify", |b| {
        b.iter(|| {
            key.verify_sig(black_box(&[7u8; 32]), signature.as_ref())
                .unwrap()
        })
    });
    group.finish();
}

fn attestation(c: &mut Criterion) {
    let mut group = c.benchmark_group("attestation");
    group.throughput(Throughput::Elements(1));
    for id in ["apple-doc-prod-2026", "warden-ios17-dev-2024"] {
        let r = record("attestations", id);
        let bytes = b64(&r["attestation"]);
        let key_id = KeyId::from_slice(&b64(&r["key_id"])).unwrap();
        let client_data_hash = hex::decode(r["client_data_hash"].as_str().unwrap()).unwrap();
        let app_ids = [AppId::new(r["app_id"].as_str().unwrap()).unwrap()];
        let mut request =
            AttestationRequest::new(key_id, &client_data_hash, &app_ids, time(&r["verify_at"]));
        request.environment = EnvironmentPolicy::Any;
        let verifier = AttestationVerifier::apple();
        verifier.verify(&bytes, &request).unwrap();
        group.bench_function(format!("verify/{id}"), |b| {
            b.iter(|| verifier.verify(black_box(&bytes), &request).unwrap())
        });
        group.bench_function(format!("parse/{id}"), |b| {
            b.iter(|| AttestationObject::parse(black_box(&bytes)).unwrap())
        });
    }
    group.finish();
}

fn assertion(c: &mut Criterion) {
    let mut group = c.benchmark_group("assertion");
    group.throughput(Throughput::Elements(1));
    let r = record("assertions", "warden-ios17-dev-2024-assertion");
    let bytes = b64(&r["assertion"]);
    let public_key = CredentialPublicKey::from_spki(&b64(&r["public_key"])).unwrap();
    let client_data = b64(&r["client_data"]);
    let app_ids = [AppId::new(r["app_id"].as_str().unwrap()).unwrap()];
    group.bench_function("verify", |b| {
        b.iter(|| {
            let client_data_hash = hash_client_data(black_box(&client_data));
            let request = AssertionRequest {
                public_key: &public_key,
                client_data_hash: &client_data_hash,
                app_ids: &app_ids,
                previous_counter: 0,
            };
            verify_assertion(black_box(&bytes), &request).unwrap()
        })
    });
    let spki = b64(&r["public_key"]);
    group.bench_function("parse_public_key", |b| {
        b.iter(|| CredentialPublicKey::from_spki(black_box(&spki)).unwrap())
    });
    group.finish();
}

fn receipt(c: &mut Criterion) {
    let mut group = c.benchmark_group("receipt");
    group.throughput(Throughput::Elements(1));
    let r = record("receipts", "veehaitch-ios14-4-dev-2021-receipt-r1");
    let bytes = b64(&r["receipt"]);
    let at = time(&r["verify_at"]);
    let verifier = ReceiptVerifier::apple();
    verifier.verify(&bytes, at).unwrap();
    group.bench_function("verify", |b| {
        b.iter(|| verifier.verify(black_box(&bytes), at).unwrap())
    });
    group.bench_function("parse", |b| {
        b.iter(|| attest_core::apple::receipt::parse_receipt(black_box(&bytes)).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = baselines, attestation, assertion, receipt
}
criterion_main!(benches);
