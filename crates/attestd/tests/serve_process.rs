//! The `attestd serve` binary's own behaviour: what it logs per failed request (one line per
//! 5xx, at the level docs/operations.md promises; nothing above DEBUG for a 4xx), and
//! quick-start mode only on loopback.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::{self, BIN, Process, field, level};
use common::{APP, Db, attestation, attestation_body, device};
use serde_json::{Value, json};

/// `chattr +i` for as long as it lives (CAP_LINUX_IMMUTABLE: root), so that the file is
/// writable again whatever the test does.
struct Immutable(PathBuf);

impl Immutable {
    fn new(path: &Path) -> Self {
        chattr("+i", path);
        Self(path.to_owned())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        chattr("-i", &self.0);
    }
}

fn chattr(flag: &str, path: &Path) {
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

/// The log lines the server wrote while `during` ran (they are written before the answer is
/// sent; the reader thread gets a moment to catch up).
async fn lines_during<F: Future<Output = ()>>(server: &Process, during: F) -> Vec<String> {
    let before = server.log_lines().len();
    during.await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.log_lines().split_off(before)
}

fn at_least_warn(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|line| matches!(level(line).as_deref(), Some("WARN" | "ERROR")))
        .collect()
}

async fn post(client: &reqwest::Client, url: String, body: &Value) -> (u16, Value) {
    let response = client.post(url).json(body).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_logged_once_at_warn_and_a_4xx_not_above_debug() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Db::sqlite();
    let mut args = process::test_app_args(dir.path());
    args.extend(["--database-url".to_owned(), db.url.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Process::start(process::serve_command(&args))
        .unwrap_or_else(|(status, log)| panic!("{status}\n{log}"));
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.base);

    // Client errors, the database healthy: a malformed body, an unknown route, a missing
    // admin token, an attestation over a challenge the server never issued (decided and
    // logged in the decision log, not in the server log).
    let lines = lines_during(&server, async {
        let (status, _) = post(&client, url("/v1/challenges"), &json!({"appId": 7})).await;
        assert_eq!(status, 400);
        let status = client.get(url("/nowhere")).send().await.unwrap().status();
        assert_eq!(status, 404);
        let status = client
            .get(url("/admin/v1/decisions"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401);
        let device = device();
        let forged = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let body = attestation_body(&device, APP, forged, &attestation(&device, APP, forged));
        let (status, answer) = post(&client, url("/v1/attestations"), &body).await;
        assert_eq!(status, 400, "{answer}");
    })
    .await;
    assert_eq!(at_least_warn(&lines), Vec::<&String>::new(), "4xx logged");

    // A database failure: the WAL made immutable, an attestation (which writes) answers 503.
    let device = device();
    let (status, challenge) = post(&client, url("/v1/challenges"), &json!({"appId": APP})).await;
    assert_eq!(status, 201);
    let challenge = challenge["challenge"]
        .as_str()
        .expect("challenge")
        .to_owned();
    let body = attestation_body(
        &device,
        APP,
        &challenge,
        &attestation(&device, APP, &challenge),
    );
    let path = db
        .url
        .strip_prefix("sqlite://")
        .and_then(|rest| rest.split('?').next())
        .expect("a sqlite:// URL");
    let wal = PathBuf::from(format!("{path}-wal"));
    assert!(wal.exists(), "the server has written");
    let lines = {
        let _immutable = Immutable::new(&wal);
        lines_during(&server, async {
            let (status, answer) = post(&client, url("/v1/attestations"), &body).await;
            assert_eq!(status, 503, "{answer}");
            assert_eq!(answer["code"], "unavailable", "{answer}");
        })
        .await
    };
    let logged = at_least_warn(&lines);
    assert_eq!(logged.len(), 1, "one line per 5xx:\n{}", lines.join("\n"));
    let line = logged[0];
    // A database failure is WARN (docs/operations.md, Observability), with what failed.
    assert_eq!(level(line).as_deref(), Some("WARN"), "{line}");
    assert_eq!(field(line, "status").as_deref(), Some("503"), "{line}");
    assert_eq!(
        field(line, "code").as_deref(),
        Some("unavailable"),
        "{line}"
    );
    assert_eq!(
        field(line, "route").as_deref(),
        Some("/v1/attestations"),
        "{line}"
    );
    assert_eq!(
        field(line, "cause").as_deref(),
        Some("database unavailable"),
        "{line}"
    );
    assert!(
        field(line, "error").is_some_and(|error| !error.is_empty()),
        "{line}"
    );
    assert!(
        !server.log().contains("\"level\":\"ERROR\""),
        "{}",
        server.log()
    );
}

/// `attestd serve` in quick-start mode (no app) on `listen`, in `dir`.
fn quickstart(dir: &Path, listen: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .args(["serve", "--log-format", "json", "--database-url"])
        .arg(format!("sqlite://{}", dir.join("attestd.db").display()))
        .arg("--quickstart-dir")
        .arg(dir.join("attestd-dev"))
        .env("ATTESTD_LISTEN", listen)
        .env_remove("DATABASE_URL")
        .env_remove("ATTESTD_APPS")
        .env_remove("ATTESTD_KEY_ENCRYPTION_KEY")
        // A typo in the apps' variable name: no app is configured.
        .env("ATTESTD_APP", format!("{APP}=development"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

#[test]
fn quick_start_refuses_a_network_address_and_names_the_fix() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (status, log) = match Process::start(quickstart(dir.path(), "0.0.0.0:0")) {
        Ok(server) => panic!("quick-start mode listens on 0.0.0.0:\n{}", server.log()),
        Err(stopped) => stopped,
    };
    assert!(!status.success(), "{log}");
    for expected in [
        "quick-start",
        "loopback",
        "0.0.0.0",
        "--app",
        "ATTESTD_APPS",
    ] {
        assert!(log.contains(expected), "{expected:?} missing: {log}");
    }
    assert!(
        !dir.path().join("attestd-dev").exists(),
        "the simulator CA was created"
    );
}

#[test]
fn quick_start_on_loopback_starts_and_warns() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = Process::start(quickstart(dir.path(), "127.0.0.1:0"))
        .unwrap_or_else(|(status, log)| panic!("{status}\n{log}"));
    let warning = server
        .log_lines()
        .into_iter()
        .find(|line| line.contains("QUICK-START MODE"))
        .unwrap_or_else(|| panic!("no quick-start warning: {}", server.log()));
    assert_eq!(level(&warning).as_deref(), Some("WARN"), "{warning}");
    assert!(warning.contains("loopback only"), "{warning}");
    // The demo Android app needs no network: the fetcher that would reach Google stays off.
    assert!(
        field(&warning, "android_revocation_list").is_some_and(|v| v.starts_with("not fetched")),
        "{warning}"
    );
    assert!(
        server
            .log_lines()
            .iter()
            .any(|line| line.contains("Android revocation list fetching disabled")),
        "{}",
        server.log()
    );
}

/// `attestd simulate --platform <platform>` against `server`, with the CA in `ca_dir`.
fn simulate(server: &Process, ca_dir: &Path, platform: &str) -> std::process::Output {
    Command::new(BIN)
        .args(["simulate", "--platform", platform, "--server", &server.base])
        .arg("--ca-dir")
        .arg(ca_dir)
        .output()
        .expect("attestd simulate")
}

#[test]
fn quick_start_adds_an_android_ca_to_an_old_directory_and_serves_both_platforms() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca_dir = dir.path().join("attestd-dev");
    // A directory from before quick start served Android: the two iOS CAs only.
    let (old, _) = attestd::server::quickstart::DevCa::load_or_create(&ca_dir).expect("CAs");
    std::fs::remove_file(ca_dir.join("android-ca.pem")).expect("remove the Android CA");

    let server = Process::start(quickstart(dir.path(), "127.0.0.1:0"))
        .unwrap_or_else(|(status, log)| panic!("{status}\n{log}"));
    let loaded = attestd::server::quickstart::DevCa::load(&ca_dir).expect("all three CAs");
    assert_eq!(loaded.attestation.root_der(), old.attestation.root_der());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ca_dir.join("android-ca.pem"))
            .expect("android-ca.pem")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    for (platform, replay) in [
        ("ios", "4. replayed assertion: 422"),
        ("android", "4. replayed signed request: 400"),
    ] {
        let output = simulate(&server, &ca_dir, platform);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{platform}:\n{stdout}\n{}",
            server.log()
        );
        assert!(stdout.contains(replay), "{platform}:\n{stdout}");
    }
}
