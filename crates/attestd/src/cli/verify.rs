//! `attestd verify attestation|assertion|receipt|android-key-attestation|safetynet`.

use std::path::PathBuf;

use attest_core::apple::assertion::{
    AssertionRequest, CredentialPublicKey, hash_client_data, verify_assertion,
};
use attest_core::apple::attestation::{
    AttestationRequest, AttestationVerifier, ReceiptCheck, ReceiptPolicy, VerifiedAttestation,
    hash_challenge,
};
use attest_core::apple::receipt::{ReceiptVerifier, VerifiedReceipt};
use attest_core::apple::{AppId, AppleError, EnvironmentPolicy, KeyId, roots};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::input::{self, InputError};
use super::verify_android::{self, AndroidKeyAttestationArgs};
use super::verify_safetynet::{self, SafetyNetArgs};
use super::{Outcome, rfc3339, unix_time};

#[derive(Debug, Subcommand)]
pub enum VerifyCommand {
    /// Verify an attestation object (Apple's nine steps plus the embedded receipt).
    Attestation(AttestationArgs),
    /// Verify an assertion against a stored public key and counter.
    Assertion(AssertionArgs),
    /// Verify a receipt's signature, chain and fields.
    Receipt(ReceiptArgs),
    /// Verify an Android Key Attestation certificate chain against Google's pinned roots.
    AndroidKeyAttestation(AndroidKeyAttestationArgs),
    /// Verify a captured legacy SafetyNet JWS (migration only; never hardware-backed).
    #[command(name = "safetynet")]
    SafetyNet(SafetyNetArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EnvironmentArg {
    Development,
    Production,
    Any,
}

impl From<EnvironmentArg> for EnvironmentPolicy {
    fn from(value: EnvironmentArg) -> Self {
        match value {
            EnvironmentArg::Development => Self::Development,
            EnvironmentArg::Production => Self::Production,
            EnvironmentArg::Any => Self::Any,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum ReceiptArg {
    /// An invalid or missing receipt fails the attestation (`receipt_invalid`).
    #[default]
    Require,
    /// Verify the receipt but only report its failure.
    Report,
}

#[derive(Debug, Args)]
pub struct AttestationArgs {
    /// Accepted App ID, TEAMID.bundle.id (repeatable).
    #[arg(long = "app-id", required = true, value_name = "TEAM.BUNDLE")]
    pub app_ids: Vec<String>,
    /// The key id the app reported (base64).
    #[arg(long, value_name = "B64")]
    pub key_id: String,
    /// The exact clientDataHash bytes the app passed to attestKey (hex, any length).
    #[arg(long, value_name = "HEX", group = "client_data_input", required = true)]
    pub client_data_hash: Option<String>,
    /// The challenge; clientDataHash = SHA-256 of its UTF-8 bytes.
    #[arg(
        long,
        value_name = "STRING",
        group = "client_data_input",
        required = true
    )]
    pub challenge: Option<String>,
    /// Accepted environment(s).
    #[arg(long, value_enum)]
    pub environment: EnvironmentArg,
    /// Verification time (default: now). Needed for captured samples: certificates expire.
    #[arg(long, value_name = "RFC3339", value_parser = rfc3339)]
    pub at: Option<time::OffsetDateTime>,
    /// An extra attestation trust anchor (PEM or DER file), in addition to Apple's (repeatable).
    #[arg(long = "root", value_name = "PEM")]
    pub roots: Vec<PathBuf>,
    /// An extra receipt trust anchor, in addition to Apple Root CA - G3 (repeatable).
    #[arg(long = "receipt-root", value_name = "PEM")]
    pub receipt_roots: Vec<PathBuf>,
    /// What an invalid embedded receipt does.
    #[arg(long, value_enum, default_value_t)]
    pub receipt: ReceiptArg,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// The attestation object: a file, `-` for stdin, or inline base64.
    pub input: String,
}

#[derive(Debug, Args)]
pub struct AssertionArgs {
    /// Accepted App ID, TEAMID.bundle.id (repeatable).
    #[arg(long = "app-id", required = true, value_name = "TEAM.BUNDLE")]
    pub app_ids: Vec<String>,
    /// The stored credential public key (base64 SubjectPublicKeyInfo DER).
    #[arg(long, value_name = "B64_SPKI")]
    pub public_key: String,
    /// The client data (base64); clientDataHash = SHA-256 of it.
    #[arg(
        long = "client-data-b64",
        value_name = "B64",
        group = "client_data_input",
        required = true
    )]
    pub client_data_b64: Option<String>,
    /// The client data as UTF-8 text; clientDataHash = SHA-256 of it.
    #[arg(
        long = "client-data",
        value_name = "STRING",
        group = "client_data_input",
        required = true
    )]
    pub client_data: Option<String>,
    /// The exact clientDataHash the app passed to generateAssertion (hex).
    #[arg(long, value_name = "HEX", group = "client_data_input", required = true)]
    pub client_data_hash: Option<String>,
    /// The counter stored for this key (0 after attestation).
    #[arg(long, value_name = "N")]
    pub previous_counter: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// The assertion object: a file, `-` for stdin, or inline base64.
    pub input: String,
}

#[derive(Debug, Args)]
pub struct ReceiptArgs {
    /// Verification time (default: now).
    #[arg(long, value_name = "RFC3339", value_parser = rfc3339)]
    pub at: Option<time::OffsetDateTime>,
    /// Also require this App ID in field 2.
    #[arg(long = "app-id", value_name = "TEAM.BUNDLE")]
    pub app_id: Option<String>,
    /// An extra receipt trust anchor (PEM or DER file), in addition to Apple Root CA - G3.
    #[arg(long = "root", value_name = "PEM")]
    pub roots: Vec<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// The receipt: a file, `-` for stdin, or inline base64.
    pub input: String,
}

/// Runs a verify command. Input and usage errors exit with 2; with `--json` they are also
/// printed as `{"valid": false, "code": "invalid_input", "message": ...}`.
pub fn run(command: VerifyCommand) -> Result<std::process::ExitCode, InputError> {
    let json = match &command {
        VerifyCommand::Attestation(args) => args.json,
        VerifyCommand::Assertion(args) => args.json,
        VerifyCommand::Receipt(args) => args.json,
        VerifyCommand::AndroidKeyAttestation(args) => args.json,
        VerifyCommand::SafetyNet(args) => args.json,
    };
    let result = match command {
        VerifyCommand::Attestation(args) => attestation(args),
        VerifyCommand::Assertion(args) => assertion(args),
        VerifyCommand::Receipt(args) => receipt(args),
        VerifyCommand::AndroidKeyAttestation(args) => verify_android::run(&args),
        VerifyCommand::SafetyNet(args) => verify_safetynet::run(&args),
    };
    match result {
        Ok(outcome) => Ok(outcome.print()),
        Err(error) if json => {
            println!(
                "{}",
                json!({"valid": false, "code": "invalid_input", "message": error.to_string()})
            );
            eprintln!("attestd: {error}");
            Ok(std::process::ExitCode::from(2))
        }
        Err(error) => Err(error),
    }
}

fn app_ids(values: &[String]) -> Result<Vec<AppId>, InputError> {
    values
        .iter()
        .map(|v| {
            AppId::new(v.as_str()).map_err(|e| InputError::Argument {
                what: "--app-id",
                reason: format!("{v:?}: {e}"),
            })
        })
        .collect()
}

fn roots_with(default: &[u8], extra: &[PathBuf]) -> Result<Vec<Vec<u8>>, InputError> {
    let mut roots = vec![default.to_vec()];
    for path in extra {
        roots.push(input::certificate_file(path)?);
    }
    Ok(roots)
}

fn receipt_verifier(extra: &[PathBuf]) -> Result<ReceiptVerifier, InputError> {
    if extra.is_empty() {
        return Ok(ReceiptVerifier::apple());
    }
    ReceiptVerifier::with_roots(roots_with(roots::APPLE_ROOT_CA_G3, extra)?).map_err(|e| {
        InputError::Argument {
            what: "--receipt-root",
            reason: e.to_string(),
        }
    })
}

fn attestation(args: AttestationArgs) -> Result<Outcome, InputError> {
    let bytes = input::read(&args.input)?;
    let app_ids = app_ids(&args.app_ids)?;
    let key_id = KeyId::from_slice(&input::base64_arg("--key-id", &args.key_id)?).ok_or(
        InputError::Argument {
            what: "--key-id",
            reason: "must decode to 32 bytes".into(),
        },
    )?;
    let client_data_hash = match (&args.client_data_hash, &args.challenge) {
        (Some(hex), _) => input::hex_arg("--client-data-hash", hex)?,
        (None, Some(challenge)) => hash_challenge(challenge.as_bytes()).to_vec(),
        (None, None) => unreachable!("clap requires one of the group"),
    };
    let verifier = if args.roots.is_empty() && args.receipt_roots.is_empty() {
        AttestationVerifier::apple()
    } else {
        AttestationVerifier::with_roots(
            roots_with(roots::APPLE_APP_ATTESTATION_ROOT_CA, &args.roots)?,
            receipt_verifier(&args.receipt_roots)?,
        )
        .map_err(|e| InputError::Argument {
            what: "--root",
            reason: e.to_string(),
        })?
    };
    let mut request =
        AttestationRequest::new(key_id, &client_data_hash, &app_ids, unix_time(args.at));
    request.environment = args.environment.into();
    request.receipt = match args.receipt {
        ReceiptArg::Require => ReceiptPolicy::Require,
        ReceiptArg::Report => ReceiptPolicy::Report,
    };
    let result = verifier
        .verify(&bytes, &request)
        .map(|v| attestation_details(&v));
    Ok(Outcome::from_result("attestation", result, args.json))
}

pub fn attestation_details(verified: &VerifiedAttestation) -> Value {
    let receipt = match verified.receipt() {
        ReceiptCheck::Verified(receipt) => receipt_details(receipt),
        ReceiptCheck::Failed(error) => json!({
            "valid": false, "code": error.reason(), "message": error.to_string()
        }),
        ReceiptCheck::Missing => Value::Null,
    };
    json!({
        "keyId": B64.encode(verified.key_id().as_bytes()),
        "publicKey": B64.encode(verified.public_key()),
        "appId": verified.app_id().as_str(),
        "environment": verified.environment().as_str(),
        "leafNotBefore": super::format_time(verified.leaf_not_before()),
        "leafNotAfter": super::format_time(verified.leaf_not_after()),
        "bundleVersion": verified.bundle_version(),
        "validationCategory": verified.validation_category().map(hex::encode),
        "receipt": receipt,
    })
}

fn assertion(args: AssertionArgs) -> Result<Outcome, InputError> {
    let bytes = input::read(&args.input)?;
    let app_ids = app_ids(&args.app_ids)?;
    let spki = input::base64_arg("--public-key", &args.public_key)?;
    let public_key = CredentialPublicKey::from_spki(&spki).map_err(|e| InputError::Argument {
        what: "--public-key",
        reason: e.to_string(),
    })?;
    let client_data_hash = match (
        &args.client_data_hash,
        &args.client_data_b64,
        &args.client_data,
    ) {
        (Some(hex), _, _) => input::hex_arg("--client-data-hash", hex)?,
        (None, Some(b64), _) => {
            hash_client_data(&input::base64_arg("--client-data-b64", b64)?).to_vec()
        }
        (None, None, Some(text)) => hash_client_data(text.as_bytes()).to_vec(),
        (None, None, None) => unreachable!("clap requires one of the group"),
    };
    let request = AssertionRequest {
        public_key: &public_key,
        client_data_hash: &client_data_hash,
        app_ids: &app_ids,
        previous_counter: args.previous_counter,
    };
    let result = verify_assertion(&bytes, &request).map(|verified| {
        json!({
            "counter": verified.counter(),
            "appId": app_ids.get(verified.app_id_index()).map(AppId::as_str),
            "keyId": B64.encode(public_key.key_id().as_bytes()),
        })
    });
    Ok(Outcome::from_result("assertion", result, args.json))
}

fn receipt(args: ReceiptArgs) -> Result<Outcome, InputError> {
    let bytes = input::read(&args.input)?;
    let expected_app = args
        .app_id
        .as_ref()
        .map(|a| app_ids(std::slice::from_ref(a)))
        .transpose()?;
    let verifier = receipt_verifier(&args.roots)?;
    let result = verifier
        .verify(&bytes, unix_time(args.at))
        .map_err(AppleError::ReceiptInvalid)
        .and_then(
            |verified| match expected_app.as_ref().and_then(|a| a.first()) {
                Some(app) if verified.receipt.app_id != app.as_str() => {
                    Err(AppleError::ReceiptInvalid(
                        attest_core::apple::receipt::ReceiptError::AppIdMismatch,
                    ))
                }
                _ => Ok(receipt_details(&verified)),
            },
        );
    Ok(Outcome::from_result("receipt", result, args.json))
}

pub fn receipt_details(verified: &VerifiedReceipt) -> Value {
    let receipt = &verified.receipt;
    json!({
        "appId": receipt.app_id,
        "type": super::receipt_type_name(&receipt.receipt_type),
        "environment": receipt.environment,
        "creationTime": super::format_time(receipt.creation_time),
        "notBefore": receipt.not_before.map(super::format_time),
        "expirationTime": receipt.expiration_time.map(super::format_time),
        "riskMetric": receipt.risk_metric,
        "signatureForm": format!("{:?}", verified.signature_form),
    })
}
