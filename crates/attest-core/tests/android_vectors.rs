//! Every real Key Attestation record in `tests/data/android` gives exactly its expected result
//! (`expect`, and `expect_if_verified_boot_required` / `expect_if_attest_key_allowed` under
//! those policies), each verified at its own `verify_at` against Google's pinned keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use attest_core::UnixTime;
use attest_core::android::{
    AndroidError, AndroidPolicy, AndroidRequest, AndroidVerifier, ExpectedApp, Provisioning,
    Revocation, RevocationList, SecurityLevel, TrustAnchor, VerifiedAndroidKey, VerifiedBootState,
};
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/android")
}

fn records() -> Vec<Value> {
    let mut paths: Vec<_> = std::fs::read_dir(data_dir().join("key_attestation"))
        .unwrap()
        .map(|e| e.unwrap().path())
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
    UnixTime::since_unix_epoch(Duration::from_secs(at.unix_timestamp() as u64))
}

/// The vector set's failure names, as attestd's stable codes.
fn code_for(failure: &str) -> &'static str {
    match failure {
        "format" => "malformed",
        "chain" => "certificate_chain_invalid",
        "software_root" => "software_root",
        "extension" => "key_description_missing",
        "chain_extended" => "chain_extended",
        "expired" => "certificate_expired",
        "revoked" => "certificate_revoked",
        "challenge" => "challenge_mismatch",
        "security_level" => "security_level_insufficient",
        "origin" => "key_origin_invalid",
        "root_of_trust" => "root_of_trust_missing",
        "package" => "package_mismatch",
        "boot_state" => "verified_boot_required",
        other => panic!("unknown failure name {other}"),
    }
}

fn expected_code(expect: &Value) -> Option<&'static str> {
    if expect["valid"].as_bool().unwrap() {
        None
    } else {
        Some(code_for(expect["failure"].as_str().unwrap()))
    }
}

struct Case {
    chain: Vec<Vec<u8>>,
    challenge: Option<Vec<u8>>,
    app: Option<ExpectedApp>,
    list: Option<RevocationList>,
    policy: AndroidPolicy,
    time: UnixTime,
}

impl Case {
    fn of(record: &Value) -> Self {
        let at = time(&record["verify_at"]);
        let app = record["package_name"].as_str().map(|name| ExpectedApp {
            package_names: vec![name.to_owned()],
            signing_digests: Some(
                record["signature_digests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| b64(d).try_into().unwrap())
                    .collect(),
            ),
        });
        let list = record["revocation_list"].as_str().map(|path| {
            RevocationList::parse(&std::fs::read(data_dir().join(path)).unwrap(), at).unwrap()
        });
        let policy = AndroidPolicy {
            allow_attest_key: record["policy"]["allow_attest_key"]
                .as_bool()
                .unwrap_or(false),
            ..AndroidPolicy::default()
        };
        Self {
            chain: record["x5c"].as_array().unwrap().iter().map(b64).collect(),
            challenge: record.get("challenge").map(b64),
            app,
            list,
            policy,
            time: at,
        }
    }

    fn run(
        &self,
        verifier: &AndroidVerifier,
        policy: AndroidPolicy,
    ) -> Result<VerifiedAndroidKey, AndroidError> {
        let chain: Vec<&[u8]> = self.chain.iter().map(Vec::as_slice).collect();
        let request = AndroidRequest {
            challenge: self.challenge.as_deref(),
            app: self.app.as_ref(),
            policy,
            revocation: match &self.list {
                Some(list) => Revocation::Check {
                    list,
                    max_age: Duration::from_secs(24 * 3600),
                },
                None => Revocation::Skip,
            },
            time: self.time,
        };
        verifier.verify(&chain, &request)
    }
}

fn check(
    id: &str,
    what: &str,
    result: &Result<VerifiedAndroidKey, AndroidError>,
    want: Option<&str>,
) {
    match (result, want) {
        (Ok(_), None) => {}
        (Err(e), Some(code)) => assert_eq!(e.code(), code, "{id} ({what}): {e}"),
        (Ok(_), Some(code)) => panic!("{id} ({what}): valid, expected {code}"),
        (Err(e), None) => panic!("{id} ({what}): {} ({e}), expected valid", e.code()),
    }
}

/// The verified key's evidence is what the vectors' checker read from the same bytes.
fn check_facts(id: &str, record: &Value, key: &VerifiedAndroidKey) {
    let facts = &record["facts"];
    let leaf = b64(&record["x5c"][0]);
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    assert_eq!(key.public_key(), cert.public_key().raw, "{id}");
    assert_eq!(
        key.key_id().as_slice(),
        digest(&SHA256, cert.public_key().raw).as_ref(),
        "{id}"
    );
    let level = |l: SecurityLevel| match l {
        SecurityLevel::TrustedEnvironment => "TRUSTED_ENVIRONMENT",
        SecurityLevel::StrongBox => "STRONG_BOX",
        SecurityLevel::Software => "SOFTWARE",
        SecurityLevel::Unknown(_) => "UNKNOWN",
    };
    assert_eq!(
        level(key.attestation_security_level()),
        facts["attestation_security_level"],
        "{id}"
    );
    assert_eq!(
        level(key.keymint_security_level()),
        facts["keymint_security_level"],
        "{id}"
    );
    assert_eq!(
        key.attestation_version(),
        facts["attestation_version"].as_u64().unwrap(),
        "{id}"
    );
    let rot = &facts["root_of_trust"];
    let state = match key.verified_boot_state().unwrap() {
        VerifiedBootState::Verified => "VERIFIED",
        VerifiedBootState::SelfSigned => "SELF_SIGNED",
        VerifiedBootState::Unverified => "UNVERIFIED",
        VerifiedBootState::Failed => "FAILED",
        VerifiedBootState::Unknown(_) => "UNKNOWN",
    };
    assert_eq!(state, rot["verifiedBootState"], "{id}");
    assert_eq!(
        Some(rot["deviceLocked"].as_bool().unwrap()),
        key.device_locked(),
        "{id}"
    );
    assert_eq!(
        key.verified_boot_key().unwrap(),
        b64(&rot["verifiedBootKey"]),
        "{id}"
    );
    assert_eq!(key.os_version(), facts["os_version"].as_u64(), "{id}");
    assert_eq!(
        key.os_patch_level(),
        facts["os_patch_level"].as_u64(),
        "{id}"
    );
    assert_eq!(
        key.vendor_patch_level(),
        facts["vendor_patch_level"].as_u64(),
        "{id}"
    );
    assert_eq!(
        key.boot_patch_level(),
        facts["boot_patch_level"].as_u64(),
        "{id}"
    );
    let packages: Vec<&str> = facts["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(key.package_names(), packages, "{id}");
    let digests: Vec<Vec<u8>> = facts["signature_digests"]
        .as_array()
        .unwrap()
        .iter()
        .map(b64)
        .collect();
    assert_eq!(
        key.signing_digests(),
        digests.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        "{id}"
    );
    let provisioning = match key.provisioning() {
        Provisioning::Factory => "factory",
        Provisioning::Remote => "rkp",
        Provisioning::Unknown => "unknown",
    };
    assert_eq!(provisioning, facts["provisioning"], "{id}");
    let anchor = match key.anchor() {
        TrustAnchor::GoogleRsa => "google_root_rsa_2022.pem",
        TrustAnchor::GoogleKeyAttestationCa1 => "google_key_attestation_ca1_2025.pem",
        other => panic!("{id}: anchor {other:?}"),
    };
    assert!(
        facts["anchor"].as_str().unwrap().starts_with(anchor),
        "{id}"
    );
    let serials: Vec<&str> = facts["serials_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(key.serials(), &serials[..key.serials().len()], "{id}");
    assert!(key.challenge_checked() && key.app_checked(), "{id}");

    // The evidence kept with the key says the same as the accessors.
    let evidence = key.evidence();
    assert_eq!(evidence.package_names, packages, "{id}");
    assert_eq!(evidence.signing_digests, digests, "{id}");
    assert_eq!(evidence.provisioning, key.provisioning(), "{id}");
    assert_eq!(evidence.anchor, key.anchor(), "{id}");
    assert_eq!(
        evidence.keymint_security_level,
        key.keymint_security_level(),
        "{id}"
    );
    assert_eq!(
        evidence.verified_boot_state,
        key.verified_boot_state(),
        "{id}"
    );
    assert_eq!(evidence.device_locked, key.device_locked(), "{id}");
    assert_eq!(evidence.os_patch_level, key.os_patch_level(), "{id}");
    assert_eq!(
        evidence.attestation_version,
        key.attestation_version(),
        "{id}"
    );
}

#[test]
fn every_key_attestation_record_gives_its_expected_result() {
    let verifier = AndroidVerifier::google();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    // Twice: cold, then with every intermediate edge cached; the answers must not change.
    for round in 0..2 {
        for record in records() {
            let id = record["id"].as_str().unwrap();
            let case = Case::of(&record);
            let want = expected_code(&record["expect"]);
            let result = case.run(&verifier, case.policy);
            check(id, "reference policy", &result, want);
            if let Ok(key) = &result {
                check_facts(id, &record, key);
            }
            if round == 0 {
                *outcomes
                    .entry(want.unwrap_or("valid").to_owned())
                    .or_default() += 1;
                total += 1;
            }

            let strict_boot = AndroidPolicy {
                require_verified_boot: true,
                ..case.policy
            };
            let want_boot = record
                .get("expect_if_verified_boot_required")
                .map_or(want, expected_code);
            check(
                id,
                "verified boot required",
                &case.run(&verifier, strict_boot),
                want_boot,
            );

            if let Some(expect) = record.get("expect_if_attest_key_allowed") {
                let attest_key = AndroidPolicy {
                    allow_attest_key: true,
                    ..case.policy
                };
                check(
                    id,
                    "ATTEST_KEY allowed",
                    &case.run(&verifier, attest_key),
                    expected_code(expect),
                );
            }
        }
    }
    eprintln!("{total} records: {outcomes:?}");
    assert_eq!(total, 61);
    assert_eq!(outcomes["valid"], 33);
}

/// The ATTEST_KEY chain, once allowed, yields the leaf's key and counts the two attestation
/// keys between it and the device's attestation certificate.
#[test]
fn attest_key_chain_when_allowed() {
    let record = records()
        .into_iter()
        .find(|r| r["id"] == "gaka-rkp-attest-key-2023")
        .unwrap();
    let case = Case::of(&record);
    let policy = AndroidPolicy {
        allow_attest_key: true,
        ..AndroidPolicy::default()
    };
    let key = case.run(&AndroidVerifier::google(), policy).unwrap();
    assert_eq!(key.attest_key_certificates(), 2);
    assert_eq!(key.provisioning(), Provisioning::Remote);
    assert_eq!(key.serials().len(), 6);
}

/// The real TestDPC intermediate whose DER serial starts with a 00 sign byte is found in
/// Google's test status list, SUSPENDED, and SUSPENDED blocks.
#[test]
fn revocation_status_record() {
    let path = data_dir().join("revocation_status/warden-testdpc-suspended-intermediate.json");
    let record: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let der = b64(&record["certificate"]);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(
        hex::encode(cert.raw_serial()),
        record["serial_der_content_hex"]
    );
    let serial = attest_core::android::revocation::serial_hex(cert.raw_serial());
    assert_eq!(serial, record["serial_hex"].as_str().unwrap());
    let list_path = data_dir().join(record["revocation_list"].as_str().unwrap());
    let list = RevocationList::parse(&std::fs::read(list_path).unwrap(), UnixTime::now()).unwrap();
    let entry = list.lookup(&serial).unwrap();
    assert_eq!(entry.status.as_str(), record["expect"]["status"]);
    assert_eq!(entry.reason.as_deref(), record["expect"]["reason"].as_str());
    assert!(
        record["expect"]["blocked_by_default_policy"]
            .as_bool()
            .unwrap()
    );
}
