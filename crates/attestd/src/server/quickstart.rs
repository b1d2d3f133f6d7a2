//! Quick-start mode: with no app configured, `attestd serve` trusts a simulator CA kept in
//! `./attestd-dev/` and registers the development-only demo app, so that `attestd simulate`
//! completes the whole flow with zero configuration. Never for production: Apple's devices do
//! not chain to this CA, and anybody holding its keys can mint attestations.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use attest_core::apple::{AppId, EnvironmentPolicy};
use attest_sim::{ReceiptCa, TestCa};

use super::config::{AppConfig, Config, QUICKSTART_APP_ID, TrustRoot};

/// The attestation CA (root, intermediate and their keys) in the quick-start directory.
pub const ATTESTATION_CA_FILE: &str = "attestation-ca.pem";
/// The receipt CA (root, intermediate, signer and their keys).
pub const RECEIPT_CA_FILE: &str = "receipt-ca.pem";

/// The simulator CAs of a quick-start directory.
#[derive(Debug)]
pub struct DevCa {
    /// Signs attestation certificate chains.
    pub attestation: TestCa,
    /// Signs receipts.
    pub receipts: ReceiptCa,
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
        let attestation = read(&dir.join(ATTESTATION_CA_FILE), TestCa::from_pem)?;
        let receipts = read(&dir.join(RECEIPT_CA_FILE), ReceiptCa::from_pem)?;
        Ok(Self {
            attestation,
            receipts,
            dir: dir.to_owned(),
        })
    }

    /// Loads the CAs in `dir`, or generates and saves them if the directory has none.
    /// Returns the CAs and whether they were created now.
    pub fn load_or_create(dir: &Path) -> Result<(Self, bool), QuickStartError> {
        if dir.join(ATTESTATION_CA_FILE).exists() && dir.join(RECEIPT_CA_FILE).exists() {
            return Ok((Self::load(dir)?, false));
        }
        fs::create_dir_all(dir).map_err(|error| io_error(dir, error))?;
        let ca = Self {
            attestation: TestCa::generate(),
            receipts: ReceiptCa::generate(),
            dir: dir.to_owned(),
        };
        write_private(&dir.join(ATTESTATION_CA_FILE), &ca.attestation.to_pem())?;
        write_private(&dir.join(RECEIPT_CA_FILE), &ca.receipts.to_pem())?;
        Ok((ca, true))
    }

    /// Applies quick-start mode to `config`: the demo app (development only) and this CA's
    /// roots as danger roots.
    pub fn apply(&self, config: &mut Config) -> Result<(), attest_core::apple::InvalidAppId> {
        let id = AppId::new(QUICKSTART_APP_ID)?;
        config.apps = vec![AppConfig::new(id, EnvironmentPolicy::Development)];
        let source = |file: &str| self.dir.join(file).display().to_string();
        config.danger_extra_attestation_roots.push(TrustRoot {
            source: source(ATTESTATION_CA_FILE),
            der: self.attestation.root_der().to_vec(),
        });
        config.danger_extra_receipt_roots.push(TrustRoot {
            source: source(RECEIPT_CA_FILE),
            der: self.receipts.root_der().to_vec(),
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
        assert!(created);
        let (second, created) = DevCa::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.attestation.root_der(), second.attestation.root_der());
        assert_eq!(first.receipts.root_der(), second.receipts.root_der());

        let mut config = Config::new("sqlite::memory:");
        second.apply(&mut config).unwrap();
        assert_eq!(config.apps[0].id.as_str(), QUICKSTART_APP_ID);
        assert_eq!(config.apps[0].environment, EnvironmentPolicy::Development);
        assert!(config.validate().is_ok());
    }
}
