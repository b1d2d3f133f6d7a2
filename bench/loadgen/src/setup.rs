//! The untimed setup: attested devices, and for the assertion scenario one server-issued
//! challenge and one pre-signed assertion per planned request.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use attest_sim::{Device, Environment, ReceiptCa, TestCa};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::http::Conn;

/// The quick-start CA files (see attestd's `server/quickstart.rs`).
const ATTESTATION_CA_FILE: &str = "attestation-ca.pem";
const RECEIPT_CA_FILE: &str = "receipt-ca.pem";

/// The simulator CAs the server trusts.
#[derive(Debug)]
pub struct Cas {
    attestation: TestCa,
    receipts: ReceiptCa,
}

impl Cas {
    /// Loads `attestation-ca.pem` and `receipt-ca.pem` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path).map_err(|error| format!("{}: {error}", path.display()))
        };
        Ok(Self {
            attestation: TestCa::from_pem(&read(ATTESTATION_CA_FILE)?)
                .map_err(|error| format!("{ATTESTATION_CA_FILE}: {error}"))?,
            receipts: ReceiptCa::from_pem(&read(RECEIPT_CA_FILE)?)
                .map_err(|error| format!("{RECEIPT_CA_FILE}: {error}"))?,
        })
    }
}

/// An attested simulated device.
#[derive(Debug)]
pub struct Attested {
    /// The key.
    pub device: Device,
    /// Its key id, standard base64.
    pub key_id: String,
    /// The last counter signed, so that a later scenario continues above it.
    counter: AtomicU32,
}

/// The `POST /v1/challenges` body of the challenge scenario.
pub fn challenge_body(app_id: &str) -> Bytes {
    Bytes::from(json!({ "appId": app_id }).to_string())
}

/// Sends `body` and returns the JSON answer if the status is `expected`.
async fn expect(
    conn: &mut Conn,
    path: &'static str,
    body: Value,
    expected: StatusCode,
) -> Result<Value, String> {
    let (status, answer) = conn
        .post(path, Bytes::from(body.to_string()))
        .await
        .map_err(|error| format!("POST {path}: {error}"))?;
    if status != expected {
        return Err(format!(
            "POST {path}: expected {expected}, got {status} {}",
            String::from_utf8_lossy(&answer)
        ));
    }
    serde_json::from_slice(&answer).map_err(|error| format!("POST {path}: answer: {error}"))
}

fn field(answer: &Value, name: &str) -> Result<String, String> {
    answer[name]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("answer without {name}: {answer}"))
}

/// Creates and attests `count` devices, spread over the connections (concurrently).
/// Device `d` is attested on connection `d % conns.len()`.
pub async fn attest_devices(
    conns: Vec<Conn>,
    cas: Arc<Cas>,
    app_id: &str,
    count: usize,
) -> Result<(Vec<Conn>, Vec<Attested>), String> {
    let width = conns.len();
    let mut tasks = Vec::with_capacity(width);
    for (index, mut conn) in conns.into_iter().enumerate() {
        let cas = Arc::clone(&cas);
        let app_id = app_id.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut devices = Vec::new();
            for slot in (index..count).step_by(width) {
                let device = Device::new(Environment::Development);
                let key_id = STANDARD.encode(device.key_id());
                let answer = expect(
                    &mut conn,
                    "/v1/challenges",
                    json!({ "appId": app_id }),
                    StatusCode::CREATED,
                )
                .await?;
                let challenge = field(&answer, "challenge")?;
                let client_data_hash = sha256(challenge.as_bytes());
                let object = device.attest(
                    &cas.attestation,
                    &cas.receipts,
                    &app_id,
                    &client_data_hash,
                    OffsetDateTime::now_utc(),
                );
                expect(
                    &mut conn,
                    "/v1/attestations",
                    json!({
                        "platform": "ios",
                        "format": "apple-app-attest",
                        "appId": app_id,
                        "keyId": key_id,
                        "challenge": challenge,
                        "token": STANDARD.encode(&object),
                    }),
                    StatusCode::CREATED,
                )
                .await
                .map_err(|error| format!("device {slot}: {error}"))?;
                devices.push((
                    slot,
                    Attested {
                        device,
                        key_id,
                        counter: AtomicU32::new(0),
                    },
                ));
            }
            Ok::<_, String>((conn, devices))
        }));
    }
    let mut conns = Vec::with_capacity(width);
    let mut devices = Vec::with_capacity(count);
    for task in tasks {
        let (conn, mine) = task
            .await
            .map_err(|error| format!("setup task: {error}"))??;
        conns.push(conn);
        devices.extend(mine);
    }
    devices.sort_by_key(|(slot, _)| *slot);
    Ok((conns, devices.into_iter().map(|(_, d)| d).collect()))
}

/// For each connection, `per_conn` assertion bodies in send order: the connection's devices
/// (`d % width == index`) take turns, each device's counter increasing by one from where the
/// previous plan left it (1, 2, 3, ... at first). Every
/// assertion carries its own challenge, issued by the server now (purpose `assertion`, bound
/// to the key), as the whole payload, and is signed now.
pub async fn plan_assertions(
    conns: Vec<Conn>,
    devices: Arc<Vec<Attested>>,
    app_id: &str,
    per_conn: usize,
) -> Result<(Vec<Conn>, Vec<Vec<Bytes>>), String> {
    let width = conns.len();
    let mut tasks = Vec::with_capacity(width);
    for (index, mut conn) in conns.into_iter().enumerate() {
        let devices = Arc::clone(&devices);
        let app_id = app_id.to_owned();
        tasks.push(tokio::spawn(async move {
            let mine: Vec<usize> = (index..devices.len()).step_by(width).collect();
            if mine.is_empty() {
                return Err(format!("connection {index} has no device"));
            }
            let mut bodies = Vec::with_capacity(per_conn);
            for n in 0..per_conn {
                let turn = n % mine.len();
                let attested = &devices[mine[turn]];
                // Each device belongs to exactly one connection task: no other writer.
                let counter = attested.counter.fetch_add(1, Ordering::Relaxed) + 1;
                let answer = expect(
                    &mut conn,
                    "/v1/challenges",
                    json!({ "appId": app_id, "purpose": "assertion", "keyId": attested.key_id }),
                    StatusCode::CREATED,
                )
                .await?;
                let challenge = field(&answer, "challenge")?;
                let object = attested
                    .device
                    .assert(&app_id, challenge.as_bytes(), counter);
                let body = json!({
                    "platform": "ios",
                    "format": "apple-app-attest",
                    "keyId": attested.key_id,
                    "payload": challenge,
                    "token": STANDARD.encode(&object),
                });
                bodies.push(Bytes::from(body.to_string()));
            }
            Ok::<_, String>((conn, bodies))
        }));
    }
    let mut conns = Vec::with_capacity(width);
    let mut plans = Vec::with_capacity(width);
    for task in tasks {
        let (conn, bodies) = task
            .await
            .map_err(|error| format!("setup task: {error}"))??;
        conns.push(conn);
        plans.push(bodies);
    }
    Ok((conns, plans))
}

/// An assertion naming `victim`'s key with a corrupted signature, as a stranger who knows the
/// keyId sends it: refused at the signature check, whatever the server has seen before.
pub fn forged_assertion_body(victim: &Attested, app_id: &str) -> Bytes {
    let payload = "refusal benchmark: not a challenge";
    let object = victim
        .device
        .assertion(app_id, payload.as_bytes(), 1)
        .corrupt_signature()
        .build()
        .object;
    let body = json!({
        "platform": "ios",
        "format": "apple-app-attest",
        "keyId": victim.key_id,
        "payload": payload,
        "token": STANDARD.encode(&object),
    });
    Bytes::from(body.to_string())
}

/// SHA-256, as the app computes clientDataHash = SHA-256(challenge) for `attestKey`.
fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}
