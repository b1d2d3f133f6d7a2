//! Android Key Attestation verification on real chains, with in-process baselines.
//!
//! `cargo bench -p attest-core --bench android`
//!
//! Chains: a factory chain signed with RSA end to end (Pixel 3, `aka-blueline-sdk28-tee-rsa-none`:
//! 3 signatures, the top one RSA-4096), a remotely provisioned EC chain under the P-384 Key
//! Attestation CA1 (Pixel 9a, `aka-tegu-sdk36-tee-ec-2026-root`: 4 ECDSA signatures, three of
//! them P-384) and a factory EC chain (Nokia X10).
//!
//! - `verify_cold`: a new verifier per call (every signature checked; the verifier's own
//!   construction, `construct`, is measured separately).
//! - `verify_warm`: one shared verifier, intermediates' signatures cached: only the leaf's
//!   signature is checked.
//! - `signatures_all` / `signature_leaf`: the bare aws-lc-rs verifications of exactly the
//!   signatures the chain needs (all of them cold, the leaf's warm), measured in the same run.
//! - `apple/attestation_verify`: the App Attest attestation verify (`benches/verify.rs`'s
//!   `apple-doc-prod-2026`), the reference the Android figures are reported against.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use attest_core::UnixTime;
use attest_core::android::{AndroidRequest, AndroidVerifier, ExpectedApp, Revocation};
use attest_core::apple::attestation::{AttestationRequest, AttestationVerifier};
use attest_core::apple::{AppId, EnvironmentPolicy, KeyId};
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;
use x509_parser::der_parser::oid;

const CHAINS: [&str; 3] = [
    "aka-blueline-sdk28-tee-rsa-none",
    "aka-tegu-sdk36-tee-ec-2026-root",
    "warden-nokia-x10-factory-2023",
];

fn record(dir: &str, id: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(dir)
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

struct Case {
    chain: Vec<Vec<u8>>,
    challenge: Vec<u8>,
    app: ExpectedApp,
    time: UnixTime,
}

impl Case {
    fn of(id: &str) -> Self {
        let r = record("android/key_attestation", id);
        Self {
            chain: r["x5c"].as_array().unwrap().iter().map(b64).collect(),
            challenge: b64(&r["challenge"]),
            app: ExpectedApp {
                package_names: vec![r["package_name"].as_str().unwrap().to_owned()],
                signing_digests: Some(
                    r["signature_digests"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| b64(d).try_into().unwrap())
                        .collect(),
                ),
            },
            time: time(&r["verify_at"]),
        }
    }

    fn refs(&self) -> Vec<&[u8]> {
        self.chain.iter().map(Vec::as_slice).collect()
    }

    fn request(&self) -> AndroidRequest<'_> {
        AndroidRequest::new(&self.challenge, &self.app, Revocation::Skip, self.time)
    }
}

/// One signature of the chain: the algorithm, the issuer's key, the signed bytes, the signature.
struct Edge {
    algorithm: &'static dyn VerificationAlgorithm,
    key: Vec<u8>,
    message: Vec<u8>,
    signature: Vec<u8>,
}

impl Edge {
    fn verify(&self) {
        UnparsedPublicKey::new(self.algorithm, &self.key)
            .verify(&self.message, &self.signature)
            .unwrap();
    }
}

/// The signatures the path needs: certificate i by certificate i+1, the top one by the root
/// (the last certificate of these chains).
fn edges(chain: &[Vec<u8>]) -> Vec<Edge> {
    let certs: Vec<_> = chain
        .iter()
        .map(|d| x509_parser::parse_x509_certificate(d).unwrap().1)
        .collect();
    certs
        .windows(2)
        .map(|pair| {
            let (cert, issuer) = (&pair[0], &pair[1]);
            let spki = issuer.public_key();
            let sig = &cert.signature_algorithm.algorithm;
            let rsa = spki.algorithm.algorithm == oid!(1.2.840.113549.1.1.1);
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            let p384 = curve.is_some_and(|c| c == oid!(1.3.132.0.34));
            let sha384 = *sig == oid!(1.2.840.10045.4.3.3);
            let algorithm: &'static dyn VerificationAlgorithm = match (rsa, p384, sha384) {
                (true, _, _) => &signature::RSA_PKCS1_2048_8192_SHA256,
                (false, true, true) => &signature::ECDSA_P384_SHA384_ASN1,
                (false, true, false) => &signature::ECDSA_P384_SHA256_ASN1,
                (false, false, true) => &signature::ECDSA_P256_SHA384_ASN1,
                (false, false, false) => &signature::ECDSA_P256_SHA256_ASN1,
            };
            Edge {
                algorithm,
                key: spki.subject_public_key.data.to_vec(),
                message: cert.tbs_certificate.as_ref().to_vec(),
                signature: cert.signature_value.data.to_vec(),
            }
        })
        .collect()
}

fn android(c: &mut Criterion) {
    let mut group = c.benchmark_group("android");
    group.throughput(Throughput::Elements(1));
    group.bench_function("construct", |b| b.iter(AndroidVerifier::google));
    for id in CHAINS {
        let case = Case::of(id);
        let chain = case.refs();
        let request = case.request();
        let edges = edges(&case.chain);
        for edge in &edges {
            edge.verify();
        }
        group.bench_function(format!("verify_cold/{id}"), |b| {
            b.iter(|| {
                AndroidVerifier::google()
                    .verify(black_box(&chain), &request)
                    .unwrap()
            })
        });
        let warm = AndroidVerifier::google();
        warm.verify(&chain, &request).unwrap();
        group.bench_function(format!("verify_warm/{id}"), |b| {
            b.iter(|| warm.verify(black_box(&chain), &request).unwrap())
        });
        group.bench_function(format!("signatures_all/{id}"), |b| {
            b.iter(|| {
                for edge in &edges {
                    black_box(edge).verify();
                }
            })
        });
        group.bench_function(format!("signature_leaf/{id}"), |b| {
            b.iter(|| black_box(&edges[0]).verify())
        });
    }
    group.finish();
}

fn apple(c: &mut Criterion) {
    let mut group = c.benchmark_group("apple");
    group.throughput(Throughput::Elements(1));
    let r = record("apple/attestations", "apple-doc-prod-2026");
    let bytes = b64(&r["attestation"]);
    let key_id = KeyId::from_slice(&b64(&r["key_id"])).unwrap();
    let client_data_hash = hex::decode(r["client_data_hash"].as_str().unwrap()).unwrap();
    let app_ids = [AppId::new(r["app_id"].as_str().unwrap()).unwrap()];
    let mut request =
        AttestationRequest::new(key_id, &client_data_hash, &app_ids, time(&r["verify_at"]));
    request.environment = EnvironmentPolicy::Any;
    let verifier = AttestationVerifier::apple();
    verifier.verify(&bytes, &request).unwrap();
    group.bench_function("attestation_verify", |b| {
        b.iter(|| verifier.verify(black_box(&bytes), &request).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = android, apple
}
criterion_main!(benches);
