//! The happy paths through the real server: registration, assertions, tokens, the hosted
//! shape, the admin API and the operational routes.

use crate::common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{
    ADMIN_TOKEN, APP, Db, Server, assert_error, assertion_body, attestation, attestation_body,
    device, key_id,
};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_stores!(
    registers_a_key_then_accepts_assertions_over_issued_challenges,
    accepts_a_json_payload_carrying_the_challenge,
    issued_token_verifies_against_the_published_jwks,
    an_assertion_renews_the_token,
    hosted_shape_issues_challenges_and_validates_attestations,
    admin_lists_shows_and_revokes_devices,
    admin_api_requires_the_bearer_token,
    rotated_signing_keys_are_published_and_used,
    operational_routes_answer,
);

async fn registers_a_key_then_accepts_assertions_over_issued_challenges(db: &Db) {
    let server = Server::start(db).await;
    let device = device();

    let (status, challenge) = server
        .post("/v1/challenges", &json!({ "appId": APP }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let text = challenge["challenge"].as_str().unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.decode(text).unwrap().len(),
        42,
        "version, nonce, expiry, flags, tag"
    );
    assert_eq!(challenge["expiresIn"], 300);
    assert!(challenge["expiresAt"].as_str().unwrap().ends_with('Z'));

    let body = attestation_body(&device, APP, text, &attestation(&device, APP, text));
    let (status, attested) = server.post("/v1/attestations", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{attested}");
    assert_eq!(attested["keyId"], key_id(&device));
    let device_id = attested["deviceId"].as_str().unwrap().to_owned();
    let intelligence = &attested["deviceIntelligence"];
    assert_eq!(intelligence["deviceId"], device_id);
    assert_eq!(intelligence["environment"], "development");
    assert_eq!(intelligence["attestationCount"], 1);
    assert_eq!(intelligence["assertionCount"], 0);
    assert!(intelligence["firstSeen"].is_string() && intelligence["lastSeen"].is_string());
    assert!(intelligence.get("receiptRiskMetric").is_some());
    assert!(attested["token"].as_str().unwrap().split('.').count() == 3);

    let mut next = attested["nextChallenge"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    for counter in 1..=3 {
        let assertion = device.assert(APP, next.as_bytes(), counter);
        let (status, asserted) = server
            .post(
                "/v1/assertions",
                &assertion_body(&device, &next, &assertion),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{asserted}");
        assert_eq!(asserted["valid"], true);
        assert_eq!(asserted["deviceId"], device_id);
        assert_eq!(asserted["counter"], counter);
        next = asserted["nextChallenge"]["challenge"]
            .as_str()
            .unwrap()
            .to_owned();
    }

    let path = format!(
        "/admin/v1/devices/{}",
        URL_SAFE_NO_PAD.encode(device.key_id())
    );
    let (status, stored) = server.admin(Method::GET, &path, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["counter"], 3);
    assert_eq!(stored["assertionCount"], 3);
}

async fn accepts_a_json_payload_carrying_the_challenge(db: &Db) {
    let server = Server::start(db).await;
    let device = device();
    server.attest(&device).await;
    let challenge = server.assertion_challenge(&device).await;
    let payload = json!({ "challenge": challenge, "action": "transfer", "amount": 10 }).to_string();
    let assertion = device.assert(APP, payload.as_bytes(), 1);
    let (status, body) = server
        .post(
            "/v1/assertions",
            &assertion_body(&device, &payload, &assertion),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["counter"], 1);
}

async fn an_assertion_renews_the_token(db: &Db) {
    let server = Server::start(db).await;
    let device = device();
    let attested = server.attest(&device).await;
    let challenge = attested["nextChallenge"]["challenge"].as_str().unwrap();
    let body = assertion_body(
        &device,
        challenge,
        &device.assert(APP, challenge.as_bytes(), 1),
    );
    let (status, renewed) = server.post("/v1/tokens", &body).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!(renewed["counter"], 1);
    assert!(renewed["expiresAt"].as_str().unwrap().ends_with('Z'));
    assert!(renewed["nextChallenge"]["challenge"].is_string());
    assert!(renewed["riskScore"].is_u64(), "{renewed}");
    let (old, new) = (
        common::claims(attested["token"].as_str().unwrap()),
        common::claims(renewed["token"].as_str().unwrap()),
    );
    for claim in ["sub", "aud", "key_id", "env", "iss"] {
        assert_eq!(old[claim], new[claim], "{claim}");
    }
    assert!(
        new["risk_score"].is_u64() && new["permissions"].is_array(),
        "{new}"
    );
    // Signed by the published key.
    let (_, jwks) = server.get("/.well-known/jwks.json").await;
    let jwks: JwkSet = serde_json::from_value(jwks).unwrap();
    let token = renewed["token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("published");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[APP]);
    validation.set_issuer(&["attestd"]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .expect("renewed token verifies");

    // The same proof again renews nothing.
    let (status, replayed) = server.post("/v1/tokens", &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{replayed}");
    assert_eq!(replayed["code"], "counter_invalid");
    assert!(replayed.get("token").is_none());
    // A renewal is an assertion: it spends a challenge and logs a decision like one.
    let (status, decisions) = server
        .admin(
            reqwest::Method::GET,
            "/admin/v1/decisions",
            Some(common::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{decisions}");
    let routes: Vec<&str> = decisions["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["route"].as_str().unwrap())
        .collect();
    assert!(routes.contains(&"/v1/tokens"), "{routes:?}");
}

async fn issued_token_verifies_against_the_published_jwks(db: &Db) {
    let server = Server::start(db).await;
    let device = device();
    let attested = server.attest(&device).await;
    let token = attested["token"].as_str().unwrap();

    let (status, jwks) = server.get("/.well-known/jwks.json").await;
    assert_eq!(status, StatusCode::OK);
    let jwks: JwkSet = serde_json::from_value(jwks).unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("token kid is published");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[APP]);
    validation.set_issuer(&["attestd"]);
    let claims =
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .expect("token verifies")
            .claims;
    assert_eq!(claims["sub"], attested["deviceId"]);
    assert_eq!(claims["aud"], APP);
    assert_eq!(claims["env"], "development");
    assert_eq!(claims["key_id"], URL_SAFE_NO_PAD.encode(device.key_id()));
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());

    // A token with a flipped signature byte does not verify.
    let mut forged = token.to_owned();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert!(
        jsonwebtoken::decode::<Value>(&forged, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .is_err()
    );
}

async fn hosted_shape_issues_challenges_and_validates_attestations(db: &Db) {
    let server = Server::start(db).await;
    let device = device();
    let response = server
        .client
        .get(server.url("/api/v1/attestation/challenge"))
        .header("X-App-Id", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let challenge: Value = response.json().await.unwrap();
    let challenge = challenge["challenge"].as_str().unwrap().to_owned();

    let object = attestation(&device, APP, &challenge);
    let body = json!({
        "keyId": key_id(&device),
        "attestation": base64::engine::general_purpose::STANDARD.encode(&object),
        "challenge": challenge,
        "appId": APP,
    });
    let (status, validated) = server.post("/api/v1/attestation/validate", &body).await;
    assert_eq!(status, StatusCode::OK, "{validated}");
    assert!(validated["token"].is_string());
    assert!(validated["expiresAt"].is_string());
    // A brand-new device: only the `new_device` nudge, low band, every low-band permission.
    let intelligence = &validated["deviceIntelligence"];
    assert_eq!(intelligence["riskScore"], 5);
    assert_eq!(intelligence["riskBand"], "low");
    assert_eq!(intelligence["deviceIntegrity"], "high");
    assert_eq!(intelligence["jailbreakDetected"], false);
    assert_eq!(intelligence["attestationCount"], 1);
    assert_eq!(intelligence["riskFactors"], json!(["new_device"]));
    assert_eq!(intelligence["riskFactorDetails"][0]["points"], 5);
    assert_eq!(intelligence["decision"]["outcome"], "allow");
    assert_eq!(
        validated["permissions"],
        json!(["basic", "payments", "transfers"])
    );

    // The same challenge again: ATT_001.
    let (status, error) = server.post("/api/v1/attestation/validate", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["code"], "ATT_001");
    assert_eq!(error["error"], "invalid_challenge");

    // An attestation made for another App ID: ATT_003.
    let other = common::device();
    let challenge = server.challenge(APP).await;
    let wrong_app = attestation(&other, "TESTTEAM01.com.somebody.else", &challenge);
    let body = json!({
        "keyId": key_id(&other),
        "attestation": base64::engine::general_purpose::STANDARD.encode(&wrong_app),
        "challenge": challenge,
        "appId": APP,
    });
    let (status, error) = server.post("/api/v1/attestation/validate", &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["code"], "ATT_003");
    assert_eq!(error["details"]["reason"], "app_id_mismatch");

    // An attestation over another challenge: ATT_002 with the core's code as reason.
    let challenge = server.challenge(APP).await;
    let object = attestation(&other, APP, "a different challenge");
    let body = json!({
        "keyId": key_id(&other),
        "attestation": base64::engine::general_purpose::STANDARD.encode(&object),
        "challenge": challenge,
        "appId": APP,
    });
    let (status, error) = server.post("/api/v1/attestation/validate", &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["code"], "ATT_002");
    assert_eq!(error["error"], "invalid_attestation");
    assert_eq!(error["details"]["reason"], "nonce_mismatch");

    // Malformed JSON keeps the hosted shape.
    let (status, error) = server
        .post_raw(
            "/api/v1/attestation/validate",
            Some("application/json"),
            b"{".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["code"], "ATT_002");
    assert_eq!(error["details"]["reason"], "malformed_request");
}

async fn admin_lists_shows_and_revokes_devices(db: &Db) {
    let server = Server::start(db).await;
    let first = device();
    let second = device();
    server.attest(&first).await;
    server.attest(&second).await;

    let (status, list) = server
        .admin(
            Method::GET,
            &format!("/admin/v1/devices?appId={APP}&limit=10"),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["devices"].as_array().unwrap().len(), 2);
    assert_eq!(list["limit"], 10);
    let (_, page) = server
        .admin(
            Method::GET,
            "/admin/v1/devices?limit=1&offset=1",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(page["devices"].as_array().unwrap().len(), 1);

    let path = format!(
        "/admin/v1/devices/{}/revoke",
        URL_SAFE_NO_PAD.encode(first.key_id())
    );
    let (status, revoked) = server.admin(Method::POST, &path, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revokedAt"].is_string());
    assert_eq!(revoked["keyId"], key_id(&first));

    let missing = format!("/admin/v1/devices/{}", URL_SAFE_NO_PAD.encode([9u8; 32]));
    let answer = server.admin(Method::GET, &missing, Some(ADMIN_TOKEN)).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "device_not_found");
    let answer = server
        .admin(
            Method::GET,
            "/admin/v1/devices/not-a-key",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
    let answer = server
        .admin(
            Method::GET,
            "/admin/v1/devices?limit=many",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
}

async fn admin_api_requires_the_bearer_token(db: &Db) {
    let server = Server::start(db).await;
    let answer = server.admin(Method::GET, "/admin/v1/devices", None).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "unauthorized");
    let answer = server
        .admin(Method::GET, "/admin/v1/devices", Some("wrong"))
        .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "unauthorized");
    let answer = server
        .admin(Method::POST, "/admin/v1/signing-keys/rotate", Some("wrong"))
        .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "unauthorized");
    server.stop().await;

    // Without an admin token configured the admin API does not exist.
    let mut config = common::config(db);
    config.admin_token = None;
    let server = Server::start_with(config).await;
    let answer = server
        .admin(Method::GET, "/admin/v1/devices", Some(ADMIN_TOKEN))
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
}

async fn rotated_signing_keys_are_published_and_used(db: &Db) {
    let server = Server::start(db).await;
    let before = server.attest(&device()).await;
    let old_kid = jsonwebtoken::decode_header(before["token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap();

    let (status, rotated) = server
        .admin(
            Method::POST,
            "/admin/v1/signing-keys/rotate",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);

    let after = server.attest(&device()).await;
    let kid = jsonwebtoken::decode_header(after["token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap();
    assert_eq!(kid, new_kid);
    let (_, jwks) = server.get("/.well-known/jwks.json").await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()),
        "{kids:?}"
    );
    server.stop().await;

    // A restarted server signs with the rotated key: keys live in the store.
    let server = Server::start(db).await;
    let again = server.attest(&device()).await;
    let kid = jsonwebtoken::decode_header(again["token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap();
    assert_eq!(kid, new_kid);
}

async fn operational_routes_answer(db: &Db) {
    let server = Server::start(db).await;
    let (status, health) = server.get("/healthz").await;
    assert_eq!(
        (status, health["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, ready) = server.get("/readyz").await;
    assert_eq!(
        (status, ready["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );

    // One verification of each kind, so the counters exist.
    let device = device();
    let attested = server.attest(&device).await;
    let next = attested["nextChallenge"]["challenge"].as_str().unwrap();
    let assertion = device.assert(APP, next.as_bytes(), 1);
    let (status, _) = server
        .post("/v1/assertions", &assertion_body(&device, next, &assertion))
        .await;
    assert_eq!(status, StatusCode::OK);

    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(r#"attestd_requests_total{route="/v1/attestations",code="201"}"#),
        "{text}"
    );
    assert!(
        text.contains("attestd_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains(r#"attestd_verifications_total{kind="attestation",result="ok"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"attestd_verifications_total{kind="assertion",result="ok"}"#),
        "{text}"
    );

    let (status, openapi) = server.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let paths = openapi["paths"].as_object().unwrap();
    for path in [
        "/v1/challenges",
        "/v1/attestations",
        "/v1/assertions",
        "/v1/tokens",
        "/v1/device-checks",
        "/admin/v1/devicecheck/validate",
        "/admin/v1/devicecheck/query",
        "/admin/v1/devicecheck/update",
        "/api/v1/attestation/challenge",
        "/api/v1/attestation/validate",
        "/admin/v1/devices",
        "/admin/v1/devices/{keyId}",
        "/admin/v1/devices/{keyId}/revoke",
        "/admin/v1/signing-keys/rotate",
        "/admin/v1/decisions",
        "/admin/v1/apps/{appId}/summary",
        "/admin/v1/webhooks/deliveries",
        "/.well-known/jwks.json",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from /openapi.json"
        );
    }
    let schemas = openapi["components"]["schemas"].as_object().unwrap();
    assert!(schemas.contains_key("ErrorBody") && schemas.contains_key("HostedErrorBody"));

    let answer = server.get("/no/such/route").await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    let answer = server.get("/v1/attestations").await;
    assert_error(
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}
