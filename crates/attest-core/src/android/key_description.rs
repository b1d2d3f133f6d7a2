//! The KeyDescription extension (OID 1.3.6.1.4.1.11129.2.1.17) of an attested key's
//! certificate, parsed tolerantly.
//!
//! ```text
//! KeyDescription ::= SEQUENCE {
//!     attestationVersion         INTEGER,
//!     attestationSecurityLevel   SecurityLevel,       -- ENUMERATED
//!     keyMintVersion             INTEGER,             -- keymasterVersion before KeyMint
//!     keyMintSecurityLevel       SecurityLevel,
//!     attestationChallenge       OCTET STRING,
//!     uniqueId                   OCTET STRING,
//!     softwareEnforced           AuthorizationList,
//!     hardwareEnforced           AuthorizationList,   -- "teeEnforced" before KeyMint
//! }
//! AuthorizationList ::= SEQUENCE { [tag] EXPLICIT ... OPTIONAL, ... }
//! ```
//!
//! Tolerance, each seen on real devices or in Google's test data: a BOOLEAN whose byte is `01`
//! (DER says `FF`) is true; AuthorizationList tags may come in any order (recorded in
//! [`AuthorizationList::tags_in_order`]); tags this parser does not know are skipped and
//! recorded ([`AuthorizationList::unknown_tags`]) rather than refused as Google's parser does;
//! algorithm and other enumerated values are kept as numbers, so ML-DSA keys (algorithm 4) and
//! future ones parse; SecurityLevel may be written as INTEGER; fields after the eight of the
//! schema are ignored. Refused: indefinite lengths, truncation, a known tag whose value has the
//! wrong type, and a tag given twice (two readers could pick different values).

pub use attest_types::evidence::{SecurityLevel, VerifiedBootState};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::oid;

use super::der::{self, Class, DerError, Tlv};

/// Upper bound on the extension value: real ones are under 2 KB.
pub const MAX_KEY_DESCRIPTION_LEN: usize = 16 * 1024;

/// Why a KeyDescription did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed KeyDescription: {0}")]
pub struct KeyDescriptionError(pub &'static str);

impl From<DerError> for KeyDescriptionError {
    fn from(reason: DerError) -> Self {
        Self(reason)
    }
}

/// How the key came to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyOrigin {
    /// 0: generated in the secure hardware.
    Generated,
    /// 1: derived inside it.
    Derived,
    /// 2: imported from outside.
    Imported,
    /// 3: reserved.
    Reserved,
    /// 4: imported wrapped (securely imported).
    SecurelyImported,
    /// A value the schema does not define.
    Unknown(u64),
}

impl KeyOrigin {
    fn from_value(value: u64) -> Self {
        match value {
            0 => Self::Generated,
            1 => Self::Derived,
            2 => Self::Imported,
            3 => Self::Reserved,
            4 => Self::SecurelyImported,
            other => Self::Unknown(other),
        }
    }
}

/// KeyMint key purposes (values of [`AuthorizationList::purpose`]).
pub mod purpose {
    /// ENCRYPT.
    pub const ENCRYPT: u64 = 0;
    /// DECRYPT.
    pub const DECRYPT: u64 = 1;
    /// SIGN.
    pub const SIGN: u64 = 2;
    /// VERIFY.
    pub const VERIFY: u64 = 3;
    /// WRAP_KEY.
    pub const WRAP_KEY: u64 = 5;
    /// AGREE_KEY.
    pub const AGREE_KEY: u64 = 6;
    /// ATTEST_KEY: the key signs other keys' attestation certificates (Android 12+).
    pub const ATTEST_KEY: u64 = 7;
}

/// KeyMint algorithms (values of [`AuthorizationList::algorithm`]).
pub mod algorithm {
    /// RSA.
    pub const RSA: u64 = 1;
    /// Elliptic curve.
    pub const EC: u64 = 3;
    /// ML-DSA (Android 17 previews).
    pub const ML_DSA: u64 = 4;
    /// AES.
    pub const AES: u64 = 32;
    /// Triple DES.
    pub const TRIPLE_DES: u64 = 33;
    /// HMAC.
    pub const HMAC: u64 = 128;
}

/// The device's boot state, as the bootloader told the secure hardware.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RootOfTrust {
    /// Digest of the key that verified the boot image (all zeros when unlocked).
    pub verified_boot_key: Vec<u8>,
    /// Whether the bootloader is locked.
    pub device_locked: bool,
    /// The verified boot state.
    pub verified_boot_state: VerifiedBootState,
    /// Digest of the verified boot images (attestation version 3 and later).
    pub verified_boot_hash: Option<Vec<u8>>,
}

/// One package of the attested application (several when apps share a UID).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PackageInfo {
    /// The package name (invalid UTF-8 replaced, which no expected name matches).
    pub name: String,
    /// Its versionCode.
    pub version: i64,
}

/// attestationApplicationId `[709]`: who asked for the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct AttestationApplicationId {
    /// The packages of the calling UID.
    pub packages: Vec<PackageInfo>,
    /// SHA-256 digests of the app's signing certificates.
    pub signature_digests: Vec<Vec<u8>>,
}

/// One AuthorizationList (software- or hardware-enforced). Every field is optional in the
/// schema; flags (`NULL`-typed tags) are `true` when present.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AuthorizationList {
    /// `[1]` purpose.
    pub purpose: Option<Vec<u64>>,
    /// `[2]` algorithm.
    pub algorithm: Option<u64>,
    /// `[3]` keySize.
    pub key_size: Option<u64>,
    /// `[4]` blockMode.
    pub block_mode: Option<Vec<u64>>,
    /// `[5]` digest.
    pub digest: Option<Vec<u64>>,
    /// `[6]` padding.
    pub padding: Option<Vec<u64>>,
    /// `[7]` callerNonce.
    pub caller_nonce: bool,
    /// `[8]` minMacLength.
    pub min_mac_length: Option<u64>,
    /// `[10]` ecCurve.
    pub ec_curve: Option<u64>,
    /// `[11]` ML-DSA parameter set.
    pub ml_dsa_variant: Option<u64>,
    /// `[200]` rsaPublicExponent.
    pub rsa_public_exponent: Option<u64>,
    /// `[203]` mgfDigest.
    pub mgf_digest: Option<Vec<u64>>,
    /// `[303]` rollbackResistance.
    pub rollback_resistance: bool,
    /// `[305]` earlyBootOnly.
    pub early_boot_only: bool,
    /// `[400]` activeDateTime (ms since the epoch).
    pub active_date_time: Option<u64>,
    /// `[401]` originationExpireDateTime (ms).
    pub origination_expire_date_time: Option<u64>,
    /// `[402]` usageExpireDateTime (ms).
    pub usage_expire_date_time: Option<u64>,
    /// `[405]` usageCountLimit.
    pub usage_count_limit: Option<u64>,
    /// `[503]` noAuthRequired.
    pub no_auth_required: bool,
    /// `[504]` userAuthType.
    pub user_auth_type: Option<u64>,
    /// `[505]` authTimeout (seconds).
    pub auth_timeout: Option<u64>,
    /// `[506]` allowWhileOnBody.
    pub allow_while_on_body: bool,
    /// `[507]` trustedUserPresenceRequired.
    pub trusted_user_presence_required: bool,
    /// `[508]` trustedConfirmationRequired.
    pub trusted_confirmation_required: bool,
    /// `[509]` unlockedDeviceRequired.
    pub unlocked_device_required: bool,
    /// `[600]` allApplications (Keymaster 2 and 3).
    pub all_applications: bool,
    /// `[701]` creationDateTime (ms since the epoch, device clock).
    pub creation_date_time: Option<u64>,
    /// `[702]` origin.
    pub origin: Option<KeyOrigin>,
    /// `[703]` rollbackResistant (Keymaster 2 and 3).
    pub rollback_resistant: bool,
    /// `[704]` rootOfTrust.
    pub root_of_trust: Option<RootOfTrust>,
    /// `[705]` osVersion, `MMmmpp` (130000 = 13.0.0).
    pub os_version: Option<u64>,
    /// `[706]` osPatchLevel, `YYYYMM`.
    pub os_patch_level: Option<u64>,
    /// `[709]` attestationApplicationId.
    pub attestation_application_id: Option<AttestationApplicationId>,
    /// `[710]` attestationIdBrand.
    pub attestation_id_brand: Option<Vec<u8>>,
    /// `[711]` attestationIdDevice.
    pub attestation_id_device: Option<Vec<u8>>,
    /// `[712]` attestationIdProduct.
    pub attestation_id_product: Option<Vec<u8>>,
    /// `[713]` attestationIdSerial.
    pub attestation_id_serial: Option<Vec<u8>>,
    /// `[714]` attestationIdImei.
    pub attestation_id_imei: Option<Vec<u8>>,
    /// `[715]` attestationIdMeid.
    pub attestation_id_meid: Option<Vec<u8>>,
    /// `[716]` attestationIdManufacturer.
    pub attestation_id_manufacturer: Option<Vec<u8>>,
    /// `[717]` attestationIdModel.
    pub attestation_id_model: Option<Vec<u8>>,
    /// `[718]` vendorPatchLevel, `YYYYMMDD` (or `YYYYMM`).
    pub vendor_patch_level: Option<u64>,
    /// `[719]` bootPatchLevel, `YYYYMMDD` (or `YYYYMM`).
    pub boot_patch_level: Option<u64>,
    /// `[720]` deviceUniqueAttestation.
    pub device_unique_attestation: bool,
    /// `[723]` attestationIdSecondImei.
    pub attestation_id_second_imei: Option<Vec<u8>>,
    /// `[724]` moduleHash.
    pub module_hash: Option<Vec<u8>>,
    /// Tag numbers this parser does not know, in the order met (skipped, not refused).
    pub unknown_tags: Vec<u32>,
    /// Whether the tags came in ascending order, as DER's SET order would have them.
    pub tags_in_order: bool,
}

/// A parsed KeyDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyDescription {
    /// attestationVersion (1, 2, 3, 4, 100, 200, 300, 400, 500 seen).
    pub attestation_version: u64,
    /// attestationSecurityLevel.
    pub attestation_security_level: SecurityLevel,
    /// keyMintVersion (keymasterVersion before KeyMint).
    pub keymint_version: u64,
    /// keyMintSecurityLevel.
    pub keymint_security_level: SecurityLevel,
    /// attestationChallenge.
    pub attestation_challenge: Vec<u8>,
    /// uniqueId.
    pub unique_id: Vec<u8>,
    /// softwareEnforced.
    pub software_enforced: AuthorizationList,
    /// hardwareEnforced (teeEnforced).
    pub hardware_enforced: AuthorizationList,
}

impl KeyDescription {
    /// Parses the extension value (the content of extnValue's OCTET STRING).
    pub fn parse(extension_value: &[u8]) -> Result<Self, KeyDescriptionError> {
        if extension_value.len() > MAX_KEY_DESCRIPTION_LEN {
            return Err(KeyDescriptionError("larger than 16 KiB"));
        }
        // Bytes after the SEQUENCE are ignored, like fields after the eighth.
        let (outer, _) = der::read(extension_value)?;
        let mut fields = outer.sequence(false)?;
        let attestation_version = fields.expect("no attestationVersion")?.unsigned(false)?;
        let attestation_security_level = SecurityLevel::from_value(
            fields
                .expect("no attestationSecurityLevel")?
                .unsigned(true)?,
        );
        let keymint_version = fields.expect("no keyMintVersion")?.unsigned(false)?;
        let keymint_security_level =
            SecurityLevel::from_value(fields.expect("no keyMintSecurityLevel")?.unsigned(true)?);
        let attestation_challenge = fields.expect("no attestationChallenge")?.octets()?.to_vec();
        let unique_id = fields.expect("no uniqueId")?.octets()?.to_vec();
        let software_enforced = AuthorizationList::parse(&fields.expect("no softwareEnforced")?)?;
        let hardware_enforced = AuthorizationList::parse(&fields.expect("no hardwareEnforced")?)?;
        Ok(Self {
            attestation_version,
            attestation_security_level,
            keymint_version,
            keymint_security_level,
            attestation_challenge,
            unique_id,
            software_enforced,
            hardware_enforced,
        })
    }

    /// The KeyDescription of a certificate (DER), e.g. to show a chain's certificates to a
    /// human. Verification reads it through [`AndroidVerifier`](super::AndroidVerifier).
    pub fn of_certificate(der: &[u8]) -> Result<Self, KeyDescriptionError> {
        let cert = super::chain::parse_certificate(der)
            .ok_or(KeyDescriptionError("not a DER X.509 certificate"))?;
        match extension(&cert) {
            Extension::Present(value) => Self::parse(value),
            Extension::Absent => Err(KeyDescriptionError("the certificate has no KeyDescription")),
            Extension::Duplicated => Err(KeyDescriptionError(
                "the certificate has two KeyDescription extensions",
            )),
        }
    }

    /// attestationApplicationId, from whichever list carries it (softwareEnforced on every
    /// device seen; hardwareEnforced accepted too).
    pub fn application_id(&self) -> Option<&AttestationApplicationId> {
        self.software_enforced
            .attestation_application_id
            .as_ref()
            .or(self.hardware_enforced.attestation_application_id.as_ref())
    }

    /// The lower of the attestation and KeyMint security levels.
    pub fn security_level(&self) -> SecurityLevel {
        if self.attestation_security_level.rank() <= self.keymint_security_level.rank() {
            self.attestation_security_level
        } else {
            self.keymint_security_level
        }
    }
}

impl AuthorizationList {
    /// Whether `purpose` holds `value`.
    pub fn has_purpose(&self, value: u64) -> bool {
        self.purpose.as_ref().is_some_and(|p| p.contains(&value))
    }

    fn parse(list: &Tlv<'_>) -> Result<Self, KeyDescriptionError> {
        let mut reader = list.sequence(false)?;
        let mut out = Self {
            tags_in_order: true,
            ..Self::default()
        };
        let mut seen: Vec<u32> = Vec::new();
        while let Some(field) = reader.next_tlv()? {
            if field.class != Class::Context || !field.constructed {
                return Err(KeyDescriptionError(
                    "AuthorizationList entry is not an EXPLICIT context tag",
                ));
            }
            let tag = field.number;
            if seen.contains(&tag) {
                return Err(KeyDescriptionError(
                    "an AuthorizationList tag appears twice",
                ));
            }
            if seen.last().is_some_and(|last| *last > tag) {
                out.tags_in_order = false;
            }
            seen.push(tag);
            // EXPLICIT: the value is the first TLV inside (anything after it is ignored).
            let (value, _) = der::read(field.content)?;
            out.set(tag, &value)?;
        }
        Ok(out)
    }

    fn set(&mut self, tag: u32, value: &Tlv<'_>) -> Result<(), KeyDescriptionError> {
        let int = || value.unsigned(false);
        let set_of = || -> Result<Vec<u64>, DerError> {
            let mut items = value.sequence(true)?;
            let mut out = Vec::new();
            while let Some(item) = items.next_tlv()? {
                out.push(item.unsigned(true)?);
            }
            Ok(out)
        };
        let bytes = || value.string_bytes().map(<[u8]>::to_vec);
        match tag {
            1 => self.purpose = Some(set_of()?),
            2 => self.algorithm = Some(int()?),
            3 => self.key_size = Some(int()?),
            4 => self.block_mode = Some(set_of()?),
            5 => self.digest = Some(set_of()?),
            6 => self.padding = Some(set_of()?),
            7 => self.caller_nonce = true,
            8 => self.min_mac_length = Some(int()?),
            10 => self.ec_curve = Some(int()?),
            11 => self.ml_dsa_variant = Some(int()?),
            200 => self.rsa_public_exponent = Some(int()?),
            203 => self.mgf_digest = Some(set_of()?),
            303 => self.rollback_resistance = true,
            305 => self.early_boot_only = true,
            400 => self.active_date_time = Some(int()?),
            401 => self.origination_expire_date_time = Some(int()?),
            402 => self.usage_expire_date_time = Some(int()?),
            405 => self.usage_count_limit = Some(int()?),
            503 => self.no_auth_required = true,
            504 => self.user_auth_type = Some(int()?),
            505 => self.auth_timeout = Some(int()?),
            506 => self.allow_while_on_body = true,
            507 => self.trusted_user_presence_required = true,
            508 => self.trusted_confirmation_required = true,
            509 => self.unlocked_device_required = true,
            600 => self.all_applications = true,
            701 => self.creation_date_time = Some(int()?),
            702 => self.origin = Some(KeyOrigin::from_value(value.unsigned(true)?)),
            703 => self.rollback_resistant = true,
            704 => self.root_of_trust = Some(root_of_trust(value)?),
            705 => self.os_version = Some(int()?),
            706 => self.os_patch_level = Some(int()?),
            709 => {
                self.attestation_application_id = Some(application_id(value.octets()?)?);
            }
            710 => self.attestation_id_brand = Some(bytes()?),
            711 => self.attestation_id_device = Some(bytes()?),
            712 => self.attestation_id_product = Some(bytes()?),
            713 => self.attestation_id_serial = Some(bytes()?),
            714 => self.attestation_id_imei = Some(bytes()?),
            715 => self.attestation_id_meid = Some(bytes()?),
            716 => self.attestation_id_manufacturer = Some(bytes()?),
            717 => self.attestation_id_model = Some(bytes()?),
            718 => self.vendor_patch_level = Some(int()?),
            719 => self.boot_patch_level = Some(int()?),
            720 => self.device_unique_attestation = true,
            723 => self.attestation_id_second_imei = Some(bytes()?),
            724 => self.module_hash = Some(value.octets()?.to_vec()),
            other => self.unknown_tags.push(other),
        }
        Ok(())
    }
}

/// `RootOfTrust ::= SEQUENCE { verifiedBootKey OCTET STRING, deviceLocked BOOLEAN,
/// verifiedBootState ENUMERATED, verifiedBootHash OCTET STRING (version 3+) }`.
fn root_of_trust(value: &Tlv<'_>) -> Result<RootOfTrust, KeyDescriptionError> {
    let mut fields = value.sequence(false)?;
    let verified_boot_key = fields.expect("no verifiedBootKey")?.octets()?.to_vec();
    let device_locked = fields.expect("no deviceLocked")?.boolean()?;
    let verified_boot_state =
        VerifiedBootState::from_value(fields.expect("no verifiedBootState")?.unsigned(true)?);
    let verified_boot_hash = match fields.next_tlv()? {
        Some(hash) => Some(hash.octets()?.to_vec()),
        None => None,
    };
    Ok(RootOfTrust {
        verified_boot_key,
        device_locked,
        verified_boot_state,
        verified_boot_hash,
    })
}

/// `AttestationApplicationId ::= SEQUENCE { SET OF SEQUENCE { OCTET STRING packageName,
/// INTEGER version }, SET OF OCTET STRING signatureDigests }`, inside an OCTET STRING.
fn application_id(octets: &[u8]) -> Result<AttestationApplicationId, KeyDescriptionError> {
    let outer = der::read_exact(octets)?;
    let mut fields = outer.sequence(false)?;
    let mut packages_set = fields.expect("no package infos")?.sequence(true)?;
    let mut packages = Vec::new();
    while let Some(info) = packages_set.next_tlv()? {
        let mut parts = info.sequence(false)?;
        let name = parts.expect("no package name")?.octets()?;
        let version = parts.expect("no package version")?.signed()?;
        packages.push(PackageInfo {
            name: String::from_utf8_lossy(name).into_owned(),
            version,
        });
    }
    let mut digests_set = fields.expect("no signature digests")?.sequence(true)?;
    let mut signature_digests = Vec::new();
    while let Some(digest) = digests_set.next_tlv()? {
        signature_digests.push(digest.octets()?.to_vec());
    }
    Ok(AttestationApplicationId {
        packages,
        signature_digests,
    })
}

/// The KeyDescription extension of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extension<'a> {
    /// The certificate has none.
    Absent,
    /// The extension value (content of extnValue).
    Present(&'a [u8]),
    /// It is there more than once (unparseable: which one would count?).
    Duplicated,
}

/// Finds the KeyDescription extension of `cert`.
pub(crate) fn extension<'a>(cert: &X509Certificate<'a>) -> Extension<'a> {
    let oid = oid!(1.3.6.1.4.1.11129.2.1.17);
    let mut found = Extension::Absent;
    for ext in cert.extensions().iter().filter(|e| e.oid == oid) {
        found = match found {
            Extension::Absent => Extension::Present(ext.value),
            _ => Extension::Duplicated,
        };
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::android::chain::parse_certificate;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    use serde_json::{Map, Value, json};

    fn level(level: SecurityLevel) -> Value {
        json!(match level {
            SecurityLevel::Software => "SOFTWARE",
            SecurityLevel::TrustedEnvironment => "TRUSTED_ENVIRONMENT",
            SecurityLevel::StrongBox => "STRONG_BOX",
            SecurityLevel::Unknown(_) => "UNKNOWN",
        })
    }

    /// The vectors' `facts.key_description` shape (the independent checker's parse).
    fn to_json(list: &AuthorizationList) -> Value {
        let mut m = Map::new();
        let b64 = |b: &[u8]| json!(B64.encode(b));
        let text = |b: &[u8]| json!(String::from_utf8_lossy(b));
        macro_rules! put {
            ($key:literal, $value:expr) => {
                if let Some(v) = &$value {
                    m.insert($key.into(), json!(v));
                }
            };
        }
        macro_rules! flag {
            ($key:literal, $value:expr) => {
                if $value {
                    m.insert($key.into(), json!(true));
                }
            };
        }
        macro_rules! id {
            ($key:literal, $value:expr) => {
                if let Some(v) = &$value {
                    m.insert($key.into(), text(v));
                }
            };
        }
        put!("purpose", list.purpose);
        put!("algorithm", list.algorithm);
        put!("keySize", list.key_size);
        put!("blockMode", list.block_mode);
        put!("digest", list.digest);
        put!("padding", list.padding);
        flag!("callerNonce", list.caller_nonce);
        put!("minMacLength", list.min_mac_length);
        put!("ecCurve", list.ec_curve);
        put!("mlDsaVariant", list.ml_dsa_variant);
        put!("rsaPublicExponent", list.rsa_public_exponent);
        put!("mgfDigest", list.mgf_digest);
        flag!("rollbackResistance", list.rollback_resistance);
        flag!("earlyBootOnly", list.early_boot_only);
        put!("activeDateTime", list.active_date_time);
        put!(
            "originationExpireDateTime",
            list.origination_expire_date_time
        );
        put!("usageExpireDateTime", list.usage_expire_date_time);
        put!("usageCountLimit", list.usage_count_limit);
        flag!("noAuthRequired", list.no_auth_required);
        put!("userAuthType", list.user_auth_type);
        put!("authTimeout", list.auth_timeout);
        flag!("allowWhileOnBody", list.allow_while_on_body);
        flag!(
            "trustedUserPresenceRequired",
            list.trusted_user_presence_required
        );
        flag!(
            "trustedConfirmationRequired",
            list.trusted_confirmation_required
        );
        flag!("unlockedDeviceRequired", list.unlocked_device_required);
        flag!("allApplications", list.all_applications);
        put!("creationDateTime", list.creation_date_time);
        if let Some(origin) = list.origin {
            let name = match origin {
                KeyOrigin::Generated => "GENERATED",
                KeyOrigin::Derived => "DERIVED",
                KeyOrigin::Imported => "IMPORTED",
                KeyOrigin::Reserved => "RESERVED",
                KeyOrigin::SecurelyImported => "SECURELY_IMPORTED",
                KeyOrigin::Unknown(_) => "UNKNOWN",
            };
            m.insert("origin".into(), json!(name));
        }
        flag!("rollbackResistant", list.rollback_resistant);
        if let Some(rot) = &list.root_of_trust {
            let state = match rot.verified_boot_state {
                VerifiedBootState::Verified => "VERIFIED",
                VerifiedBootState::SelfSigned => "SELF_SIGNED",
                VerifiedBootState::Unverified => "UNVERIFIED",
                VerifiedBootState::Failed => "FAILED",
                VerifiedBootState::Unknown(_) => "UNKNOWN",
            };
            let mut r = Map::new();
            r.insert("verifiedBootKey".into(), b64(&rot.verified_boot_key));
            r.insert("deviceLocked".into(), json!(rot.device_locked));
            r.insert("verifiedBootState".into(), json!(state));
            if let Some(hash) = &rot.verified_boot_hash {
                r.insert("verifiedBootHash".into(), b64(hash));
            }
            m.insert("rootOfTrust".into(), Value::Object(r));
        }
        put!("osVersion", list.os_version);
        put!("osPatchLevel", list.os_patch_level);
        if let Some(app) = &list.attestation_application_id {
            let packages: Vec<Value> = app
                .packages
                .iter()
                .map(|p| json!({"name": p.name, "version": p.version}))
                .collect();
            let signatures: Vec<Value> = app.signature_digests.iter().map(|d| b64(d)).collect();
            m.insert(
                "attestationApplicationId".into(),
                json!({"packages": packages, "signatures": signatures}),
            );
        }
        id!("attestationIdBrand", list.attestation_id_brand);
        id!("attestationIdDevice", list.attestation_id_device);
        id!("attestationIdProduct", list.attestation_id_product);
        id!("attestationIdSerial", list.attestation_id_serial);
        id!("attestationIdImei", list.attestation_id_imei);
        id!("attestationIdMeid", list.attestation_id_meid);
        id!(
            "attestationIdManufacturer",
            list.attestation_id_manufacturer
        );
        id!("attestationIdModel", list.attestation_id_model);
        put!("vendorPatchLevel", list.vendor_patch_level);
        put!("bootPatchLevel", list.boot_patch_level);
        flag!("deviceUniqueAttestation", list.device_unique_attestation);
        id!("attestationIdSecondImei", list.attestation_id_second_imei);
        if let Some(hash) = &list.module_hash {
            m.insert("moduleHash".into(), b64(hash));
        }
        Value::Object(m)
    }

    fn description_json(kd: &KeyDescription) -> Value {
        json!({
            "attestationVersion": kd.attestation_version,
            "attestationSecurityLevel": level(kd.attestation_security_level),
            "keyMintVersion": kd.keymint_version,
            "keyMintSecurityLevel": level(kd.keymint_security_level),
            "attestationChallenge": B64.encode(&kd.attestation_challenge),
            "uniqueId": B64.encode(&kd.unique_id),
            "softwareEnforced": to_json(&kd.software_enforced),
            "hardwareEnforced": to_json(&kd.hardware_enforced),
        })
    }

    /// Every leaf of the real vectors parses to exactly what the vectors' independent checker
    /// parsed (60 leaves; the reversed-order record has no leaf first).
    #[test]
    fn every_vector_leaf_parses_as_the_checker_did() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/android/key_attestation");
        let mut parsed = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let record: Value =
                serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap())
                    .unwrap();
            let id = record["id"].as_str().unwrap();
            let expected = &record["facts"]["key_description"];
            if expected.is_null() {
                continue;
            }
            let leaf = B64.decode(record["x5c"][0].as_str().unwrap()).unwrap();
            let cert = parse_certificate(&leaf).unwrap();
            let Extension::Present(value) = extension(&cert) else {
                panic!("{id}: no KeyDescription");
            };
            let kd = KeyDescription::parse(value).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(KeyDescription::of_certificate(&leaf).as_ref(), Ok(&kd));
            assert_eq!(&description_json(&kd), expected, "{id}");
            let facts = &record["facts"];
            let in_order = kd.software_enforced.tags_in_order && kd.hardware_enforced.tags_in_order;
            assert_eq!(json!(in_order), facts["tags_in_ascending_order"], "{id}");
            assert!(kd.software_enforced.unknown_tags.is_empty(), "{id}");
            assert!(kd.hardware_enforced.unknown_tags.is_empty(), "{id}");
            parsed += 1;
        }
        assert_eq!(parsed, 60);
    }

    fn explicit(tag: u32, inner: &[u8]) -> Vec<u8> {
        let mut out = vec![0xbf];
        let mut groups = Vec::new();
        let mut n = tag;
        loop {
            groups.push((n & 0x7f) as u8);
            n >>= 7;
            if n == 0 {
                break;
            }
        }
        if tag < 31 {
            out = vec![0xa0 | tag as u8];
        } else {
            for (i, g) in groups.iter().rev().enumerate() {
                out.push(if i + 1 < groups.len() { g | 0x80 } else { *g });
            }
        }
        out.extend(length(inner.len()));
        out.extend_from_slice(inner);
        out
    }

    fn length(len: usize) -> Vec<u8> {
        if len < 0x80 {
            vec![len as u8]
        } else {
            vec![0x82, (len >> 8) as u8, len as u8]
        }
    }

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend(length(content.len()));
        out.extend_from_slice(content);
        out
    }

    fn description(software: &[u8], hardware: &[u8]) -> Vec<u8> {
        let body = [
            tlv(0x02, &[0x01, 0x2c]),
            tlv(0x0a, &[1]),
            tlv(0x02, &[0x01, 0x2c]),
            tlv(0x0a, &[1]),
            tlv(0x04, b"challenge"),
            tlv(0x04, b""),
            tlv(0x30, software),
            tlv(0x30, hardware),
        ]
        .concat();
        tlv(0x30, &body)
    }

    #[test]
    fn tolerates_out_of_order_unknown_tags_boolean_01_and_unknown_algorithms() {
        let rot = tlv(
            0x30,
            &[
                tlv(0x04, &[0; 32]),
                tlv(0x01, &[0x01]),
                tlv(0x0a, &[0]),
                tlv(0x04, &[7; 32]),
            ]
            .concat(),
        );
        let hardware = [
            explicit(704, &rot),
            explicit(2, &tlv(0x02, &[99])),
            explicit(1, &tlv(0x31, &tlv(0x02, &[2]))),
            explicit(9999, &tlv(0x05, &[])),
            explicit(702, &tlv(0x02, &[0])),
        ]
        .concat();
        let kd = KeyDescription::parse(&description(&[], &hardware)).unwrap();
        let hw = &kd.hardware_enforced;
        assert!(!hw.tags_in_order);
        assert_eq!(hw.unknown_tags, vec![9999]);
        assert_eq!(hw.algorithm, Some(99));
        assert!(hw.has_purpose(purpose::SIGN));
        assert_eq!(hw.origin, Some(KeyOrigin::Generated));
        let rot = hw.root_of_trust.as_ref().unwrap();
        assert!(rot.device_locked);
        assert_eq!(rot.verified_boot_state, VerifiedBootState::Verified);
        assert_eq!(kd.security_level(), SecurityLevel::TrustedEnvironment);
        assert_eq!(kd.attestation_challenge, b"challenge");
        // Trailing bytes after the SEQUENCE are ignored.
        let mut trailing = description(&[], &hardware);
        trailing.push(0x0a);
        assert_eq!(KeyDescription::parse(&trailing).unwrap(), kd);
    }

    #[test]
    fn refuses_duplicates_wrong_types_and_truncation() {
        let twice = [
            explicit(702, &tlv(0x02, &[0])),
            explicit(702, &tlv(0x02, &[2])),
        ]
        .concat();
        assert_eq!(
            KeyDescription::parse(&description(&[], &twice)),
            Err(KeyDescriptionError(
                "an AuthorizationList tag appears twice"
            ))
        );
        let wrong_type = explicit(702, &tlv(0x04, &[0]));
        assert!(KeyDescription::parse(&description(&[], &wrong_type)).is_err());
        let good = description(&[], &[]);
        for cut in 0..good.len() {
            assert!(KeyDescription::parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(KeyDescription::parse(&good).is_ok());
        let negative_version = {
            let mut d = good.clone();
            d[4] = 0x81; // attestationVersion's first content byte: now negative
            d
        };
        assert!(KeyDescription::parse(&negative_version).is_err());
    }
}
