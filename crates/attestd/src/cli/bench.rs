//! `attestd bench`: verification throughput on embedded real samples, one core, like
//! `openssl speed`. Prints `<operation> <N> ops/s` per operation.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use attest_core::UnixTime;
use attest_core::apple::assertion::{
    AssertionRequest, CredentialPublicKey, hash_client_data, verify_assertion,
};
use attest_core::apple::attestation::{AttestationRequest, AttestationVerifier};
use attest_core::apple::receipt::ReceiptVerifier;
use attest_core::apple::{AppId, EnvironmentPolicy, KeyId};
use clap::Args;
use serde_json::Value;

use super::input::decode_base64;

/// Apple's 2026 documentation sample: iOS 27 authData, production, chain + ATTEST receipt.
const ATTESTATION: &str =
    include_str!("../../../../tests/data/apple/attestations/apple-doc-prod-2026.json");
/// A real iOS 17 device assertion.
const ASSERTION: &str =
    include_str!("../../../../tests/data/apple/assertions/warden-ios17-dev-2024-assertion.json");
/// A real RECEIPT-type receipt from Apple's attestation-data endpoint.
const RECEIPT: &str = include_str!(
    "../../../../tests/data/apple/receipts/veehaitch-ios14-4-dev-2021-receipt-r1.json"
);

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Seconds to run each operation.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Use this attestation record (tests/data/apple JSON schema) instead of the embedded one.
    #[arg(long, value_name = "JSON")]
    pub attestation_record: Option<std::path::PathBuf>,
    /// Use this assertion record instead of the embedded one.
    #[arg(long, value_name = "JSON")]
    pub assertion_record: Option<std::path::PathBuf>,
    /// Use this receipt record instead of the embedded one.
    #[arg(long, value_name = "JSON")]
    pub receipt_record: Option<std::path::PathBuf>,
    /// Only these operations (attestation, assertion, receipt); default all.
    pub operations: Vec<String>,
}

type Operation = Box<dyn FnMut() -> bool>;
type Builder = fn(Value) -> Result<Operation, String>;

fn sample(path: Option<&std::path::Path>, embedded: &str) -> Result<Value, String> {
    match path {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            record(&text)
        }
        None => record(embedded),
    }
}

pub fn run(args: &BenchArgs) -> ExitCode {
    let budget = Duration::from_secs_f64(args.seconds.clamp(0.05, 600.0));
    let wanted =
        |name: &str| args.operations.is_empty() || args.operations.iter().any(|o| o == name);
    let mut ok = true;
    // Each operation is built lazily, so one broken sample does not stop the others.
    let operations = [
        (
            "attestation",
            args.attestation_record.as_deref(),
            ATTESTATION,
            attestation_op as Builder,
        ),
        (
            "assertion",
            args.assertion_record.as_deref(),
            ASSERTION,
            assertion_op,
        ),
        (
            "receipt",
            args.receipt_record.as_deref(),
            RECEIPT,
            receipt_op,
        ),
    ];
    for (name, path, embedded, build) in operations {
        if !wanted(name) {
            continue;
        }
        match sample(path, embedded).and_then(build) {
            Ok(mut op) => {
                if !op() {
                    eprintln!("{name}: the embedded sample did not verify");
                    ok = false;
                    continue;
                }
                println!("{name} {} ops/s", measure(&mut op, budget));
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn measure(op: &mut dyn FnMut() -> bool, budget: Duration) -> u64 {
    let start = Instant::now();
    let mut count: u64 = 0;
    while start.elapsed() < budget {
        for _ in 0..16 {
            black_box(op());
        }
        count += 16;
    }
    (count as f64 / start.elapsed().as_secs_f64()).round() as u64
}

fn record(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

fn field(record: &Value, name: &str) -> Result<Vec<u8>, String> {
    record[name]
        .as_str()
        .and_then(decode_base64)
        .ok_or(format!("sample lacks {name}"))
}

fn at(record: &Value, name: &str) -> Result<UnixTime, String> {
    let text = record[name]
        .as_str()
        .ok_or(format!("sample lacks {name}"))?;
    let at = super::rfc3339(text)?;
    Ok(super::unix_time(Some(at)))
}

fn attestation_op(record: Value) -> Result<Operation, String> {
    let bytes = field(&record, "attestation")?;
    let key_id = KeyId::from_slice(&field(&record, "key_id")?).ok_or("bad key id")?;
    let client_data_hash = hex::decode(record["client_data_hash"].as_str().unwrap_or_default())
        .map_err(|e| e.to_string())?;
    let app_ids =
        vec![AppId::new(record["app_id"].as_str().unwrap_or_default()).map_err(|e| e.to_string())?];
    let time = at(&record, "verify_at")?;
    let verifier = AttestationVerifier::apple();
    Ok(Box::new(move || {
        let mut request = AttestationRequest::new(key_id, &client_data_hash, &app_ids, time);
        request.environment = EnvironmentPolicy::Any;
        verifier.verify(&bytes, &request).is_ok()
    }))
}

fn assertion_op(record: Value) -> Result<Operation, String> {
    let bytes = field(&record, "assertion")?;
    let public_key = CredentialPublicKey::from_spki(&field(&record, "public_key")?)
        .map_err(|e| e.to_string())?;
    let client_data = field(&record, "client_data")?;
    let app_ids =
        vec![AppId::new(record["app_id"].as_str().unwrap_or_default()).map_err(|e| e.to_string())?];
    Ok(Box::new(move || {
        // The client data hash is part of each request's work.
        let client_data_hash = hash_client_data(&client_data);
        let request = AssertionRequest {
            public_key: &public_key,
            client_data_hash: &client_data_hash,
            app_ids: &app_ids,
            previous_counter: 0,
        };
        verify_assertion(&bytes, &request).is_ok()
    }))
}

fn receipt_op(record: Value) -> Result<Operation, String> {
    let bytes = field(&record, "receipt")?;
    let time = at(&record, "verify_at")?;
    let verifier = ReceiptVerifier::apple();
    Ok(Box::new(move || verifier.verify(&bytes, time).is_ok()))
}
