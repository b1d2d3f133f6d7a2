//! The store's own error type: callers never see sqlx.

use std::error::Error as StdError;
use std::path::PathBuf;

use crate::SealError;

/// A boxed error from the database driver, kept as the `source` of [`StoreError`] so that logs
/// can print the whole chain while the signature names no driver type.
pub type BackendError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A record with the same key already exists; nothing was written.
    #[error("a record with this key already exists")]
    Conflict,
    /// The record to change does not exist.
    #[error("record not found")]
    NotFound,
    /// The database refused the value (a CHECK or NOT NULL constraint), or an argument was out
    /// of range. This is a caller bug, not a client error.
    #[error("invalid value: {0}")]
    Invalid(String),
    /// A stored value is outside its domain (unknown enumeration text, key id of the wrong
    /// length, time out of range): the database was changed behind the store's back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database could not be reached or failed; the request may be retried later.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] BackendError),
    /// The database URL names no supported backend (only `sqlite:` and `postgres://`).
    #[error("unsupported database URL scheme {scheme:?}: expected sqlite: or postgres://")]
    UnsupportedUrl {
        /// The scheme of the URL (the rest is not kept: it may hold a password).
        scheme: String,
    },
    /// The database URL could not be parsed.
    #[error("invalid database URL: {0}")]
    InvalidUrl(#[source] BackendError),
    /// Applying the embedded migrations failed.
    #[error("database migration failed: {0}")]
    Migration(#[source] BackendError),
    /// A SQLite database file (or its directory) cannot be used: which one, and why.
    #[error("SQLite database {}: {reason}", path.display())]
    File {
        /// The file or directory.
        path: PathBuf,
        /// Why it cannot be used (missing directory, permission denied, not a database...).
        reason: String,
    },
    /// A SQLite database file that users other than its owner may read or change, refused
    /// because it holds secrets (see [`StoreOptions::allow_readable_files`]).
    ///
    /// [`StoreOptions::allow_readable_files`]: crate::StoreOptions::allow_readable_files
    #[error(
        "{} is accessible to other users (mode {mode:04o}) and holds the signing keys: \
         chmod 600 it (and its -wal and -shm files), or allow it explicitly \
         (danger_allow_readable_secrets)",
        path.display()
    )]
    ReadableFile {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A secret stored sealed cannot be opened: no key-encryption key, the wrong one, or an
    /// altered row. Never answered by using another key.
    #[error(transparent)]
    Sealing(SealError),
}

// Conversions from sqlx are crate-private functions, not `From` impls, so that no sqlx type
// appears in the public API.
impl StoreError {
    /// Classifies a driver error.
    pub(crate) fn from_sqlx(error: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match error {
            // PostgreSQL refuses a NUL character in text (SQLSTATE 22021,
            // character_not_in_repertoire) and text it cannot convert (22P05): the value is
            // the problem, not the database.
            sqlx::Error::Database(database)
                if matches!(database.code().as_deref(), Some("22021" | "22P05")) =>
            {
                Self::Invalid(database.message().to_owned())
            }
            sqlx::Error::Database(database) => match database.kind() {
                ErrorKind::UniqueViolation => Self::Conflict,
                ErrorKind::CheckViolation
                | ErrorKind::NotNullViolation
                | ErrorKind::ForeignKeyViolation => Self::Invalid(database.message().to_owned()),
                _ => Self::Unavailable(Box::new(sqlx::Error::Database(database))),
            },
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Encode(source) => Self::Invalid(source.to_string()),
            error @ (sqlx::Error::Decode(_)
            | sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::TypeNotFound { .. }) => Self::Corrupt(error.to_string()),
            error => Self::Unavailable(Box::new(error)),
        }
    }

    /// Wraps a failed migration.
    pub(crate) fn from_migrate(error: sqlx::migrate::MigrateError) -> Self {
        Self::Migration(Box::new(error))
    }
}
