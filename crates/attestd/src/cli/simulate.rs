//! `attestd simulate`: plays one simulated device (App Attest, or Android Key Attestation)
//! against a running server.
//!
//! ```text
//! cargo run --release -- serve                         # quick-start mode: trusts ./attestd-dev
//! cargo run --release -- simulate                      # challenge, attestation, 3 assertions, one replay
//! cargo run --release -- simulate --platform android   # challenge, attestation, 3 signed requests, one replay
//! ```
//!
//! The device's certificates come from the simulator CAs in `--ca-dir` (the ones quick-start
//! mode creates), so the server must trust them (quick-start mode, or `--danger-extra-*-root`
//! with an app that accepts them). Exit code 0 only if every step behaved as expected,
//! including the rejection of the replayed assertion or signed request.

use std::path::PathBuf;
use std::process::ExitCode;

use attest_core::apple::attestation::hash_challenge;
use attest_sim::android::{AndroidAttestation, AndroidProvisioning, KeyDescriptionSpec};
use attest_sim::{Device, Environment};
use attestd::server::config::{
    DEFAULT_QUICKSTART_DIR, QUICKSTART_ANDROID_PACKAGE, QUICKSTART_ANDROID_SIGNING_DIGEST,
    QUICKSTART_APP_ID,
};
use attestd::server::quickstart::DevCa;
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

/// Which device to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimulatedPlatform {
    /// An iPhone: App Attest attestation and assertions.
    Ios,
    /// An Android phone: a Key Attestation chain and signed requests.
    Android,
}

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Base URL of the attestd server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// The device to simulate.
    #[arg(long, value_enum, default_value_t = SimulatedPlatform::Ios)]
    pub platform: SimulatedPlatform,
    /// App the device's app is: its App ID on iOS (default the quick-start demo app's), its
    /// package on Android (default the quick-start demo package).
    #[arg(long)]
    pub app_id: Option<String>,
    /// Directory of the simulator CAs (attestation-ca.pem, receipt-ca.pem, android-ca.pem).
    #[arg(long, default_value = DEFAULT_QUICKSTART_DIR)]
    pub ca_dir: PathBuf,
    /// How many assertions (signed requests on Android) to make after the attestation.
    #[arg(long, default_value_t = 3)]
    pub assertions: u32,
}

impl SimulateArgs {
    /// `--app-id`, or the quick-start demo app of the platform.
    fn app_id(&self) -> &str {
        match (&self.app_id, self.platform) {
            (Some(id), _) => id,
            (None, SimulatedPlatform::Ios) => QUICKSTART_APP_ID,
            (None, SimulatedPlatform::Android) => QUICKSTART_ANDROID_PACKAGE,
        }
    }
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
    let simulation = match args.platform {
        SimulatedPlatform::Ios => runtime.block_on(simulate_ios(args)),
        SimulatedPlatform::Android => runtime.block_on(simulate_android(args)),
    };
    match simulation {
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

impl Session {
    /// Step 1, on both platforms: a one-time challenge for `app_id`.
    async fn challenge(&self, app_id: &str) -> Result<String, Failure> {
        let answer = self
            .expect(
                "challenge",
                "/v1/challenges",
                &json!({ "appId": app_id }),
                StatusCode::CREATED,
                None,
            )
            .await?;
        let challenge = text(&answer, "challenge", "challenge")?;
        println!(
            "1. challenge: 201 {challenge} (expires in {}s)",
            answer["expiresIn"]
        );
        Ok(challenge)
    }

    /// Step 2: the attestation `body`; the challenge for the first assertion.
    async fn attest(&self, body: &Value) -> Result<String, Failure> {
        let answer = self
            .expect(
                "attestation",
                "/v1/attestations",
                body,
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
        text(&answer["nextChallenge"], "challenge", "attestation")
    }

    /// Step 4: the last assertion `body` again must be refused with `status` and `code`.
    async fn replay(
        &self,
        body: &Value,
        what: &str,
        status: StatusCode,
        code: &str,
    ) -> Result<(), Failure> {
        let answer = self
            .expect("replay", "/v1/assertions", body, status, Some(code))
            .await?;
        println!(
            "4. replayed {what}: {} {} (rejected, as it must be)",
            status.as_u16(),
            answer["code"]
        );
        Ok(())
    }
}

fn session(args: &SimulateArgs) -> Result<Session, Failure> {
    let client = reqwest::Client::builder()
        .build()
        .map_err(|error| Failure::Setup(format!("HTTP client: {error}")))?;
    Ok(Session {
        client,
        server: args.server.trim_end_matches('/').to_owned(),
    })
}

fn ca_missing(args: &SimulateArgs, error: &dyn std::fmt::Display) -> Failure {
    Failure::Setup(format!(
        "cannot load the simulator CA from {}: {error} (start `attestd serve` without --app \
         once to create it, or pass --ca-dir)",
        args.ca_dir.display()
    ))
}

async fn simulate_ios(args: &SimulateArgs) -> Result<(), Failure> {
    let (attestation_ca, receipt_ca) =
        DevCa::load_ios(&args.ca_dir).map_err(|error| ca_missing(args, &error))?;
    let session = session(args)?;
    let app_id = args.app_id();
    let device = Device::new(Environment::Development);
    let key_id = STANDARD.encode(device.key_id());
    println!("device: new development key {key_id} for {app_id}");

    // 1. A one-time challenge.
    let challenge = session.challenge(app_id).await?;

    // 2. The attestation of the new key over SHA-256(challenge).
    let attestation = device.attest(
        &attestation_ca,
        &receipt_ca,
        app_id,
        &hash_challenge(challenge.as_bytes()),
        OffsetDateTime::now_utc(),
    );
    let body = json!({
        "platform": "ios",
        "format": "apple-app-attest",
        "appId": app_id,
        "keyId": key_id,
        "challenge": challenge,
        "token": STANDARD.encode(&attestation),
    });
    let mut next = session.attest(&body).await?;

    // 3. Assertions, each over the challenge the previous answer handed out.
    let mut last_body = None;
    for counter in 1..=args.assertions {
        let step = format!("assertion {counter}");
        let assertion = device.assert(app_id, next.as_bytes(), counter);
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
        let (status, code) = (StatusCode::UNPROCESSABLE_ENTITY, "counter_invalid");
        session.replay(&body, "assertion", status, code).await?;
    }
    Ok(())
}

async fn simulate_android(args: &SimulateArgs) -> Result<(), Failure> {
    let ca = DevCa::load_android(&args.ca_dir).map_err(|error| ca_missing(args, &error))?;
    let session = session(args)?;
    let package = args.app_id();

    // 1. A one-time challenge.
    let challenge = session.challenge(package).await?;

    // 2. A new key attested by Key Attestation: its KeyDescription carries the challenge's
    //    bytes, the package and the demo signing digest.
    let description = KeyDescriptionSpec::new(
        challenge.as_bytes(),
        package,
        &QUICKSTART_ANDROID_SIGNING_DIGEST,
    );
    let device = ca
        .chain(
            AndroidProvisioning::Remote,
            &description,
            OffsetDateTime::now_utc(),
        )
        .build();
    let key_id = android_key_id(&device)?;
    println!("device: new Android key {key_id} for {package}");
    let body = json!({
        "platform": "android",
        "format": "android-key-attestation",
        "appId": package,
        "keyId": key_id,
        "challenge": challenge,
        "x5c": device.chain.iter().map(|der| STANDARD.encode(der)).collect::<Vec<_>>(),
    });
    let mut next = session.attest(&body).await?;

    // 3. Signed requests, each a JSON payload over the challenge the previous answer handed
    //    out.
    let mut last_body = None;
    for round in 1..=args.assertions {
        let step = format!("signed request {round}");
        let payload = json!({ "challenge": next, "action": "demo", "round": round }).to_string();
        let body = json!({
            "platform": "android",
            "format": "android-key-attestation",
            "keyId": key_id,
            "payload": payload,
            "signature": STANDARD.encode(device.sign(payload.as_bytes())),
        });
        let answer = session
            .expect(&step, "/v1/assertions", &body, StatusCode::OK, None)
            .await?;
        println!("3.{round} signed request: 200 valid");
        next = text(&answer["nextChallenge"], "challenge", &step)?;
        last_body = Some(body);
    }

    // 4. Replaying the last signed request must fail: its challenge is spent.
    if let Some(body) = last_body {
        let (status, code) = (StatusCode::BAD_REQUEST, "challenge_invalid");
        session
            .replay(&body, "signed request", status, code)
            .await?;
    }
    Ok(())
}

/// The key id attestd expects: standard base64 of SHA-256 of the leaf's SubjectPublicKeyInfo.
fn android_key_id(device: &AndroidAttestation) -> Result<String, Failure> {
    let leaf = device
        .chain
        .first()
        .and_then(|der| x509_parser::parse_x509_certificate(der).ok())
        .ok_or_else(|| Failure::Setup("the simulated chain has no readable leaf".to_owned()))?
        .1;
    Ok(STANDARD.encode(digest(&SHA256, leaf.public_key().raw)))
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
