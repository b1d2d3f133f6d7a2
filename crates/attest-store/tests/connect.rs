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
    let url = file_url(&directory);
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

/// Migration 0105 rebuilds SQLite's decision log (to widen a CHECK constraint), 0106 moves
/// receipts out of `device_keys` and 0110 rebuilds `device_keys` (platforms, optional
/// counters): a database migrated up to 0104 keeps every decision, reason and key with its
/// receipt and refresh schedule, in insertion order; the rebuilt tables take the new values
/// and still refuse what the old ones refused.
#[tokio::test]
async fn rebuilding_the_sqlite_decision_log_keeps_every_decision_and_reason() {
    use sqlx::Connection;
    use sqlx::migrate::Migrator;

    let directory = tempfile::tempdir().expect("temporary directory");
    let url = file_url(&directory);
    let mut before = Migrator::new(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/sqlite"
    )))
    .await
    .expect("migrations");
    before.migrations = before
        .migrations
        .iter()
        .filter(|migration| migration.version < 105)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let mut connection = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut connection)
        .await
        .expect("pragma");
    before.run(&mut connection).await.expect("migrate to 0104");
    sqlx::query(
        "INSERT INTO decisions (id, at, app_id, key_id, route, outcome, code, risk_score, kind, \
         device_id, user_id, client_ip, environment, mode, would_deny, reasons, factors) VALUES \
         (1, 100, 'T.app', zeroblob(32), '/v1/assertions', 'deny', 'signature_invalid', 60, \
          'assertion', 'd1', 'u1', '192.0.2.1', 'production', 'enforce', 1, \
          '[{\"code\":\"verification_failed\",\"message\":\"m\"}]', '[]'), \
         (2, 101, 'T.app', NULL, '/v1/attestations', 'allow', 'ok', 5, 'attestation', NULL, \
          NULL, NULL, NULL, NULL, 0, '[]', '[]')",
    )
    .execute(&mut connection)
    .await
    .expect("decisions");
    sqlx::query(
        "INSERT INTO device_keys (key_id, device_id, app_id, environment, public_key_spki, \
         counter, receipt, receipt_risk_metric, created_at, last_seen_at, attestation_count, \
         assertion_count, metadata) VALUES (zeroblob(32), 'd1', 'T.app', 'production', x'04', 7, \
         x'30820102', 3, 100, 200, 1, 6, '{}'), \
         (x'ff00000000000000000000000000000000000000000000000000000000000000', \
         'd1', 'T.app', 'production', x'04', 2, x'30', NULL, 50, 50, 1, \
         0, '{\"bundleVersion\":\"9\",\"receiptStatus\":\"valid\"}'), \
         (x'ee00000000000000000000000000000000000000000000000000000000000000', \
         'd3', 'T.app', 'production', x'04', 0, x'', NULL, 60, 60, 1, 0, '{}')",
    )
    .execute(&mut connection)
    .await
    .expect("three keys with their receipts");
    sqlx::query(
        "INSERT INTO receipt_refresh (key_id, next_refresh_at, enrolled_at) \
         VALUES (zeroblob(32), 500, 100)",
    )
    .execute(&mut connection)
    .await
    .expect("a refresh schedule");
    sqlx::query(
        "INSERT INTO decision_reasons (decision_id, code) VALUES (1, 'verification_failed')",
    )
    .execute(&mut connection)
    .await
    .expect("reasons");
    connection.close().await.expect("close");
    // Created by sqlx with the umask's mode: the store refuses files others can read.
    private(&directory.path().join("attestd.db"));

    let store = AnyStore::connect(&url)
        .await
        .expect("migrate to the latest");
    let logged = store
        .list_decisions(&attest_store::DecisionFilter::default(), 10)
        .await
        .expect("list");
    let codes: Vec<_> = logged
        .iter()
        .map(|logged| (logged.decision.code.as_str(), logged.decision.kind))
        .collect();
    assert_eq!(
        codes,
        [
            ("ok", Some(attest_store::DecisionKind::Attestation)),
            (
                "signature_invalid",
                Some(attest_store::DecisionKind::Assertion)
            ),
        ]
    );
    // 0106 moved receipts out of device_keys: the key keeps its receipt and everything else.
    let key = store
        .device_key(attest_store::KeyId::from([0u8; 32]))
        .await
        .expect("read")
        .expect("the key survived");
    assert_eq!(
        store.device_key_receipt(key.key_id).await.expect("receipt"),
        Some(vec![0x30, 0x82, 0x01, 0x02])
    );
    assert_eq!(
        (key.counter, key.assertion_count, key.receipt_risk_metric),
        (Some(7), 6, Some(3))
    );
    // 0110: keys stored before platforms are App Attest keys; their evidence parses as Apple's.
    assert_eq!(key.platform(), attest_store::Platform::Ios);
    let mut second = [0u8; 32];
    second[0] = 0xff;
    let second = store
        .device_key(attest_store::KeyId::from(second))
        .await
        .expect("read")
        .expect("the second key survived");
    let apple = second.evidence.apple().expect("Apple evidence");
    assert_eq!(apple.bundle_version.as_deref(), Some("9"));
    // 0111: keys stored before receipt statuses now name theirs, read from their receipt.
    use attest_types::evidence::ReceiptStatus;
    let status =
        |key: &attest_store::DeviceKey| key.evidence.apple().and_then(|a| a.receipt_status);
    assert_eq!(status(&key), Some(ReceiptStatus::Valid));
    assert_eq!(status(&second), Some(ReceiptStatus::Valid));
    let mut third = [0u8; 32];
    third[0] = 0xee;
    let third = store
        .device_key(attest_store::KeyId::from(third))
        .await
        .expect("read")
        .expect("the third key survived");
    assert_eq!(status(&third), Some(ReceiptStatus::Missing));
    assert_eq!(
        store
            .device_key_receipt(third.key_id)
            .await
            .expect("read receipt"),
        Some(Vec::new())
    );
    let denied = &logged[1].decision;
    assert_eq!(denied.device_id.as_deref(), Some("d1"));
    assert_eq!(denied.reasons.len(), 1);
    let summary = store
        .decision_summary(&attest_store::SummaryFilter::default())
        .await
        .expect("summary");
    assert!(
        format!("{summary:?}").contains("verification_failed"),
        "reasons still count: {summary:?}"
    );
    store.close().await;

    // The rebuilt table: the new kind is accepted, an unknown one still refused, and a reason
    // must still name a decision.
    let mut connection = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut connection)
        .await
        .expect("pragma");
    const INSERT_DEVICE_CHECK: &str = "INSERT INTO decisions (at, app_id, route, outcome, code, \
        kind) VALUES (1, 'T.app', '/v1/device-checks', 'allow', 'ok', 'device_check')";
    const INSERT_OTHER: &str = "INSERT INTO decisions (at, app_id, route, outcome, code, kind) \
        VALUES (1, 'T.app', '/v1/other', 'allow', 'ok', 'other')";
    sqlx::query(INSERT_DEVICE_CHECK)
        .execute(&mut connection)
        .await
        .expect("device_check is a kind");
    assert!(
        sqlx::query(INSERT_OTHER)
            .execute(&mut connection)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("INSERT INTO decision_reasons (decision_id, code) VALUES (999, 'x')")
            .execute(&mut connection)
            .await
            .is_err(),
        "the foreign key survived the rebuild"
    );

    // 0110 kept the refresh schedule (dropping the old table did not cascade), the rowid order
    // settle_lineage relies on, and the foreign keys that point at the rebuilt table.
    let schedules: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM receipt_refresh")
        .fetch_one(&mut connection)
        .await
        .expect("count schedules");
    assert_eq!(schedules, 1);
    let order: Vec<Vec<u8>> = sqlx::query_scalar("SELECT key_id FROM device_keys ORDER BY rowid")
        .fetch_all(&mut connection)
        .await
        .expect("keys by rowid");
    assert_eq!(
        order.iter().map(|id| id[0]).collect::<Vec<_>>(),
        [0, 0xff, 0xee]
    );
    assert!(
        sqlx::query("INSERT INTO device_key_receipts (key_id, receipt) VALUES (x'01', x'00')")
            .execute(&mut connection)
            .await
            .is_err(),
        "receipts still need their key"
    );
    let violations: Vec<(String,)> = sqlx::query_as("PRAGMA foreign_key_check")
        .fetch_all(&mut connection)
        .await
        .expect("foreign key check");
    assert!(violations.is_empty(), "{violations:?}");
    // A counter exactly on the platforms that have one.
    for (platform, counter, accepted) in [
        ("android", None, true),
        ("android", Some(0), false),
        ("ios", None, false),
        ("watchos", Some(0), false),
    ] {
        let result = sqlx::query(
            "INSERT INTO device_keys (key_id, device_id, app_id, environment, public_key_spki, \
             counter, created_at, last_seen_at, attestation_count, assertion_count, metadata, \
             platform) VALUES (randomblob(32), 'd2', 'T.app', 'production', x'04', $1, 1, 1, 1, \
             0, '{}', $2)",
        )
        .bind(counter.map(i64::from))
        .bind(platform)
        .execute(&mut connection)
        .await;
        assert_eq!(
            result.is_ok(),
            accepted,
            "{platform} with counter {counter:?}"
        );
    }
}

/// Makes `path` readable by its owner only.
fn private(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

/// A read-write-create URL of `attestd.db` in `directory`.
fn file_url(directory: &tempfile::TempDir) -> String {
    format!(
        "sqlite://{}/attestd.db?mode=rwc",
        directory.path().display()
    )
}

/// Migrations 0110 (platforms, optional counters) and 0111 (receipt statuses) on PostgreSQL: a
/// database migrated up to 0109 keeps its keys, which become App Attest keys naming their
/// receipt status; the counter is required exactly on iOS keys.
#[tokio::test]
#[cfg_attr(
    no_database_url,
    ignore = "PostgreSQL: set DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run"
)]
async fn postgres_keys_stored_before_platforms_become_app_attest_keys() {
    use attest_types::evidence::ReceiptStatus;
    use sqlx::migrate::Migrator;

    let base_url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let schema = format!("upgrade_{}_{nanos}", std::process::id());
    let admin = sqlx::PgPool::connect(&base_url).await.expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .expect("schema");
    let separator = if base_url.contains('?') { '&' } else { '?' };
    let url = format!("{base_url}{separator}options=-c%20search_path%3D{schema}");

    let outcome = async move {
        let mut before = Migrator::new(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/migrations/postgres"
        )))
        .await
        .expect("migrations");
        before.migrations = before
            .migrations
            .iter()
            .filter(|migration| migration.version < 110)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        let old = sqlx::PgPool::connect(&url).await.expect("connect");
        before.run(&old).await.expect("migrate to 0109");
        for (seed, metadata, receipt) in [
            (1u8, "{}", &b"\x30\x82"[..]),
            (2, r#"{"bundleVersion":"1"}"#, b""),
            (
                3,
                r#"{"receiptStatus":"invalid","receiptReason":"receipt_expired"}"#,
                b"\x30",
            ),
        ] {
            sqlx::query(
                "INSERT INTO device_keys (key_id, device_id, app_id, environment, \
                 public_key_spki, counter, created_at, last_seen_at, attestation_count, \
                 assertion_count, metadata) VALUES ($1, 'd', 'T.app', 'production', '\\x04', 3, \
                 1, 1, 1, 0, $2)",
            )
            .bind(vec![seed; 32])
            .bind(metadata)
            .execute(&old)
            .await
            .expect("an old key");
            sqlx::query("INSERT INTO device_key_receipts (key_id, receipt) VALUES ($1, $2)")
                .bind(vec![seed; 32])
                .bind(receipt)
                .execute(&old)
                .await
                .expect("its receipt");
        }
        old.close().await;

        let store = AnyStore::connect(&url)
            .await
            .expect("migrate to the latest");
        let mut statuses = Vec::new();
        for seed in 1..=3u8 {
            let key = store
                .device_key(attest_store::KeyId::from([seed; 32]))
                .await
                .expect("read")
                .expect("the key survived");
            assert_eq!(key.platform(), attest_store::Platform::Ios);
            assert_eq!(key.counter, Some(3));
            statuses.push(key.evidence.apple().and_then(|apple| apple.receipt_status));
        }
        assert_eq!(
            statuses,
            [
                Some(ReceiptStatus::Valid),
                Some(ReceiptStatus::Missing),
                Some(ReceiptStatus::Invalid)
            ]
        );
        store.close().await;

        let new = sqlx::PgPool::connect(&url).await.expect("connect");
        for (platform, counter, accepted) in [
            ("android", None, true),
            ("android", Some(0), false),
            ("ios", None, false),
            ("watchos", Some(0), false),
        ] {
            let result = sqlx::query(
                "INSERT INTO device_keys (key_id, device_id, app_id, environment, \
                 public_key_spki, counter, created_at, last_seen_at, attestation_count, \
                 assertion_count, metadata, platform) VALUES (decode(md5(random()::text) || md5(random()::text), 'hex'), \
                 'd2', 'T.app', 'production', '\\x04', $1, 1, 1, 1, 0, '{}', $2)",
            )
            .bind(counter.map(i64::from))
            .bind(platform)
            .execute(&new)
            .await;
            assert_eq!(
                result.is_ok(),
                accepted,
                "{platform} with counter {counter:?}"
            );
        }
        new.close().await;
    };
    let outcome = tokio::spawn(outcome).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await
        .expect("drop schema");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}
