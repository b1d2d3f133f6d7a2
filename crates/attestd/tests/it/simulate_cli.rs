//! `attestd simulate` against a real server in quick-start mode: the README's zero-config flow.

use crate::common;

use attestd::server::Config;
use common::{Db, Server};

on_both_stores!(simulate_completes_the_flow_against_a_quickstart_server);

async fn simulate_completes_the_flow_against_a_quickstart_server(db: &Db) {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("attestd-dev");
    // No app configured: the server creates the simulator CA and registers the demo app.
    let mut config = Config::new(db.url.clone());
    config.quickstart_dir = ca_dir.clone();
    config.database_max_connections = Some(4);
    let server = Server::start_with(config).await;

    let base = server.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_attestd"))
            .args([
                "simulate",
                "--server",
                &base,
                "--assertions",
                "4",
                "--ca-dir",
            ])
            .arg(&ca_dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("2. attestation: 201"), "{stdout}");
    assert!(
        stdout.contains("3.4 assertion: 200 valid, counter 4"),
        "{stdout}"
    );
    assert!(stdout.contains("4. replayed assertion: 422"), "{stdout}");
    assert!(
        stdout.contains("ok: every step behaved as expected"),
        "{stdout}"
    );

    // Against an app the server does not know, simulate fails with exit code 1.
    let base = server.base.clone();
    let ca_dir = dir.path().join("attestd-dev");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_attestd"))
            .args([
                "simulate",
                "--server",
                &base,
                "--app-id",
                "OTHERTEAM1.com.example",
                "--ca-dir",
            ])
            .arg(&ca_dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("unknown_app"));
}
