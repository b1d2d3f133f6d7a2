//! The SQLite backend: one file (or memory) database, for single-node deployments and tests.

use std::fmt;
use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::backend_ext::OwnedCommit;
use crate::sqlite_commit::CommitQueue;
use crate::{StoreError, StoreOptions};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// Read connections for a file database: readers run in parallel under WAL.
const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// A [`Store`](crate::Store) on SQLite.
///
/// A file database has two pools: read-only connections for queries, and one connection for
/// every write. SQLite lets one writer in at a time; with several writing connections the
/// others would wait in SQLite's busy handler, which sleeps in steps of milliseconds, so under
/// load most of the time went to sleeping. One writer connection turns that wait into an
/// async queue in front of it, and transactions never fail with "database is locked" between
/// attestd's own connections.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) pool: sqlx::SqlitePool,
    pub(crate) writer: sqlx::SqlitePool,
    commits: CommitQueue,
}

impl SqliteStore {
    /// Opens `url` (`sqlite://path/to/file.db?mode=rwc` to create the file if needed, or
    /// `sqlite::memory:`) and applies the migrations.
    ///
    /// File databases use WAL, `synchronous=NORMAL` (durable across application crashes; a
    /// power loss may lose the last transactions but never corrupts the file) and a 5 s busy
    /// timeout. An in-memory database lives in one connection, which the pool keeps open.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|error| StoreError::InvalidUrl(Box::new(error)))?
            .busy_timeout(options.busy_timeout)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true);
        if in_memory {
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
            return Ok(Self {
                commits: CommitQueue::start(pool.clone()),
                writer: pool.clone(),
                pool,
            });
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone().journal_mode(SqliteJournalMode::Wal))
            .await
            .map_err(StoreError::from_sqlx)?;
        migrate(&writer).await?;
        // Opened after the writer has switched the file to WAL; read-only, so a write sent to
        // the wrong pool fails loudly instead of contending with the writer.
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.read_only(true))
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(Self {
            commits: CommitQueue::start(writer.clone()),
            pool,
            writer,
        })
    }

    /// Closes every connection; later calls fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
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
crate::backend_ext::impl_store_ext_for!(SqliteStore, sqlx::Sqlite);
