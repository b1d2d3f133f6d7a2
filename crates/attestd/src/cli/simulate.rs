//! `attestd simulate`: plays one simulated App Attest device against a running server.
//!
//! ```text
//! cargo run --release -- serve        # quick-start mode: trusts ./attestd-dev
//! cargo run --release -- simulate     # challenge, attestation, 3 assertions, one replay
//! ```
//!
//! The device's certificates come from the simulator CA in `--ca-dir` (the one quick-start mode
//! creates), so the server must trust that CA (quick-start mode, or `--danger-extra-*-root`
//! with an app that accepts development keys). Exit code 0 only if every step behaved as
//! expected, including the rejection of the replayed assertion.

use std::path::PathBuf;
use std::process::ExitCode;

use attest_core::apple::attestation::hash_challenge;
use attest_sim::{Device, Environment};
use attestd::server::config::{DEFAULT_QUICKSTART_DIR, QUICKSTART_APP_ID};
use attestd::server::quickstart::DevCa;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Base URL of the attestd server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// App ID the device's app has.
    #[arg(long, default_value = QUICKSTART_APP_ID)]
    pub app_id: String,
    /// Directory of the simulator CA (attestation-ca.pem, receipt-ca.pem).
    #[arg(long, default_value = DEFAULT_QUICKSTART_DIR)]
    pub ca_dir: PathBuf,
    /// How many assertions to make after the attestation.
    #[arg(long, default_value_t = 3)]
    pub assertions: u32,
}

/// Runs the simulation; prints one line per step.
pub fn run(args: &SimulateArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("attestd: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(simulate(args)) {
        Ok(()) => {
            println!("ok: every step behaved as expected");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            println!("FAILED: {failure}");
            ExitCode::FAILURE
        }
    }
}

/// One unexpected answer.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Setup(String),
    #[error("{step}: request failed: {error}")]
    Http { step: String, error: reqwest::Error },
    #[error("{step}: expected {expected}, got {status} {body}")]
    Unexpected {
        step: String,
        expected: String,
        status: StatusCode,
        body: Value,
    },
}

struct Session {
    client: reqwest::Client,
    server: String,
}

impl Session {
    async fn post(
        &self,
        step: &str,
        path: &str,
        body: &Value,
    ) -> Result<(StatusCode, Value), Failure> {
        let response = self
            .client
            .post(format!("{}{path}", self.server))
            .json(body)
            .send()
            .await
            .map_err(|error| Failure::Http {
                step: step.to_owned(),
                error,
            })?;
        let status = response.status();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    async fn expect(
        &self,
        step: &str,
        path: &str,
        body: &Value,
        expected: StatusCode,
        expected_code: Option<&str>,
    ) -> Result<Value, Failure> {
        let (status, answer) = self.post(step, path, body).await?;
        let code_matches = expected_code.is_none_or(|code| answer["code"] == code);
        if status != expected || !code_matches {
            let expected = match expected_code {
                Some(code) => format!("{} {code}", expected.as_u16()),
                None => expected.as_u16().to_string(),
            };
            return Err(Failure::Unexpected {
                step: step.to_owned(),
                expected,
                status,
                body: answer,
            });
        }
        Ok(answer)
    }
}

async fn simulate(args: &SimulateArgs) -> Result<(), Failure> {
    let ca = DevCa::load(&args.ca_dir).map_err(|error| {
        Failure::Setup(format!(
            "cannot load the simulator CA from {}: {error} (start `attestd serve` without --app \
             once to create it, or pass --ca-dir)",
            args.ca_dir.display()
        ))
    })?;
    let client = reqwest::Client::builder()
        .build()
        .map_err(|error| Failure::Setup(format!("HTTP client: {error}")))?;
    let session = Session {
        client,
        server: args.server.trim_end_matches('/').to_owned(),
    };
    let device = Device::new(Environment::Development);
    let key_id = STANDARD.encode(device.key_id());
    println!("device: new development key {key_id} for {}", args.app_id);

    // 1. A one-time challenge.
    let answer = session
        .expect(
            "challenge",
            "/v1/challenges",
            &json!({ "appId": args.app_id }),
            StatusCode::CREATED,
            None,
        )
        .await?;
    let challenge = text(&answer, "challenge", "challenge")?;
    println!(
        "1. challenge: 201 {challenge} (expires in {}s)",
        answer["expiresIn"]
    );

    // 2. The attestation of the new key over SHA-256(challenge).
    let attestation = device.attest(
        &ca.attestation,
        &ca.receipts,
        &args.app_id,
        &hash_challenge(challenge.as_bytes()),
        OffsetDateTime::now_utc(),
    );
    let body = json!({
        "platform": "ios",
        "format": "apple-app-attest",
        "appId": args.app_id,
        "keyId": key_id,
        "challenge": challenge,
        "token": STANDARD.encode(&attestation),
    });
    let answer = session
        .expect(
            "attestation",
            "/v1/attestations",
            &body,
            StatusCode::CREATED,
            None,
        )
        .await?;
    let device_id = text(&answer, "deviceId", "attestation")?;
    let token = text(&answer, "token", "attestation")?;
    println!(
        "2. attestation: 201 device {device_id}, token {}… expires {}",
        token.chars().take(24).collect::<String>(),
        answer["expiresAt"]
    );
    let mut next = text(&answer["nextChallenge"], "challenge", "attestation")?;

    // 3. Assertions, each over the challenge the previous answer handed out.
    let mut last_body = None;
    for counter in 1..=args.assertions {
        let step = format!("assertion {counter}");
        let assertion = device.assert(&args.app_id, next.as_bytes(), counter);
        let body = json!({
            "platform": "ios",
            "format": "apple-app-attest",
            "keyId": key_id,
            "payload": next,
            "token": STANDARD.encode(&assertion),
        });
        let answer = session
            .expect(&step, "/v1/assertions", &body, StatusCode::OK, None)
            .await?;
        if answer["counter"] != counter {
            return Err(Failure::Unexpected {
                step,
                expected: format!("counter {counter}"),
                status: StatusCode::OK,
                body: answer,
            });
        }
        println!("3.{counter} assertion: 200 valid, counter {counter}");
        next = text(&answer["nextChallenge"], "challenge", &step)?;
        last_body = Some(body);
    }

    // 4. Replaying the last assertion must fail.
    if let Some(body) = last_body {
        let answer = session
            .expect(
                "replay",
                "/v1/assertions",
                &body,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("counter_invalid"),
            )
            .await?;
        println!(
            "4. replayed assertion: 422 {} (rejected, as it must be)",
            answer["code"]
        );
    }
    Ok(())
}

fn text(answer: &Value, field: &str, step: &str) -> Result<String, Failure> {
    answer[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Failure::Unexpected {
            step: step.to_owned(),
            expected: format!("a {field} field"),
            status: StatusCode::OK,
            body: answer.clone(),
        })
}
