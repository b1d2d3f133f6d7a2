//! The SQLite backend: one file (or memory) database, for single-node deployments and tests.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions as _, Connection as _};

use crate::backend_ext::OwnedCommit;
use crate::sealing::Sealer;
use crate::sqlite_commit::CommitQueue;
use crate::sqlite_files::{ReadableFile, SqliteTarget};
use crate::{SqliteLocking, StoreError, StoreOptions};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// Read connections for a file database: readers run in parallel under WAL.
const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// SQLite's VFS that takes one exclusive lock on the file for the process and keeps the WAL
/// index in the process's memory instead of a memory-mapped `-shm` file.
const EXCLUSIVE_VFS: &str = "unix-excl";

/// A [`Store`](crate::Store) on SQLite.
///
/// A file database has two pools: reading connections for queries, and one connection for
/// every write. SQLite lets one writer in at a time; with several writing connections the
/// others would wait in SQLite's busy handler, which sleeps in steps of milliseconds, so under
/// load most of the time went to sleeping. One writer connection turns that wait into an
/// async queue in front of it, and transactions never fail with "database is locked" between
/// attestd's own connections. Reading connections cannot write (`query_only`, or opened
/// read-only in shared locking), so a write sent to the wrong pool fails loudly instead of
/// contending with the writer.
///
/// # Locking, and why there is no `-shm` file by default
///
/// SQLite's default (`unix`) VFS keeps the WAL index in a `-shm` file that every connection
/// maps into memory, so that other processes can share the database. If that file stops being
/// writable under a running server (made immutable, truncated, an I/O error), the next write
/// to the mapping is a `SIGBUS` that kills the process: measured, `chattr +i` on the `-shm`
/// while attestd served, then one attestation, ended the process with status 135. With
/// [`SqliteLocking::Exclusive`] (the default) the store uses the `unix-excl` VFS instead: the
/// process takes an exclusive lock on the database file and keeps the WAL index in its own
/// memory, shared by its connections, so there is no `-shm` mapping to fault on (a write that
/// fails is an error that fails one request). The price: no other process can open the
/// database while attestd runs (a second `attestd serve` on the same file is refused, and so
/// is `sqlite3` on it). [`SqliteLocking::Shared`] restores SQLite's default for those who need
/// another process to read it live (an online `sqlite3 .backup`).
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) pool: sqlx::SqlitePool,
    pub(crate) writer: sqlx::SqlitePool,
    commits: CommitQueue,
    pub(crate) secrets: Sealer,
    readable: Vec<ReadableFile>,
}

impl SqliteStore {
    /// Opens `url` and applies the migrations. `url` is `sqlite::memory:`, or a file as
    /// `sqlite://attestd.db`, `sqlite:///var/lib/attestd/attestd.db`, `sqlite:attestd.db` or a
    /// bare path: the file is created (mode `0600`) if missing, unless the URL says `mode=rw`
    /// or `mode=ro`. An existing file must be a SQLite database that only its owner may access
    /// (see [`StoreOptions::allow_readable_files`]), writable unless `mode=ro`, in a directory
    /// that takes new files; otherwise the error names the file and says why.
    ///
    /// File databases use WAL, `synchronous=NORMAL` (durable across application crashes; a
    /// power loss may lose the last transactions but never corrupts the file) and a 5 s busy
    /// timeout. An in-memory database lives in one connection, which the pool keeps open.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let target = SqliteTarget::parse(url)?;
        let connect = if url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url)
                .map_err(|error| StoreError::InvalidUrl(Box::new(error)))?
        } else {
            SqliteConnectOptions::new()
        }
        .busy_timeout(options.busy_timeout)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true);
        let secrets = Sealer::new(options.key_encryption_key.clone());
        let SqliteTarget::File { path, mode, vfs } = target else {
            // Every connection to a shared in-memory database contends on table locks, which
            // fail at once instead of waiting for the busy timeout; and the database vanishes
            // with its last connection. So: exactly one connection, never closed, for reads
            // and writes.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await
                .map_err(StoreError::from_sqlx)?;
            migrate(&pool).await?;
            let store = Self {
                commits: CommitQueue::start(pool.clone()),
                writer: pool.clone(),
                pool,
                secrets,
                readable: Vec::new(),
            };
            store.settle_secrets().await?;
            return Ok(store);
        };
        let readable = crate::sqlite_files::prepare(&path, mode, options.allow_readable_files)?;
        let mut connect = connect
            .filename(&path)
            .create_if_missing(mode == crate::sqlite_files::OpenMode::Create);
        let exclusive = !vfs && options.sqlite_locking == SqliteLocking::Exclusive;
        if exclusive {
            connect = connect.vfs(EXCLUSIVE_VFS);
        }
        // Opened once outside a pool first: SQLite's busy handler waits up to the busy timeout
        // for a lock another process holds, and its answer (SQLITE_BUSY: in use) says what is
        // wrong, where a pool's acquire timeout, as long, would only say it timed out.
        let writing = connect.clone().journal_mode(SqliteJournalMode::Wal);
        writing
            .connect()
            .await
            .map_err(|error| open_error(&path, error))?
            .close()
            .await
            .map_err(|error| open_error(&path, error))?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(writing)
            .await
            .map_err(|error| open_error(&path, error))?;
        migrate(&writer).await?;
        // Opened after the writer has switched the file to WAL. In exclusive locking every
        // connection of the process must open the file read-write (a read-only one would take
        // no process lock, and would map a `-shm` file), so readers are kept from writing by
        // `query_only`.
        let readers = if exclusive {
            connect.create_if_missing(false).pragma("query_only", "ON")
        } else {
            connect.create_if_missing(false).read_only(true)
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(readers)
            .await
            .map_err(|error| open_error(&path, error))?;
        let store = Self {
            commits: CommitQueue::start(writer.clone()),
            pool,
            writer,
            secrets,
            readable,
        };
        store.settle_secrets().await?;
        Ok(store)
    }

    /// Database files that other users may access, opened because
    /// [`StoreOptions::allow_readable_files`] allowed them (for the caller to warn about).
    pub fn readable_files(&self) -> &[ReadableFile] {
        &self.readable
    }

    /// Closes every connection; later calls fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// What SQLite said when opening `path`, with the file's name.
fn open_error(path: &Path, error: sqlx::Error) -> StoreError {
    let sqlx::Error::Database(database) = &error else {
        return StoreError::from_sqlx(error);
    };
    // The primary result code is the low byte of the extended one.
    let primary = database
        .code()
        .and_then(|code| code.parse::<i32>().ok())
        .map(|code| code & 0xff);
    let reason = match primary {
        // SQLITE_BUSY at open: the exclusive lock is held by another process.
        Some(5) => "is in use by another process: with sqlite_locking = \"exclusive\" (the \
                    default) one process at a time opens a SQLite database; use PostgreSQL for \
                    several instances"
            .to_owned(),
        Some(26) => "is not a SQLite database (or is encrypted)".to_owned(),
        _ => format!("cannot be opened: {}", database.message()),
    };
    StoreError::File {
        path: PathBuf::from(path),
        reason,
    }
}

impl SqliteStore {
    const SETTLE_LINEAGE: &str = crate::sql::SETTLE_LINEAGE_SQLITE;
    const KEY_CONTEXT: &str = crate::sql::KEY_CONTEXT_SQLITE;

    /// [`Store::commit_assertion`](crate::Store::commit_assertion), through the group-commit
    /// task ([`crate::sqlite_commit`]).
    pub(crate) async fn commit_assertion_impl(
        &self,
        commit: crate::AssertionCommit<'_>,
    ) -> Result<crate::AssertionCommitted, StoreError> {
        self.commits.commit(OwnedCommit::new(commit)?).await
    }

    /// [`Store::probe_write`](crate::Store::probe_write), through the writer task like every
    /// assertion.
    pub(crate) async fn probe_write_impl(&self, now: i64) -> Result<(), StoreError> {
        self.commits.probe(now).await
    }
}

async fn migrate(pool: &sqlx::SqlitePool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await.map_err(StoreError::from_migrate)
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("connections", &self.pool.size())
            .finish_non_exhaustive()
    }
}

crate::backend::impl_store_for!(SqliteStore);
crate::sealing::impl_sealing_for!(SqliteStore);
crate::backend_ext::impl_store_ext_for!(SqliteStore, sqlx::Sqlite);
crate::backend_tally::impl_tally_for!(SqliteStore, sqlx::Sqlite);
crate::revocation_list::impl_revocation_list_for!(SqliteStore);
