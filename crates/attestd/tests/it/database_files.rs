//! The SQLite database through the real `attestd serve` binary: every URL form creates the
//! file (0600), files others may read are refused, an immutable database file fails writes
//! without killing the process (no `-shm` mapping to `SIGBUS` on), and startup names an
//! unwritable file.
//!
//! Some cases make files immutable with `chattr +i`, which needs CAP_LINUX_IMMUTABLE (root):
//! root ignores permission bits, so nothing else makes an open file unwritable for root.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_attestd");

/// A running `attestd serve`, killed when dropped.
struct Serve {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    /// Starts `attestd serve` in quick-start mode in `dir` with `args`; returns it once it
    /// listens, or its exit status and log if it stopped first.
    fn start(
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, (ExitStatus, String)> {
        let mut command = Command::new(BIN);
        command
            .current_dir(dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--quickstart-dir")
            .arg(dir.join("attestd-dev"))
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("ATTESTD_KEY_ENCRYPTION_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn attestd serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (address_sender, address) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("attestd listening")
                    && let Some(address) = find_address(&line)
                {
                    let _ = address_sender.send(address);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(address) = address.recv_timeout(Duration::from_millis(50)) {
                return Ok(Self {
                    child,
                    base: format!("http://{address}"),
                    log,
                });
            }
            if let Some(status) = child.try_wait().expect("wait") {
                // Let the reader thread drain what is left.
                std::thread::sleep(Duration::from_millis(200));
                let text = log.lock().unwrap().join("\n");
                return Err((status, text));
            }
            assert!(Instant::now() < deadline, "attestd did not start");
        }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// `attestd simulate` against this server: the whole flow, writes included.
    fn simulate(&self, dir: &Path) -> bool {
        Command::new(BIN)
            .args(["simulate", "--server", &self.base, "--ca-dir"])
            .arg(dir.join("attestd-dev"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run attestd simulate")
            .success()
    }

    fn status(&self, path: &str) -> u16 {
        let answer = http_get(&format!("{}{path}", self.base));
        answer.0
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking GET on loopback: status and body.
fn http_get(url: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let response = reqwest::get(url).await.expect("GET");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    })
}

/// The `address` field of a JSON log line.
fn find_address(line: &str) -> Option<String> {
    fn find(value: &serde_json::Value) -> Option<String> {
        match value {
            serde_json::Value::Object(map) => map
                .get("address")
                .and_then(|address| address.as_str().map(str::to_owned))
                .or_else(|| map.values().find_map(find)),
            _ => None,
        }
    }
    find(&serde_json::from_str(line).ok()?)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
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

/// Polls `check` until it holds, for at most 30 s (the server's caches last 1 s).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_creates_the_database_from_every_url_form_owner_only() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let absolute = dir.path().join("new.db");
    let forms = [
        (format!("sqlite://{}", absolute.display()), absolute.clone()),
        (
            "sqlite://relative.db".to_owned(),
            dir.path().join("relative.db"),
        ),
        ("sqlite:colon.db".to_owned(), dir.path().join("colon.db")),
        ("./bare.db".to_owned(), dir.path().join("bare.db")),
    ];
    for (url, path) in forms {
        let server = Serve::start(dir.path(), &["--database-url", &url], &[])
            .unwrap_or_else(|(status, log)| panic!("{url}: {status}\n{log}"));
        assert!(
            server.simulate(dir.path()),
            "{url}: simulate failed\n{}",
            server.log()
        );
        assert_eq!(mode(&path), 0o600, "{url}");
        assert_eq!(mode(&companion(&path, "-wal")), 0o600, "{url}");
        assert!(
            !companion(&path, "-shm").exists(),
            "{url}: no -shm in exclusive locking"
        );
        drop(server);
        // The same URL again: the existing file is used.
        let server = Serve::start(dir.path(), &["--database-url", &url], &[])
            .unwrap_or_else(|(status, log)| panic!("{url} again: {status}\n{log}"));
        assert!(server.simulate(dir.path()));
    }
    // The quick-start CA holds private keys: 0600 too.
    for file in ["attestation-ca.pem", "receipt-ca.pem"] {
        assert_eq!(mode(&dir.path().join("attestd-dev").join(file)), 0o600);
    }

    // A missing directory is named.
    let url = format!("sqlite://{}/no/such/dir/x.db", dir.path().display());
    let (status, log) = Serve::start(dir.path(), &["--database-url", &url], &[])
        .err()
        .expect("a missing directory is refused");
    assert!(!status.success());
    assert!(
        log.contains("no/such/dir/x.db") && log.contains("does not exist"),
        "{log}"
    );
}

#[test]
fn serve_refuses_database_and_secret_files_others_may_read() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("attestd.db");
    let url = path.display().to_string();
    let server = Serve::start(dir.path(), &["--database-url", &url], &[]).expect("start");
    drop(server);

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (status, log) = Serve::start(dir.path(), &["--database-url", &url], &[])
        .err()
        .expect("a readable database is refused");
    assert!(!status.success());
    assert!(
        log.contains(&url) && log.contains("0644") && log.contains("danger_allow_readable_secrets"),
        "{log}"
    );
    let server = Serve::start(
        dir.path(),
        &["--database-url", &url, "--danger-allow-readable-secrets"],
        &[],
    )
    .expect("allowed explicitly");
    assert!(
        server.log().contains("DANGER") && server.log().contains(&url),
        "{}",
        server.log()
    );
    drop(server);
    // The -wal created meanwhile took the database's mode: chmod 600 them all, as told.
    for suffix in ["", "-wal", "-shm"] {
        let file = companion(&path, suffix);
        if file.exists() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
    }

    // The quick-start CA files and a key-encryption key file: the same rule.
    let ca = dir.path().join("attestd-dev/attestation-ca.pem");
    std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let (_, log) = Serve::start(dir.path(), &["--database-url", &url], &[])
        .err()
        .expect("a readable CA key is refused");
    assert!(
        log.contains("attestation-ca.pem") && log.contains("0640"),
        "{log}"
    );
    std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    let kek = dir.path().join("kek");
    std::fs::write(&kek, "qmIs0Ph3J3fU1HSkGlN1rRzZ9cQd0oM7xK9bZ0eD6Ek=\n").expect("write");
    std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let kek_arg = kek.display().to_string();
    let args = [
        "--database-url",
        &url,
        "--key-encryption-key-file",
        &kek_arg,
    ];
    let (_, log) = Serve::start(dir.path(), &args, &[])
        .err()
        .expect("a readable key file is refused");
    assert!(log.contains(&kek_arg) && log.contains("0644"), "{log}");
    std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    let server = Serve::start(dir.path(), &args, &[]).expect("a 0400 key file is fine");
    assert!(server.simulate(dir.path()));
}

/// The crash of issue 9: with SQLite's default `-shm` mapping, a `-shm` made immutable under
/// the running server killed it with SIGBUS (exit status 135) at the next write. Now every
/// database file made immutable under it fails writes (503) and readiness, the process lives
/// on, and writes work again once the files are writable.
#[test]
fn immutable_database_files_fail_writes_without_killing_the_server() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("attestd.db");
    let url = format!("sqlite://{}", path.display());
    let mut server = Serve::start(dir.path(), &["--database-url", &url], &[]).expect("start");
    assert!(server.simulate(dir.path()));
    let files: Vec<PathBuf> = ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| companion(&path, suffix))
        .filter(|file| file.exists())
        .collect();
    for file in &files {
        chattr("+i", file);
    }
    // Flush the pages of any mapping, so that the next write to one faults.
    let _ = Command::new("sync").status();
    let wrote = server.simulate(dir.path());
    std::thread::sleep(Duration::from_millis(300));
    let alive = server.alive();
    let ready = alive.then(|| server.status("/readyz"));
    let healthy = alive.then(|| server.status("/healthz"));
    for file in &files {
        chattr("-i", file);
    }
    assert!(
        alive,
        "the server died: {:?}\n{}",
        server.child.try_wait(),
        server.log()
    );
    assert!(!wrote, "writes to immutable files cannot succeed");
    assert_eq!(ready, Some(503));
    assert_eq!(healthy, Some(200));
    eventually("writes work again", || server.simulate(dir.path()));
    // Readiness answers from a probe at most a second old.
    eventually("ready again", || server.status("/readyz") == 200);
}

/// At startup, a database, `-wal` or `-shm` the server could not write is refused with its
/// name, in either locking mode (a stale immutable `-shm` is what would crash shared locking).
#[test]
fn startup_names_an_unwritable_wal_or_shm() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("attestd.db");
    let url = format!("sqlite://{}", path.display());
    let shared = ["--database-url", url.as_str(), "--sqlite-locking", "shared"];
    let mut server = Serve::start(dir.path(), &shared, &[]).expect("start shared");
    assert!(server.simulate(dir.path()));
    // Killed, not stopped: the -wal and -shm stay behind.
    server.child.kill().expect("kill");
    server.child.wait().expect("wait");
    drop(server);
    for suffix in ["-wal", "-shm"] {
        let file = companion(&path, suffix);
        assert!(file.exists(), "{suffix} left behind");
        chattr("+i", &file);
        let refused = [
            Serve::start(dir.path(), &shared, &[]).err(),
            Serve::start(dir.path(), &["--database-url", &url], &[]).err(),
        ];
        chattr("-i", &file);
        for refusal in refused {
            let (status, log) = refusal.expect("refused");
            assert!(!status.success());
            assert!(
                log.contains(&file.display().to_string())
                    && log.contains("not writable")
                    && log.contains("immutable"),
                "{log}"
            );
        }
    }
    let server = Serve::start(dir.path(), &["--database-url", &url], &[]).expect("start");
    assert!(server.simulate(dir.path()));
}

/// Exclusive locking (the default): a second `attestd serve` on the same file is refused with a
/// clear message, instead of two processes sharing one SQLite writer.
#[test]
fn a_second_server_on_the_same_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = dir.path().join("attestd.db").display().to_string();
    let first = Serve::start(dir.path(), &["--database-url", &url], &[]).expect("start");
    let (status, log) = Serve::start(dir.path(), &["--database-url", &url], &[])
        .err()
        .expect("a second process is refused");
    assert!(!status.success());
    assert!(
        log.contains(&url) && log.contains("in use by another process"),
        "{log}"
    );
    assert!(first.simulate(dir.path()), "the first one serves on");
}
