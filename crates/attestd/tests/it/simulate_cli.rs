//! `attestd simulate` against a real server in quick-start mode: the README's zero-config flow,
//! for both platforms against one server.

use crate::common;

use std::path::PathBuf;
use std::process::Output;

use attestd::server::Config;
use common::{Db, Server};

on_both_stores!(simulate_completes_the_flow_against_a_quickstart_server);

/// Runs `attestd simulate --server <server> --ca-dir <ca_dir> <args>`.
async fn simulate(server: &Server, ca_dir: &PathBuf, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_attestd"));
    command
        .args(["simulate", "--server", &server.base, "--ca-dir"])
        .arg(ca_dir)
        .args(args);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn assert_succeeded(output: &Output, expected_lines: &[&str]) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in expected_lines
        .iter()
        .chain(&["ok: every step behaved as expected"])
    {
        assert!(stdout.contains(line), "{line:?} missing:\n{stdout}");
    }
}

fn assert_refused(output: &Output, code: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(code), "{code} missing:\n{stdout}");
}

async fn simulate_completes_the_flow_against_a_quickstart_server(db: &Db) {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("attestd-dev");
    // No app configured: the server creates the simulator CAs and registers the demo apps.
    let mut config = Config::new(db.url.clone());
    config.quickstart_dir = ca_dir.clone();
    config.database_max_connections = Some(4);
    let server = Server::start_with(config).await;

    let ios = simulate(&server, &ca_dir, &["--assertions", "4"]).await;
    assert_succeeded(
        &ios,
        &[
            "2. attestation: 201",
            "3.4 assertion: 200 valid, counter 4",
            "4. replayed assertion: 422",
        ],
    );

    // The Android demo app, on the same server: no phone, no network.
    let android = simulate(
        &server,
        &ca_dir,
        &["--platform", "android", "--assertions", "4"],
    )
    .await;
    assert_succeeded(
        &android,
        &[
            "for dev.attestd.demo",
            "2. attestation: 201",
            "3.4 signed request: 200 valid",
            "4. replayed signed request: 400 \"challenge_invalid\"",
        ],
    );

    // Against an app the server does not know, simulate fails with exit code 1.
    let output = simulate(&server, &ca_dir, &["--app-id", "OTHERTEAM1.com.example"]).await;
    assert_refused(&output, "unknown_app");
    let output = simulate(
        &server,
        &ca_dir,
        &["--platform", "android", "--app-id", "com.example.other"],
    )
    .await;
    assert_refused(&output, "unknown_app");
}
