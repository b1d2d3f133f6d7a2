//! Fresh, isolated stores for each contract test, cleaned up even when the contract panics.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use attest_store::AnyStore;

/// Runs `contract` against a new SQLite database in a temporary directory.
pub async fn on_sqlite<F, Fut>(contract: F)
where
    F: FnOnce(AnyStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let directory = tempfile::tempdir().expect("temporary directory");
    let url = format!(
        "sqlite://{}/attestd.db?mode=rwc",
        directory.path().display()
    );
    let store = AnyStore::connect(&url).await.expect("open SQLite store");
    assert_eq!(store.backend_name(), "sqlite");
    let outcome = tokio::spawn(contract(store.clone())).await;
    store.close().await;
    drop(directory);
    rethrow(outcome);
}

/// Runs `contract` against PostgreSQL in a schema of its own. Built `#[ignore]`d without
/// `DATABASE_URL` (see build.rs), so a missing one here is a mistake, not a skip.
pub async fn on_postgres<F, Fut>(contract: F)
where
    F: FnOnce(AnyStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let base_url = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL was set when this test was built but is not set now");
    let schema = unique_schema_name();
    let admin = sqlx::PgPool::connect(&base_url)
        .await
        .expect("connect to DATABASE_URL");
    execute(&admin, format!("CREATE SCHEMA {schema}")).await;

    // libpq's `options` parameter sets the search path of every pooled connection, so the
    // migrations and all statements of this test stay inside the schema.
    let separator = if base_url.contains('?') { '&' } else { '?' };
    let url = format!("{base_url}{separator}options=-c%20search_path%3D{schema}");
    let outcome = match AnyStore::connect(&url).await {
        Ok(store) => {
            assert_eq!(store.backend_name(), "postgres");
            let outcome = tokio::spawn(contract(store.clone())).await;
            store.close().await;
            Ok(outcome)
        }
        Err(error) => Err(error),
    };

    execute(&admin, format!("DROP SCHEMA {schema} CASCADE")).await;
    admin.close().await;
    match outcome {
        Ok(outcome) => rethrow(outcome),
        Err(error) => panic!("open PostgreSQL store: {error}"),
    }
}

async fn execute(pool: &sqlx::PgPool, statement: String) {
    // The statement only interpolates `unique_schema_name()`: digits and underscores.
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(pool)
        .await
        .expect("administrative statement");
}

/// `t_<pid>_<nanoseconds>_<sequence>`: unique across the parallel tests of this process and
/// across processes sharing the database.
fn unique_schema_name() -> String {
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!(
        "t_{}_{}_{}",
        std::process::id(),
        nanos,
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    )
}

fn rethrow(outcome: Result<(), tokio::task::JoinError>) {
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("contract task failed: {error}"),
        }
    }
}
