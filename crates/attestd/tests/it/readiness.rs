//! `/readyz` follows the ability to commit: when writes fail it answers 503 `not_ready` (and
//! `/healthz` stays 200), and when writes recover it is ready again.
//!
//! The faults are real and confined to one test's database:
//! - SQLite: the `-wal` file made immutable (`chattr +i`) under the running server. Commits are
//!   appended to the WAL (the main file changes only at checkpoints), so this is the file whose
//!   writes must fail; immutability stops root too (permission bits do not), and needs
//!   CAP_LINUX_IMMUTABLE, so this test runs as root.
//! - PostgreSQL: the server connects as a role of its own, which is then made read-only
//!   (`ALTER ROLE ... SET default_transaction_read_only`) and whose sessions are terminated, as
//!   when a failover leaves the instances on a read-only standby. Other tests' roles and the
//!   database itself are untouched.

use crate::common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Db, Server, assert_error};
use reqwest::StatusCode;
use sqlx::Connection;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_readiness_follows_an_immutable_wal() {
    let db = Db::sqlite();
    let server = Server::start(&db).await;
    let path = db
        .url
        .strip_prefix("sqlite://")
        .and_then(|rest| rest.split('?').next())
        .expect("a sqlite:// URL");
    let wal = PathBuf::from(format!("{path}-wal"));
    assert!(wal.exists(), "the server has written");

    chattr("+i", &wal);
    let broken = match not_ready_then_healthy(&server).await {
        Ok(()) => writes_fail(&server).await,
        Err(error) => Err(error),
    };
    chattr("-i", &wal);
    broken.expect("readyz followed the failing writes");
    ready_again(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_database_url,
    ignore = "PostgreSQL: set DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run"
)]
async fn postgres_readiness_follows_a_read_only_role() {
    let mut db = Db::postgres().await;
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let schema = db
        .url
        .rsplit("search_path]=")
        .next()
        .expect("the test schema")
        .to_owned();
    // Hex digits and underscores only, generated here: nothing to inject.
    let role = format!("{schema}_role");
    let mut admin = sqlx::PgConnection::connect(&base).await.expect("connect");
    for statement in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT ALL ON SCHEMA {schema} TO {role}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
            .expect("role");
    }
    db.url = with_user(&db.url, &role);
    let server = Server::start(&db).await;

    let outcome = async {
        read_only(&mut admin, &role, true).await;
        not_ready_then_healthy(&server).await?;
        writes_fail(&server).await?;
        read_only(&mut admin, &role, false).await;
        ready_again(&server).await;
        Ok::<(), String>(())
    }
    .await;
    server.stop().await;
    db.cleanup().await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS {role}")))
        .execute(&mut admin)
        .await;
    outcome.expect("readyz followed the failing writes");
}

/// Waits for `/readyz` to answer 503 `not_ready` (the cached probe lasts a second), then checks
/// that `/healthz` still answers 200.
async fn not_ready_then_healthy(server: &Server) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = server.get("/readyz").await;
        if answer.0 == StatusCode::SERVICE_UNAVAILABLE {
            assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "not_ready");
            assert_eq!(
                answer.1["details"]["reason"], "database_write_failed",
                "{}",
                answer.1
            );
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("readyz stayed {}: {}", answer.0, answer.1));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, health) = server.get("/healthz").await;
    if status != StatusCode::OK {
        return Err(format!("healthz answered {status}: {health}"));
    }
    // Still not ready a moment later: not a one-off.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let answer = server.get("/readyz").await;
    if answer.0 != StatusCode::SERVICE_UNAVAILABLE {
        return Err(format!("readyz recovered by itself: {}", answer.1));
    }
    Ok(())
}

/// What readiness said is true: an attestation, which writes, fails with 503 `unavailable`.
async fn writes_fail(server: &Server) -> Result<(), String> {
    let (status, body) = server
        .attest_as(
            &common::device(),
            common::APP,
            serde_json::json!({}),
            |builder| builder,
        )
        .await;
    if status == StatusCode::SERVICE_UNAVAILABLE && body["code"] == "unavailable" {
        Ok(())
    } else {
        Err(format!("an attestation answered {status}: {body}"))
    }
}

/// Waits for `/readyz` to answer 200 again, then checks that a write-heavy request works.
async fn ready_again(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = server.get("/readyz").await;
        if status == StatusCode::OK {
            assert_eq!(body["status"], "ready");
            break;
        }
        assert!(Instant::now() < deadline, "readyz stayed {status}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.attest(&common::device()).await;
}

/// Makes `role`'s new transactions read-only (or writable again) and ends its sessions, so the
/// server's pool reconnects with the new setting.
async fn read_only(admin: &mut sqlx::PgConnection, role: &str, on: bool) {
    let setting = if on {
        format!("ALTER ROLE {role} SET default_transaction_read_only = on")
    } else {
        format!("ALTER ROLE {role} RESET default_transaction_read_only")
    };
    sqlx::query(sqlx::AssertSqlSafe(setting))
        .execute(&mut *admin)
        .await
        .expect("alter role");
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
        .bind(role)
        .execute(&mut *admin)
        .await
        .expect("terminate the role's sessions");
}

/// `url` with its user replaced by `user` (trust authentication: no password).
fn with_user(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let host = match rest[..authority_end].rsplit_once('@') {
        Some((_, host)) => host,
        None => &rest[..authority_end],
    };
    format!("{scheme}://{user}@{host}{}", &rest[authority_end..])
}

fn chattr(flag: &str, path: &std::path::Path) {
    let status = Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .expect("chattr (e2fsprogs)");
    assert!(
        status.success(),
        "chattr {flag} {}: needs CAP_LINUX_IMMUTABLE (root; in a container, --cap-add LINUX_IMMUTABLE)",
        path.display()
    );
}
