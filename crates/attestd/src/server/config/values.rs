//! Typed setting values: app specs, trust roots, secrets, the database URL, the log format.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use attest_core::apple::{AppId, EnvironmentPolicy};
use serde::Deserialize;

use super::ConfigError;

/// `TEAMID.bundle.id[=development|production|any]`, as `--app` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    /// The App ID.
    pub id: AppId,
    /// The accepted environments (production when omitted).
    pub environment: EnvironmentPolicy,
}

impl FromStr for AppSpec {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (id, environment) = match text.split_once('=') {
            Some((id, environment)) => (id, environment.parse().map_err(str::to_owned)?),
            None => (text, EnvironmentPolicy::Production),
        };
        let id = AppId::new(id.trim()).map_err(|error| format!("{id:?}: {error}"))?;
        Ok(Self { id, environment })
    }
}

/// A trusted root certificate and where it came from (for the startup warning).
#[derive(Clone, PartialEq, Eq)]
pub struct TrustRoot {
    /// File name or other description.
    pub source: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

impl TrustRoot {
    /// Reads every certificate of a PEM file; exactly one is expected.
    pub fn from_pem_file(path: &Path) -> Result<Self, ConfigError> {
        let source = path.display().to_string();
        let text = std::fs::read(path).map_err(|error| ConfigError::Read {
            path: source.clone(),
            error,
        })?;
        Self::from_pem(&source, &text)
    }

    /// Parses a PEM text holding one certificate (other PEM blocks, such as keys, are skipped).
    pub fn from_pem(source: &str, text: &[u8]) -> Result<Self, ConfigError> {
        let bad = |reason: &'static str| ConfigError::Root {
            file: source.to_owned(),
            reason,
        };
        let mut certificates = Vec::new();
        for block in x509_parser::pem::Pem::iter_from_buffer(text) {
            let block = block.map_err(|_| bad("not PEM"))?;
            if block.label == "CERTIFICATE" {
                block
                    .parse_x509()
                    .map_err(|_| bad("not an X.509 certificate"))?;
                certificates.push(block.contents);
            }
        }
        match certificates.len() {
            // The first certificate is the root; CA bundles saved by the simulator list the
            // root first, then the intermediate, which is harmless to trust as well but not
            // needed.
            0 => Err(bad("no CERTIFICATE block")),
            _ => Ok(Self {
                source: source.to_owned(),
                der: certificates.swap_remove(0),
            }),
        }
    }
}

impl fmt::Debug for TrustRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustRoot")
            .field("source", &self.source)
            .field("der_len", &self.der.len())
            .finish()
    }
}

/// A secret string: `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(super) String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself, for comparison.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A database URL: `Debug` shows the scheme only, since the rest may hold a password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(pub(super) String);

impl DatabaseUrl {
    /// The URL itself, to connect.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// `sqlite`, `postgres`, ...
    pub fn scheme(&self) -> &str {
        self.0.split_once(':').map_or("", |(scheme, _)| scheme)
    }
}

impl FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_owned()))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({}:<redacted>)", self.scheme())
    }
}

/// How a SQLite database is shared with other processes (`sqlite_locking`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SqliteLocking {
    /// One process at a time, no `-shm` file (a `-shm` that stops being writable under a
    /// running server cannot crash it).
    #[default]
    Exclusive,
    /// SQLite's default: other processes (`sqlite3 .backup`) may open the database while
    /// attestd runs; its WAL index is a memory-mapped `-shm` file.
    Shared,
}

impl From<SqliteLocking> for attest_store::SqliteLocking {
    fn from(locking: SqliteLocking) -> Self {
        match locking {
            SqliteLocking::Exclusive => Self::Exclusive,
            SqliteLocking::Shared => Self::Shared,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `TEAMID.bundle.id=VALUE`: a per-app setting given on the command line (`--app-mode`,
/// `--app-max-risk-score`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSetting<T> {
    /// The App ID the setting is for; it must be a configured app.
    pub app_id: String,
    /// The value.
    pub value: T,
}

impl<T: FromStr> FromStr for AppSetting<T> {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (app_id, value) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?}: expected TEAMID.bundle.id=VALUE"))?;
        let value = value
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: invalid value {value:?}"))?;
        Ok(Self {
            app_id: app_id.trim().to_owned(),
            value,
        })
    }
}
