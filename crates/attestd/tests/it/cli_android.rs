//! Every Android Key Attestation record passes through `attestd verify
//! android-key-attestation` with exactly its expected code and exit status, under the flags the
//! record implies (and the `expect_if_*` variants under `--require-verified-boot` /
//! `--allow-attest-key`); the input and usage errors exit with 2; `attestd inspect` explains a
//! chain.

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/android")
}

fn records() -> Vec<(PathBuf, Value)> {
    let mut paths: Vec<_> = std::fs::read_dir(data_dir().join("key_attestation"))
        .unwrap()
        .map(|e| e.unwrap().path())
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

fn record(id: &str) -> (PathBuf, Value) {
    records()
        .into_iter()
        .find(|(_, r)| r["id"] == id)
        .unwrap_or_else(|| panic!("no record {id}"))
}

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn report(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|_| {
            panic!(
                "not JSON (exit {}): {} {}",
                self.status, self.stdout, self.stderr
            )
        })
    }
}

fn attestd<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_attestd"))
        .args(args)
        .output()
        .unwrap();
    Run {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
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

/// `None` for valid, else the expected code.
fn expected_code(expect: &Value) -> Option<&'static str> {
    if expect["valid"].as_bool().unwrap() {
        None
    } else {
        Some(code_for(expect["failure"].as_str().unwrap()))
    }
}

/// The command line a record implies: its challenge, package, digests, time, list and policy.
fn record_args(path: &Path, record: &Value) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "verify".into(),
        "android-key-attestation".into(),
        "--json".into(),
    ];
    if let Some(challenge) = record["challenge"].as_str() {
        args.extend(["--challenge-b64".into(), challenge.into()]);
    }
    if let Some(package) = record["package_name"].as_str() {
        args.extend(["--package".into(), package.into()]);
        for d in record["signature_digests"].as_array().unwrap() {
            args.extend(["--signature-digest".into(), d.as_str().unwrap().into()]);
        }
    }
    args.extend(["--at".into(), record["verify_at"].as_str().unwrap().into()]);
    if let Some(list) = record["revocation_list"].as_str() {
        let list = data_dir().join(list);
        args.extend(["--revocation-list".into(), list.to_str().unwrap().into()]);
    }
    if record["policy"]["allow_attest_key"] == true {
        args.push("--allow-attest-key".into());
    }
    args.push(path.to_str().unwrap().into());
    args
}

fn check(id: &str, what: &str, run: &Run, want: Option<&str>, failures: &mut Vec<String>) {
    let Ok(report) = serde_json::from_str::<Value>(&run.stdout) else {
        failures.push(format!(
            "{id} ({what}): not JSON (exit {}): {} {}",
            run.status, run.stdout, run.stderr
        ));
        return;
    };
    match want {
        None if run.status != 0 || report["valid"] != true => {
            failures.push(format!(
                "{id} ({what}): expected valid, got exit {}: {report}",
                run.status
            ));
        }
        Some(code) if run.status != 1 || report["valid"] != false || report["code"] != code => {
            failures.push(format!(
                "{id} ({what}): expected {code}, got exit {}: {report}",
                run.status
            ));
        }
        _ => {}
    }
}

/// A valid record's JSON facts are those the vectors' independent checker read.
fn check_facts(id: &str, record: &Value, report: &Value, failures: &mut Vec<String>) {
    let facts = &record["facts"];
    let leaf = B64.decode(record["x5c"][0].as_str().unwrap()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    let key_id = B64.encode(digest(&SHA256, cert.public_key().raw));
    let provisioning = match facts["provisioning"].as_str().unwrap() {
        "rkp" => "remote",
        other => other,
    };
    let packages: Vec<&Value> = facts["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    let reported_packages: Vec<&Value> = report["packages"]
        .as_array()
        .map(|p| p.iter().map(|p| &p["name"]).collect())
        .unwrap_or_default();
    let mut mismatch = |what: &str, ok: bool| {
        if !ok {
            failures.push(format!("{id}: {what} differs: {report}"));
        }
    };
    mismatch("keyId", report["keyId"] == key_id.as_str());
    mismatch("provisioning", report["provisioning"] == provisioning);
    mismatch(
        "attestationVersion",
        report["attestationVersion"] == facts["attestation_version"],
    );
    mismatch("osVersion", report["osVersion"] == facts["os_version"]);
    mismatch(
        "osPatchLevel",
        report["osPatchLevel"] == facts["os_patch_level"],
    );
    mismatch("packages", reported_packages == packages);
    mismatch(
        "signingDigests",
        report["signingDigests"] == facts["signature_digests"],
    );
    mismatch(
        "deviceLocked",
        report["deviceLocked"] == facts["root_of_trust"]["deviceLocked"],
    );
    mismatch(
        "anchor",
        report["anchor"]
            .as_str()
            .is_some_and(|a| a.starts_with("google_")),
    );
}

#[test]
fn every_key_attestation_record_through_the_cli() {
    let mut failures = Vec::new();
    let mut valid = 0;
    let records = records();
    for (path, record) in &records {
        let id = record["id"].as_str().unwrap();
        let args = record_args(path, record);
        let want = expected_code(&record["expect"]);
        let run = attestd(&args);
        check(id, "reference policy", &run, want, &mut failures);
        if want.is_none() && run.status == 0 {
            valid += 1;
            check_facts(id, record, &run.report(), &mut failures);
        }

        let want_boot = record
            .get("expect_if_verified_boot_required")
            .map_or(want, expected_code);
        let mut strict = args.clone();
        strict.insert(2, "--require-verified-boot".into());
        check(
            id,
            "--require-verified-boot",
            &attestd(&strict),
            want_boot,
            &mut failures,
        );

        if let Some(expect) = record.get("expect_if_attest_key_allowed") {
            let mut allowed = args.clone();
            allowed.insert(2, "--allow-attest-key".into());
            check(
                id,
                "--allow-attest-key",
                &attestd(&allowed),
                expected_code(expect),
                &mut failures,
            );
        }
    }
    assert_eq!(records.len(), 61);
    assert_eq!(valid, 33);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A valid record, verified with its challenge and package: `(path, record, args)`.
fn blueline() -> (PathBuf, Value, Vec<String>) {
    let (path, record) = record("aka-blueline-sdk28-tee-ec-none");
    let args = record_args(&path, &record);
    (path, record, args)
}

/// `args` with the value after `flag` replaced.
fn with_value(args: &[String], flag: &str, value: &str) -> Vec<String> {
    let mut out = args.to_vec();
    let at = out.iter().position(|a| a == flag).unwrap();
    out[at + 1] = value.into();
    out
}

#[test]
fn a_pem_bundle_verifies_like_the_x5c_file() {
    let (path, record, args) = blueline();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("chain.pem");
    let mut text = String::new();
    for cert in record["x5c"].as_array().unwrap() {
        let body = cert.as_str().unwrap();
        text.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            text.push_str(std::str::from_utf8(line).unwrap());
            text.push('\n');
        }
        text.push_str("-----END CERTIFICATE-----\n");
    }
    std::fs::write(&pem, text).unwrap();
    let from_json = attestd(&args);
    let mut pem_args = args.clone();
    *pem_args.last_mut().unwrap() = pem.to_str().unwrap().into();
    let from_pem = attestd(&pem_args);
    assert_eq!(from_pem.status, 0, "{}", from_pem.stdout);
    assert_eq!(from_pem.report(), from_json.report());
    assert_eq!(from_pem.report()["valid"], true);
    let _ = path;
}

#[test]
fn leaving_out_the_challenge_package_and_list_skips_them_and_says_so() {
    let (path, record, _) = blueline();
    let skipped = attestd(&[
        "verify",
        "android-key-attestation",
        "--at",
        record["verify_at"].as_str().unwrap(),
        "--json",
        path.to_str().unwrap(),
    ]);
    assert_eq!(skipped.status, 0, "{}", skipped.stdout);
    let report = skipped.report();
    assert_eq!(
        report["checks"],
        json!({
            "challenge": "skipped",
            "package": "skipped",
            "signatureDigest": "skipped",
            "revocation": "skipped",
            "verifiedBoot": "skipped",
        })
    );

    let dir = tempfile::tempdir().unwrap();
    let empty_list = dir.path().join("status.json");
    std::fs::write(&empty_list, r#"{"entries": {}}"#).unwrap();
    let (_, _, args) = blueline();
    let mut all = args.clone();
    all.insert(2, "--revocation-list".into());
    all.insert(3, empty_list.to_str().unwrap().into());
    all.insert(2, "--require-verified-boot".into());
    let checked = attestd(&all);
    // The blueline device is unlocked: with every check on, the boot state refuses it.
    assert_eq!(checked.report()["code"], "verified_boot_required");
    all.remove(2);
    let checked = attestd(&all);
    assert_eq!(checked.status, 0, "{}", checked.stdout);
    assert_eq!(
        checked.report()["checks"],
        json!({
            "challenge": "checked",
            "package": "checked",
            "signatureDigest": "checked",
            "revocation": "checked",
            "verifiedBoot": "skipped",
        })
    );
}

#[test]
fn a_wrong_package_or_signature_digest_is_a_package_mismatch() {
    let (_, _, args) = blueline();
    for wrong in [
        with_value(&args, "--package", "com.example.other"),
        with_value(&args, "--signature-digest", &B64.encode([7u8; 32])),
    ] {
        let run = attestd(&wrong);
        assert_eq!(run.status, 1, "{wrong:?}: {}", run.stdout);
        let report = run.report();
        assert_eq!(report["valid"], false);
        assert_eq!(report["code"], "package_mismatch", "{report}");
        assert!(report["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
}

#[test]
fn a_list_that_revokes_a_serial_of_the_chain_refuses_it() {
    let (_, record, args) = blueline();
    let serial = record["facts"]["serials_hex"][1].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("status.json");
    std::fs::write(
        &list,
        json!({"entries": {serial.to_uppercase(): {"status": "REVOKED", "reason": "KEY_COMPROMISE"}}})
            .to_string(),
    )
    .unwrap();
    let mut revoked = args.clone();
    revoked.insert(2, "--revocation-list".into());
    revoked.insert(3, list.to_str().unwrap().into());
    let run = attestd(&revoked);
    assert_eq!(run.status, 1, "{}", run.stdout);
    assert_eq!(run.report()["code"], "certificate_revoked");
    assert!(run.report()["reason"].as_str().unwrap().contains(serial));
}

#[test]
fn input_and_usage_errors_exit_with_2() {
    let (path, record, args) = blueline();
    let dir = tempfile::tempdir().unwrap();
    let bad_x5c = dir.path().join("bad-x5c.json");
    std::fs::write(&bad_x5c, r#"{"x5c": ["not base64!", "AAAA"]}"#).unwrap();
    let no_x5c = dir.path().join("no-x5c.json");
    std::fs::write(&no_x5c, r#"{"chain": []}"#).unwrap();
    let neither = dir.path().join("chain.txt");
    std::fs::write(&neither, "hello").unwrap();
    let bad_list = dir.path().join("bad-list.json");
    std::fs::write(&bad_list, r#"{"entries": []}"#).unwrap();
    let chain_at = |file: &Path| {
        let mut a = args.clone();
        *a.last_mut().unwrap() = file.to_str().unwrap().into();
        a
    };
    let mut with_bad_list = args.clone();
    with_bad_list.insert(2, "--revocation-list".into());
    with_bad_list.insert(3, bad_list.to_str().unwrap().into());
    let mut without_package = vec![
        "verify".to_owned(),
        "android-key-attestation".into(),
        "--signature-digest".into(),
        B64.encode([1u8; 32]),
    ];
    without_package.extend(["--at".into(), record["verify_at"].as_str().unwrap().into()]);
    without_package.push(path.to_str().unwrap().into());
    let mut without_at = args.clone();
    let at = without_at.iter().position(|a| a == "--at").unwrap();
    without_at.drain(at..at + 2);

    for (what, case) in [
        (
            "bad --challenge-b64",
            with_value(&args, "--challenge-b64", "%%%"),
        ),
        (
            "bad --signature-digest",
            with_value(&args, "--signature-digest", "!!"),
        ),
        (
            "short --signature-digest",
            with_value(&args, "--signature-digest", "AAAA"),
        ),
        ("bad base64 in x5c", chain_at(&bad_x5c)),
        ("JSON without x5c", chain_at(&no_x5c)),
        ("neither JSON nor PEM", chain_at(&neither)),
        ("missing file", chain_at(&dir.path().join("missing.json"))),
        ("bad --at", with_value(&args, "--at", "yesterday")),
        ("no --at", without_at),
        ("--signature-digest without --package", without_package),
        ("a status list of the wrong shape", with_bad_list),
    ] {
        let run = attestd(&case);
        assert_eq!(run.status, 2, "{what}: {} {}", run.stdout, run.stderr);
        assert!(
            !run.stderr.trim().is_empty(),
            "{what}: no message on stderr"
        );
    }
}

#[test]
fn inspect_explains_an_android_chain_and_its_key_description() {
    let (path, record, _) = blueline();
    let run = attestd(&["inspect", path.to_str().unwrap()]);
    assert_eq!(run.status, 0, "{} {}", run.stdout, run.stderr);
    for expected in [
        "Android Key Attestation chain",
        "KeyDescription",
        "attestationVersion",
        record["package_name"].as_str().unwrap(),
        "verifiedBootState",
        "attestd verify android-key-attestation",
    ] {
        assert!(
            run.stdout.contains(expected),
            "{expected:?} missing:\n{}",
            run.stdout
        );
    }
}
