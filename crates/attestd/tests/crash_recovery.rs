//! A crash loses nothing acknowledged: the real binary killed with SIGKILL while devices attest
//! and assert concurrently, then restarted on the same database, still has every key it
//! answered 201 for, every counter it answered 200 for (never lower: a replay of an accepted
//! assertion stays refused), and the decision of every acknowledged request. Both stores.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use attest_sim::Device;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::process::{self, Process};
use common::{ADMIN_TOKEN, APP, Db, assertion_body, attestation, attestation_body, key_id};
use serde_json::{Value, json};

on_both_stores!(nothing_acknowledged_is_lost_when_the_server_is_killed_under_load);

/// Concurrent clients, each attesting devices and asserting with them.
const WORKERS: usize = 4;
/// The server is killed once this many assertions were acknowledged (bounded load).
const ACKNOWLEDGED_BEFORE_KILL: usize = 60;
/// Each worker attests a new device after this many assertions of the last one.
const ASSERTIONS_PER_DEVICE: u32 = 8;

/// What the server acknowledged for one device.
struct Acknowledged {
    device: Device,
    /// The counter of the last assertion answered 200 (0: attested only).
    counter: u32,
    /// Assertions answered 200.
    assertions: u64,
}

type Ledger = Arc<Mutex<Vec<Acknowledged>>>;

async fn post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: &Value,
) -> Option<(u16, Value)> {
    let response = client
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

/// Attests devices and asserts with them until `stop`, recording in `ledger` only what the
/// server answered with success; returns at the first transport error (the server is gone).
async fn work(base: String, ledger: Ledger, assertions: Arc<AtomicUsize>, stop: Arc<AtomicBool>) {
    let client = reqwest::Client::new();
    while !stop.load(Ordering::Relaxed) {
        let device = common::device();
        let Some((201, challenge)) =
            post(&client, &base, "/v1/challenges", &json!({ "appId": APP })).await
        else {
            return;
        };
        let challenge = challenge["challenge"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let body = attestation_body(
            &device,
            APP,
            &challenge,
            &attestation(&device, APP, &challenge),
        );
        match post(&client, &base, "/v1/attestations", &body).await {
            Some((201, _)) => {}
            Some((status, answer)) => panic!("attestation answered {status}: {answer}"),
            None => return,
        }
        let slot = {
            let mut ledger = ledger.lock().unwrap();
            ledger.push(Acknowledged {
                device: device.clone(),
                counter: 0,
                assertions: 0,
            });
            ledger.len() - 1
        };
        for counter in 1..=ASSERTIONS_PER_DEVICE {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let request = json!({ "appId": APP, "purpose": "assertion", "keyId": key_id(&device) });
            let Some((201, challenge)) = post(&client, &base, "/v1/challenges", &request).await
            else {
                return;
            };
            let challenge = challenge["challenge"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let assertion = device.assert(APP, challenge.as_bytes(), counter);
            let body = assertion_body(&device, &challenge, &assertion);
            match post(&client, &base, "/v1/assertions", &body).await {
                Some((200, _)) => {
                    let mut ledger = ledger.lock().unwrap();
                    ledger[slot].counter = counter;
                    ledger[slot].assertions += 1;
                    assertions.fetch_add(1, Ordering::Relaxed);
                }
                Some((status, answer)) => panic!("assertion answered {status}: {answer}"),
                None => return,
            }
        }
    }
}

fn start(args: &[String]) -> Process {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Process::start(process::serve_command(&args))
        .unwrap_or_else(|(status, log)| panic!("{status}\n{log}"))
}

async fn admin_get(client: &reqwest::Client, url: String) -> Value {
    let response = client
        .get(url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("admin request");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    response.json().await.expect("admin JSON")
}

async fn nothing_acknowledged_is_lost_when_the_server_is_killed_under_load(db: &Db) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut args = process::test_app_args(dir.path());
    args.extend(["--database-url".to_owned(), db.url.clone()]);
    let mut server = start(&args);

    let ledger: Ledger = Arc::default();
    let assertions = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            tokio::spawn(work(
                server.base.clone(),
                Arc::clone(&ledger),
                Arc::clone(&assertions),
                Arc::clone(&stop),
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while assertions.load(Ordering::Relaxed) < ACKNOWLEDGED_BEFORE_KILL {
        assert!(Instant::now() < deadline, "the load made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL with requests in flight: no shutdown, no flush, no goodbye.
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("a worker panicked");
    }

    let server = start(&args);
    let client = reqwest::Client::new();
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    assert!(ledger.len() >= WORKERS, "{} devices", ledger.len());
    for acknowledged in &ledger {
        let id = URL_SAFE_NO_PAD.encode(acknowledged.device.key_id());
        let detail = admin_get(&client, format!("{}/admin/v1/devices/{id}", server.base)).await;
        let key = &detail;
        let counter = key["counter"].as_u64().expect("counter");
        assert!(
            counter >= u64::from(acknowledged.counter),
            "counter {counter} < acknowledged {}: {detail}",
            acknowledged.counter
        );
        assert!(
            key["assertionCount"].as_u64().expect("assertionCount") >= acknowledged.assertions,
            "{detail}"
        );
        let decisions = admin_get(
            &client,
            format!(
                "{}/admin/v1/decisions?keyId={}&limit=1000",
                server.base,
                percent_encoded(&key_id(&acknowledged.device))
            ),
        )
        .await;
        let accepted = decisions["decisions"]
            .as_array()
            .expect("decisions")
            .iter()
            .filter(|decision| decision["code"] == "ok")
            .count() as u64;
        // The attestation and every acknowledged assertion.
        assert!(
            accepted > acknowledged.assertions,
            "{accepted} accepted decisions for {} acknowledged assertions: {decisions}",
            acknowledged.assertions
        );
        // The stored counter holds: an accepted assertion replayed is refused, the next one
        // is accepted.
        if acknowledged.counter > 0 && counter == u64::from(acknowledged.counter) {
            let answer = assert_once(
                &client,
                &server.base,
                &acknowledged.device,
                acknowledged.counter,
            )
            .await;
            assert_eq!(answer.0, 422, "replay: {}", answer.1);
            assert_eq!(answer.1["code"], "counter_invalid", "{}", answer.1);
        }
        let next = u32::try_from(counter).expect("a u32 counter") + 1;
        let answer = assert_once(&client, &server.base, &acknowledged.device, next).await;
        assert_eq!(answer.0, 200, "after the restart: {}", answer.1);
    }
    drop(server);
}

/// One assertion of `device` with `counter` over a fresh challenge.
async fn assert_once(
    client: &reqwest::Client,
    base: &str,
    device: &Device,
    counter: u32,
) -> (u16, Value) {
    let request = json!({ "appId": APP, "purpose": "assertion", "keyId": key_id(device) });
    let (status, challenge) = post(client, base, "/v1/challenges", &request)
        .await
        .expect("challenge");
    assert_eq!(status, 201, "{challenge}");
    let challenge = challenge["challenge"]
        .as_str()
        .expect("challenge")
        .to_owned();
    let assertion = device.assert(APP, challenge.as_bytes(), counter);
    post(
        client,
        base,
        "/v1/assertions",
        &assertion_body(device, &challenge, &assertion),
    )
    .await
    .expect("assertion")
}

/// Standard base64 in a query string.
fn percent_encoded(base64: &str) -> String {
    base64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}
