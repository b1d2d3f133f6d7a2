//! What a platform's verifier proved about a key, kept with the key for the risk score, the
//! policy and the admin API.
//!
//! Each platform has its own typed evidence; [`Evidence`] is one of them. The store keeps it as
//! JSON beside the key and parses it back into the type of the key's platform: a stored value
//! that does not parse is corruption, never a silent default. Apple's JSON form is the one the
//! `metadata` column held before evidence was typed, so rows written by earlier versions parse
//! unchanged.

use serde::{Deserialize, Serialize};

use crate::Platform;

/// The typed facts one platform's verifier established when it accepted a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// An App Attest attestation.
    Apple(AppleEvidence),
    /// An Android Key Attestation chain.
    Android(AndroidEvidence),
}

impl Evidence {
    /// The platform that produced the evidence.
    pub const fn platform(&self) -> Platform {
        match self {
            Self::Apple(_) => Platform::Ios,
            Self::Android(_) => Platform::Android,
        }
    }

    /// Apple's evidence, if it is Apple's.
    pub const fn apple(&self) -> Option<&AppleEvidence> {
        match self {
            Self::Apple(apple) => Some(apple),
            Self::Android(_) => None,
        }
    }

    /// Android's evidence, if it is Android's.
    pub const fn android(&self) -> Option<&AndroidEvidence> {
        match self {
            Self::Android(android) => Some(android),
            Self::Apple(_) => None,
        }
    }
}

/// Serialized as the platform's own object, without a tag: the key's platform (stored beside
/// it) says which type to read it back as.
impl Serialize for Evidence {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Apple(apple) => apple.serialize(serializer),
            Self::Android(android) => android.serialize(serializer),
        }
    }
}

impl From<AppleEvidence> for Evidence {
    fn from(apple: AppleEvidence) -> Self {
        Self::Apple(apple)
    }
}

impl From<AndroidEvidence> for Evidence {
    fn from(android: AndroidEvidence) -> Self {
        Self::Android(android)
    }
}

text_enum! {
    /// What became of the receipt an App Attest attestation carried.
    ReceiptStatus, "receipt status" {
        /// Present and verified: Apple's risk metric can be asked for with it.
        Valid = "valid",
        /// Present but not verified (the attestation was accepted under `report`).
        Invalid = "invalid",
        /// Absent.
        Missing = "missing",
    }
}

/// What an App Attest attestation proved besides the key.
///
/// Every field is optional in the stored form: keys attested by earlier versions lack some.
/// Absent fields are written as `null` (the admin API shows every field).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppleEvidence {
    /// The credential certificate's `notAfter`, unix seconds.
    #[serde(default)]
    pub leaf_not_after: Option<i64>,
    /// iOS 27 `apple_bundle_version_01`.
    #[serde(default)]
    pub bundle_version: Option<String>,
    /// iOS 27 `apple_validation_category_01` (hex in the stored form).
    #[serde(default, with = "hex_option")]
    pub validation_category: Option<Vec<u8>>,
    /// What became of the receipt; `None` for keys stored before statuses were recorded, which
    /// were accepted only with a verified receipt.
    #[serde(default)]
    pub receipt_status: Option<ReceiptStatus>,
    /// Why the receipt was not verified, when it was invalid (a stable reason code).
    #[serde(default)]
    pub receipt_reason: Option<String>,
    /// The verified receipt's creation time, unix seconds.
    #[serde(default)]
    pub receipt_created_at: Option<i64>,
}

/// Where an Android key lives, as KeyMint reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityLevel {
    /// 0: software (emulators, and KeyMint's software fallback).
    Software,
    /// 1: a Trusted Execution Environment.
    TrustedEnvironment,
    /// 2: a StrongBox secure element.
    StrongBox,
    /// A value the schema does not define.
    Unknown(u64),
}

impl SecurityLevel {
    /// The level of the schema's ENUMERATED value.
    pub const fn from_value(value: u64) -> Self {
        match value {
            0 => Self::Software,
            1 => Self::TrustedEnvironment,
            2 => Self::StrongBox,
            other => Self::Unknown(other),
        }
    }

    /// The schema's ENUMERATED value.
    pub const fn value(self) -> u64 {
        match self {
            Self::Software => 0,
            Self::TrustedEnvironment => 1,
            Self::StrongBox => 2,
            Self::Unknown(value) => value,
        }
    }

    /// 0 software and unknown, 1 TEE, 2 StrongBox.
    pub const fn rank(self) -> u8 {
        match self {
            Self::Software | Self::Unknown(_) => 0,
            Self::TrustedEnvironment => 1,
            Self::StrongBox => 2,
        }
    }

    /// `software`, `tee`, `strongbox` or `unknown`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Software => "software",
            Self::TrustedEnvironment => "tee",
            Self::StrongBox => "strongbox",
            Self::Unknown(_) => "unknown",
        }
    }
}

/// The boot state an Android bootloader reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerifiedBootState {
    /// 0: the whole boot chain verified with the device's own key (locked stock device).
    Verified,
    /// 1: verified with a user-installed key (custom ROM on a relocked bootloader).
    SelfSigned,
    /// 2: not verified (unlocked bootloader).
    Unverified,
    /// 3: verification failed.
    Failed,
    /// A value the schema does not define.
    Unknown(u64),
}

impl VerifiedBootState {
    /// The state of the schema's ENUMERATED value.
    pub const fn from_value(value: u64) -> Self {
        match value {
            0 => Self::Verified,
            1 => Self::SelfSigned,
            2 => Self::Unverified,
            3 => Self::Failed,
            other => Self::Unknown(other),
        }
    }

    /// The schema's ENUMERATED value.
    pub const fn value(self) -> u64 {
        match self {
            Self::Verified => 0,
            Self::SelfSigned => 1,
            Self::Unverified => 2,
            Self::Failed => 3,
            Self::Unknown(value) => value,
        }
    }

    /// `verified`, `self_signed`, `unverified`, `failed` or `unknown`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::SelfSigned => "self_signed",
            Self::Unverified => "unverified",
            Self::Failed => "failed",
            Self::Unknown(_) => "unknown",
        }
    }
}

/// `Display`, and serde as the text (an unknown value as its number, so it survives a round
/// trip), for the two schema enumerations above.
macro_rules! schema_enum_text {
    ($name:ident, $noun:literal) => {
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                match self {
                    Self::Unknown(value) => write!(f, "unknown ({value})"),
                    other => f.write_str(other.as_str()),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    Self::Unknown(value) => serializer.serialize_u64(*value),
                    known => serializer.serialize_str(known.as_str()),
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Form {
                    Text(String),
                    Value(u64),
                }
                match Form::deserialize(deserializer)? {
                    Form::Value(value) => match Self::from_value(value) {
                        Self::Unknown(value) => Ok(Self::Unknown(value)),
                        _ => Err(serde::de::Error::custom(concat!(
                            "a known ",
                            $noun,
                            " is stored as its text"
                        ))),
                    },
                    Form::Text(text) => (0..)
                        .map(Self::from_value)
                        .take_while(|level| !matches!(level, Self::Unknown(_)))
                        .find(|level| level.as_str() == text)
                        .ok_or_else(|| {
                            serde::de::Error::custom(concat!("unknown ", $noun, " text"))
                        }),
                }
            }
        }
    };
}

schema_enum_text!(SecurityLevel, "security level");
schema_enum_text!(VerifiedBootState, "verified boot state");

text_enum! {
    /// How an Android device got its attestation key.
    Provisioning, "provisioning" {
        /// Keys written at the factory; the top intermediate's subject carries a serialNumber.
        /// They cannot be rotated, so their expiry is tolerated.
        Factory = "factory",
        /// Remote key provisioning (RKP): short-lived keys under "Droid CA2"; expiry is enforced.
        Remote = "remote",
        /// Neither shape: expiry is enforced.
        Unknown = "unknown",
    }
}

text_enum! {
    /// The root an Android chain was anchored at.
    TrustAnchor, "trust anchor" {
        /// Google's RSA-4096 hardware attestation root key (2016/2019/2021/2022 certificates).
        GoogleRsa = "google_rsa",
        /// Google's P-384 "Key Attestation CA1" (remotely provisioned chains since 2026).
        GoogleKeyAttestationCa1 = "google_key_attestation_ca1",
        /// A root the caller configured in place of Google's (tests that play Google).
        Configured = "configured",
        /// A root the caller added besides Google's (simulators, quick start). Never a real
        /// device; its chains are not looked up in Google's revocation list.
        Extra = "extra",
    }
}

impl TrustAnchor {
    /// Whether this is one of Google's two pinned keys.
    pub const fn is_google(self) -> bool {
        matches!(self, Self::GoogleRsa | Self::GoogleKeyAttestationCa1)
    }
}

/// What an Android Key Attestation chain proved besides the key: the KeyDescription's facts
/// and how the chain was anchored. Fields every KeyDescription has are required in the stored
/// form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AndroidEvidence {
    /// The KeyDescription's attestationVersion (KeyMint 100, 200, 300, 400).
    pub attestation_version: u64,
    /// Where the attestation was made.
    pub attestation_security_level: SecurityLevel,
    /// Where the key lives.
    pub keymint_security_level: SecurityLevel,
    /// The boot state, when the chain carried a root of trust.
    pub verified_boot_state: Option<VerifiedBootState>,
    /// Whether the bootloader was locked, when the chain carried a root of trust.
    pub device_locked: Option<bool>,
    /// The key that verified the boot image (hex in the stored form).
    #[serde(with = "hex_option")]
    pub verified_boot_key: Option<Vec<u8>>,
    /// The OS version (`MMmmpp`, e.g. 150000 for Android 15).
    pub os_version: Option<u64>,
    /// The OS patch level (`YYYYMM`).
    pub os_patch_level: Option<u64>,
    /// The vendor image's patch level (`YYYYMMDD`).
    pub vendor_patch_level: Option<u64>,
    /// The boot image's patch level (`YYYYMMDD`).
    pub boot_patch_level: Option<u64>,
    /// The package names the attestation application id named.
    pub package_names: Vec<String>,
    /// SHA-256 digests of the app's signing certificates (hex in the stored form).
    #[serde(with = "hex_list")]
    pub signing_digests: Vec<Vec<u8>>,
    /// How the device got its attestation key.
    pub provisioning: Provisioning,
    /// The root the chain was anchored at.
    pub anchor: TrustAnchor,
    /// How many ATTEST_KEY certificates extended the chain (0 normally).
    pub attest_key_certificates: u32,
}

mod hex_option {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => serializer.serialize_str(&hex::encode(bytes)),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| hex::decode(text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        list: &[Vec<u8>],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(list.iter().map(hex::encode))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .into_iter()
            .map(|text| hex::decode(text).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn android() -> AndroidEvidence {
        AndroidEvidence {
            attestation_version: 300,
            attestation_security_level: SecurityLevel::TrustedEnvironment,
            keymint_security_level: SecurityLevel::StrongBox,
            verified_boot_state: Some(VerifiedBootState::Verified),
            device_locked: Some(true),
            verified_boot_key: Some(vec![0xab; 32]),
            os_version: Some(150000),
            os_patch_level: Some(202511),
            vendor_patch_level: Some(20251105),
            boot_patch_level: None,
            package_names: vec!["com.example.app".into()],
            signing_digests: vec![vec![1; 32]],
            provisioning: Provisioning::Remote,
            anchor: TrustAnchor::GoogleKeyAttestationCa1,
            attest_key_certificates: 0,
        }
    }

    #[test]
    fn apple_rows_written_before_evidence_was_typed_parse() {
        let stored = json!({
            "leafNotAfter": 1_700_000_000,
            "bundleVersion": "27.1",
            "validationCategory": "0102",
            "receiptStatus": "invalid",
            "receiptReason": "receipt_expired",
            "receiptCreatedAt": null,
        });
        let apple: AppleEvidence = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(apple.validation_category.as_deref(), Some(&[1u8, 2][..]));
        assert_eq!(apple.receipt_status, Some(ReceiptStatus::Invalid));
        assert_eq!(
            serde_json::to_value(Evidence::Apple(apple)).unwrap(),
            stored
        );
        let oldest: AppleEvidence = serde_json::from_value(json!({})).unwrap();
        assert_eq!(oldest, AppleEvidence::default());
    }

    #[test]
    fn android_evidence_round_trips_and_keeps_unknown_values() {
        let mut evidence = android();
        evidence.keymint_security_level = SecurityLevel::Unknown(9);
        let json = serde_json::to_value(Evidence::Android(evidence.clone())).unwrap();
        assert_eq!(json["attestationSecurityLevel"], "tee");
        assert_eq!(json["keymintSecurityLevel"], 9);
        assert_eq!(json["verifiedBootState"], "verified");
        assert_eq!(json["signingDigests"][0], "01".repeat(32));
        assert_eq!(
            serde_json::from_value::<AndroidEvidence>(json).unwrap(),
            evidence
        );
    }

    #[test]
    fn corrupt_evidence_is_refused_not_defaulted() {
        let good = serde_json::to_value(android()).unwrap();
        let mut cases = Vec::new();
        for field in ["attestationVersion", "keymintSecurityLevel", "anchor"] {
            let mut missing = good.clone();
            missing.as_object_mut().unwrap().remove(field);
            cases.push(missing);
        }
        for (field, value) in [
            ("attestationSecurityLevel", json!("secure")),
            ("attestationSecurityLevel", json!(1)),
            ("verifiedBootState", json!(true)),
            ("verifiedBootKey", json!("zz")),
            ("signingDigests", json!(["0"])),
            ("provisioning", json!("cloud")),
            ("attestationVersion", json!(-1)),
        ] {
            let mut wrong = good.clone();
            wrong[field] = value;
            cases.push(wrong);
        }
        for case in cases {
            assert!(
                serde_json::from_value::<AndroidEvidence>(case.clone()).is_err(),
                "{case}"
            );
        }
        for wrong in [
            json!({"receiptStatus": "fine"}),
            json!({"validationCategory": "xyz"}),
            json!({"leafNotAfter": "tomorrow"}),
        ] {
            assert!(
                serde_json::from_value::<AppleEvidence>(wrong.clone()).is_err(),
                "{wrong}"
            );
        }
    }

    #[test]
    fn schema_enumerations_keep_their_values_and_texts() {
        for value in 0..6 {
            assert_eq!(SecurityLevel::from_value(value).value(), value);
            assert_eq!(VerifiedBootState::from_value(value).value(), value);
        }
        assert_eq!(SecurityLevel::StrongBox.to_string(), "strongbox");
        assert_eq!(VerifiedBootState::Unknown(7).to_string(), "unknown (7)");
        assert_eq!(SecurityLevel::Unknown(4).rank(), 0);
        assert!(TrustAnchor::GoogleRsa.is_google() && !TrustAnchor::Extra.is_google());
    }
}
