//! `attestd verify android-key-attestation`: an Android Key Attestation certificate chain,
//! offline, against Google's pinned root keys.
//!
//! ```sh
//! attestd verify android-key-attestation --challenge-b64 B64 --package com.example.app \
//!   --signature-digest B64 --at 2024-09-26T22:31:26Z --json chain.json
//! ```
//!
//! The checks are the core's (`attest_core::android`); this module only reads the inputs and
//! prints the outcome. Leaving out `--challenge-b64`, `--package` or `--revocation-list` skips
//! that check, and the output says so in `checks`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use attest_core::android::revocation::MAX_STATUS_LIST_LEN;
use attest_core::android::{
    AndroidError, AndroidPolicy, AndroidRequest, AndroidVerifier, ExpectedApp, Revocation,
    RevocationList, VerifiedAndroidKey, key_description::purpose,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::input::{self, InputError};
use super::{Outcome, rfc3339, unix_time};

/// The largest CHAIN file read: the core takes at most 16 certificates of 16 KiB
/// (`MAX_CHAIN_LEN`, `MAX_CERTIFICATE_LEN`), 256 KiB of DER, about 350 KiB as base64; a test
/// record with its `facts` stays well under this.
const MAX_CHAIN_FILE: u64 = 1024 * 1024;

/// The age the verifier allows the status list. The command line cannot know when a file was
/// fetched, so it takes the list as current at `--at` (its age is then zero): keeping the list
/// fresh is the caller's job, as it is the server's.
const LIST_MAX_AGE: Duration = Duration::ZERO;

#[derive(Debug, Args)]
pub struct AndroidKeyAttestationArgs {
    /// The expected attestationChallenge (standard base64). Without it the challenge is not
    /// checked, and the output says `"challenge": "skipped"`.
    #[arg(long = "challenge-b64", value_name = "B64")]
    pub challenge_b64: Option<String>,
    /// The expected package name. Without it the application is not checked.
    #[arg(long, value_name = "NAME")]
    pub package: Option<String>,
    /// SHA-256 of an allowed signing certificate (standard base64; repeatable, needs
    /// --package). The attested digests must be these or a non-empty subset of them.
    #[arg(long = "signature-digest", value_name = "B64", requires = "package")]
    pub signature_digests: Vec<String>,
    /// Verification time. Required: attestation certificates expire, captured chains must stay
    /// verifiable.
    #[arg(long, value_name = "RFC3339", value_parser = rfc3339)]
    pub at: OffsetDateTime,
    /// Google's attestation status list (the JSON of
    /// https://android.googleapis.com/attestation/status), taken as current at --at. Without
    /// it revocation is not checked.
    #[arg(long = "revocation-list", value_name = "FILE")]
    pub revocation_list: Option<PathBuf>,
    /// Accept ATTEST_KEY attestations between the leaf and the device's attestation
    /// certificate (Android 12+ app-provided attestation keys).
    #[arg(long)]
    pub allow_attest_key: bool,
    /// Require verifiedBootState VERIFIED on a locked device (`verified_boot_required`).
    #[arg(long)]
    pub require_verified_boot: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// The chain, leaf first: a JSON file `{"x5c": [base64 DER, ...]}` or a PEM bundle; `-`
    /// for stdin.
    #[arg(value_name = "CHAIN")]
    pub chain: String,
}

/// Runs the command: `Err` for input and usage errors (exit 2), otherwise the outcome.
pub fn run(args: &AndroidKeyAttestationArgs) -> Result<Outcome, InputError> {
    let chain = read_chain(&args.chain)?;
    let challenge = args
        .challenge_b64
        .as_deref()
        .map(|text| input::base64_arg("--challenge-b64", text))
        .transpose()?;
    let app = match &args.package {
        Some(name) => Some(ExpectedApp {
            package_names: vec![name.clone()],
            signing_digests: signing_digests(&args.signature_digests)?,
        }),
        None => None,
    };
    let time = unix_time(Some(args.at));
    let list = args
        .revocation_list
        .as_deref()
        .map(|path| revocation_list(path, time))
        .transpose()?;

    let request = AndroidRequest {
        challenge: challenge.as_deref(),
        app: app.as_ref(),
        policy: AndroidPolicy {
            require_verified_boot: args.require_verified_boot,
            allow_attest_key: args.allow_attest_key,
            ..AndroidPolicy::default()
        },
        revocation: match &list {
            Some(list) => Revocation::Check {
                list,
                max_age: LIST_MAX_AGE,
            },
            None => Revocation::Skip,
        },
        time,
    };
    let certificates: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    let result = AndroidVerifier::google().verify(&certificates, &request);
    let report = match result {
        Ok(key) => details(&key, args),
        // The caller's mistake, not the chain's: a usage error.
        Err(AndroidError::InvalidArgument(reason)) => {
            return Err(InputError::Argument {
                what: "arguments",
                reason: reason.to_owned(),
            });
        }
        Err(error) => return Ok(refused(&error, args.json)),
    };
    let mut full = json!({"valid": true, "code": null, "reason": null});
    if let (Value::Object(into), Value::Object(details)) = (&mut full, report) {
        into.extend(details);
    }
    let text = format!(
        "valid android key attestation\n{}",
        super::render_details(&full)
    );
    Ok(Outcome {
        json: args.json,
        report: full,
        valid: true,
        text,
    })
}

fn refused(error: &AndroidError, json: bool) -> Outcome {
    Outcome {
        json,
        report: json!({
            "valid": false,
            "code": error.code(),
            "reason": error.to_string(),
        }),
        valid: false,
        text: format!(
            "invalid android key attestation: {error} ({})",
            error.code()
        ),
    }
}

fn signing_digests(values: &[String]) -> Result<Option<Vec<[u8; 32]>>, InputError> {
    if values.is_empty() {
        return Ok(None);
    }
    values
        .iter()
        .map(|text| {
            let bytes = input::base64_arg("--signature-digest", text)?;
            <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| InputError::Argument {
                what: "--signature-digest",
                reason: format!("{text:?} is not a SHA-256 digest (32 bytes)"),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn revocation_list(path: &Path, time: attest_core::UnixTime) -> Result<RevocationList, InputError> {
    let display = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| InputError::Read(display.clone(), e))?;
    let mut bytes = Vec::new();
    file.take(MAX_STATUS_LIST_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| InputError::Read(display.clone(), e))?;
    RevocationList::parse(&bytes, time).map_err(|e| InputError::Argument {
        what: "--revocation-list",
        reason: format!("{display}: {e}"),
    })
}

/// Reads CHAIN (a file, or `-` for stdin) as DER certificates, leaf first.
pub fn read_chain(chain: &str) -> Result<Vec<Vec<u8>>, InputError> {
    let mut bytes = Vec::new();
    if chain == "-" {
        std::io::stdin()
            .take(MAX_CHAIN_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| InputError::Read("stdin".into(), e))?;
    } else {
        let file = std::fs::File::open(chain).map_err(|e| InputError::Read(chain.into(), e))?;
        file.take(MAX_CHAIN_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| InputError::Read(chain.into(), e))?;
    }
    if bytes.len() as u64 > MAX_CHAIN_FILE {
        return Err(InputError::TooLarge);
    }
    parse_chain(&bytes).unwrap_or_else(|| {
        Err(InputError::Argument {
            what: "CHAIN",
            reason: format!(
                "{chain} is neither a JSON object with an \"x5c\" array nor a PEM bundle"
            ),
        })
    })
}

/// The certificates of a chain file: `None` when it is neither a JSON object with an `x5c`
/// member nor PEM, `Some(Err)` when it is one of them but unreadable (bad base64, a broken PEM
/// block).
pub fn parse_chain(bytes: &[u8]) -> Option<Result<Vec<Vec<u8>>, InputError>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        let document = serde_json::from_str::<Value>(trimmed).ok()?;
        let x5c = document.get("x5c")?;
        let Some(x5c) = x5c.as_array() else {
            return Some(Err(InputError::Argument {
                what: "CHAIN",
                reason: "\"x5c\" is not an array".into(),
            }));
        };
        return Some(
            x5c.iter()
                .enumerate()
                .map(|(index, value)| {
                    value
                        .as_str()
                        .and_then(input::decode_base64)
                        .ok_or_else(|| InputError::Argument {
                            what: "CHAIN",
                            reason: format!("x5c[{index}] is not a base64 string"),
                        })
                })
                .collect(),
        );
    }
    if text.contains("-----BEGIN CERTIFICATE-----") {
        return Some(
            CertificateDer::pem_slice_iter(bytes)
                .map(|cert| {
                    cert.map(|der| der.as_ref().to_vec())
                        .map_err(|e| InputError::Argument {
                            what: "CHAIN",
                            reason: format!("bad PEM: {e}"),
                        })
                })
                .collect(),
        );
    }
    None
}

fn checked(yes: bool) -> &'static str {
    if yes { "checked" } else { "skipped" }
}

/// The verified key's facts, as the JSON output names them.
pub fn details(key: &VerifiedAndroidKey, args: &AndroidKeyAttestationArgs) -> Value {
    let description = key.key_description();
    let packages: Vec<Value> = description
        .application_id()
        .map(|app| {
            app.packages
                .iter()
                .map(|p| json!({"name": p.name, "version": p.version}))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "keyId": B64.encode(key.key_id()),
        "publicKey": B64.encode(key.public_key()),
        "provisioning": key.provisioning().as_str(),
        "anchor": key.anchor().as_str(),
        "attestKeyCertificates": key.attest_key_certificates(),
        "serials": key.serials(),
        "attestationVersion": key.attestation_version(),
        "attestationSecurityLevel": key.attestation_security_level().as_str(),
        "keyMintVersion": description.keymint_version,
        "keyMintSecurityLevel": key.keymint_security_level().as_str(),
        "attestationChallenge": B64.encode(&description.attestation_challenge),
        "verifiedBootState": key.verified_boot_state().map(|s| s.as_str()),
        "deviceLocked": key.device_locked(),
        "verifiedBootKey": key.verified_boot_key().map(|k| B64.encode(k)),
        "verifiedBootHash": key.verified_boot_hash().map(|h| B64.encode(h)),
        "osVersion": key.os_version(),
        "osPatchLevel": key.os_patch_level(),
        "vendorPatchLevel": key.vendor_patch_level(),
        "bootPatchLevel": key.boot_patch_level(),
        "packages": packages,
        "signingDigests": key.signing_digests().iter().map(|d| B64.encode(d)).collect::<Vec<_>>(),
        "purposes": key.purposes().iter().map(|p| purpose_name(*p)).collect::<Vec<_>>(),
        "creationDateTime": key.creation_date_time().map(creation_time),
        "checks": {
            "challenge": checked(key.challenge_checked()),
            "package": checked(key.app_checked()),
            "signatureDigest": checked(key.app_checked() && !args.signature_digests.is_empty()),
            "revocation": checked(key.revocation_checked()),
            "verifiedBoot": checked(args.require_verified_boot),
        },
    })
}

/// A KeyMint purpose by name (`sign`, `attest_key`, ...), or its number for one this version
/// does not name.
pub fn purpose_name(value: u64) -> String {
    match value {
        purpose::ENCRYPT => "encrypt".into(),
        purpose::DECRYPT => "decrypt".into(),
        purpose::SIGN => "sign".into(),
        purpose::VERIFY => "verify".into(),
        purpose::WRAP_KEY => "wrap_key".into(),
        purpose::AGREE_KEY => "agree_key".into(),
        purpose::ATTEST_KEY => "attest_key".into(),
        other => other.to_string(),
    }
}

/// creationDateTime (ms since the epoch, by the device's clock) as RFC 3339, or the number
/// when it is out of range.
pub fn creation_time(ms: u64) -> Value {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_or_else(|_| json!(ms), |at| json!(super::format_time(at)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_file_is_json_with_x5c_or_pem_decided_by_its_content() {
        let json = parse_chain(br#" {"id": "x", "x5c": ["AAEC", "AwQ="]}"#);
        assert_eq!(json.unwrap().unwrap(), vec![vec![0, 1, 2], vec![3, 4]]);
        let pem = "junk before\n-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n\
                   -----BEGIN CERTIFICATE-----\nAwQ=\n-----END CERTIFICATE-----\n";
        assert_eq!(
            parse_chain(pem.as_bytes()).unwrap().unwrap(),
            vec![vec![0, 1, 2], vec![3, 4]]
        );
        for neither in [
            &b"hello"[..],
            b"{\"chain\": []}",
            b"{not json",
            &[0x30, 0x82],
        ] {
            assert!(parse_chain(neither).is_none(), "{neither:?}");
        }
    }

    #[test]
    fn a_chain_file_of_either_kind_with_bad_contents_is_an_input_error() {
        for bad in [
            &br#"{"x5c": "AAEC"}"#[..],
            br#"{"x5c": ["AAEC", 7]}"#,
            br#"{"x5c": ["not base64!"]}"#,
            b"-----BEGIN CERTIFICATE-----\nAAEC\n",
            b"-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n",
        ] {
            assert!(
                matches!(parse_chain(bad), Some(Err(InputError::Argument { .. }))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn purposes_and_creation_times_read_for_humans() {
        assert_eq!(purpose_name(purpose::ATTEST_KEY), "attest_key");
        assert_eq!(purpose_name(99), "99");
        assert_eq!(creation_time(1_538_178_035_062), "2018-09-28T23:40:35.062Z");
        assert_eq!(creation_time(u64::MAX), json!(u64::MAX));
    }
}
