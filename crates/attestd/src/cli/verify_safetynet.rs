//! `attestd verify safetynet`: a captured **legacy** SafetyNet JWS, offline, against the pinned
//! GlobalSign roots. For migration only: Google turned SafetyNet down in January 2025, and a
//! SafetyNet verdict is never counted as hardware backed (`"hardwareBacked": false`).
//!
//! ```sh
//! attestd verify safetynet --nonce 'KB9zp2cQXVJPgfovI02sA7g2MP/XoKVAdh83m9J8miQ=' \
//!   --package com.google.android.gms --at 2019-01-15T14:17:02Z --json response.jws
//! ```
//!
//! `--nonce` is the nonce **string exactly as the payload's `nonce` member carries it**:
//! SafetyNet puts there the standard base64 (with padding) of the nonce bytes the app passed to
//! `SafetyNetClient.attest()` (for WebAuthn `android-safetynet`,
//! base64(SHA-256(authenticatorData || clientDataHash))). It is compared byte for byte, not
//! decoded: `abc=` and `abc` are different nonces. `--at` is required: the signing certificates
//! lived months, and since the turn-down no new response can be valid "now".
//!
//! JWS_FILE holds the compact JWS (surrounding whitespace ignored) or a JSON object whose `jws`
//! member holds it (a `tests/data/android/safetynet` record); `-` reads stdin. The checks are
//! the core's (`attest_core::android::safetynet`); exit 0 valid (facts in the JSON), 1 refused
//! (`{"valid": false, "code", "reason"}`), 2 usage or input error.

use attest_core::android::safetynet::{
    SafetyNetError, SafetyNetRequest, SafetyNetVerifier, VerifiedSafetyNet,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::input::{self, InputError};
use super::{Outcome, rfc3339, unix_time};

#[derive(Debug, Args)]
pub struct SafetyNetArgs {
    /// The expected nonce, exactly as the payload's `nonce` string carries it (standard base64
    /// of the nonce bytes given to SafetyNet); compared byte for byte.
    #[arg(long, value_name = "STR")]
    pub nonce: String,
    /// The expected apkPackageName. Without it the package is not checked, and the output says
    /// `"package": "skipped"`.
    #[arg(long, value_name = "NAME")]
    pub package: Option<String>,
    /// Verification time (certificate validity). Required: SafetyNet is turned down, captured
    /// responses are verified at the time they were made.
    #[arg(long, value_name = "RFC3339", value_parser = rfc3339)]
    pub at: OffsetDateTime,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// The response: a file with the compact JWS or a JSON object with a `jws` member; `-` for
    /// stdin.
    #[arg(value_name = "JWS_FILE")]
    pub jws_file: String,
}

/// Runs the command: `Err` for input and usage errors (exit 2), otherwise the outcome.
pub fn run(args: &SafetyNetArgs) -> Result<Outcome, InputError> {
    let jws = read_jws(&args.jws_file)?;
    let request = SafetyNetRequest {
        nonce: &args.nonce,
        package_name: args.package.as_deref(),
        time: unix_time(Some(args.at)),
    };
    let verified = match SafetyNetVerifier::google().verify(jws.as_bytes(), &request) {
        Ok(verified) => verified,
        // The caller's mistake (an empty --nonce), not the response's: a usage error.
        Err(SafetyNetError::InvalidArgument(reason)) => {
            return Err(InputError::Argument {
                what: "arguments",
                reason: reason.to_owned(),
            });
        }
        Err(error) => return Ok(refused(&error, args.json)),
    };
    let mut report = json!({"valid": true, "code": null, "reason": null});
    if let (Value::Object(into), Value::Object(facts)) = (&mut report, details(&verified)) {
        into.extend(facts);
    }
    let text = format!(
        "valid safetynet response (legacy; never hardware-backed)\n{}",
        super::render_details(&report)
    );
    Ok(Outcome {
        json: args.json,
        report,
        valid: true,
        text,
    })
}

fn refused(error: &SafetyNetError, json: bool) -> Outcome {
    Outcome {
        json,
        report: json!({
            "valid": false,
            "code": error.code(),
            "reason": error.to_string(),
        }),
        valid: false,
        text: format!("invalid safetynet response: {error} ({})", error.code()),
    }
}

/// Reads JWS_FILE (or stdin) and returns the compact JWS it holds.
fn read_jws(path: &str) -> Result<String, InputError> {
    let Some(bytes) = input::read_file_or_stdin(path)? else {
        return Err(InputError::Argument {
            what: "JWS_FILE",
            reason: format!("{path} is not a file"),
        });
    };
    parse_jws_file(&bytes)
}

/// The compact JWS of a JWS_FILE's contents: the text itself, or a JSON object's `jws` member.
pub fn parse_jws_file(bytes: &[u8]) -> Result<String, InputError> {
    let text = std::str::from_utf8(bytes).map_err(|_| InputError::Argument {
        what: "JWS_FILE",
        reason: "not UTF-8 text".into(),
    })?;
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        let document: Value = serde_json::from_str(trimmed).map_err(|e| InputError::Argument {
            what: "JWS_FILE",
            reason: format!("not JSON: {e}"),
        })?;
        return document
            .get("jws")
            .and_then(Value::as_str)
            .map(|jws| jws.trim().to_owned())
            .ok_or_else(|| InputError::Argument {
                what: "JWS_FILE",
                reason: "the JSON object has no \"jws\" string".into(),
            });
    }
    if trimmed.is_empty() {
        return Err(InputError::Argument {
            what: "JWS_FILE",
            reason: "empty".into(),
        });
    }
    Ok(trimmed.to_owned())
}

fn checked(yes: bool) -> &'static str {
    if yes { "checked" } else { "skipped" }
}

/// The verified response's facts, as the JSON output names them (the payload's own names).
pub fn details(verified: &VerifiedSafetyNet) -> Value {
    let payload = verified.payload();
    let timestamp = i128::from(payload.timestamp_ms)
        .checked_mul(1_000_000)
        .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
        .map(super::format_time);
    json!({
        "format": "safetynet",
        "legacy": true,
        "hardwareBacked": verified.hardware_backed(),
        "anchor": verified.anchor().as_str(),
        "nonce": payload.nonce,
        "timestampMs": payload.timestamp_ms,
        "timestamp": timestamp,
        "apkPackageName": payload.apk_package_name,
        "apkDigestSha256": payload.apk_digest_sha256.map(|d| B64.encode(d.0)),
        "apkCertificateDigestSha256": payload
            .apk_certificate_digest_sha256
            .iter()
            .map(|d| B64.encode(d.0))
            .collect::<Vec<_>>(),
        "ctsProfileMatch": payload.cts_profile_match,
        "basicIntegrity": payload.basic_integrity,
        "meetsIntegrity": verified.meets_integrity(),
        "evaluationType": payload
            .evaluation_type
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>(),
        "advice": payload.advice,
        "deprecationInformation": payload.deprecation_information,
        "checks": {
            "nonce": "checked",
            "package": checked(verified.package_checked()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jws_file_is_the_token_or_a_json_record_with_jws() {
        assert_eq!(parse_jws_file(b"  a.b.c\n").unwrap(), "a.b.c");
        assert_eq!(
            parse_jws_file(br#"{"id": "x", "jws": "a.b.c"}"#).unwrap(),
            "a.b.c"
        );
        for bad in [
            &b""[..],
            b"  \n",
            br#"{"jws": 7}"#,
            b"{not json",
            &[0xff, 0xfe],
        ] {
            assert!(
                matches!(parse_jws_file(bad), Err(InputError::Argument { .. })),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
