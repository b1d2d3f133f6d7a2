//! Quick-start mode: with no app configured, `attestd serve` trusts simulator CAs kept in
//! `./attestd-dev/` and registers two demo apps, so that `attestd simulate` (and
//! `attestd simulate --platform android`) completes the whole flow with zero configuration:
//!
//! - the development-only iOS app [`QUICKSTART_APP_ID`], trusting `attestation-ca.pem` and
//!   `receipt-ca.pem` as danger roots;
//! - the Android app [`QUICKSTART_ANDROID_PACKAGE`] signed by
//!   [`QUICKSTART_ANDROID_SIGNING_DIGEST`], trusting `android-ca.pem` as a danger Android root.
//!   Chains under a danger root are never looked up in Google's revocation list, so the demo
//!   needs no network; the revocation fetcher stays off unless configured (see
//!   `server::enter_quickstart`).
//!
//! Never for production: real devices do not chain to these CAs, and anybody holding their
//! keys can mint attestations.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use attest_core::apple::{AppId, EnvironmentPolicy};
use attest_sim::android::AndroidCa;
use attest_sim::{ReceiptCa, TestCa};

use super::android::app::AndroidAppConfig;
use super::config::{
    AppConfig, Config, ConfigError, QUICKSTART_ANDROID_PACKAGE, QUICKSTART_ANDROID_SIGNING_DIGEST,
    QUICKSTART_APP_ID, TrustRoot,
};

/// The attestation CA (root, intermediate and their keys) in the quick-start directory.
pub const ATTESTATION_CA_FILE: &str = "attestation-ca.pem";
/// The receipt CA (root, intermediate, signer and their keys).
pub const RECEIPT_CA_FILE: &str = "receipt-ca.pem";
/// The Android attestation root and its key.
pub const ANDROID_CA_FILE: &str = "android-ca.pem";
/// Every file of the directory; each holds private keys.
pub const CA_FILES: [&str; 3] = [ATTESTATION_CA_FILE, RECEIPT_CA_FILE, ANDROID_CA_FILE];

/// The simulator CAs of a quick-start directory.
#[derive(Debug)]
pub struct DevCa {
    /// Signs attestation certificate chains.
    pub attestation: TestCa,
    /// Signs receipts.
    pub receipts: ReceiptCa,
    /// Signs Android Key Attestation chains.
    pub android: AndroidCa,
    /// The directory they are kept in.
    pub dir: PathBuf,
}

/// Why the quick-start CA cannot be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum QuickStartError {
    /// Reading or writing the directory failed.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory.
        path: String,
        /// The I/O error.
        #[source]
        error: io::Error,
    },
    /// A saved CA does not parse.
    #[error("{path}: {error}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        #[source]
        error: attest_sim::SimError,
    },
}

impl DevCa {
    /// Loads the CAs saved in `dir`.
    pub fn load(dir: &Path) -> Result<Self, QuickStartError> {
        let (attestation, receipts) = Self::load_ios(dir)?;
        let android = Self::load_android(dir)?;
        Ok(Self {
            attestation,
            receipts,
            android,
            dir: dir.to_owned(),
        })
    }

    /// Loads the iOS CAs saved in `dir` (attestation, receipts).
    pub fn load_ios(dir: &Path) -> Result<(TestCa, ReceiptCa), QuickStartError> {
        Ok((
            read(&dir.join(ATTESTATION_CA_FILE), TestCa::from_pem)?,
            read(&dir.join(RECEIPT_CA_FILE), ReceiptCa::from_pem)?,
        ))
    }

    /// Loads the Android CA saved in `dir`.
    pub fn load_android(dir: &Path) -> Result<AndroidCa, QuickStartError> {
        read(&dir.join(ANDROID_CA_FILE), AndroidCa::from_pem)
    }

    /// Loads the CAs in `dir`, generating and saving those it does not have yet: all three
    /// in a new directory; only the Android CA in one made before quick start served Android
    /// (the iOS CAs are kept, so devices already attested stay valid). Returns the CAs and the
    /// files created now.
    pub fn load_or_create(dir: &Path) -> Result<(Self, Vec<&'static str>), QuickStartError> {
        let ios_saved =
            dir.join(ATTESTATION_CA_FILE).exists() && dir.join(RECEIPT_CA_FILE).exists();
        let mut created = Vec::new();
        if !ios_saved {
            fs::create_dir_all(dir).map_err(|error| io_error(dir, error))?;
            write_private(&dir.join(ATTESTATION_CA_FILE), &TestCa::generate().to_pem())?;
            write_private(&dir.join(RECEIPT_CA_FILE), &ReceiptCa::generate().to_pem())?;
            created.extend([ATTESTATION_CA_FILE, RECEIPT_CA_FILE]);
        }
        if !dir.join(ANDROID_CA_FILE).exists() {
            write_private(&dir.join(ANDROID_CA_FILE), &AndroidCa::generate().to_pem())?;
            created.push(ANDROID_CA_FILE);
        }
        Ok((Self::load(dir)?, created))
    }

    /// Applies quick-start mode to `config`: the two demo apps and this directory's roots as
    /// danger roots. Leaves the revocation list settings alone.
    pub fn apply(&self, config: &mut Config) -> Result<(), ConfigError> {
        let id = AppId::new(QUICKSTART_APP_ID)
            .map_err(|_| ConfigError::Invalid("quick-start App ID"))?;
        let android = AndroidAppConfig::new(
            QUICKSTART_ANDROID_PACKAGE.to_owned(),
            vec![QUICKSTART_ANDROID_SIGNING_DIGEST],
        );
        config.apps = vec![
            AppConfig::new(id, EnvironmentPolicy::Development),
            AppConfig::android(android)?,
        ];
        let source = |file: &str| self.dir.join(file).display().to_string();
        config.danger_extra_attestation_roots.push(TrustRoot {
            source: source(ATTESTATION_CA_FILE),
            der: self.attestation.root_der().to_vec(),
        });
        config.danger_extra_receipt_roots.push(TrustRoot {
            source: source(RECEIPT_CA_FILE),
            der: self.receipts.root_der().to_vec(),
        });
        config.danger_extra_android_roots.push(TrustRoot {
            source: source(ANDROID_CA_FILE),
            der: self.android.root_der().to_vec(),
        });
        Ok(())
    }
}

fn read<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, attest_sim::SimError>,
) -> Result<T, QuickStartError> {
    let text = fs::read_to_string(path).map_err(|error| io_error(path, error))?;
    parse(&text).map_err(|error| QuickStartError::Invalid {
        path: path.display().to_string(),
        error,
    })
}

/// Writes a file holding private keys, readable by the owner only where the OS supports it:
/// created `0600` (never readable by others, not even between creation and a later chmod),
/// and a file that existed is made `0600` before the keys go in.
fn write_private(path: &Path, contents: &str) -> Result<(), QuickStartError> {
    use std::io::Write as _;
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|error| io_error(path, error))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|error| io_error(path, error))?;
    }
    file.write_all(contents.as_bytes())
        .map_err(|error| io_error(path, error))
}

fn io_error(path: &Path, error: io::Error) -> QuickStartError {
    QuickStartError::Io {
        path: path.display().to_string(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_ca_is_created_once_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attestd-dev");
        let (first, created) = DevCa::load_or_create(&path).unwrap();
        assert_eq!(created, CA_FILES);
        let (second, created) = DevCa::load_or_create(&path).unwrap();
        assert_eq!(created, Vec::<&str>::new());
        assert_eq!(first.attestation.root_der(), second.attestation.root_der());
        assert_eq!(first.receipts.root_der(), second.receipts.root_der());
        assert_eq!(first.android.root_der(), second.android.root_der());

        let mut config = Config::new("sqlite::memory:");
        second.apply(&mut config).unwrap();
        assert_eq!(config.apps[0].id.as_str(), QUICKSTART_APP_ID);
        assert_eq!(config.apps[0].environment, EnvironmentPolicy::Development);
        assert!(config.validate().is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn every_file_holds_keys_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        DevCa::load_or_create(dir.path()).unwrap();
        for file in CA_FILES {
            let mode = fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }

    #[test]
    fn a_directory_from_before_android_gets_an_android_ca_and_keeps_its_ios_cas() {
        let dir = tempfile::tempdir().unwrap();
        let (old, _) = DevCa::load_or_create(dir.path()).unwrap();
        fs::remove_file(dir.path().join(ANDROID_CA_FILE)).unwrap();

        let (upgraded, created) = DevCa::load_or_create(dir.path()).unwrap();
        assert_eq!(created, [ANDROID_CA_FILE]);
        assert_eq!(upgraded.attestation.root_der(), old.attestation.root_der());
        assert_eq!(upgraded.receipts.root_der(), old.receipts.root_der());
        let saved = fs::read_to_string(dir.path().join(ANDROID_CA_FILE)).unwrap();
        let saved = AndroidCa::from_pem(&saved).unwrap();
        assert_eq!(saved.root_der(), upgraded.android.root_der());
    }

    #[test]
    fn quick_start_serves_the_demo_android_app_under_the_android_ca_without_fetching() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = DevCa::load_or_create(dir.path()).unwrap();
        let mut config = Config::new("sqlite::memory:");
        ca.apply(&mut config).unwrap();

        let android = config
            .apps
            .iter()
            .find_map(|app| app.android.as_ref())
            .expect("an Android demo app");
        assert_eq!(android.package, QUICKSTART_ANDROID_PACKAGE);
        assert_eq!(android.signing_digests, [QUICKSTART_ANDROID_SIGNING_DIGEST]);
        assert_eq!(
            config.danger_extra_android_roots[0].der,
            ca.android.root_der()
        );
        // Applying quick start never turns the fetcher on: it would reach Google.
        assert!(!config.android.revocation_list.enabled);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn the_demo_signing_digest_is_the_documented_one() {
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            b"attestd quick-start demo signing certificate",
        );
        assert_eq!(digest.as_ref(), QUICKSTART_ANDROID_SIGNING_DIGEST);
    }
}
