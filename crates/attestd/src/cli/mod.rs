//! The command line: `attestd serve | verify | inspect | simulate | bench`.
//!
//! Exit codes, for scripts: 0 valid, 1 verification failed, 2 usage or input error.

pub mod bench;
pub mod input;
pub mod inspect;
pub mod inspect_android;
pub mod simulate;
pub mod verify;
pub mod verify_android;
pub mod verify_safetynet;

use std::process::ExitCode;

use attest_core::UnixTime;
use attest_core::apple::AppleError;
use attest_core::apple::receipt::ReceiptType;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The result of a `verify` command, printed as text or JSON.
#[derive(Debug)]
pub struct Outcome {
    pub json: bool,
    pub report: Value,
    pub valid: bool,
    pub text: String,
}

impl Outcome {
    pub fn from_result(kind: &str, result: Result<Value, AppleError>, json: bool) -> Self {
        match result {
            Ok(details) => {
                let mut report = json!({"valid": true, "code": null, "message": null});
                merge(&mut report, details);
                let text = format!("valid {kind}\n{}", render_details(&report));
                Self {
                    json,
                    report,
                    valid: true,
                    text,
                }
            }
            Err(error) => {
                let mut report = json!({
                    "valid": false,
                    "code": error.code(),
                    "message": error.to_string(),
                });
                if let AppleError::ReceiptInvalid(receipt) = &error {
                    report["reason"] = json!(receipt.reason());
                }
                let text = format!("invalid {kind}: {} ({})", error, error.code());
                Self {
                    json,
                    report,
                    valid: false,
                    text,
                }
            }
        }
    }

    pub fn print(&self) -> ExitCode {
        if self.json {
            println!("{}", self.report);
        } else {
            println!("{}", self.text);
        }
        if self.valid {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    }
}

fn merge(into: &mut Value, details: Value) {
    if let (Value::Object(into), Value::Object(details)) = (into, details) {
        into.extend(details);
    }
}

fn render_details(report: &Value) -> String {
    let Value::Object(map) = report else {
        return String::new();
    };
    map.iter()
        .filter(|(k, v)| {
            !matches!(k.as_str(), "valid" | "code" | "message" | "reason") && !v.is_null()
        })
        .map(|(k, v)| match v {
            Value::String(s) => format!("  {k}: {s}"),
            other => format!("  {k}: {other}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// clap value parser for `--at`.
pub fn rfc3339(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| format!("not an RFC 3339 time: {e}"))
}

/// `--at`, or the current time.
pub fn unix_time(at: Option<OffsetDateTime>) -> UnixTime {
    match at {
        Some(at) => UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(at.unix_timestamp()).unwrap_or(0),
        )),
        None => UnixTime::now(),
    }
}

pub fn format_time(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

pub fn receipt_type_name(kind: &ReceiptType) -> String {
    match kind {
        ReceiptType::Attest => "ATTEST".into(),
        ReceiptType::Receipt => "RECEIPT".into(),
        ReceiptType::Other(other) => other.clone(),
    }
}
