//! Every SafetyNet record passes through `attestd verify safetynet` with exactly its expected
//! code and exit status (the record file itself, and its bare JWS); a valid one reports its
//! facts and never hardware backing; input and usage errors exit with 2.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/android/safetynet")
}

fn records() -> Vec<(PathBuf, Value)> {
    let mut paths: Vec<_> = std::fs::read_dir(data_dir())
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
        "signature" => "signature_invalid",
        "chain" => "certificate_chain_invalid",
        "hostname" => "hostname_mismatch",
        "expired" => "certificate_expired",
        "nonce" => "nonce_mismatch",
        "package" => "package_mismatch",
        other => panic!("unknown failure name {other}"),
    }
}

/// The nonce a record expects; the two records published without their clientDataJSON use the
/// payload's own (see the core's `safetynet_vectors.rs`).
fn nonce(record: &Value) -> &str {
    record["expected_nonce"]
        .as_str()
        .or_else(|| record["facts"]["payload"]["nonce"].as_str())
        .unwrap()
}

fn args(record: &Value, file: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "verify".into(),
        "safetynet".into(),
        "--nonce".into(),
        nonce(record).into(),
    ];
    if let Some(package) = record["package_name"].as_str() {
        args.extend(["--package".into(), package.into()]);
    }
    args.extend([
        "--at".into(),
        record["verify_at"].as_str().unwrap().into(),
        "--json".into(),
        file.to_str().unwrap().into(),
    ]);
    args
}

#[test]
fn every_safetynet_record_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let records = records();
    assert_eq!(records.len(), 9);
    let mut failures = Vec::new();
    for (path, record) in &records {
        let id = record["id"].as_str().unwrap();
        let bare = dir.path().join(format!("{id}.jws"));
        std::fs::write(&bare, format!("{}\n", record["jws"].as_str().unwrap())).unwrap();
        let expect = &record["expect"];
        for file in [path.as_path(), bare.as_path()] {
            let run = attestd(&args(record, file));
            let report = run.report();
            if expect["valid"] == true {
                if run.status != 0 || report["valid"] != true {
                    failures.push(format!("{id}: expected valid, got {}", run.stdout));
                    continue;
                }
                let facts = &record["facts"]["payload"];
                for (key, want) in [
                    ("nonce", &facts["nonce"]),
                    ("timestampMs", &facts["timestampMs"]),
                    ("apkPackageName", &facts["apkPackageName"]),
                    ("apkDigestSha256", &facts["apkDigestSha256"]),
                    (
                        "apkCertificateDigestSha256",
                        &facts["apkCertificateDigestSha256"],
                    ),
                    ("ctsProfileMatch", &facts["ctsProfileMatch"]),
                    ("basicIntegrity", &facts["basicIntegrity"]),
                ] {
                    if &report[key] != want {
                        failures.push(format!("{id}: {key} {} != {want}", report[key]));
                    }
                }
                if report["hardwareBacked"] != false || report["legacy"] != true {
                    failures.push(format!("{id}: claims hardware backing or not legacy"));
                }
                if report["checks"]["package"] != "checked" {
                    failures.push(format!("{id}: package not checked"));
                }
            } else {
                let code = code_for(expect["failure"].as_str().unwrap());
                if run.status != 1 || report["valid"] != false || report["code"] != code {
                    failures.push(format!(
                        "{id}: expected exit 1 with {code}, got exit {}: {}",
                        run.status, run.stdout
                    ));
                }
                if !report["reason"].is_string() {
                    failures.push(format!("{id}: no reason"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn without_package_the_check_is_skipped_and_text_output_says_legacy() {
    let (path, record) = records()
        .into_iter()
        .find(|(_, r)| r["id"] == "pywebauthn-safetynet-2021")
        .unwrap();
    let run = attestd(&[
        "verify",
        "safetynet",
        "--nonce",
        nonce(&record),
        "--at",
        record["verify_at"].as_str().unwrap(),
        "--json",
        path.to_str().unwrap(),
    ]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let report = run.report();
    assert_eq!(report["checks"]["package"], "skipped");
    assert_eq!(report["anchor"], "globalsign_root_ca");
    assert_eq!(report["timestamp"], "2021-09-03T21:07:20.057Z");

    let text = attestd(&[
        "verify",
        "safetynet",
        "--nonce",
        nonce(&record),
        "--at",
        record["verify_at"].as_str().unwrap(),
        path.to_str().unwrap(),
    ]);
    assert_eq!(text.status, 0);
    assert!(text.stdout.starts_with("valid safetynet response (legacy"));
}

#[test]
fn garbage_is_refused_with_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("garbage.jws");
    std::fs::write(&file, "not.a.jws").unwrap();
    let run = attestd(&[
        "verify",
        "safetynet",
        "--nonce",
        "bm9uY2U=",
        "--at",
        "2021-01-01T00:00:00Z",
        "--json",
        file.to_str().unwrap(),
    ]);
    assert_eq!(run.status, 1, "{}", run.stderr);
    assert_eq!(run.report()["code"], "malformed");
}

#[test]
fn input_and_usage_errors_exit_with_2() {
    let (path, record) = records().into_iter().next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let no_jws = dir.path().join("no-jws.json");
    std::fs::write(&no_jws, r#"{"token": "a.b.c"}"#).unwrap();
    let empty = dir.path().join("empty.jws");
    std::fs::write(&empty, "\n").unwrap();
    let path = path.to_str().unwrap();
    let at = record["verify_at"].as_str().unwrap();
    for (what, case) in [
        (
            "missing file",
            vec!["--nonce", "bm9uY2U=", "--at", at, "/no/such/file"],
        ),
        (
            "no jws member",
            vec!["--nonce", "bm9uY2U=", "--at", at, no_jws.to_str().unwrap()],
        ),
        (
            "empty file",
            vec!["--nonce", "bm9uY2U=", "--at", at, empty.to_str().unwrap()],
        ),
        ("empty nonce", vec!["--nonce", "", "--at", at, path]),
        ("no --nonce", vec!["--at", at, path]),
        ("no --at", vec!["--nonce", "bm9uY2U=", path]),
        (
            "bad --at",
            vec!["--nonce", "bm9uY2U=", "--at", "yesterday", path],
        ),
        ("no file", vec!["--nonce", "bm9uY2U=", "--at", at]),
    ] {
        let mut args = vec!["verify", "safetynet", "--json"];
        args.extend(case);
        let run = attestd(&args);
        assert_eq!(run.status, 2, "{what}: {} {}", run.stdout, run.stderr);
    }
}
