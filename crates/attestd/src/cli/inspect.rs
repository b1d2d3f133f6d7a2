//! `attestd inspect INPUT`: decode and explain an object for a human. Verifies nothing.
//!
//! A file or stdin holding an Android Key Attestation chain (`{"x5c": [...]}` with no Apple
//! field, or PEM certificates) is explained by `inspect_android`; anything else is tried as
//! each Apple object in turn.

use std::fmt::Write as _;
use std::process::ExitCode;

use attest_core::apple::assertion::AssertionObject;
use attest_core::apple::attestation::AttestationObject;
use attest_core::apple::authenticator_data::{AuthenticatorData, Context, Extensions};
use attest_core::apple::receipt::parse_receipt;
use attest_core::apple::{Aaguid, KeyId};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use x509_parser::prelude::*;

use super::input::{self, InputError};
use super::{format_time, inspect_android, receipt_type_name, verify_android};

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// An attestation, assertion, receipt or raw authenticator data (a file, `-`, or base64),
    /// or an Android Key Attestation chain (a file or `-`: `{"x5c": [...]}` or PEM).
    pub input: String,
}

pub fn run(args: &InspectArgs) -> Result<ExitCode, InputError> {
    let bytes = match input::read_file_or_stdin(&args.input)? {
        Some(raw) => {
            let unwrapped = input::unwrap_text(raw.clone());
            // An Apple record (its `attestation`, `authdata`, ... field) wins over its `x5c`.
            if unwrapped == raw
                && let Some(chain) = verify_android::parse_chain(&raw)
            {
                print!("{}", inspect_android::explain(&chain?));
                return Ok(ExitCode::SUCCESS);
            }
            unwrapped
        }
        None => input::read(&args.input)?,
    };
    match explain(&bytes) {
        Ok(text) => {
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(text) => {
            eprint!("{text}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Explains `bytes`, trying each kind of object in turn.
pub fn explain(bytes: &[u8]) -> Result<String, String> {
    let mut out = String::new();
    match bytes.first() {
        // A CBOR map: attestation or assertion.
        Some(0xa0..=0xbf) => {
            let attestation = AttestationObject::parse(bytes);
            if let Ok(object) = &attestation {
                explain_attestation(&mut out, object);
                return Ok(out);
            }
            let assertion = AssertionObject::parse(bytes);
            if let Ok(object) = &assertion {
                explain_assertion(&mut out, object);
                return Ok(out);
            }
            Err(format!(
                "not a valid attestation ({}) nor assertion ({})\n",
                attestation.err().map(|e| e.to_string()).unwrap_or_default(),
                assertion.err().map(|e| e.to_string()).unwrap_or_default()
            ))
        }
        // A DER/BER SEQUENCE: a receipt (PKCS#7).
        Some(0x30) => match parse_receipt(bytes) {
            Ok(parsed) => {
                explain_receipt(&mut out, parsed.receipt(), 0);
                Ok(out)
            }
            Err(e) => Err(format!("looks like DER but is not a receipt: {e}\n")),
        },
        _ => {
            // Raw authenticator data, as some client libraries hand it out.
            let context = if bytes.len() > 37 {
                Context::Attestation
            } else {
                Context::Assertion
            };
            match AuthenticatorData::parse(bytes, context) {
                Ok(auth_data) => {
                    out.push_str("authenticator data\n");
                    explain_auth_data(&mut out, &auth_data, 1);
                    Ok(out)
                }
                Err(e) => Err(format!(
                    "not an attestation, assertion, receipt or authData: {e}\n"
                )),
            }
        }
    }
}

fn line(out: &mut String, indent: usize, text: impl std::fmt::Display) {
    let _ = writeln!(out, "{:width$}{text}", "", width = indent * 2);
}

fn explain_attestation(out: &mut String, object: &AttestationObject<'_>) {
    line(out, 0, "attestation object (fmt apple-appattest)");
    if let Some(credential) = &object.auth_data.attested_credential {
        let key_id = KeyId::of_public_point(&credential.public_key.uncompressed_point());
        line(
            out,
            1,
            format!("key id (from COSE key): {}", B64.encode(key_id.as_bytes())),
        );
    }
    line(out, 1, "authData:");
    explain_auth_data(out, &object.auth_data, 2);
    line(out, 1, format!("certificates (x5c, {}):", object.x5c.len()));
    for (index, der) in object.x5c.iter().enumerate() {
        let role = if index == 0 {
            "credential certificate"
        } else {
            "intermediate"
        };
        line(out, 2, format!("[{index}] {role}"));
        explain_certificate(out, der, 3);
    }
    match object.receipt {
        Some(receipt) if !receipt.is_empty() => {
            line(out, 1, format!("receipt ({} bytes):", receipt.len()));
            match parse_receipt(receipt) {
                Ok(parsed) => explain_receipt(out, parsed.receipt(), 2),
                Err(e) => line(out, 2, format!("unparseable: {e}")),
            }
        }
        _ => line(out, 1, "receipt: none"),
    }
    line(
        out,
        0,
        "(inspect verifies nothing: use `attestd verify attestation`)",
    );
}

fn explain_assertion(out: &mut String, object: &AssertionObject<'_>) {
    line(out, 0, "assertion object");
    line(
        out,
        1,
        format!(
            "signature: {} bytes (DER ECDSA P-256)",
            object.signature.len()
        ),
    );
    line(out, 1, "authenticatorData:");
    explain_auth_data(out, &object.auth_data, 2);
    line(
        out,
        0,
        "(inspect verifies nothing: use `attestd verify assertion`)",
    );
}

fn explain_auth_data(out: &mut String, auth_data: &AuthenticatorData<'_>, indent: usize) {
    line(
        out,
        indent,
        format!("length: {} bytes", auth_data.raw.len()),
    );
    line(
        out,
        indent,
        format!("rpIdHash: {}", hex::encode(auth_data.rp_id_hash)),
    );
    let mut flags = Vec::new();
    for (bit, name) in [(0x01, "UP"), (0x04, "UV"), (0x40, "AT"), (0x80, "ED")] {
        if auth_data.flags & bit != 0 {
            flags.push(name);
        }
    }
    line(
        out,
        indent,
        format!("flags: 0x{:02x} [{}]", auth_data.flags, flags.join(" ")),
    );
    line(out, indent, format!("counter: {}", auth_data.counter));
    if let Some(credential) = &auth_data.attested_credential {
        let environment = match credential.aaguid {
            Aaguid::DEVELOPMENT => "development",
            Aaguid::PRODUCTION => "production",
            _ => "UNKNOWN (neither appattestdevelop nor appattest)",
        };
        line(
            out,
            indent,
            format!(
                "aaguid: \"{}\" -> {environment}",
                credential.aaguid.0.escape_ascii()
            ),
        );
        line(
            out,
            indent,
            format!("credential id: {}", B64.encode(credential.credential_id)),
        );
        line(
            out,
            indent,
            format!(
                "credential key (COSE EC2 P-256): x={} y={}",
                hex::encode(credential.public_key.x),
                hex::encode(credential.public_key.y)
            ),
        );
    }
    match &auth_data.extensions {
        Some(extensions) => explain_extensions(out, extensions, indent, auth_data.flags),
        None => line(out, indent, "extensions: none"),
    }
}

fn explain_extensions(out: &mut String, extensions: &Extensions, indent: usize, flags: u8) {
    let ed = if flags & 0x80 != 0 {
        "ED set"
    } else {
        "ED clear: the iOS 27 layout"
    };
    line(out, indent, format!("extensions ({ed}):"));
    for (key, value) in &extensions.entries {
        let meaning = match key.as_str() {
            "apple_bundle_version_01" => " (iOS 27: the app's bundle version)",
            "apple_validation_category_01" => " (iOS 27: launch validation category)",
            _ => "",
        };
        line(out, indent + 1, format!("{key}: {value}{meaning}"));
    }
}

pub(super) fn explain_certificate(out: &mut String, der: &[u8], indent: usize) {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        line(
            out,
            indent,
            format!("unparseable certificate ({} bytes)", der.len()),
        );
        return;
    };
    line(out, indent, format!("subject: {}", cert.subject()));
    line(out, indent, format!("issuer: {}", cert.issuer()));
    line(
        out,
        indent,
        format!(
            "validity: {} .. {}",
            format_time(cert.validity().not_before.to_datetime()),
            format_time(cert.validity().not_after.to_datetime())
        ),
    );
    line(out, indent, format!("key: {}", key_description(&cert)));
    for extension in cert.extensions() {
        let oid = extension.oid.to_id_string();
        let name = match oid.as_str() {
            "1.2.840.113635.100.8.2" => "App Attest nonce".to_owned(),
            "1.2.840.113635.100.8.5" => "App Attest app/OS information".to_owned(),
            "1.2.840.113635.100.8.6" => "App Attest (iOS 27) key attributes".to_owned(),
            "1.2.840.113635.100.8.7" => "App Attest OS version".to_owned(),
            "1.3.6.1.4.1.11129.2.1.17" => "Android KeyDescription".to_owned(),
            "1.3.6.1.4.1.11129.2.1.30" => "Android RKP ProvisioningInfo".to_owned(),
            "2.5.29.37" => {
                let ekus = match extension.parsed_extension() {
                    ParsedExtension::ExtendedKeyUsage(eku) => eku
                        .other
                        .iter()
                        .map(|o| o.to_id_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    _ => String::new(),
                };
                format!("extended key usage [{ekus}]")
            }
            _ => match extension.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => {
                    format!("basic constraints (CA: {})", bc.ca)
                }
                ParsedExtension::KeyUsage(ku) => format!("key usage ({ku})"),
                ParsedExtension::AuthorityKeyIdentifier(_) => "authority key identifier".to_owned(),
                ParsedExtension::SubjectKeyIdentifier(_) => "subject key identifier".to_owned(),
                ParsedExtension::UnsupportedExtension { .. } => "unknown".to_owned(),
                other => format!("{other:?}").chars().take(60).collect(),
            },
        };
        let critical = if extension.critical { ", critical" } else { "" };
        let value = if oid == "1.2.840.113635.100.8.2" {
            format!(
                ": {}",
                hex::encode(extension.value.get(6..).unwrap_or_default())
            )
        } else {
            String::new()
        };
        line(out, indent + 1, format!("{oid} {name}{critical}{value}"));
    }
}

fn key_description(cert: &X509Certificate<'_>) -> String {
    match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::EC(point)) => {
            let curve = cert
                .public_key()
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| match o.to_id_string().as_str() {
                    "1.2.840.10045.3.1.7" => "P-256".to_owned(),
                    "1.3.132.0.34" => "P-384".to_owned(),
                    other => other.to_owned(),
                })
                .unwrap_or_default();
            let key_id = if point.data().len() == 65 {
                format!(
                    ", key id {}",
                    B64.encode(KeyId::of_public_point(point.data()).as_bytes())
                )
            } else {
                String::new()
            };
            format!("EC {curve}{key_id}")
        }
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => format!("RSA {} bits", rsa.key_size()),
        Ok(other) => format!("{other:?}").chars().take(40).collect(),
        Err(_) => "unparseable".into(),
    }
}

fn explain_receipt(
    out: &mut String,
    receipt: &attest_core::apple::receipt::Receipt,
    indent: usize,
) {
    if indent == 0 {
        line(out, 0, "receipt (PKCS#7 signed by Apple)");
    }
    let i = indent.max(1);
    line(
        out,
        i,
        format!("type (6): {}", receipt_type_name(&receipt.receipt_type)),
    );
    line(out, i, format!("app id (2): {}", receipt.app_id));
    line(
        out,
        i,
        format!(
            "environment (7): {}",
            receipt
                .environment
                .as_deref()
                .unwrap_or("(absent: production)")
        ),
    );
    line(
        out,
        i,
        format!("creation time (12): {}", format_time(receipt.creation_time)),
    );
    if let Some(at) = receipt.not_before {
        line(out, i, format!("not before (19): {}", format_time(at)));
    }
    if let Some(at) = receipt.expiration_time {
        line(out, i, format!("expiration time (21): {}", format_time(at)));
    }
    match receipt.risk_metric {
        Some(metric) => line(
            out,
            i,
            format!("risk metric (17): {metric} attested keys on this device in 30 days"),
        ),
        None => line(
            out,
            i,
            "risk metric (17): absent (ATTEST receipts carry none)",
        ),
    }
    line(
        out,
        i,
        format!("client hash (4): {}", hex::encode(&receipt.client_hash)),
    );
    line(out, i, format!("token (5): {}", receipt.token));
    line(
        out,
        i,
        format!(
            "attested key (3): certificate, {} bytes",
            receipt.attested_certificate.len()
        ),
    );
    if let Ok((_, cert)) = X509Certificate::from_der(&receipt.attested_certificate) {
        line(out, i + 1, format!("key: {}", key_description(&cert)));
    }
}
