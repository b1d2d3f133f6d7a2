//! `attestd inspect CHAIN` for an Android Key Attestation chain (`{"x5c": [...]}` or PEM):
//! each certificate, then the leaf's KeyDescription, for a human. Verifies nothing.

use std::fmt::Write as _;

use attest_core::android::key_description::algorithm;
use attest_core::android::revocation::serial_hex;
use attest_core::android::{AuthorizationList, KeyDescription, KeyOrigin};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use x509_parser::prelude::*;

use super::inspect::explain_certificate;
use super::verify_android::{creation_time, purpose_name};

fn line(out: &mut String, indent: usize, text: impl std::fmt::Display) {
    let _ = writeln!(out, "{:width$}{text}", "", width = indent * 2);
}

/// Explains a chain (DER certificates, leaf first).
pub fn explain(chain: &[Vec<u8>]) -> String {
    let mut out = String::new();
    line(
        &mut out,
        0,
        format!(
            "Android Key Attestation chain ({} certificates, leaf first)",
            chain.len()
        ),
    );
    for (index, der) in chain.iter().enumerate() {
        let role = match index {
            0 => "leaf (the attested key)",
            i if i + 1 == chain.len() => "last (root or the one a root signed)",
            _ => "intermediate",
        };
        line(&mut out, 1, format!("[{index}] {role}"));
        if let Ok((_, cert)) = X509Certificate::from_der(der) {
            line(
                &mut out,
                2,
                format!(
                    "serial (status list key): {}",
                    serial_hex(cert.raw_serial())
                ),
            );
        }
        explain_certificate(&mut out, der, 2);
        if index > 0 && KeyDescription::of_certificate(der).is_ok() {
            line(
                &mut out,
                2,
                "carries a KeyDescription: an ATTEST_KEY attestation, or a chain extension",
            );
        }
    }
    match chain
        .first()
        .map(|leaf| KeyDescription::of_certificate(leaf))
    {
        Some(Ok(description)) => explain_key_description(&mut out, &description),
        Some(Err(e)) => line(&mut out, 1, format!("leaf KeyDescription: {e}")),
        None => line(&mut out, 1, "no certificate"),
    }
    line(
        &mut out,
        0,
        "(inspect verifies nothing: use `attestd verify android-key-attestation`)",
    );
    out
}

fn explain_key_description(out: &mut String, kd: &KeyDescription) {
    line(out, 1, "KeyDescription (leaf, 1.3.6.1.4.1.11129.2.1.17):");
    line(
        out,
        2,
        format!("attestationVersion: {}", kd.attestation_version),
    );
    line(
        out,
        2,
        format!(
            "attestationSecurityLevel: {}",
            kd.attestation_security_level
        ),
    );
    line(out, 2, format!("keyMintVersion: {}", kd.keymint_version));
    line(
        out,
        2,
        format!("keyMintSecurityLevel: {}", kd.keymint_security_level),
    );
    line(
        out,
        2,
        format!("attestationChallenge: {}", bytes(&kd.attestation_challenge)),
    );
    line(out, 2, format!("uniqueId: {}", bytes(&kd.unique_id)));
    line(out, 2, "softwareEnforced:");
    explain_list(out, &kd.software_enforced, 3);
    line(out, 2, "hardwareEnforced:");
    explain_list(out, &kd.hardware_enforced, 3);
}

/// Base64, plus the text when it is printable ASCII.
fn bytes(value: &[u8]) -> String {
    if value.is_empty() {
        return "(empty)".into();
    }
    let b64 = B64.encode(value);
    if value.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("{b64} ({:?})", String::from_utf8_lossy(value))
    } else {
        b64
    }
}

fn numbers(values: &[u64]) -> String {
    values
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn explain_list(out: &mut String, list: &AuthorizationList, indent: usize) {
    let before = out.len();
    let mut field = |name: &str, value: String| line(out, indent, format!("{name}: {value}"));
    if let Some(purposes) = &list.purpose {
        let names: Vec<String> = purposes.iter().map(|p| purpose_name(*p)).collect();
        field("purpose", names.join(", "));
    }
    if let Some(value) = list.algorithm {
        let name = match value {
            algorithm::RSA => "RSA",
            algorithm::EC => "EC",
            algorithm::ML_DSA => "ML-DSA",
            algorithm::AES => "AES",
            algorithm::TRIPLE_DES => "3DES",
            algorithm::HMAC => "HMAC",
            _ => "unknown",
        };
        field("algorithm", format!("{value} ({name})"));
    }
    let numbers_fields = [
        ("keySize", list.key_size),
        ("ecCurve", list.ec_curve),
        ("mlDsaParameterSet", list.ml_dsa_variant),
        ("rsaPublicExponent", list.rsa_public_exponent),
        ("minMacLength", list.min_mac_length),
        ("usageCountLimit", list.usage_count_limit),
        ("userAuthType", list.user_auth_type),
        ("authTimeout", list.auth_timeout),
        ("osVersion", list.os_version),
        ("osPatchLevel", list.os_patch_level),
        ("vendorPatchLevel", list.vendor_patch_level),
        ("bootPatchLevel", list.boot_patch_level),
    ];
    for (name, value) in numbers_fields {
        if let Some(value) = value {
            field(name, value.to_string());
        }
    }
    for (name, value) in [
        ("blockMode", &list.block_mode),
        ("digest", &list.digest),
        ("padding", &list.padding),
        ("mgfDigest", &list.mgf_digest),
    ] {
        if let Some(values) = value {
            field(name, numbers(values));
        }
    }
    for (name, value) in [
        ("activeDateTime", list.active_date_time),
        (
            "originationExpireDateTime",
            list.origination_expire_date_time,
        ),
        ("usageExpireDateTime", list.usage_expire_date_time),
        ("creationDateTime", list.creation_date_time),
    ] {
        if let Some(ms) = value {
            let at = match creation_time(ms) {
                serde_json::Value::String(at) => format!(" ({at})"),
                _ => String::new(),
            };
            field(name, format!("{ms} ms{at}"));
        }
    }
    if let Some(origin) = list.origin {
        let name = match origin {
            KeyOrigin::Generated => "GENERATED".to_owned(),
            KeyOrigin::Derived => "DERIVED".to_owned(),
            KeyOrigin::Imported => "IMPORTED".to_owned(),
            KeyOrigin::Reserved => "RESERVED".to_owned(),
            KeyOrigin::SecurelyImported => "SECURELY_IMPORTED".to_owned(),
            KeyOrigin::Unknown(value) => format!("unknown ({value})"),
        };
        field("origin", name);
    }
    if let Some(rot) = &list.root_of_trust {
        field(
            "rootOfTrust",
            format!(
                "verifiedBootState {}, deviceLocked {}, verifiedBootKey {}{}",
                rot.verified_boot_state,
                rot.device_locked,
                bytes(&rot.verified_boot_key),
                rot.verified_boot_hash
                    .as_ref()
                    .map(|h| format!(", verifiedBootHash {}", B64.encode(h)))
                    .unwrap_or_default()
            ),
        );
    }
    if let Some(app) = &list.attestation_application_id {
        for package in &app.packages {
            field(
                "attestationApplicationId package",
                format!("{} (version {})", package.name, package.version),
            );
        }
        for digest in &app.signature_digests {
            field(
                "attestationApplicationId signing digest",
                B64.encode(digest),
            );
        }
    }
    for (name, value) in [
        ("attestationIdBrand", &list.attestation_id_brand),
        ("attestationIdDevice", &list.attestation_id_device),
        ("attestationIdProduct", &list.attestation_id_product),
        ("attestationIdSerial", &list.attestation_id_serial),
        ("attestationIdImei", &list.attestation_id_imei),
        ("attestationIdSecondImei", &list.attestation_id_second_imei),
        ("attestationIdMeid", &list.attestation_id_meid),
        (
            "attestationIdManufacturer",
            &list.attestation_id_manufacturer,
        ),
        ("attestationIdModel", &list.attestation_id_model),
        ("moduleHash", &list.module_hash),
    ] {
        if let Some(value) = value {
            field(name, bytes(value));
        }
    }
    let flags: Vec<&str> = [
        ("callerNonce", list.caller_nonce),
        ("rollbackResistance", list.rollback_resistance),
        ("earlyBootOnly", list.early_boot_only),
        ("noAuthRequired", list.no_auth_required),
        ("allowWhileOnBody", list.allow_while_on_body),
        (
            "trustedUserPresenceRequired",
            list.trusted_user_presence_required,
        ),
        (
            "trustedConfirmationRequired",
            list.trusted_confirmation_required,
        ),
        ("unlockedDeviceRequired", list.unlocked_device_required),
        ("allApplications", list.all_applications),
        ("rollbackResistant", list.rollback_resistant),
        ("deviceUniqueAttestation", list.device_unique_attestation),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if !flags.is_empty() {
        field("flags", flags.join(", "));
    }
    if !list.unknown_tags.is_empty() {
        let tags: Vec<String> = list.unknown_tags.iter().map(u32::to_string).collect();
        field("unknown tags (skipped)", tags.join(", "));
    }
    if !list.tags_in_order {
        field("tag order", "not ascending (tolerated)".into());
    }
    if out.len() == before {
        line(out, indent, "(empty)");
    }
}
