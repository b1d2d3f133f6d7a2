//! Choosing and opening a backend from the database URL.
//!
//! Run: `cargo test -p attest-store --test connect`

use std::time::Duration;

use attest_store::{AnyStore, Store, StoreError, StoreOptions};

#[tokio::test]
async fn in_memory_sqlite_opens_migrated() {
    let store = AnyStore::connect("sqlite::memory:").await.expect("open");
    assert_eq!(store.backend_name(), "sqlite");
    store.ping().await.expect("ping");
    assert!(
        store
            .signing_keys()
            .await
            .expect("migrated table")
            .is_empty()
    );
}

#[tokio::test]
async fn reopening_a_sqlite_file_keeps_its_data_and_migrations() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let url = format!(
        "sqlite://{}/attestd.db?mode=rwc",
        directory.path().display()
    );
    let key = attest_store::SigningKey {
        kid: "k".into(),
        algorithm: "ES256".into(),
        private_pkcs8: vec![1],
        created_at: time::OffsetDateTime::UNIX_EPOCH,
        retired_at: None,
    };
    let store = AnyStore::connect(&url).await.expect("create");
    store.insert_signing_key(&key).await.expect("insert");
    store.close().await;

    let reopened = AnyStore::connect(&url)
        .await
        .expect("reopen runs migrations again");
    assert_eq!(reopened.signing_keys().await.expect("list"), [key]);
}

#[tokio::test]
async fn unsupported_scheme_is_refused_without_echoing_the_url() {
    let error = AnyStore::connect("mysql://root:hunter2@db/attestd")
        .await
        .expect_err("mysql is not supported");
    assert!(
        matches!(&error, StoreError::UnsupportedUrl { scheme } if scheme == "mysql"),
        "{error:?}"
    );
    assert!(!error.to_string().contains("hunter2"));
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable() {
    let options = StoreOptions {
        acquire_timeout: Duration::from_secs(2),
        ..StoreOptions::default()
    };
    // Port 1 on the loopback interface: nothing listens there.
    let error = AnyStore::connect_with("postgres://postgres@127.0.0.1:1/none", &options)
        .await
        .expect_err("nothing listens on port 1");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn missing_sqlite_file_without_create_mode_is_unavailable() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}/absent.db", directory.path().display());
    let error = AnyStore::connect(&url)
        .await
        .expect_err("no mode=rwc, no file");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}
