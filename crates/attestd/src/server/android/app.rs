//! An app's Android side: the package, its signing certificates and the policy knobs of Key
//! Attestation, as `--android-app` and `[apps.android]` give them.

use std::str::FromStr;

use attest_core::android::{AndroidPolicy, ExpectedApp, MinSecurityLevel};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

/// An app's Android side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AndroidAppConfig {
    /// The package name (`com.example.app`); requests name the app by it.
    pub package: String,
    /// SHA-256 digests of the app's signing certificates; an install must be signed by these
    /// (all of them, or a non-empty subset, so old and new certificates of a rotation are both
    /// accepted). Never empty: an app that accepted any signer would accept repackaged builds.
    pub signing_digests: Vec<[u8; 32]>,
    /// The lowest KeyMint security level accepted (`tee` by default, or `strongbox`).
    pub min_security_level: MinSecurityLevel,
    /// Require a verified boot chain on a locked bootloader (`verified_boot_required`).
    pub require_verified_boot: bool,
    /// Accept ATTEST_KEY chains (Android 12+ app-provided attestation keys); off by default.
    pub allow_attest_key: bool,
}

impl AndroidAppConfig {
    /// A package with its signing digests and the reference policy.
    pub fn new(package: String, signing_digests: Vec<[u8; 32]>) -> Self {
        Self {
            package,
            signing_digests,
            min_security_level: MinSecurityLevel::default(),
            require_verified_boot: false,
            allow_attest_key: false,
        }
    }

    /// What the core checks the chain's application against.
    pub fn expected_app(&self) -> ExpectedApp {
        ExpectedApp {
            package_names: vec![self.package.clone()],
            signing_digests: Some(self.signing_digests.clone()),
        }
    }

    /// The core's policy knobs.
    pub fn policy(&self) -> AndroidPolicy {
        AndroidPolicy {
            min_security_level: self.min_security_level,
            require_verified_boot: self.require_verified_boot,
            allow_attest_key: self.allow_attest_key,
        }
    }
}

/// Why an Android app setting is refused.
fn invalid(text: &str, why: impl std::fmt::Display) -> String {
    format!("{text:?}: {why}")
}

/// A package name as Android defines it: at least two dot-separated segments of ASCII letters,
/// digits and underscores, each starting with a letter.
fn check_package(package: &str) -> Result<(), String> {
    let segments: Vec<&str> = package.split('.').collect();
    let valid = segments.len() >= 2
        && segments.iter().all(|segment| {
            segment.starts_with(|c: char| c.is_ascii_alphabetic())
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if valid {
        Ok(())
    } else {
        Err(invalid(package, "not an Android package name"))
    }
}

/// One signing-certificate digest: standard base64 of 32 bytes (as `apksigner` and Play
/// Console print SHA-256 in hex, hex of 64 digits is accepted too).
fn parse_digest(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|error| invalid(text, error))?
    } else {
        STANDARD
            .decode(text)
            .map_err(|_| invalid(text, "not standard base64"))?
    };
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| invalid(text, "a SHA-256 digest is 32 bytes"))
}

/// `--android-app PACKAGE=DIGEST[,DIGEST...]`.
impl FromStr for AndroidAppConfig {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // Split at the first `=`: a base64 digest ends in `=`.
        let (package, digests) = text
            .split_once('=')
            .ok_or_else(|| invalid(text, "expected PACKAGE=DIGEST[,DIGEST...]"))?;
        let package = package.trim();
        check_package(package)?;
        let digests = digests
            .split(',')
            .map(parse_digest)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(package.to_owned(), digests))
    }
}

/// `[apps.android]` in the TOML file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAndroidApp {
    package: String,
    signing_digests: Vec<String>,
    min_security_level: Option<String>,
    require_verified_boot: Option<bool>,
    allow_attest_key: Option<bool>,
}

impl FileAndroidApp {
    /// The app's Android side, or why not.
    pub fn resolve(self) -> Result<AndroidAppConfig, String> {
        check_package(&self.package)?;
        if self.signing_digests.is_empty() {
            return Err(invalid(&self.package, "signing_digests is empty"));
        }
        let digests = self
            .signing_digests
            .iter()
            .map(|text| parse_digest(text))
            .collect::<Result<Vec<_>, _>>()?;
        let mut app = AndroidAppConfig::new(self.package, digests);
        app.min_security_level = match self.min_security_level.as_deref() {
            None | Some("tee") => MinSecurityLevel::TrustedEnvironment,
            Some("strongbox") => MinSecurityLevel::StrongBox,
            Some(other) => {
                return Err(invalid(other, "min_security_level is tee or strongbox"));
            }
        };
        app.require_verified_boot = self.require_verified_boot.unwrap_or(false);
        app.allow_attest_key = self.allow_attest_key.unwrap_or(false);
        Ok(app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_splits_at_the_first_equals_sign() {
        let one = STANDARD.encode([1u8; 32]);
        let two = STANDARD.encode([2u8; 32]);
        assert!(one.ends_with('='));
        let app: AndroidAppConfig = format!("com.example.app={one},{two}").parse().unwrap();
        assert_eq!(app.package, "com.example.app");
        assert_eq!(app.signing_digests, vec![[1; 32], [2; 32]]);
        assert_eq!(app.policy(), AndroidPolicy::default());
        let hex: AndroidAppConfig = format!("com.example.app={}", "ab".repeat(32))
            .parse()
            .unwrap();
        assert_eq!(hex.signing_digests, vec![[0xab; 32]]);
    }

    #[test]
    fn malformed_settings_are_refused_with_the_reason() {
        let digest = STANDARD.encode([1u8; 32]);
        for bad in [
            "com.example.app".to_owned(),
            format!("example={digest}"),
            format!("com.1example.app={digest}"),
            format!("com..app={digest}"),
            "com.example.app=".to_owned(),
            format!("com.example.app={digest},"),
            "com.example.app=AAAA".to_owned(),
            "com.example.app=not base64!".to_owned(),
        ] {
            assert!(bad.parse::<AndroidAppConfig>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_file_form_takes_the_policy_knobs() {
        let file: FileAndroidApp = toml::from_str(&format!(
            "package = \"com.example.app\"\nsigning_digests = [\"{}\"]\n\
             min_security_level = \"strongbox\"\nrequire_verified_boot = true\n",
            STANDARD.encode([3u8; 32])
        ))
        .unwrap();
        let app = file.resolve().unwrap();
        assert_eq!(app.min_security_level, MinSecurityLevel::StrongBox);
        assert!(app.require_verified_boot && !app.allow_attest_key);
        let empty: FileAndroidApp =
            toml::from_str("package = \"com.example.app\"\nsigning_digests = []\n").unwrap();
        assert!(empty.resolve().is_err());
    }
}
