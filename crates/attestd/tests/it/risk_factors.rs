//! Every risk factor the server can trigger, each band with its permissions, through HTTP with
//! the simulator: the score and its factors (with evidence) in the answer, the token and the
//! error details.

use crate::common;

use attestd::server::Config;
use common::{
    APP, Db, OTHER_APP, Server, assertion_body, attestation, attestation_body, claims, device,
    factor, factor_names, key_id,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

on_both_stores!(
    every_band_with_its_permissions_in_the_answer_and_the_token,
    receipt_and_apple_risk_metric_factors,
    a_failed_verification_is_scored_and_explained,
    new_keys_per_user_and_per_address,
    repeated_attestation_of_one_device,
    counter_regressions_and_replays_raise_the_score,
    repeated_failures_count_only_refusals_that_proved_possession,
    a_stranger_with_only_a_key_id_moves_nothing,
    an_old_assertion_replayed_after_its_challenge_expired_moves_nothing,
    client_clock_skew_from_a_signed_timestamp,
    development_key_in_a_published_app_and_unexpected_validation_category,
);

/// Both apps expect validation category 02000000 (the simulator's iOS 27 profile writes
/// 01000000); `OTHER_APP` is published, so its development keys are suspicious.
fn config(db: &Db) -> Config {
    let mut config = common::config(db);
    for app in &mut config.apps {
        app.risk.expected_validation_categories = vec!["02000000".to_owned()];
    }
    config.apps[1].published = true;
    config
}

/// An edit of the simulator's attestation.
type Edit = fn(attest_sim::AttestationBuilder<'_>) -> attest_sim::AttestationBuilder<'_>;

/// App, attestation edit, score, band, permissions, factor names.
type BandCase = (
    &'static str,
    Edit,
    u64,
    &'static str,
    Value,
    &'static [&'static str],
);

/// The points of `name` in `risk`, or 0.
fn points(risk: &Value, name: &str) -> u64 {
    factor(risk, name)
        .and_then(|f| f["points"].as_u64())
        .unwrap_or(0)
}

#[track_caller]
fn assert_created(answer: &(StatusCode, Value)) -> &Value {
    assert_eq!(answer.0, StatusCode::CREATED, "{}", answer.1);
    &answer.1
}

async fn every_band_with_its_permissions_in_the_answer_and_the_token(db: &Db) {
    let server = Server::start_with(config(db)).await;
    let cases: [BandCase; 4] = [
        (
            APP,
            |b| b,
            5,
            "low",
            json!(["basic", "payments", "transfers"]),
            &["new_device"],
        ),
        (
            APP,
            |b| b.omit_receipt(),
            35,
            "medium",
            json!(["basic", "payments"]),
            &["receipt_missing", "new_device"],
        ),
        (
            APP,
            |b| b.ios27().receipt_with(|r| r.corrupt_signature()),
            65,
            "high",
            json!(["basic"]),
            &[
                "receipt_invalid",
                "new_device",
                "unexpected_validation_category",
            ],
        ),
        (
            OTHER_APP,
            |b| b.ios27().receipt_with(|r| r.corrupt_signature()),
            95,
            "critical",
            json!([]),
            &[
                "receipt_invalid",
                "new_device",
                "development_key_in_production_app",
                "unexpected_validation_category",
            ],
        ),
    ];
    for (app, edit, score, band, permissions, factors) in cases {
        let device = device();
        let answer = server.attest_as(&device, app, json!({}), edit).await;
        let body = assert_created(&answer);
        assert_eq!(body["riskScore"], score, "{band}: {body}");
        assert_eq!(body["riskBand"], band);
        assert_eq!(factor_names(body), factors, "{band}");
        assert_eq!(body["permissions"], permissions, "{band}");
        assert_eq!(
            body["decision"]["outcome"], "allow",
            "default policy: enforce, no max"
        );
        assert_eq!(body["decision"]["wouldDeny"], false);
        for f in body["riskFactors"].as_array().unwrap() {
            assert!(f["points"].as_u64().unwrap() > 0 && f["evidence"].is_string());
        }
        let token = claims(body["token"].as_str().unwrap());
        assert_eq!(token["risk_score"], score);
        assert_eq!(token["risk_band"], band);
        assert_eq!(token["permissions"], permissions);
        assert_eq!(token["risk_factors"], json!(factors));
        assert_eq!(token["decision"], "allow");

        // The assertions of the key are scored from what was stored at attestation.
        let (status, asserted) = server.assert_counter(&device, app, 1).await;
        assert_eq!(status, StatusCode::OK, "{asserted}");
        assert_eq!(asserted["riskScore"], score, "{band}: {asserted}");
        assert_eq!(asserted["riskBand"], band);
        assert_eq!(asserted["permissions"], permissions);
    }
}

async fn receipt_and_apple_risk_metric_factors(db: &Db) {
    let server = Server::start(db).await;

    let answer = server
        .attest_as(&device(), APP, json!({}), |b| {
            b.receipt_with(|r| r.corrupt_signature())
        })
        .await;
    let body = assert_created(&answer);
    assert_eq!(points(body, "receipt_invalid"), 40);
    assert_eq!(
        factor(body, "receipt_invalid").unwrap()["evidence"],
        "receipt invalid: receipt_signature_invalid"
    );
    assert_eq!(body["deviceIntelligence"]["receiptStatus"], "invalid");

    let answer = server
        .attest_as(&device(), APP, json!({}), |b| b.omit_receipt())
        .await;
    let body = assert_created(&answer);
    assert_eq!(points(body, "receipt_missing"), 30);
    assert_eq!(
        factor(body, "receipt_missing").unwrap()["evidence"],
        "no receipt for this key"
    );
    assert_eq!(body["deviceIntelligence"]["receiptStatus"], "missing");

    // Apple's risk metric (receipt field 17): 12 keys for the device in 30 days.
    let answer = server
        .attest_as(&device(), APP, json!({}), |b| {
            b.receipt_with(|r| r.set_field(17, b"12".to_vec()))
        })
        .await;
    let body = assert_created(&answer);
    assert_eq!(points(body, "high_apple_risk_metric"), 25, "{body}");
    let evidence = factor(body, "high_apple_risk_metric").unwrap()["evidence"]
        .as_str()
        .unwrap();
    assert!(
        evidence.starts_with("Apple risk metric 12 > threshold 5"),
        "{evidence}"
    );
    assert_eq!(body["deviceIntelligence"]["receiptRiskMetric"], 12);
    assert_eq!(body["deviceIntelligence"]["receiptStatus"], "valid");
    assert_eq!(body["riskScore"], 30);

    // A metric at the threshold is normal.
    let answer = server
        .attest_as(&device(), APP, json!({}), |b| {
            b.receipt_with(|r| r.set_field(17, b"5".to_vec()))
        })
        .await;
    assert_eq!(factor_names(assert_created(&answer)), ["new_device"]);
}

async fn a_failed_verification_is_scored_and_explained(db: &Db) {
    let server = Server::start(db).await;
    let device = device();
    let challenge = server.challenge(APP).await;
    let object = attestation(&device, APP, "another challenge");
    let (status, error) = server
        .post(
            "/v1/attestations",
            &attestation_body(&device, APP, &challenge, &object),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["code"], "nonce_mismatch");
    let details = &error["details"];
    assert_eq!(details["riskScore"], 60);
    assert_eq!(details["riskBand"], "high");
    assert_eq!(
        factor(details, "verification_failed").unwrap()["evidence"],
        "verification failed: nonce_mismatch"
    );
    assert_eq!(details["decision"]["outcome"], "deny");
    assert_eq!(details["decision"]["wouldDeny"], true);
    assert_eq!(
        details["decision"]["reasons"][0]["code"],
        "verification_failed"
    );
    assert_eq!(details["decision"]["hostedCode"], "ATT_002");
    assert_eq!(details["permissions"], json!([]));

    // An assertion that fails is explained the same way.
    server.attest(&device).await;
    let challenge = server.assertion_challenge(&device).await;
    let forged = device
        .assertion(APP, challenge.as_bytes(), 1)
        .corrupt_signature()
        .build()
        .object;
    let (status, error) = server
        .post(
            "/v1/assertions",
            &assertion_body(&device, &challenge, &forged),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(
        factor(&error["details"], "verification_failed").unwrap()["evidence"],
        "verification failed: signature_invalid"
    );

    let log = server
        .admin_get(&format!("/admin/v1/decisions?appId={APP}&outcome=deny"))
        .await;
    let codes: Vec<&str> = log["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["signature_invalid", "nonce_mismatch"]);
    assert_eq!(
        log["decisions"][1]["riskFactors"][0]["name"],
        "verification_failed"
    );
    assert_eq!(log["decisions"][1]["kind"], "attestation");
}

async fn new_keys_per_user_and_per_address(db: &Db) {
    let mut config = common::linking_config(db);
    config.apps[0].risk.ip_key_churn_threshold = 2;
    let server = Server::start_with(config).await;
    let mut answers = Vec::new();
    for index in 1..=4 {
        let key = device();
        let phone = format!("phone-{index}");
        let extra = common::linked(APP, &key, Some("alice"), Some(&phone));
        let answer = server.attest_as(&key, APP, extra, |b| b).await;
        answers.push(assert_created(&answer).clone());
    }
    assert_eq!(points(&answers[1], "ip_key_churn"), 0);
    assert_eq!(points(&answers[2], "ip_key_churn"), 10);
    assert_eq!(
        factor(&answers[2], "ip_key_churn").unwrap()["evidence"],
        "3 new keys from this IP in 1d > threshold 2"
    );
    assert_eq!(points(&answers[2], "user_key_churn"), 0, "3 is not above 3");
    assert_eq!(points(&answers[3], "user_key_churn"), 15);
    assert_eq!(
        factor(&answers[3], "user_key_churn").unwrap()["evidence"],
        "4 new keys for this user in 1d > threshold 3"
    );
    // Four devices of one user: nothing superseded (each names its own device).
    assert!(answers.iter().all(|a| a["supersedes"] == json!([])));
}

async fn repeated_attestation_of_one_device(db: &Db) {
    let server = Server::start_linking(db).await;
    let mut last = Value::Null;
    let mut devices = Vec::new();
    for _ in 0..4 {
        let device = device();
        let vouched = common::linked(APP, &device, None, Some("install-7"));
        let answer = server.attest_as(&device, APP, vouched, |b| b).await;
        last = assert_created(&answer).clone();
        devices.push(device);
    }
    assert_eq!(points(&last, "repeated_attestation"), 10);
    assert_eq!(
        factor(&last, "repeated_attestation").unwrap()["evidence"],
        "4 attestations for this device > threshold 3"
    );
    assert_eq!(last["deviceId"], "install-7");
    let intelligence = &last["deviceIntelligence"];
    assert_eq!(intelligence["attestationCount"], 4);
    assert_eq!(intelligence["activeKeys"], 1);
    assert_eq!(last["supersedes"], json!([key_id(&devices[2])]));
}

async fn counter_regressions_and_replays_raise_the_score(db: &Db) {
    let server = Server::start(db).await;
    let device = device();
    server.attest(&device).await;
    assert_eq!(
        server.assert_counter(&device, APP, 10).await.0,
        StatusCode::OK
    );

    let (status, first) = server.assert_counter(&device, APP, 3).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(first["code"], "counter_regressed");
    assert_eq!(
        points(&first["details"], "counter_regression"),
        0,
        "one is tolerated"
    );
    let (_, second) = server.assert_counter(&device, APP, 2).await;
    assert_eq!(second["code"], "counter_regressed");
    assert_eq!(points(&second["details"], "counter_regression"), 20);
    assert_eq!(
        factor(&second["details"], "counter_regression").unwrap()["evidence"],
        "2 assertion counter regressions > threshold 1"
    );

    let (_, replay) = server.assert_counter(&device, APP, 10).await;
    assert_eq!(replay["code"], "counter_invalid");
    assert_eq!(points(&replay["details"], "replay_attempt"), 0);
    let (_, replay) = server.assert_counter(&device, APP, 10).await;
    assert_eq!(points(&replay["details"], "replay_attempt"), 25);

    // The anomalies stay with the key: its next good assertion carries them.
    let (status, good) = server.assert_counter(&device, APP, 11).await;
    assert_eq!(status, StatusCode::OK, "{good}");
    assert_eq!(points(&good, "counter_regression"), 20);
    assert_eq!(points(&good, "replay_attempt"), 25);
    assert_eq!(points(&good, "repeated_failures"), 15, "{good}");
    let stored = server.admin_device(&device).await;
    assert_eq!(
        (
            stored["counterRegressions"].as_u64(),
            stored["replays"].as_u64()
        ),
        (Some(2), Some(2))
    );
    assert_eq!(stored["counter"], 11);
}

/// Refusals that proved possession of the key (a valid signature over a live challenge of the
/// key: here the same accepted assertion sent again) count in `repeated_failures`, by code;
/// forged ones from the same address do not.
async fn repeated_failures_count_only_refusals_that_proved_possession(db: &Db) {
    let server = Server::start(db).await;
    let device = device();
    server.attest(&device).await;
    let challenge = server.assertion_challenge(&device).await;
    let forged = device
        .assertion(APP, challenge.as_bytes(), 1)
        .corrupt_signature()
        .build()
        .object;
    let forged = assertion_body(&device, &challenge, &forged);
    for _ in 1..=4 {
        let (status, error) = server.post("/v1/assertions", &forged).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error["code"], "signature_invalid");
    }
    // The forged attempts did not spend the challenge.
    let good = device.assert(APP, challenge.as_bytes(), 1);
    let good = assertion_body(&device, &challenge, &good);
    let (status, body) = server.post("/v1/assertions", &good).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(points(&body, "repeated_failures"), 0, "{body}");
    // The same assertion again, while its challenge lives: counter_invalid, proved by the
    // device's signature. Each is scored with the failures before it: the fourth sees three.
    for attempt in 1..=4 {
        let (status, error) = server.post("/v1/assertions", &good).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
        assert_eq!(error["code"], "counter_invalid");
        assert_eq!(
            points(&error["details"], "repeated_failures"),
            0,
            "{attempt}"
        );
    }
    let (status, body) = server.assert_counter(&device, APP, 2).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        factor(&body, "repeated_failures").unwrap()["evidence"],
        "4 verification failures in 1h > threshold 3 (counter_invalid×4)"
    );
    let stored = server.admin_device(&device).await;
    assert_eq!(
        stored["intelligence"]["failuresByCode"],
        json!({ "counter_invalid": 4 }),
        "the forged ones are the sender's, not the device's"
    );
}

/// Issue 9, item 6: ten failed assertions sent with only a victim's keyId (garbage signature,
/// another address) took a device from 45/medium to 60/high and removed `payments`. They must
/// leave its score and permissions alone, tell the stranger nothing about the key, and count
/// against the stranger.
async fn a_stranger_with_only_a_key_id_moves_nothing(db: &Db) {
    let mut config = common::config(db);
    config.trust_forwarded_for = true;
    let server = Server::start_with(config).await;
    let victim = device();
    let answer = server
        .attest_as(&victim, APP, json!({}), |b| b.omit_receipt())
        .await;
    assert_created(&answer);
    // 45/medium: no receipt (30), new device (5), a client clock an hour behind (10).
    let skewed = |counter: u32| {
        let server = &server;
        let victim = &victim;
        async move {
            let challenge = server.assertion_challenge(victim).await;
            let timestamp = OffsetDateTime::now_utc().unix_timestamp() - 3600;
            let payload = json!({ "challenge": challenge, "timestamp": timestamp }).to_string();
            let assertion = victim.assert(APP, payload.as_bytes(), counter);
            server
                .post_from(
                    "198.51.100.20",
                    "/v1/assertions",
                    &assertion_body(victim, &payload, &assertion),
                )
                .await
        }
    };
    let (status, before) = skewed(1).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(
        (before["riskScore"].as_u64(), before["riskBand"].as_str()),
        (Some(45), Some("medium"))
    );
    assert_eq!(before["permissions"], json!(["basic", "payments"]));

    // The stranger: the victim's keyId, garbage in every other field, another address.
    let stranger = "203.0.113.66";
    let challenge = server.assertion_challenge(&victim).await;
    let forged = victim
        .assertion(APP, challenge.as_bytes(), 2)
        .corrupt_signature()
        .build()
        .object;
    let attacks = [
        assertion_body(&victim, &challenge, &forged),
        assertion_body(&victim, "not a challenge", &forged),
        assertion_body(&victim, &challenge, b"\xa1\x00garbage"),
    ];
    for n in 0..10 {
        let (status, error) = server
            .post_from(stranger, "/v1/assertions", &attacks[n % attacks.len()])
            .await;
        assert!(status.is_client_error(), "{status} {error}");
        // Scored on its own: nothing about the victim's key (its missing receipt, its new
        // device) reaches the stranger.
        let details = &error["details"];
        assert_eq!(factor_names(details), ["verification_failed"], "{error}");
        assert_eq!(details["riskScore"], 60);
    }

    let (status, after) = skewed(2).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["riskScore"], 45, "{after}");
    assert_eq!(after["riskBand"], "medium");
    assert_eq!(after["permissions"], json!(["basic", "payments"]));
    assert_eq!(points(&after, "repeated_failures"), 0);
    let stored = server.admin_device(&victim).await;
    assert_eq!(stored["intelligence"]["failuresByCode"], json!({}));
    assert_eq!(
        (
            stored["replays"].as_u64(),
            stored["counterRegressions"].as_u64()
        ),
        (Some(0), Some(0))
    );

    // The stranger's refusals are counted against the stranger.
    let sender = server
        .admin_get(&format!("/admin/v1/senders/{stranger}"))
        .await;
    let senders = sender["senders"].as_array().unwrap();
    assert_eq!(senders.len(), 1, "{sender}");
    assert_eq!(senders[0]["address"], stranger);
    assert_eq!(senders[0]["appId"], APP);
    assert_eq!(senders[0]["failures"], 10, "{sender}");
    let by_code = senders[0]["failuresByCode"].as_object().unwrap();
    assert_eq!(
        by_code.values().map(|n| n.as_u64().unwrap()).sum::<u64>(),
        10
    );
    // A corrupted signature fails whatever the payload: 7 of the 10; the CBOR garbage 3.
    assert_eq!(by_code["signature_invalid"], 7, "{sender}");
    let app = server
        .admin_get(&format!("/admin/v1/apps/{APP}/senders"))
        .await;
    assert_eq!(app["senders"][0]["address"], stranger, "{app}");
    let victim_address = server.admin_get("/admin/v1/senders/198.51.100.20").await;
    assert_eq!(victim_address["senders"], json!([]), "{victim_address}");
    let metrics = server.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("attestd_refusals_total{")
                && line.contains(&format!("app=\"{APP}\""))
                && line.contains("proof=\"none\"")),
        "{metrics}"
    );
}

/// An assertion the device made long ago, sent again once its challenge expired (anyone who
/// once saw it can): refused, but neither a replay of the key nor a failure of its device.
async fn an_old_assertion_replayed_after_its_challenge_expired_moves_nothing(db: &Db) {
    let mut config = common::config(db);
    config.challenge_ttl = std::time::Duration::from_secs(1);
    let server = Server::start_with(config).await;
    let device = device();
    server.attest(&device).await;
    let challenge = server.assertion_challenge(&device).await;
    let assertion = device.assert(APP, challenge.as_bytes(), 1);
    let captured = assertion_body(&device, &challenge, &assertion);
    let (status, body) = server.post("/v1/assertions", &captured).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Expiry is kept in whole seconds: two seconds are past any one-second challenge.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    for _ in 0..3 {
        let (status, error) = server.post("/v1/assertions", &captured).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
        assert_eq!(error["code"], "counter_invalid");
        assert_eq!(factor_names(&error["details"]), ["verification_failed"]);
    }
    let stored = server.admin_device(&device).await;
    assert_eq!(stored["replays"], 0, "{stored}");
    assert_eq!(stored["intelligence"]["failuresByCode"], json!({}));
    let (status, good) = server.assert_counter(&device, APP, 2).await;
    assert_eq!(status, StatusCode::OK, "{good}");
    assert_eq!(points(&good, "replay_attempt"), 0);
    assert_eq!(points(&good, "repeated_failures"), 0);
}

async fn client_clock_skew_from_a_signed_timestamp(db: &Db) {
    let server = Server::start(db).await;
    let device = device();
    server.attest(&device).await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    for (counter, timestamp, skewed) in [(1, now - 3600, true), (2, now, false)] {
        let challenge = server.assertion_challenge(&device).await;
        let payload = json!({ "challenge": challenge, "timestamp": timestamp }).to_string();
        let assertion = device.assert(APP, payload.as_bytes(), counter);
        let (status, body) = server
            .post(
                "/v1/assertions",
                &assertion_body(&device, &payload, &assertion),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        match factor(&body, "clock_skew") {
            Some(f) if skewed => {
                assert_eq!(f["points"], 10);
                let evidence = f["evidence"].as_str().unwrap();
                assert!(
                    evidence.ends_with("behind server > threshold 300s"),
                    "{evidence}"
                );
            }
            None if !skewed => {}
            other => panic!("timestamp {timestamp}: {other:?}"),
        }
    }
}

async fn development_key_in_a_published_app_and_unexpected_validation_category(db: &Db) {
    let server = Server::start_with(config(db)).await;
    let answer = server
        .attest_as(&device(), OTHER_APP, json!({}), |b| b)
        .await;
    let body = assert_created(&answer);
    assert_eq!(
        factor(body, "development_key_in_production_app").unwrap()["evidence"],
        "development key for a production-only app"
    );
    assert_eq!(points(body, "development_key_in_production_app"), 30);

    let answer = server
        .attest_as(&device(), APP, json!({}), |b| b.ios27())
        .await;
    let body = assert_created(&answer);
    assert_eq!(points(body, "unexpected_validation_category"), 20);
    assert_eq!(
        factor(body, "unexpected_validation_category").unwrap()["evidence"],
        "validation category 01000000 not in expected [02000000] (bundle version 1)"
    );
    assert_eq!(body["deviceIntelligence"]["validationCategory"], "01000000");
    assert_eq!(body["deviceIntelligence"]["bundleVersion"], "1");
    assert_eq!(
        points(body, "development_key_in_production_app"),
        0,
        "APP is not published"
    );
}
