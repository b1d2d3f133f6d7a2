//! Secrets attestd reads at startup, and the files holding them: the key-encryption key that
//! seals the signing keys and the challenge key in the database, and the rule that a file
//! holding a secret is the owner's alone (docs/operations.md, "Secrets and backups").

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use attest_store::KeyEncryptionKey;

use super::config::{self, Config, ConfigError, KEY_ENCRYPTION_KEY_ENV};

/// Permission bits that let users other than the owner read or change a file.
const OTHERS_BITS: u32 = 0o077;

/// The configured key-encryption key, from `ATTESTD_KEY_ENCRYPTION_KEY` or
/// `key_encryption_key_file` (which must be the owner's alone), or `None`.
pub fn key_encryption_key(config: &Config) -> Result<Option<KeyEncryptionKey>, ConfigError> {
    if let Some(key) = &config.key_encryption_key {
        return config::parse_key_encryption_key(key.expose())
            .map(Some)
            .map_err(|reason| {
                ConfigError::KeyEncryptionKey(KEY_ENCRYPTION_KEY_ENV.into(), reason)
            });
    }
    let Some(path) = &config.key_encryption_key_file else {
        return Ok(None);
    };
    check_secret_file(
        path,
        "the key-encryption key",
        config.danger_allow_readable_secrets,
    )?;
    let text = fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.display().to_string(),
        error,
    })?;
    config::parse_key_encryption_key(&text)
        .map(Some)
        .map_err(|reason| ConfigError::KeyEncryptionKey(path.display().to_string(), reason))
}

/// Refuses a file holding `what` if users other than its owner may access it, unless `allow`
/// (`danger_allow_readable_secrets`), which logs a WARN instead.
pub fn check_secret_file(path: &Path, what: &'static str, allow: bool) -> Result<(), ConfigError> {
    let metadata = fs::metadata(path).map_err(|error| ConfigError::Read {
        path: path.display().to_string(),
        error,
    })?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & OTHERS_BITS == 0 {
        return Ok(());
    }
    if !allow {
        return Err(ConfigError::ReadableSecret {
            path: path.to_path_buf(),
            what,
            mode,
        });
    }
    tracing::warn!(
        file = %path.display(),
        mode = format!("{mode:04o}"),
        what,
        "DANGER: a file holding a secret is accessible to other users \
         (danger_allow_readable_secrets); chmod 600 it"
    );
    Ok(())
}

/// Logs a WARN for each database file the store opened although others may access it.
pub fn warn_about_readable_database_files(store: &attest_store::AnyStore) {
    for file in store.readable_files() {
        tracing::warn!(
            file = %file.path.display(),
            mode = format!("{:04o}", file.mode),
            "DANGER: the database file is accessible to other users and holds the signing keys \
             (danger_allow_readable_secrets); chmod 600 it and its -wal and -shm files"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_must_be_the_owners_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        fs::write(&path, "x").unwrap();
        for (mode, refused) in [(0o600, false), (0o400, false), (0o640, true), (0o604, true)] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let checked = check_secret_file(&path, "a key", false);
            assert_eq!(checked.is_err(), refused, "{mode:o}");
            if let Err(error) = checked {
                let text = error.to_string();
                assert!(
                    text.contains(&format!("{mode:04o}")) && text.contains("kek"),
                    "{text}"
                );
            }
            assert!(check_secret_file(&path, "a key", true).is_ok());
        }
    }
}
