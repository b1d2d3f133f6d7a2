//! The PostgreSQL backend, for deployments with several attestd nodes.

use std::fmt;
use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::backend_ext::{OwnedCommit, bind_commit, commit_outcome};
use crate::sealing::Sealer;
use crate::{StoreError, StoreOptions};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// sqlx's own default; raise it with [`StoreOptions::max_connections`] for busy nodes.
const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// A [`Store`](crate::Store) on PostgreSQL.
#[derive(Clone)]
pub struct PostgresStore {
    pub(crate) pool: sqlx::PgPool,
    /// The same pool: PostgreSQL takes concurrent writers itself.
    pub(crate) writer: sqlx::PgPool,
    pub(crate) secrets: Sealer,
}

impl PostgresStore {
    const SETTLE_LINEAGE: &str = crate::sql::SETTLE_LINEAGE_POSTGRES;
    const KEY_CONTEXT: &str = crate::sql::KEY_CONTEXT_POSTGRES;

    /// Connects to `url` (`postgres://user@host/db`, with any libpq parameters such as
    /// `sslmode` or `options=-c search_path=...`) and applies the migrations.
    ///
    /// Statements run at PostgreSQL's default READ COMMITTED isolation: every contract point
    /// is a single statement whose WHERE clause is re-checked under the row lock, so no
    /// stronger isolation is needed.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|error| StoreError::InvalidUrl(Box::new(error)))?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(StoreError::from_sqlx)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(StoreError::from_migrate)?;
        let store = Self {
            writer: pool.clone(),
            pool,
            secrets: Sealer::new(options.key_encryption_key.clone()),
        };
        store.settle_secrets().await?;
        Ok(store)
    }

    /// Closes every connection; later calls fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl PostgresStore {
    /// [`Store::commit_assertion`](crate::Store::commit_assertion): one statement
    /// ([`crate::sql::POSTGRES_COMMIT_ASSERTION`]), and a read of the key's state when the
    /// counter did not advance.
    pub(crate) async fn commit_assertion_impl(
        &self,
        commit: crate::AssertionCommit<'_>,
    ) -> Result<crate::AssertionCommitted, StoreError> {
        let commit = OwnedCommit::new(commit)?;
        let codes = commit.reason_codes();
        // One statement is one transaction whether or not the caller waits for its answer.
        let (spent, advanced, decision_id) = bind_commit!(
            sqlx::query_as::<_, (bool, bool, Option<i64>)>(crate::sql::POSTGRES_COMMIT_ASSERTION),
            commit
        )
        .bind(codes)
        .fetch_one(&self.writer)
        .await
        .map_err(StoreError::from_sqlx)?;
        let state = if spent && !advanced {
            sqlx::query_as::<_, crate::rows::CounterStateRow>(crate::sql::COUNTER_STATE)
                .bind(commit.key_id.as_slice())
                .fetch_optional(&self.writer)
                .await
                .map_err(StoreError::from_sqlx)?
        } else {
            None
        };
        commit_outcome(spent, advanced, decision_id, state)
    }

    /// [`Store::probe_write`](crate::Store::probe_write): one statement on the pool every
    /// write uses.
    pub(crate) async fn probe_write_impl(&self, now: i64) -> Result<(), StoreError> {
        sqlx::query(crate::sql::PROBE_WRITE)
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(())
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("connections", &self.pool.size())
            .finish_non_exhaustive()
    }
}

crate::backend::impl_store_for!(PostgresStore);
crate::sealing::impl_sealing_for!(PostgresStore);
crate::backend_ext::impl_store_ext_for!(PostgresStore, sqlx::Postgres);
crate::backend_tally::impl_tally_for!(PostgresStore, sqlx::Postgres);
crate::revocation_list::impl_revocation_list_for!(PostgresStore);
