//! Which file a SQLite URL names, and whether attestd may use it.
//!
//! A user writes the database as `sqlite://attestd.db`, `sqlite:///var/lib/attestd/attestd.db`,
//! `sqlite:attestd.db`, `sqlite://attestd.db?mode=rwc`, or just a path. Every form opens the
//! file read-write and creates it when it is missing, unless the URL says `mode=ro` or
//! `mode=rw`, which are obeyed. Before SQLite sees the file, [`prepare`] checks what SQLite's
//! own "unable to open database file" would not say: which file, and why (missing directory,
//! permission denied, not a database, immutable, readable by other users).
//!
//! The database holds secrets (the JWT signing keys and the challenge MAC key, sealed or not):
//! a new file is created `0600`, and SQLite gives its `-wal` and `-shm` files the mode of the
//! database file. An existing database, `-wal` or `-shm` that group or others may access is
//! refused unless the caller allows it ([`StoreOptions::allow_readable_files`]).
//!
//! [`StoreOptions::allow_readable_files`]: crate::StoreOptions::allow_readable_files

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::StoreError;

/// The first 16 bytes of every SQLite database file (the file format's header string).
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Permission bits that let users other than the owner read or change a file.
const OTHERS_BITS: u32 = 0o077;

/// `EPERM`: what Linux answers for a write to an immutable (`chattr +i`) file, even to root.
const EPERM: i32 = 1;

/// How the URL's `mode` parameter asks SQLite to open the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenMode {
    /// `mode=ro`: read only; the file must exist.
    ReadOnly,
    /// `mode=rw`: read-write; the file must exist.
    ReadWrite,
    /// `mode=rwc`, or no `mode` at all: read-write, created if missing.
    Create,
}

/// A SQLite database URL (or bare path), understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SqliteTarget {
    /// `sqlite::memory:` or `mode=memory`.
    Memory,
    /// A database file.
    File {
        /// The path as written (relative paths are relative to the working directory).
        path: PathBuf,
        mode: OpenMode,
        /// Whether the URL names a VFS itself (`vfs=`), which is then left alone.
        vfs: bool,
    },
}

impl SqliteTarget {
    /// Understands `url`: a `sqlite:` URL or a bare path.
    pub(crate) fn parse(url: &str) -> Result<Self, StoreError> {
        let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        else {
            return Ok(Self::File {
                path: PathBuf::from(url),
                mode: OpenMode::Create,
                vfs: false,
            });
        };
        let (database, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut mode = OpenMode::Create;
        let mut vfs = false;
        for (key, value) in query.split('&').filter_map(|pair| pair.split_once('=')) {
            match (key, value) {
                ("mode", "memory") => return Ok(Self::Memory),
                ("mode", "ro") => mode = OpenMode::ReadOnly,
                ("mode", "rw") => mode = OpenMode::ReadWrite,
                ("mode", "rwc") => mode = OpenMode::Create,
                ("vfs", _) => vfs = true,
                // Anything else (an unknown mode, another parameter) is sqlx's to judge.
                _ => {}
            }
        }
        if database == ":memory:" {
            return Ok(Self::Memory);
        }
        if database.is_empty() {
            return Err(StoreError::File {
                path: PathBuf::new(),
                reason: "the SQLite URL names no file (sqlite://PATH)".to_owned(),
            });
        }
        // sqlx percent-decodes the file name (so `?` and `#` can be written in it); so do we.
        Ok(Self::File {
            path: PathBuf::from(percent_decode(database)),
            mode,
            vfs,
        })
    }
}

/// Whether a database URL without a scheme is a path: `attestd.db`, `./attestd.db`,
/// `/var/lib/attestd/attestd.db`. A `scheme:` prefix that is no path is a URL of an unsupported
/// backend instead.
pub(crate) fn is_bare_path(url: &str) -> bool {
    !url.is_empty()
        && !url.contains("://")
        && (url.starts_with('/') || url.starts_with('.') || !url.contains(':'))
}

/// A database file that users other than its owner may access, opened because the caller
/// allowed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadableFile {
    /// The file.
    pub path: PathBuf,
    /// Its permission bits (`0o644`...).
    pub mode: u32,
}

/// Checks (and creates, when allowed) the database file and its `-wal` and `-shm` companions
/// before SQLite opens them. Returns the files others may access when `allow_readable` lets
/// them through.
pub(crate) fn prepare(
    path: &Path,
    mode: OpenMode,
    allow_readable: bool,
) -> Result<Vec<ReadableFile>, StoreError> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match fs::metadata(directory) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => return Err(problem(directory, "is not a directory")),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(problem(
                path,
                format!("directory {} does not exist", directory.display()),
            ));
        }
        Err(error) => return Err(problem(directory, io_reason("cannot be read", &error))),
    }
    match fs::metadata(path) {
        Ok(metadata) if !metadata.is_file() => {
            return Err(problem(path, "is not a regular file"));
        }
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => match mode {
            OpenMode::ReadOnly | OpenMode::ReadWrite => {
                return Err(problem(
                    path,
                    "does not exist, and the URL's mode=ro or mode=rw says not to create it",
                ));
            }
            OpenMode::Create => create_private(path)?,
        },
        Err(error) => return Err(problem(path, io_reason("cannot be read", &error))),
    }
    let writable = mode != OpenMode::ReadOnly;
    check_database_header(path)?;
    let mut readable = Vec::new();
    for file in [
        path.to_path_buf(),
        companion(path, "-wal"),
        companion(path, "-shm"),
    ] {
        let metadata = match fs::metadata(&file) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(problem(&file, io_reason("cannot be read", &error))),
        };
        if !metadata.is_file() {
            return Err(problem(&file, "is not a regular file"));
        }
        let bits = metadata.permissions().mode() & 0o777;
        if bits & OTHERS_BITS != 0 {
            if !allow_readable {
                return Err(StoreError::ReadableFile {
                    path: file,
                    mode: bits,
                });
            }
            readable.push(ReadableFile {
                path: file.clone(),
                mode: bits,
            });
        }
        if writable && let Err(error) = OpenOptions::new().write(true).open(&file) {
            return Err(problem(&file, io_reason("is not writable", &error)));
        }
    }
    if writable {
        check_directory_writable(directory, path)?;
    }
    Ok(readable)
}

/// `attestd.db` → `attestd.db-wal`.
pub(crate) fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Creates an empty database file (an empty file is an empty SQLite database) readable by its
/// owner only, whatever the umask.
fn create_private(path: &Path) -> Result<(), StoreError> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        // Created by someone else in the meantime: checked like any existing file.
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(problem(path, io_reason("cannot be created", &error))),
    }
}

/// An existing, non-empty database file must start with SQLite's header.
fn check_database_header(path: &Path) -> Result<(), StoreError> {
    let mut header = [0u8; 16];
    let mut file = match fs::File::open(path) {
        Ok(file) => file,
        Err(error) => return Err(problem(path, io_reason("cannot be read", &error))),
    };
    let mut read = 0;
    while read < header.len() {
        match file.read(header.get_mut(read..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(count) => read += count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(problem(path, io_reason("cannot be read", &error))),
        }
    }
    if read == 0 || header == *SQLITE_HEADER {
        Ok(())
    } else {
        Err(problem(path, "is not a SQLite database"))
    }
}

/// SQLite creates the `-wal` (and in shared locking the `-shm`) file beside the database, so
/// the directory must take new files: tried with a file of our own, removed at once.
fn check_directory_writable(directory: &Path, database: &Path) -> Result<(), StoreError> {
    let name = database
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let probe = directory.join(format!(".{name}.attestd-probe-{}", std::process::id()));
    let created = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&probe);
    match created {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(error) => Err(problem(
            directory,
            io_reason(
                "does not take new files, and SQLite creates the database's -wal file there",
                &error,
            ),
        )),
    }
}

fn problem(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::File {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// `what`, then the system's reason, with a hint for the error root gets from an immutable
/// file.
fn io_reason(what: &str, error: &io::Error) -> String {
    if error.raw_os_error() == Some(EPERM) {
        format!("{what}: {error} (is it immutable? see lsattr)")
    } else {
        format!("{what}: {error}")
    }
}

/// `%XX` escapes decoded; anything that is not a valid escape is kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let escaped = (byte == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(value) => {
                decoded.push(value);
                index += 3;
            }
            None => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, mode: OpenMode) -> SqliteTarget {
        SqliteTarget::File {
            path: PathBuf::from(path),
            mode,
            vfs: false,
        }
    }

    #[test]
    fn every_form_a_user_writes_names_the_same_kind_of_file() {
        let cases = [
            ("sqlite://rel.db", file("rel.db", OpenMode::Create)),
            ("sqlite:///abs/x.db", file("/abs/x.db", OpenMode::Create)),
            ("sqlite:rel.db", file("rel.db", OpenMode::Create)),
            ("sqlite://rel.db?mode=rwc", file("rel.db", OpenMode::Create)),
            (
                "sqlite://rel.db?mode=rw",
                file("rel.db", OpenMode::ReadWrite),
            ),
            (
                "sqlite://rel.db?mode=ro",
                file("rel.db", OpenMode::ReadOnly),
            ),
            (
                "sqlite://rel.db?cache=private&mode=ro",
                file("rel.db", OpenMode::ReadOnly),
            ),
            (
                "sqlite://rel.db?cache=private",
                file("rel.db", OpenMode::Create),
            ),
            ("sqlite://a%3Fb.db", file("a?b.db", OpenMode::Create)),
            ("./attestd.db", file("./attestd.db", OpenMode::Create)),
            (
                "/var/lib/attestd/attestd.db",
                file("/var/lib/attestd/attestd.db", OpenMode::Create),
            ),
            ("sqlite::memory:", SqliteTarget::Memory),
            ("sqlite://?mode=memory", SqliteTarget::Memory),
        ];
        for (url, expected) in cases {
            assert_eq!(SqliteTarget::parse(url).unwrap(), expected, "{url}");
        }
        assert!(matches!(
            SqliteTarget::parse("sqlite://x.db?vfs=unix"),
            Ok(SqliteTarget::File { vfs: true, .. })
        ));
        assert!(SqliteTarget::parse("sqlite://").is_err());
    }

    #[test]
    fn bare_paths_are_told_from_urls_of_other_schemes() {
        for path in ["attestd.db", "./attestd.db", "../x.db", "/var/lib/a:b.db"] {
            assert!(is_bare_path(path), "{path}");
        }
        for url in ["mysql://root@db/x", "postgress://db/x", "redis:x", ""] {
            assert!(!is_bare_path(url), "{url}");
        }
    }

    #[test]
    fn percent_escapes_are_decoded_and_stray_percents_kept() {
        assert_eq!(percent_decode("a%20b%3f"), "a b?");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
