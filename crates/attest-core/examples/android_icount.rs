//! Runs one verification operation N times, for instruction counts under valgrind (the wall
//! clock of a shared machine is too noisy for ratios). docs/benchmarks.md's Android table:
//!
//! ```sh
//! cargo build --release -p attest-core --example android_icount
//! B=target/release/examples/android_icount
//! for n in 10 20; do valgrind --tool=callgrind --callgrind-out-file=/dev/null $B warm aka-tegu-sdk36-tee-ec-2026-root $n; done
//! ```
//!
//! The difference of the two "Collected" counts, divided by 10, is one call. Modes: `cold`
//! (new verifier per call), `warm` (shared verifier), `all` (the chain's bare signatures),
//! `leaf` (the leaf's bare signature), `apple` (App Attest attestation verify; any id).

use std::hint::black_box;
use std::time::Duration;

use attest_core::UnixTime;
use attest_core::android::{AndroidRequest, AndroidVerifier, ExpectedApp, Revocation};
use attest_core::apple::attestation::{AttestationRequest, AttestationVerifier};
use attest_core::apple::{AppId, EnvironmentPolicy, KeyId};
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

/// (algorithm, issuer key, signed bytes, signature).
type Edge = (
    &'static dyn VerificationAlgorithm,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
);

fn record(path: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../../tests/data/{path}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap()
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args[1].as_str();
    let id = args[2].as_str();
    let n: usize = args[3].parse().unwrap();
    if mode == "apple" {
        let r = record("apple/attestations/apple-doc-prod-2026");
        let bytes = b64(&r["attestation"]);
        let key_id = KeyId::from_slice(&b64(&r["key_id"])).unwrap();
        let cdh = hex::decode(r["client_data_hash"].as_str().unwrap()).unwrap();
        let app_ids = [AppId::new(r["app_id"].as_str().unwrap()).unwrap()];
        let mut req = AttestationRequest::new(key_id, &cdh, &app_ids, time(&r["verify_at"]));
        req.environment = EnvironmentPolicy::Any;
        let v = AttestationVerifier::apple();
        v.verify(&bytes, &req).unwrap();
        for _ in 0..n {
            v.verify(black_box(&bytes), &req).unwrap();
        }
        return;
    }
    let r = record(&format!("android/key_attestation/{id}"));
    let chain: Vec<Vec<u8>> = r["x5c"].as_array().unwrap().iter().map(b64).collect();
    let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    let challenge = b64(&r["challenge"]);
    let app = ExpectedApp {
        package_names: vec![r["package_name"].as_str().unwrap().to_owned()],
        signing_digests: Some(
            r["signature_digests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| b64(d).try_into().unwrap())
                .collect(),
        ),
    };
    let req = AndroidRequest::new(&challenge, &app, Revocation::Skip, time(&r["verify_at"]));
    let certs: Vec<_> = chain
        .iter()
        .map(|d| x509_parser::parse_x509_certificate(d).unwrap().1)
        .collect();
    let edges: Vec<Edge> = certs
        .windows(2)
        .map(|p| {
            let (c, i) = (&p[0], &p[1]);
            let spki = i.public_key();
            let rsa = spki.algorithm.algorithm.to_id_string() == "1.2.840.113549.1.1.1";
            let p384 = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .is_some_and(|o| o.to_id_string() == "1.3.132.0.34");
            let sha384 = c.signature_algorithm.algorithm.to_id_string() == "1.2.840.10045.4.3.3";
            let alg: &'static dyn VerificationAlgorithm = match (rsa, p384, sha384) {
                (true, _, _) => &signature::RSA_PKCS1_2048_8192_SHA256,
                (false, true, true) => &signature::ECDSA_P384_SHA384_ASN1,
                (false, true, false) => &signature::ECDSA_P384_SHA256_ASN1,
                (false, false, true) => &signature::ECDSA_P256_SHA384_ASN1,
                (false, false, false) => &signature::ECDSA_P256_SHA256_ASN1,
            };
            (
                alg,
                spki.subject_public_key.data.to_vec(),
                c.tbs_certificate.as_ref().to_vec(),
                c.signature_value.data.to_vec(),
            )
        })
        .collect();
    let verify_edge = |e: &Edge| {
        UnparsedPublicKey::new(e.0, &e.1)
            .verify(&e.2, &e.3)
            .unwrap()
    };
    match mode {
        "cold" => {
            for _ in 0..n {
                AndroidVerifier::google()
                    .verify(black_box(&refs), &req)
                    .unwrap();
            }
        }
        "warm" => {
            let v = AndroidVerifier::google();
            v.verify(&refs, &req).unwrap();
            for _ in 0..n {
                v.verify(black_box(&refs), &req).unwrap();
            }
        }
        "all" => {
            for _ in 0..n {
                for e in &edges {
                    verify_edge(black_box(e));
                }
            }
        }
        "leaf" => {
            for _ in 0..n {
                verify_edge(black_box(&edges[0]));
            }
        }
        _ => panic!(),
    }
}
