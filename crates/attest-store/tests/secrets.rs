//! Secrets at rest (contract point 7), on both backends: with a key-encryption key the signing
//! keys and server secrets are sealed in the rows themselves, plaintext rows are sealed in
//! place, and a store that cannot open them refuses to connect.
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p attest-store --test secrets
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use attest_store::{
    AnyStore, KeyEncryptionKey, SEALED_PREFIX, SealError, SigningKey, Store, StoreError,
    StoreOptions,
};
use sqlx::Connection;
use time::OffsetDateTime;

/// Runs `$test(db)` once on a fresh SQLite file and once in a fresh PostgreSQL schema.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let db = crate::TestDb::sqlite();
                super::$test(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[cfg_attr(no_database_url, ignore = "PostgreSQL: set DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run")]
            async fn postgres() {
                let db = crate::TestDb::postgres().await.expect("DATABASE_URL was set when this test was built but is not set now");
                let db = std::sync::Arc::new(db);
                let run = std::sync::Arc::clone(&db);
                let outcome = tokio::spawn(async move { super::$test(&run).await }).await;
                db.cleanup().await;
                if let Err(error) = outcome {
                    std::panic::resume_unwind(error.into_panic());
                }
            }
        }
    )*};
}

on_both_backends!(
    sealed_secrets_round_trip_and_the_rows_hold_no_plaintext,
    plaintext_rows_are_sealed_in_place_once_a_key_is_configured,
    a_sealed_database_refuses_a_store_without_its_key_or_with_another,
    an_altered_sealed_row_is_refused,
    stores_sealing_the_same_rows_at_once_agree,
);

/// A fresh database with raw SQL access for the checks.
struct TestDb {
    url: String,
    postgres: Option<(String, String)>,
    _directory: Option<tempfile::TempDir>,
}

impl TestDb {
    fn sqlite() -> Self {
        let directory = tempfile::tempdir().expect("temporary directory");
        Self {
            url: format!("sqlite://{}", directory.path().join("attestd.db").display()),
            postgres: None,
            _directory: Some(directory),
        }
    }

    async fn postgres() -> Option<Self> {
        static SEQUENCE: AtomicU32 = AtomicU32::new(0);
        let base = std::env::var("DATABASE_URL").ok()?;
        let schema = format!(
            "secrets_{}_{}_{}",
            std::process::id(),
            OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000,
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let mut connection = sqlx::PgConnection::connect(&base).await.expect("connect");
        // Digits and underscores only: nothing to inject.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut connection)
            .await
            .expect("create schema");
        let separator = if base.contains('?') { '&' } else { '?' };
        Some(Self {
            url: format!("{base}{separator}options=-c%20search_path%3D{schema}"),
            postgres: Some((base, schema)),
            _directory: None,
        })
    }

    async fn cleanup(&self) {
        if let Some((base, schema)) = &self.postgres
            && let Ok(mut connection) = sqlx::PgConnection::connect(base).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut connection)
                .await;
        }
    }

    async fn connect(&self, key: Option<&KeyEncryptionKey>) -> Result<AnyStore, StoreError> {
        let options = StoreOptions {
            key_encryption_key: key.cloned(),
            ..StoreOptions::default()
        };
        AnyStore::connect_with(&self.url, &options).await
    }

    /// The one blob column of every row `query` selects, read past the store.
    async fn raw(&self, query: &'static str) -> Vec<Vec<u8>> {
        match &self.postgres {
            Some(_) => {
                let mut connection = sqlx::PgConnection::connect(&self.url).await.expect("raw");
                sqlx::query_scalar(query)
                    .fetch_all(&mut connection)
                    .await
                    .expect("raw read")
            }
            None => {
                let mut connection = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("raw");
                sqlx::query_scalar(query)
                    .fetch_all(&mut connection)
                    .await
                    .expect("raw read")
            }
        }
    }

    async fn execute(&self, statement: &'static str) {
        match &self.postgres {
            Some(_) => {
                let mut connection = sqlx::PgConnection::connect(&self.url).await.expect("raw");
                sqlx::query(statement)
                    .execute(&mut connection)
                    .await
                    .expect("raw write");
            }
            None => {
                let mut connection = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("raw");
                sqlx::query(statement)
                    .execute(&mut connection)
                    .await
                    .expect("raw write");
            }
        }
    }
}

fn kek(byte: u8) -> KeyEncryptionKey {
    KeyEncryptionKey::new(&[byte; 32]).expect("32 bytes")
}

/// A real PKCS#8 P-256 key, as attest-token stores it.
fn pkcs8() -> Vec<u8> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .expect("generate")
        .as_ref()
        .to_vec()
}

fn signing_key(kid: &str) -> SigningKey {
    SigningKey {
        kid: kid.to_owned(),
        algorithm: "ES256".into(),
        private_pkcs8: pkcs8(),
        created_at: OffsetDateTime::UNIX_EPOCH,
        retired_at: None,
    }
}

const SIGNING_KEY_ROWS: &str = "SELECT private_pkcs8 FROM signing_keys ORDER BY kid";
const SERVER_SECRET_ROWS: &str = "SELECT secret FROM server_secrets ORDER BY name";

/// Whether `haystack` contains any 12-byte run of `secret`: a sealed row must not.
fn leaks(haystack: &[u8], secret: &[u8]) -> bool {
    secret
        .windows(12)
        .any(|run| haystack.windows(run.len()).any(|window| window == run))
}

async fn sealed_secrets_round_trip_and_the_rows_hold_no_plaintext(db: &TestDb) {
    let key = kek(1);
    let store = db.connect(Some(&key)).await.expect("connect");
    let stored = signing_key("kid-1");
    store.insert_signing_key(&stored).await.expect("insert");
    let candidate = [0xC5; 32];
    let secret = store
        .server_secret("challenge-mac", &candidate, OffsetDateTime::UNIX_EPOCH)
        .await
        .expect("secret");
    assert_eq!(secret, candidate);
    assert_eq!(
        store.signing_keys().await.expect("read"),
        std::slice::from_ref(&stored)
    );
    // A second instance's candidate loses; it gets the first one, opened.
    let again = store
        .server_secret("challenge-mac", &[0x11; 32], OffsetDateTime::UNIX_EPOCH)
        .await
        .expect("secret");
    assert_eq!(again, candidate);
    store.close().await;

    let rows = db.raw(SIGNING_KEY_ROWS).await;
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0].starts_with(SEALED_PREFIX),
        "{:02x?}",
        &rows[0][..20]
    );
    assert!(
        !leaks(&rows[0], &stored.private_pkcs8),
        "the PKCS#8 is in the row"
    );
    let rows = db.raw(SERVER_SECRET_ROWS).await;
    assert!(rows[0].starts_with(SEALED_PREFIX));
    assert!(!leaks(&rows[0], &candidate), "the MAC key is in the row");

    let reopened = db.connect(Some(&key)).await.expect("reopen");
    assert_eq!(reopened.signing_keys().await.expect("read"), [stored]);
    reopened.close().await;
}

async fn plaintext_rows_are_sealed_in_place_once_a_key_is_configured(db: &TestDb) {
    let plain = db.connect(None).await.expect("connect without a key");
    let stored = [signing_key("kid-a"), signing_key("kid-b")];
    for key in &stored {
        plain.insert_signing_key(key).await.expect("insert");
    }
    let secret = plain
        .server_secret("challenge-mac", &[0x42; 32], OffsetDateTime::UNIX_EPOCH)
        .await
        .expect("secret");
    plain.close().await;
    let rows = db.raw(SIGNING_KEY_ROWS).await;
    assert_eq!(
        rows[0], stored[0].private_pkcs8,
        "without a key: stored as given"
    );

    let key = kek(2);
    let sealing = db.connect(Some(&key)).await.expect("connect with a key");
    assert_eq!(sealing.signing_keys().await.expect("read"), stored);
    assert_eq!(
        sealing
            .server_secret("challenge-mac", &[0x43; 32], OffsetDateTime::UNIX_EPOCH)
            .await
            .expect("secret"),
        secret
    );
    sealing.close().await;
    for (row, key) in db.raw(SIGNING_KEY_ROWS).await.iter().zip(&stored) {
        assert!(row.starts_with(SEALED_PREFIX));
        assert!(!leaks(row, &key.private_pkcs8));
    }
    let rows = db.raw(SERVER_SECRET_ROWS).await;
    assert!(rows[0].starts_with(SEALED_PREFIX) && !leaks(&rows[0], &secret));
}

async fn a_sealed_database_refuses_a_store_without_its_key_or_with_another(db: &TestDb) {
    let key = kek(3);
    let store = db.connect(Some(&key)).await.expect("connect");
    store
        .insert_signing_key(&signing_key("kid-1"))
        .await
        .expect("insert");
    store.close().await;

    let error = db.connect(None).await.expect_err("no key");
    assert!(
        matches!(&error, StoreError::Sealing(SealError::KeyMissing { key_id, .. }) if *key_id == key.id()),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("the database's secrets are encrypted")
            && error.to_string().contains("ATTESTD_KEY_ENCRYPTION_KEY"),
        "{error}"
    );
    let other = kek(4);
    let error = db.connect(Some(&other)).await.expect_err("another key");
    assert!(
        matches!(&error, StoreError::Sealing(SealError::WrongKey { stored_key_id, configured_key_id, .. })
            if *stored_key_id == key.id() && *configured_key_id == other.id()),
        "{error:?}"
    );
    // Refused without touching anything: the right key still opens it.
    let store = db.connect(Some(&key)).await.expect("the right key");
    assert_eq!(store.signing_keys().await.expect("read").len(), 1);
    store.close().await;
}

async fn an_altered_sealed_row_is_refused(db: &TestDb) {
    let key = kek(5);
    let store = db.connect(Some(&key)).await.expect("connect");
    store
        .insert_signing_key(&signing_key("kid-1"))
        .await
        .expect("insert");
    store.close().await;
    // Another row's sealed bytes under this kid: the seal is bound to its row.
    let store = db.connect(Some(&key)).await.expect("connect");
    store
        .insert_signing_key(&signing_key("kid-2"))
        .await
        .expect("insert");
    store.close().await;
    db.execute(
        "UPDATE signing_keys SET private_pkcs8 = \
         (SELECT private_pkcs8 FROM signing_keys WHERE kid = 'kid-2') WHERE kid = 'kid-1'",
    )
    .await;
    let error = db.connect(Some(&key)).await.expect_err("a moved seal");
    assert!(
        matches!(&error, StoreError::Sealing(SealError::Altered { secret, .. }) if secret.contains("kid-1")),
        "{error:?}"
    );
}

async fn stores_sealing_the_same_rows_at_once_agree(db: &TestDb) {
    let plain = db.connect(None).await.expect("connect");
    let stored = signing_key("kid-1");
    plain.insert_signing_key(&stored).await.expect("insert");
    let secret = plain
        .server_secret("challenge-mac", &[0x77; 32], OffsetDateTime::UNIX_EPOCH)
        .await
        .expect("secret");
    plain.close().await;

    let key = kek(6);
    let shared_url = Arc::new(db.url.clone());
    let mut starting = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let url = Arc::clone(&shared_url);
        let key = key.clone();
        starting.spawn(async move {
            let options = StoreOptions {
                key_encryption_key: Some(key),
                ..StoreOptions::default()
            };
            let store = AnyStore::connect_with(&url, &options)
                .await
                .expect("connect");
            let keys = store.signing_keys().await.expect("read");
            let secret = store
                .server_secret("challenge-mac", &[0x78; 32], OffsetDateTime::UNIX_EPOCH)
                .await
                .expect("secret");
            (store, keys, secret)
        });
    }
    let started = starting.join_all().await;
    for (store, keys, opened) in started {
        assert_eq!(keys, std::slice::from_ref(&stored));
        assert_eq!(opened, secret);
        store.close().await;
    }
    let rows = db.raw(SIGNING_KEY_ROWS).await;
    assert!(rows.len() == 1 && rows[0].starts_with(SEALED_PREFIX));
    let reopened = db.connect(Some(&key)).await.expect("reopen");
    assert_eq!(reopened.signing_keys().await.expect("read"), [stored]);
    reopened.close().await;
}
