//! Every way a request is refused, with its exact status and code.

use crate::common;

use std::time::Duration;

use attest_core::apple::attestation::hash_challenge;
use attest_sim::TestCa;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{
    ADMIN_TOKEN, APP, Db, OTHER_APP, Server, assert_error, assertion_body, attestation,
    attestation_body, cas, device, key_id,
};
use reqwest::{Method, StatusCode};
use serde_json::json;
use time::OffsetDateTime;

on_both_stores!(
    rejects_a_reused_attestation_challenge,
    rejects_an_expired_challenge,
    rejects_a_challenge_issued_to_another_app,
    rejects_a_second_attestation_of_the_same_key,
    rejects_tampered_attestations,
    rejects_replayed_and_regressed_assertions,
    rejects_assertions_without_an_issued_challenge,
    rejects_tampered_assertions,
    rejects_assertions_of_revoked_and_unknown_keys,
    rejects_malformed_requests,
);

async fn rejects_a_reused_attestation_challenge(db: &Db) {
    let server = Server::start(db).await;
    let challenge = server.challenge(APP).await;
    let first = device();
    let body = attestation_body(
        &first,
        APP,
        &challenge,
        &attestation(&first, APP, &challenge),
    );
    assert_eq!(
        server.post("/v1/attestations", &body).await.0,
        StatusCode::CREATED
    );

    let second = device();
    let body = attestation_body(
        &second,
        APP,
        &challenge,
        &attestation(&second, APP, &challenge),
    );
    let answer = server.post("/v1/attestations", &body).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "challenge_invalid");

    // A challenge that was never issued.
    let made_up = URL_SAFE_NO_PAD.encode([1u8; 32]);
    let body = attestation_body(&second, APP, &made_up, &attestation(&second, APP, &made_up));
    let answer = server.post("/v1/attestations", &body).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "challenge_invalid");

    // A failed attestation spends its challenge too.
    let third = device();
    let challenge = server.challenge(APP).await;
    let bad = attestation_body(&third, APP, &challenge, &attestation(&third, APP, "other"));
    assert_error(
        &server.post("/v1/attestations", &bad).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "nonce_mismatch",
    );
    let good = attestation_body(
        &third,
        APP,
        &challenge,
        &attestation(&third, APP, &challenge),
    );
    assert_error(
        &server.post("/v1/attestations", &good).await,
        StatusCode::BAD_REQUEST,
        "challenge_invalid",
    );
}

async fn rejects_an_expired_challenge(db: &Db) {
    let mut config = common::config(db);
    config.challenge_ttl = Duration::from_secs(1);
    let server = Server::start_with(config).await;
    let challenge = server.challenge(APP).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let device = device();
    let body = attestation_body(
        &device,
        APP,
        &challenge,
        &attestation(&device, APP, &challenge),
    );
    let answer = server.post("/v1/attestations", &body).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "challenge_invalid");
}

async fn rejects_a_challenge_issued_to_another_app(db: &Db) {
    let server = Server::start(db).await;
    let challenge = server.challenge(OTHER_APP).await;
    let device = device();
    let body = attestation_body(
        &device,
        APP,
        &challenge,
        &attestation(&device, APP, &challenge),
    );
    let answer = server.post("/v1/attestations", &body).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "challenge_invalid");

    // An attestation challenge cannot be spent on an assertion either.
    server.attest(&device).await;
    let challenge = server.challenge(APP).await;
    let assertion = device.assert(APP, challenge.as_bytes(), 1);
    let answer = server
        .post(
            "/v1/assertions",
            &assertion_body(&device, &challenge, &assertion),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "challenge_invalid");

    // Nor an assertion challenge bound to another key.
    let other = common::device();
    server.attest(&other).await;
    let bound_to_other = server.assertion_challenge(&other).await;
    let assertion = device.assert(APP, bound_to_other.as_bytes(), 1);
    let answer = server
        .post(
            "/v1/assertions",
            &assertion_body(&device, &bound_to_other, &assertion),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "challenge_invalid");
}

async fn rejects_a_second_attestation_of_the_same_key(db: &Db) {
    let server = Server::start(db).await;
    let device = device();
    let first = server.attest(&device).await;
    // Advance the counter so that "nothing changed" is observable.
    let next = first["nextChallenge"]["challenge"].as_str().unwrap();
    let assertion = device.assert(APP, next.as_bytes(), 7);
    assert_eq!(
        server
            .post("/v1/assertions", &assertion_body(&device, next, &assertion))
            .await
            .0,
        StatusCode::OK
    );

    let challenge = server.challenge(APP).await;
    let body = attestation_body(
        &device,
        APP,
        &challenge,
        &attestation(&device, APP, &challenge),
    );
    let answer = server.post("/v1/attestations", &body).await;
    assert_error(&answer, StatusCode::CONFLICT, "key_already_attested");

    let path = format!(
        "/admin/v1/devices/{}",
        URL_SAFE_NO_PAD.encode(device.key_id())
    );
    let (_, stored) = server.admin(Method::GET, &path, Some(ADMIN_TOKEN)).await;
    assert_eq!(stored["counter"], 7);
    assert_eq!(stored["deviceId"], first["deviceId"]);
    assert_eq!(stored["attestationCount"], 1);
}

async fn rejects_tampered_attestations(db: &Db) {
    let server = Server::start(db).await;
    let (ca, receipts) = cas();
    let device = device();
    let now = OffsetDateTime::now_utc();

    // Bytes flipped inside the CBOR: the object no longer parses or no longer verifies.
    let challenge = server.challenge(APP).await;
    let mut object = attestation(&device, APP, &challenge);
    object.truncate(object.len() - 10);
    let answer = server
        .post(
            "/v1/attestations",
            &attestation_body(&device, APP, &challenge, &object),
        )
        .await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "malformed");

    // Made for another App ID.
    let challenge = server.challenge(APP).await;
    let object = attestation(&device, "TESTTEAM01.com.another.app", &challenge);
    let answer = server
        .post(
            "/v1/attestations",
            &attestation_body(&device, APP, &challenge, &object),
        )
        .await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "app_id_mismatch");

    // Signed by a CA the server does not trust.
    let challenge = server.challenge(APP).await;
    let stranger = TestCa::generate();
    let object = device.attest(
        &stranger,
        receipts,
        APP,
        &hash_challenge(challenge.as_bytes()),
        now,
    );
    let answer = server
        .post(
            "/v1/attestations",
            &attestation_body(&device, APP, &challenge, &object),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "certificate_chain_invalid",
    );

    // Reported under another device's key id.
    let challenge = server.challenge(APP).await;
    let object = attestation(&device, APP, &challenge);
    let other = common::device();
    let answer = server
        .post(
            "/v1/attestations",
            &attestation_body(&other, APP, &challenge, &object),
        )
        .await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "key_id_mismatch");

    // A production key for a development-only app.
    let production = attest_sim::Device::new(attest_sim::Environment::Production);
    let challenge = server.challenge(APP).await;
    let object = production.attest(
        ca,
        receipts,
        APP,
        &hash_challenge(challenge.as_bytes()),
        now,
    );
    let answer = server
        .post(
            "/v1/attestations",
            &attestation_body(&production, APP, &challenge, &object),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "environment_mismatch",
    );

    // None of them registered anything.
    let (_, list) = server
        .admin(Method::GET, "/admin/v1/devices", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(list["devices"], json!([]));
}

async fn rejects_replayed_and_regressed_assertions(db: &Db) {
    let server = Server::start(db).await;
    let device = device();
    let attested = server.attest(&device).await;
    let next = attested["nextChallenge"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    let assertion = device.assert(APP, next.as_bytes(), 5);
    let body = assertion_body(&device, &next, &assertion);
    assert_eq!(server.post("/v1/assertions", &body).await.0, StatusCode::OK);

    // The same request again.
    assert_error(
        &server.post("/v1/assertions", &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "counter_invalid",
    );

    // A fresh challenge, but a counter that does not move forward: equal is a replay, lower
    // a regression (the key state went backwards: re-attest).
    for (counter, code) in [(5, "counter_invalid"), (3, "counter_regressed")] {
        let challenge = server.assertion_challenge(&device).await;
        let assertion = device.assert(APP, challenge.as_bytes(), counter);
        let answer = server
            .post(
                "/v1/assertions",
                &assertion_body(&device, &challenge, &assertion),
            )
            .await;
        assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, code);
        assert_eq!(answer.1["details"]["storedCounter"], 5);
        let action = (code == "counter_regressed").then_some("reattest_required");
        assert_eq!(answer.1["details"]["action"].as_str(), action);
    }

    // A fresh challenge and a higher counter is fine.
    let challenge = server.assertion_challenge(&device).await;
    let assertion = device.assert(APP, challenge.as_bytes(), 6);
    let (status, body) = server
        .post(
            "/v1/assertions",
            &assertion_body(&device, &challenge, &assertion),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["counter"], 6);
}

async fn rejects_assertions_without_an_issued_challenge(db: &Db) {
    let server = Server::start(db).await;
    let device = device();
    server.attest(&device).await;
    for payload in [
        "a payload the server never issued".to_owned(),
        json!({ "action": "transfer" }).to_string(),
        json!({ "challenge": URL_SAFE_NO_PAD.encode([3u8; 32]) }).to_string(),
    ] {
        let assertion = device.assert(APP, payload.as_bytes(), 1);
        let answer = server
            .post(
                "/v1/assertions",
                &assertion_body(&device, &payload, &assertion),
            )
            .await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "challenge_invalid");
    }
}

async fn rejects_tampered_assertions(db: &Db) {
    let server = Server::start(db).await;
    let device = device();
    server.attest(&device).await;

    let challenge = server.assertion_challenge(&device).await;
    let corrupted = device
        .assertion(APP, challenge.as_bytes(), 1)
        .corrupt_signature()
        .build()
        .object;
    let answer = server
        .post(
            "/v1/assertions",
            &assertion_body(&device, &challenge, &corrupted),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "signature_invalid",
    );

    // Signed over other client data than the payload sent.
    let signed_elsewhere = device.assert(APP, b"something else", 1);
    let answer = server
        .post(
            "/v1/assertions",
            &assertion_body(&device, &challenge, &signed_elsewhere),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "signature_invalid",
    );

    // Signed by another key.
    let stranger = common::device();
    let forged = device
        .assertion(APP, challenge.as_bytes(), 1)
        .signed_by(&stranger)
        .build()
        .object;
    let answer = server
        .post(
            "/v1/assertions",
            &assertion_body(&device, &challenge, &forged),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "signature_invalid",
    );

    // For another App ID.
    let other_app = device.assert("TESTTEAM01.com.another.app", challenge.as_bytes(), 1);
    let answer = server
        .post(
            "/v1/assertions",
            &assertion_body(&device, &challenge, &other_app),
        )
        .await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "app_id_mismatch");

    // Not CBOR at all.
    let answer = server
        .post(
            "/v1/assertions",
            &assertion_body(&device, &challenge, b"garbage"),
        )
        .await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "malformed");

    // The challenge survived every failed attempt (they failed before it was spent).
    let good = device.assert(APP, challenge.as_bytes(), 1);
    let (status, body) = server
        .post(
            "/v1/assertions",
            &assertion_body(&device, &challenge, &good),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn rejects_assertions_of_revoked_and_unknown_keys(db: &Db) {
    let server = Server::start(db).await;
    let device = device();
    let attested = server.attest(&device).await;
    let next = attested["nextChallenge"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned();

    let path = format!(
        "/admin/v1/devices/{}/revoke",
        URL_SAFE_NO_PAD.encode(device.key_id())
    );
    assert_eq!(
        server.admin(Method::POST, &path, Some(ADMIN_TOKEN)).await.0,
        StatusCode::OK
    );
    let assertion = device.assert(APP, next.as_bytes(), 1);
    let answer = server
        .post(
            "/v1/assertions",
            &assertion_body(&device, &next, &assertion),
        )
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, "key_revoked");
    assert_eq!(answer.1["details"]["action"], "reattest_required");

    let stranger = common::device();
    let assertion = stranger.assert(APP, next.as_bytes(), 1);
    let answer = server
        .post(
            "/v1/assertions",
            &assertion_body(&stranger, &next, &assertion),
        )
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "key_unknown");
    assert_eq!(answer.1["details"]["action"], "reattest_required");
}

async fn rejects_malformed_requests(db: &Db) {
    let server = Server::start(db).await;
    let device = device();
    let challenge = server.challenge(APP).await;
    let good = attestation_body(
        &device,
        APP,
        &challenge,
        &attestation(&device, APP, &challenge),
    );
    let json = Some("application/json");

    let answer = server
        .post_raw("/v1/attestations", json, b"{\"platform\":".to_vec())
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
    let answer = server
        .post_raw("/v1/attestations", json, b"[]".to_vec())
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");

    let mut wrong_type = good.clone();
    wrong_type["keyId"] = json!(12345);
    assert_error(
        &server.post("/v1/attestations", &wrong_type).await,
        StatusCode::BAD_REQUEST,
        "malformed_request",
    );

    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("challenge");
    assert_error(
        &server.post("/v1/attestations", &missing).await,
        StatusCode::BAD_REQUEST,
        "malformed_request",
    );

    let mut bad_base64 = good.clone();
    bad_base64["token"] = json!("not base64 at all!");
    let answer = server.post("/v1/attestations", &bad_base64).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
    assert_eq!(answer.1["details"]["field"], "token");

    let mut short_key = good.clone();
    short_key["keyId"] = json!(STANDARD.encode([1u8; 16]));
    let answer = server.post("/v1/attestations", &short_key).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
    assert_eq!(answer.1["details"]["field"], "keyId");

    let mut android = good.clone();
    android["platform"] = json!("android");
    assert_error(
        &server.post("/v1/attestations", &android).await,
        StatusCode::BAD_REQUEST,
        "unsupported_platform",
    );
    let mut other_format = good.clone();
    other_format["format"] = json!("play-integrity");
    assert_error(
        &server.post("/v1/attestations", &other_format).await,
        StatusCode::BAD_REQUEST,
        "unsupported_platform",
    );

    let mut unknown_app = good.clone();
    unknown_app["appId"] = json!("NOTCONFIG1.com.example");
    assert_error(
        &server.post("/v1/attestations", &unknown_app).await,
        StatusCode::NOT_FOUND,
        "unknown_app",
    );
    let answer = server
        .post(
            "/v1/challenges",
            &json!({ "appId": "NOTCONFIG1.com.example" }),
        )
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "unknown_app");
    // Two apps are configured: a challenge must name one.
    let answer = server.post_raw("/v1/challenges", None, Vec::new()).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
    let answer = server
        .post(
            "/v1/challenges",
            &json!({ "appId": APP, "purpose": "nonsense" }),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");

    let answer = server
        .post_raw(
            "/v1/attestations",
            Some("text/plain"),
            good.to_string().into_bytes(),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );

    let mut huge = good.clone();
    huge["token"] = json!("A".repeat(70 * 1024));
    let answer = server.post("/v1/attestations", &huge).await;
    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    let answer = server
        .post_raw("/v1/challenges", json, vec![b' '; 70 * 1024])
        .await;
    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");

    let assertion = json!({ "platform": "ios", "format": "apple-app-attest", "keyId": key_id(&device), "payload": 5, "token": "" });
    assert_error(
        &server.post("/v1/assertions", &assertion).await,
        StatusCode::BAD_REQUEST,
        "malformed_request",
    );

    // After all that, the challenge is still unspent and the good request succeeds.
    assert_eq!(
        server.post("/v1/attestations", &good).await.0,
        StatusCode::CREATED
    );
}
