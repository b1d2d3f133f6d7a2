//! Every real receipt in `tests/data/apple` verifies (or fails) exactly as its record says, and
//! decodes to the record's fields.

use std::path::{Path, PathBuf};
use std::time::Duration;

use attest_core::UnixTime;
use attest_core::apple::ValidityFailure;
use attest_core::apple::receipt::{
    ReceiptError, ReceiptType, ReceiptVerifier, SignatureForm, parse_receipt,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/apple");

fn records(kind: &str) -> Vec<(PathBuf, Value)> {
    let dir = Path::new(DATA).join(kind);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let record = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p, record)
        })
        .collect()
}

fn b64(value: &Value) -> Vec<u8> {
    B64.decode(value.as_str().expect("base64 string"))
        .expect("valid base64")
}

fn time(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().expect("time string"), &Rfc3339).expect("RFC 3339")
}

fn opt_time(value: Option<&Value>) -> Option<OffsetDateTime> {
    value.filter(|v| !v.is_null()).map(time)
}

fn unix(t: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(t.unix_timestamp()).unwrap(),
    ))
}

#[test]
fn every_receipt_record_verifies_as_expected_at_verify_at() {
    let verifier = ReceiptVerifier::apple();
    let records = records("receipts");
    assert_eq!(records.len(), 28, "the set has 28 receipt records");
    let (mut standard, mut legacy, mut negative) = (0, 0, 0);
    for (path, record) in &records {
        let id = path.file_stem().unwrap().to_string_lossy();
        let bytes = b64(&record["receipt"]);
        let at = unix(time(&record["verify_at"]));
        let expect = &record["expect"];
        let result = verifier.verify(&bytes, at);
        if expect["cms_valid"] == Value::Bool(true) {
            let verified = result.unwrap_or_else(|e| panic!("{id}: {e:?}"));
            let parsed = parse_receipt(&bytes).unwrap();
            let form = if parsed.has_signed_attributes() {
                SignatureForm::SignedAttributes
            } else {
                SignatureForm::Content
            };
            assert_eq!(verified.signature_form, form, "{id}");
            standard += 1;
        } else if expect["econtent_signature_valid"] == Value::Bool(true) {
            let verified = result.unwrap_or_else(|e| panic!("{id}: {e:?}"));
            assert_eq!(
                verified.signature_form,
                SignatureForm::LegacyContentWithSignedAttributes,
                "{id}"
            );
            legacy += 1;
        } else {
            assert!(id.ends_with("-late"), "{id}: unexpected negative record");
            assert_eq!(
                result,
                Err(ReceiptError::CertificateExpired(ValidityFailure::Expired)),
                "{id}"
            );
            assert_eq!(result.unwrap_err().reason(), "receipt_certificate_expired");
            negative += 1;
        }
    }
    assert_eq!((standard, legacy, negative), (22, 5, 1));
}

#[test]
fn every_receipt_record_decodes_to_its_fields() {
    for (path, record) in records("receipts") {
        let id = path.file_stem().unwrap().to_string_lossy().into_owned();
        let parsed =
            parse_receipt(&b64(&record["receipt"])).unwrap_or_else(|e| panic!("{id}: {e:?}"));
        let receipt = parsed.receipt();
        let fields = &record["fields"];
        assert_eq!(receipt.app_id, fields["app_id"].as_str().unwrap(), "{id}");
        assert_eq!(
            receipt.receipt_type.as_str(),
            fields["type"].as_str().unwrap(),
            "{id}"
        );
        let expected_type = match fields["type"].as_str().unwrap() {
            "ATTEST" => ReceiptType::Attest,
            "RECEIPT" => ReceiptType::Receipt,
            other => panic!("{id}: unexpected type {other}"),
        };
        assert_eq!(receipt.receipt_type, expected_type, "{id}");
        assert_eq!(
            receipt.environment.as_deref(),
            fields.get("environment").and_then(Value::as_str),
            "{id}"
        );
        assert_eq!(
            receipt.creation_time,
            time(&fields["creation_time"]),
            "{id}"
        );
        assert_eq!(
            receipt.not_before,
            opt_time(fields.get("not_before")),
            "{id}"
        );
        assert_eq!(
            receipt.expiration_time,
            opt_time(fields.get("expiration_time")),
            "{id}"
        );
        assert_eq!(
            receipt.risk_metric.map(u64::from),
            fields["risk_metric"].as_u64(),
            "{id}"
        );
        assert_eq!(fields["public_key_format"], "x509-certificate-der", "{id}");
        assert_eq!(
            receipt.attested_certificate,
            b64(&fields["public_key"]),
            "{id}"
        );
        assert_eq!(receipt.client_hash, b64(&fields["client_hash"]), "{id}");
        assert_eq!(receipt.token, fields["token"].as_str().unwrap(), "{id}");
        // Field 3 is the credential certificate; its SPKI is what an attestation compares.
        let spki = receipt
            .attested_public_key()
            .expect("field 3 is a certificate");
        assert_eq!(spki.first(), Some(&0x30), "{id}");
    }
}

#[test]
fn late_receipt_still_verifies_at_its_creation_time() {
    let verifier = ReceiptVerifier::apple();
    for (path, record) in records("receipts") {
        let id = path.file_stem().unwrap().to_string_lossy().into_owned();
        let bytes = b64(&record["receipt"]);
        let latest = unix(time(&record["verify_at"]));
        let verified = verifier
            .verify_at_creation(&bytes, latest, 0)
            .unwrap_or_else(|e| panic!("{id}: {e:?}"));
        assert_eq!(
            verified.receipt.creation_time,
            time(&record["fields"]["creation_time"])
        );
    }
}

#[test]
fn receipt_created_after_the_latest_allowed_time_is_rejected() {
    let verifier = ReceiptVerifier::apple();
    let (_, record) = records("receipts")
        .into_iter()
        .find(|(p, _)| p.ends_with("veehaitch-ios14-4-dev-2021-receipt-r1.json"))
        .unwrap();
    let bytes = b64(&record["receipt"]);
    let created = time(&record["fields"]["creation_time"]);
    let before = unix(created - time::Duration::minutes(10));
    assert_eq!(
        verifier.verify_at_creation(&bytes, before, 300).map(|_| ()),
        Err(ReceiptError::CreatedInFuture)
    );
    // Within the allowed skew it verifies.
    assert!(verifier.verify_at_creation(&bytes, before, 600).is_ok());
}

/// `attStmt.receipt` of a CBOR attestation object (a tiny walk: map of text keys).
fn embedded_receipt(attestation: &[u8]) -> Option<Vec<u8>> {
    let mut d = minicbor::Decoder::new(attestation);
    let entries = d.map().ok()??;
    for _ in 0..entries {
        if d.str().ok()? == "attStmt" {
            let statement_entries = d.map().ok()??;
            for _ in 0..statement_entries {
                if d.str().ok()? == "receipt" {
                    return Some(d.bytes().ok()?.to_vec());
                }
                d.skip().ok()?;
            }
            return None;
        }
        d.skip().ok()?;
    }
    None
}

#[test]
fn every_embedded_attest_receipt_parses_and_verifies_at_its_creation_time() {
    let verifier = ReceiptVerifier::apple();
    let mut checked = 0;
    for (path, record) in records("attestations") {
        let id = path.file_stem().unwrap().to_string_lossy().into_owned();
        let summary = &record["receipt"];
        let Some(bytes) = embedded_receipt(&b64(&record["attestation"])) else {
            assert!(summary.is_null(), "{id}: receipt summary but no receipt");
            continue;
        };
        let parsed = parse_receipt(&bytes).unwrap_or_else(|e| panic!("{id}: {e:?}"));
        let receipt = parsed.receipt();
        assert_eq!(receipt.receipt_type, ReceiptType::Attest, "{id}");
        assert_eq!(
            receipt.receipt_type.as_str(),
            summary["type"].as_str().unwrap(),
            "{id}"
        );
        assert_eq!(
            receipt.environment.as_deref(),
            summary["environment"].as_str(),
            "{id}"
        );
        assert_eq!(
            receipt.creation_time,
            time(&summary["creation_time"]),
            "{id}"
        );
        if let Some(public_key) = record["public_key"].as_str() {
            assert_eq!(
                receipt.attested_public_key(),
                Some(B64.decode(public_key).unwrap()),
                "{id}"
            );
        }

        let latest = unix(time(&record["verify_at"]));
        let verified = verifier
            .verify_at_creation(&bytes, latest, 0)
            .unwrap_or_else(|e| panic!("{id}: {e:?}"));
        let expected_form = if summary["cms_verifies"] == Value::Bool(true) {
            if parsed.has_signed_attributes() {
                SignatureForm::SignedAttributes
            } else {
                SignatureForm::Content
            }
        } else {
            assert_eq!(
                summary["econtent_signature_verifies"],
                Value::Bool(true),
                "{id}"
            );
            SignatureForm::LegacyContentWithSignedAttributes
        };
        assert_eq!(verified.signature_form, expected_form, "{id}");
        checked += 1;
    }
    assert_eq!(checked, 36);
}

#[test]
#[ignore = "timing; run with --ignored --nocapture"]
fn receipt_verification_throughput() {
    let verifier = ReceiptVerifier::apple();
    let (_, record) = records("receipts")
        .into_iter()
        .find(|(p, _)| p.ends_with("veehaitch-ios14-4-dev-2021-receipt-r1.json"))
        .unwrap();
    let bytes = b64(&record["receipt"]);
    let at = unix(time(&record["verify_at"]));
    verifier.verify(&bytes, at).unwrap();
    let n = 2000;
    let start = std::time::Instant::now();
    for _ in 0..n {
        verifier.verify(&bytes, at).unwrap();
    }
    let per_sec = f64::from(n) / start.elapsed().as_secs_f64();
    let start = std::time::Instant::now();
    for _ in 0..n {
        parse_receipt(&bytes).unwrap();
    }
    let parse_per_sec = f64::from(n) / start.elapsed().as_secs_f64();
    println!("verify (cached chain): {per_sec:.0}/s; parse only: {parse_per_sec:.0}/s");
}
