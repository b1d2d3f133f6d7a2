//! Connections are bounded in time and number (docs/operations.md, "Connections"): a client
//! that does not send a complete request head within the header-read timeout is closed, so is
//! a keep-alive connection idle longer than the idle timeout; with every connection slot taken
//! new connections wait and are served once slots free; SIGTERM stops the server within the
//! shutdown deadline however many connections are held; and a low open-file limit (a full
//! descriptor table, EMFILE in accept) does not stop health checks being answered.
//!
//! The timeouts are configured short (1–4 s) so that each test runs in seconds; the assertions
//! allow generous slack for a busy machine, and the orderings they check (a slot freed before a
//! waiting connection is served) come from the kernel, not from sleeps.

mod common;

use std::time::{Duration, Instant};

use common::process::{self, Process};
use common::raw::{self, already_closed, closed_within, read_response};
use common::{Db, Server};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Slack for anything a busy machine may delay.
const GENEROUS: Duration = Duration::from_secs(30);

async fn server(configure: impl FnOnce(&mut attestd::server::Config)) -> (Server, Db) {
    let db = Db::sqlite();
    let mut config = common::config(&db);
    configure(&mut config);
    (Server::start_with(config).await, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_client_is_cut_after_the_header_read_timeout() {
    let (server, _db) = server(|config| {
        config.header_read_timeout = Duration::from_secs(1);
        config.idle_timeout = Duration::from_secs(60);
    })
    .await;

    // One client sends nothing; the other sends a head one byte every 100 ms, never ending it.
    let started = Instant::now();
    let mut silent = raw::connect(&server.base).await;
    let slow = raw::connect(&server.base).await;
    let (mut reader, mut writer) = slow.into_split();
    let trickle = tokio::spawn(async move {
        let head = b"GET /healthz HTTP/1.1\r\nHost: attestd.test\r\nX-Slow: ";
        for byte in head.iter().chain(std::iter::repeat(&b'a')) {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    assert!(
        closed_within(&mut silent, GENEROUS).await,
        "a silent connection is still open after {GENEROUS:?}"
    );
    let silent_after = started.elapsed();
    let slow_closed = tokio::time::timeout(GENEROUS, async {
        let mut byte = [0u8; 1];
        tokio::io::AsyncReadExt::read(&mut reader, &mut byte).await
    })
    .await;
    let slow_after = started.elapsed();
    trickle.abort();
    assert!(
        matches!(slow_closed, Ok(Ok(0) | Err(_))),
        "the slowloris connection was answered or stayed open: {slow_closed:?}"
    );
    // Never before the timeout (the deadline counts from the accept, after the connect).
    for after in [silent_after, slow_after] {
        assert!(after >= Duration::from_millis(950), "cut after {after:?}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout_not_the_header_one() {
    let (server, _db) = server(|config| {
        config.header_read_timeout = Duration::from_secs(1);
        config.idle_timeout = Duration::from_secs(4);
    })
    .await;
    let (mut stream, response) = raw::exchange(&server.base, &raw::get("/healthz")).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), None, "keep-alive");

    // Idle for twice the header-read timeout: still open, and serves the next request.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!already_closed(&stream), "closed while idle for 2 s");
    stream
        .write_all(&raw::get("/healthz"))
        .await
        .expect("send the second request");
    let second = read_response(&mut stream, GENEROUS).await;
    assert_eq!(second.status, 200);

    // Then idle for longer than the idle timeout: closed.
    let idle_since = Instant::now();
    assert!(
        closed_within(&mut stream, GENEROUS).await,
        "an idle connection is still open after {GENEROUS:?}"
    );
    assert!(
        idle_since.elapsed() >= Duration::from_secs(2),
        "closed after {:?} idle",
        idle_since.elapsed()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_slot_taken_healthz_answers_once_a_connection_is_reaped() {
    const SLOTS: usize = 4;
    let (server, _db) = server(|config| {
        config.max_connections = Some(SLOTS);
        config.header_read_timeout = Duration::from_secs(1);
        config.idle_timeout = Duration::from_secs(1);
    })
    .await;
    // Connections that never send a request take every slot (the harness's own client may
    // hold one too, until its idle timeout).
    let mut held = Vec::new();
    for _ in 0..SLOTS {
        held.push(raw::connect(&server.base).await);
    }
    // Queued behind them in the listen backlog (FIFO): served only once a slot frees, i.e.
    // after one of them was cut by the header-read timeout.
    let (_stream, response) = raw::exchange(&server.base, &raw::get("/healthz")).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["status"], "ok");
    let cut = held.iter().filter(|stream| already_closed(stream)).count();
    assert!(
        cut >= 1,
        "healthz was answered while all {SLOTS} held connections were open: no limit"
    );

    // The slots keep being reused: more checks than slots, one connection each.
    for _ in 0..2 * SLOTS {
        let (stream, response) = raw::exchange(&server.base, &raw::get("/healthz")).await;
        assert_eq!(response.status, 200);
        drop(stream);
    }
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("attestd_connections_timed_out_total{timeout=\"header_read\"}"),
        "{metrics}"
    );
    server.stop().await;
}

fn start(command: std::process::Command) -> Process {
    Process::start(command).unwrap_or_else(|(status, log)| panic!("{status}\n{log}"))
}

fn serve_args(dir: &std::path::Path, db: &Db, extra: &[&str]) -> Vec<String> {
    let mut args = process::test_app_args(dir);
    args.extend(["--database-url".to_owned(), db.url.clone()]);
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_held_connections_exits_within_the_shutdown_deadline() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Db::sqlite();
    let args = serve_args(
        dir.path(),
        &db,
        &[
            "--shutdown-timeout",
            "2",
            "--header-read-timeout",
            "60",
            "--idle-timeout",
            "60",
            "--request-timeout",
            "60",
        ],
    );
    let mut server = start(process::serve_command(&as_strs(&args)));

    // Held: keep-alive connections idle after a request, silent ones, and one request in
    // flight whose body never completes.
    let mut held = Vec::new();
    for _ in 0..20 {
        let (stream, response) = raw::exchange(&server.base, &raw::get("/healthz")).await;
        assert_eq!(response.status, 200);
        held.push(stream);
        held.push(raw::connect(&server.base).await);
    }
    // A request in flight: the handler is reading its body (the server asked for it with
    // `100 Continue`), which never completes.
    let mut in_flight = raw::connect(&server.base).await;
    in_flight
        .write_all(
            b"POST /v1/attestations HTTP/1.1\r\nHost: attestd.test\r\n\
              Content-Type: application/json\r\nContent-Length: 50000\r\n\
              Expect: 100-continue\r\n\r\n",
        )
        .await
        .expect("send a request head");
    let go_on = read_response(&mut in_flight, GENEROUS).await;
    assert_eq!(go_on.status, 100);
    in_flight
        .write_all(b"{\"platform\":")
        .await
        .expect("send part of the body");

    let signalled = Instant::now();
    server.terminate();
    let (status, server) = tokio::task::spawn_blocking(move || {
        let status = server.wait_for_exit(GENEROUS);
        (status, server)
    })
    .await
    .expect("wait task");
    let elapsed = signalled.elapsed();
    let status = status.unwrap_or_else(|| panic!("still running {GENEROUS:?} after SIGTERM"));
    assert!(status.success(), "{status}\n{}", server.log());
    // The request in flight was given the deadline, then dropped.
    assert!(
        elapsed >= Duration::from_millis(1500),
        "exited after {elapsed:?}"
    );
    assert!(
        server
            .log_lines()
            .iter()
            .any(|line| line.contains("shutdown deadline reached")),
        "{}",
        server.log()
    );
    assert!(closed_within(&mut in_flight, GENEROUS).await);
    for mut stream in held {
        assert!(closed_within(&mut stream, GENEROUS).await);
    }
}

/// Opens `count` connections that send nothing.
async fn silent_connections(base: &str, count: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        streams.push(raw::connect(base).await);
    }
    streams
}

/// Polls `/healthz` on fresh connections until one answers 200 within `GENEROUS`.
async fn healthz_answers(base: &str) -> bool {
    let deadline = Instant::now() + GENEROUS;
    let client = reqwest::Client::builder()
        .timeout(GENEROUS)
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    while Instant::now() < deadline {
        if let Ok(response) = client.get(format!("{base}/healthz")).send().await
            && response.status() == reqwest::StatusCode::OK
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_256_descriptors_300_idle_sockets_do_not_stop_health_checks() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Db::sqlite();
    let args = serve_args(
        dir.path(),
        &db,
        &["--header-read-timeout", "2", "--idle-timeout", "2"],
    );
    let mut server = start(process::serve_command_with_open_files(256, &as_strs(&args)));
    let listening = server
        .log_lines()
        .into_iter()
        .find(|line| line.contains("attestd listening"))
        .expect("the listening line");
    // The limit derived from the open-file limit: 256 - 128.
    assert_eq!(
        process::field(&listening, "max_connections").as_deref(),
        Some("128"),
        "{listening}"
    );

    let held = silent_connections(&server.base, 300).await;
    assert!(healthz_answers(&server.base).await, "{}", server.log());
    assert!(server.alive());
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_in_accept_the_server_backs_off_and_recovers() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Db::sqlite();
    // A connection limit above the descriptor limit: accept itself fails (EMFILE) while the
    // silent connections hold every descriptor, until the header-read timeout frees them.
    let args = serve_args(
        dir.path(),
        &db,
        &[
            "--max-connections",
            "4096",
            "--header-read-timeout",
            "4",
            "--idle-timeout",
            "4",
        ],
    );
    let mut server = start(process::serve_command_with_open_files(256, &as_strs(&args)));
    let held = silent_connections(&server.base, 300).await;
    // While accept fails, the listener pauses instead of spinning on it.
    let deadline = Instant::now() + GENEROUS;
    while !server
        .log_lines()
        .iter()
        .any(|line| line.contains("cannot accept connections"))
    {
        assert!(
            Instant::now() < deadline,
            "no accept error: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu_before = server.cpu_time();
    let wall_before = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cpu = server.cpu_time().saturating_sub(cpu_before);
    let wall = wall_before.elapsed();
    assert!(
        cpu < wall / 2,
        "the server used {cpu:?} of CPU in {wall:?} while out of descriptors"
    );

    assert!(healthz_answers(&server.base).await, "{}", server.log());
    assert!(server.alive());
    assert!(
        server
            .log_lines()
            .iter()
            .any(|line| line.contains("accepting connections again")),
        "{}",
        server.log()
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_slot_taken_a_burst_waits_in_a_deep_listen_backlog() {
    const BURST: usize = 600;
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0);
    if somaxconn <= BURST {
        eprintln!(
            "skipped: net.core.somaxconn is {somaxconn}, the kernel caps the backlog below {BURST}"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Db::sqlite();
    let args = serve_args(
        dir.path(),
        &db,
        &["--max-connections", "1", "--header-read-timeout", "60"],
    );
    let server = start(process::serve_command(&as_strs(&args)));
    // The only slot, held for a minute.
    let (_held, response) = raw::exchange(&server.base, &raw::get("/healthz")).await;
    assert_eq!(response.status, 200);
    // A burst the server does not accept: the kernel completes the handshakes and queues them
    // (a 128-deep backlog would leave most of them retrying their SYNs for the whole minute).
    let mut connecting = tokio::task::JoinSet::new();
    for _ in 0..BURST {
        let address = raw::address(&server.base).to_owned();
        connecting.spawn(async move {
            tokio::time::timeout(GENEROUS, TcpStream::connect(address))
                .await
                .ok()
                .and_then(Result::ok)
        });
    }
    let connected = connecting
        .join_all()
        .await
        .into_iter()
        .filter(Option::is_some)
        .count();
    assert_eq!(connected, BURST, "connections queued in the backlog");
}
