//! The real `attestd serve` binary as a child process: started on 127.0.0.1:0 with JSON logs,
//! its stderr collected line by line, stopped with SIGTERM or SIGKILL.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{ADMIN_TOKEN, APP, OTHER_APP, cas};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_attestd");

/// `attestd serve --listen 127.0.0.1:0 --log-format json` with `args`, the test environment
/// cleared of settings that would leak in.
pub fn serve_command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    serve_arguments(&mut command, args);
    command
}

/// `sh -c 'ulimit -n LIMIT; exec attestd serve ...'`: the server with at most `open_files`
/// file descriptors.
pub fn serve_command_with_open_files(open_files: u32, args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {open_files} && exec \"$0\" \"$@\""))
        .arg(BIN);
    serve_arguments(&mut command, args);
    command
}

fn serve_arguments(command: &mut Command, args: &[&str]) {
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .env_remove("ATTESTD_KEY_ENCRYPTION_KEY")
        .env_remove("ATTESTD_APPS")
        .env_remove("ATTESTD_LISTEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
}

/// The flags of the in-process test servers ([`super::config`]) for a child: both development
/// apps, the simulator CAs as danger roots (PEM files written into `dir`), the admin token.
pub fn test_app_args(dir: &Path) -> Vec<String> {
    let (ca, receipts) = cas();
    let attestation_root = dir.join("attestation-root.pem");
    let receipt_root = dir.join("receipt-root.pem");
    std::fs::write(&attestation_root, ca.root_pem()).expect("write the attestation root");
    std::fs::write(&receipt_root, receipts.root_pem()).expect("write the receipt root");
    vec![
        "--app".into(),
        format!("{APP}=development"),
        "--app".into(),
        format!("{OTHER_APP}=development"),
        "--danger-extra-attestation-root".into(),
        attestation_root.display().to_string(),
        "--danger-extra-receipt-root".into(),
        receipt_root.display().to_string(),
        "--admin-token".into(),
        ADMIN_TOKEN.into(),
        "--database-max-connections".into(),
        "4".into(),
    ]
}

/// A running `attestd serve`, killed when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub address: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Spawns `command` and waits (up to 60 s) for its "attestd listening" line; its exit
    /// status and log if it stopped first.
    pub fn start(mut command: Command) -> Result<Self, (ExitStatus, String)> {
        let mut child = command.spawn().expect("spawn attestd serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (address_sender, address) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let address = line
                    .contains("attestd listening")
                    .then(|| field(&line, "address"))
                    .flatten();
                // Logged before the address is announced: a caller sees the line.
                lines.lock().unwrap().push(line);
                if let Some(address) = address {
                    let _ = address_sender.send(address);
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(address) = address.recv_timeout(Duration::from_millis(50)) {
                return Ok(Self {
                    child,
                    base: format!("http://{address}"),
                    address,
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log line so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn log(&self) -> String {
        self.log_lines().join("\n")
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        signal(self.pid(), "TERM");
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// CPU time (user + system) the process has used, from /proc.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("stat");
        // Fields after the command name (which may hold spaces, inside parentheses).
        let rest = stat.rsplit_once(')').expect("stat format").1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the name.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let per_second = clock_ticks_per_second();
        Duration::from_millis(ticks * 1000 / per_second)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

/// The value of `name` anywhere in a JSON log line (tracing puts event fields under
/// `fields`).
pub fn field(line: &str, name: &str) -> Option<String> {
    fn find(value: &serde_json::Value, name: &str) -> Option<String> {
        match value {
            serde_json::Value::Object(map) => map
                .get(name)
                .and_then(|value| match value {
                    serde_json::Value::String(text) => Some(text.clone()),
                    serde_json::Value::Null => None,
                    other => Some(other.to_string()),
                })
                .or_else(|| map.values().find_map(|value| find(value, name))),
            _ => None,
        }
    }
    find(&serde_json::from_str(line).ok()?, name)
}

/// The `level` of a JSON log line (`INFO`, `WARN`, `ERROR`...).
pub fn level(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value["level"].as_str().map(str::to_owned)
}
