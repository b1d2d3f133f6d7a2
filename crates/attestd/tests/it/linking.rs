//! Linking a key to a user or device through HTTP: only a link token signed by the app's
//! backend links; ids a client merely names are ignored, and a link token that does not vouch
//! for this key, this app, now, is refused.

use crate::common;

use common::{
    APP, Db, LINK_SECRET, OTHER_APP, Server, assert_error, attestation, attestation_body, claims,
    device, key_id, link_claims, linked, sign_link_token, with_fields,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_stores!(
    a_stranger_naming_alices_ids_gets_a_new_device_and_moves_nothing_of_hers,
    ids_named_to_an_app_without_a_link_secret_are_ignored,
    link_tokens_that_do_not_vouch_for_this_key_app_and_time_are_refused,
    a_valid_link_token_links_and_supersedes_on_the_hosted_route_too,
    the_admin_api_links_a_key_attested_before_its_user_signed_in,
);

#[track_caller]
fn created(answer: &(StatusCode, Value)) -> &Value {
    assert_eq!(answer.0, StatusCode::CREATED, "{}", answer.1);
    &answer.1
}

/// The device ids of every decision logged for `device_id`.
async fn decisions_of(server: &Server, device_id: &str) -> Vec<Value> {
    let log = server
        .admin_get(&format!("/admin/v1/decisions?deviceId={device_id}"))
        .await;
    log["decisions"].as_array().unwrap().clone()
}

/// The takeover of issue 9: a second, unrelated key attested with `"userId": "alice"` got
/// alice's `deviceId` (its JWT naming her device) and superseded her key.
async fn a_stranger_naming_alices_ids_gets_a_new_device_and_moves_nothing_of_hers(db: &Db) {
    let server = Server::start_linking(db).await;
    let alice = device();
    let answer = server
        .attest_as(&alice, APP, linked(APP, &alice, Some("alice"), None), |b| b)
        .await;
    let hers = created(&answer).clone();
    let her_device = hers["deviceId"].as_str().unwrap().to_owned();
    assert_eq!(claims(hers["token"].as_str().unwrap())["sub"], her_device);

    // Strangers with genuine keys name her user id, her device id, or both.
    let mut strangers = Vec::new();
    for ids in [
        json!({ "userId": "alice" }),
        json!({ "deviceId": her_device }),
        json!({ "userId": "alice", "deviceId": her_device }),
    ] {
        let stranger = device();
        let answer = server.attest_as(&stranger, APP, ids.clone(), |b| b).await;
        let theirs = created(&answer);
        let their_device = theirs["deviceId"].as_str().unwrap();
        assert_ne!(their_device, her_device, "{ids}");
        assert!(their_device.starts_with("dev_"), "{ids}");
        assert_eq!(
            claims(theirs["token"].as_str().unwrap())["sub"],
            their_device
        );
        assert_eq!(theirs["supersedes"], json!([]), "{ids}");
        assert_eq!(theirs["link"]["status"], "unverified", "{ids}");
        let ignored: Vec<&str> = ids
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut reported: Vec<&str> = theirs["link"]["ignored"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        reported.sort_unstable();
        assert_eq!(reported, ignored, "{ids}");
        assert_eq!(theirs["deviceIntelligence"]["attestationCount"], 1);
        assert_eq!(server.admin_device(&stranger).await["userId"], Value::Null);
        strangers.push(stranger);
    }
    // A stranger's failed attestation naming her device is not counted against it.
    let challenge = server.challenge(APP).await;
    let stranger = device();
    let object = attestation(&stranger, APP, "another challenge");
    let body = with_fields(
        attestation_body(&stranger, APP, &challenge, &object),
        json!({ "deviceId": her_device, "userId": "alice" }),
    );
    assert_error(
        &server.post("/v1/attestations", &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "nonce_mismatch",
    );
    let logged = decisions_of(&server, &her_device).await;
    assert_eq!(logged.len(), 1, "only her own attestation: {logged:?}");

    // Her key still works, with her device in the answer and in a fresh JWT.
    let (status, asserted) = server.assert_counter(&alice, APP, 1).await;
    assert_eq!(status, StatusCode::OK, "{asserted}");
    assert_eq!(asserted["deviceId"], her_device);
    let mine = server.admin_device(&alice).await;
    assert_eq!(mine["revokedAt"], Value::Null);
    assert_eq!(mine["supersededBy"], Value::Null);
    assert_eq!(mine["userId"], "alice");
    assert_eq!(mine["intelligence"]["attestationCount"], 1);
    let listed = server.admin_get("/admin/v1/devices?userId=alice").await;
    assert_eq!(
        listed["devices"].as_array().unwrap().len(),
        1,
        "strangers are not stored as alice: {listed}"
    );
    for stranger in &strangers {
        assert_eq!(
            server.assert_counter(stranger, APP, 1).await.0,
            StatusCode::OK
        );
    }

    // Her re-install, vouched for by her backend: her device, her old key superseded, and her
    // new-key count is hers alone (2 keys, not 5: the strangers did not count as alice).
    let reinstalled = device();
    let vouched = linked(APP, &reinstalled, Some("alice"), None);
    let answer = server.attest_as(&reinstalled, APP, vouched, |b| b).await;
    let again = created(&answer);
    assert_eq!(again["deviceId"], her_device);
    assert_eq!(again["supersedes"], json!([key_id(&alice)]));
    assert!(
        common::factor(again, "user_key_churn").is_none(),
        "{}",
        again["riskFactors"]
    );
    assert_error(
        &server.assert_counter(&alice, APP, 2).await,
        StatusCode::FORBIDDEN,
        "key_superseded",
    );
}

async fn ids_named_to_an_app_without_a_link_secret_are_ignored(db: &Db) {
    // The default test config sets no link_secret.
    let server = Server::start(db).await;
    let first = device();
    let answer = server
        .attest_as(&first, APP, json!({ "deviceId": "install-1" }), |b| b)
        .await;
    assert!(
        created(&answer)["deviceId"]
            .as_str()
            .unwrap()
            .starts_with("dev_")
    );
    let second = device();
    let answer = server
        .attest_as(&second, APP, json!({ "deviceId": "install-1" }), |b| b)
        .await;
    let answer = created(&answer);
    assert_eq!(answer["supersedes"], json!([]));
    assert_eq!(
        answer["link"],
        json!({ "status": "unverified", "ignored": ["deviceId"] })
    );
    assert_eq!(
        server.assert_counter(&first, APP, 1).await.0,
        StatusCode::OK
    );
    // A link token cannot be checked without the secret: refused, not ignored.
    let third = device();
    let vouched = linked(APP, &third, None, Some("install-1"));
    let answer = server.attest_as(&third, APP, vouched, |b| b).await;
    assert_error(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "link_token_invalid",
    );
    assert_eq!(answer.1["details"]["reason"], "not_configured");
}

async fn link_tokens_that_do_not_vouch_for_this_key_app_and_time_are_refused(db: &Db) {
    let server = Server::start_linking(db).await;
    let alice = device();
    let answer = server
        .attest_as(&alice, APP, linked(APP, &alice, Some("alice"), None), |b| b)
        .await;
    let her_device = created(&answer)["deviceId"].as_str().unwrap().to_owned();

    let stranger = device();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims_for = |edit: Value| {
        let mut claims = link_claims(APP, &stranger, Some("alice"), Some(&her_device));
        for (name, value) in edit.as_object().unwrap() {
            claims[name] = value.clone();
        }
        claims
    };
    let token = |edit| sign_link_token(LINK_SECRET, &claims_for(edit));
    let cases = [
        // Alice's own token, made for her key, replayed for another.
        (
            token(json!({ "key_id": key_id(&alice) })),
            json!({}),
            "wrong_key",
        ),
        (
            token(json!({ "aud": OTHER_APP })),
            json!({}),
            "wrong_audience",
        ),
        (
            token(json!({ "iat": now - 400, "exp": now - 100 })),
            json!({}),
            "expired",
        ),
        (
            token(json!({ "iat": now, "exp": now + 3600 })),
            json!({}),
            "lifetime_too_long",
        ),
        (
            sign_link_token(
                "a guessed secret that is not the app's own",
                &claims_for(json!({})),
            ),
            json!({}),
            "bad_signature",
        ),
        (
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
                &claims_for(json!({})),
                &jsonwebtoken::EncodingKey::from_secret(LINK_SECRET.as_bytes()),
            )
            .unwrap(),
            json!({}),
            "wrong_algorithm",
        ),
        (
            token(json!({})),
            json!({ "userId": "mallory" }),
            "user_mismatch",
        ),
    ];
    for (link_token, extra, reason) in cases {
        let challenge = server.challenge(APP).await;
        let object = attestation(&stranger, APP, &challenge);
        let body = with_fields(
            attestation_body(&stranger, APP, &challenge, &object),
            with_fields(json!({ "linkToken": link_token }), extra),
        );
        let answer = server.post("/v1/attestations", &body).await;
        assert_error(
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "link_token_invalid",
        );
        assert_eq!(answer.1["details"]["reason"], reason, "{}", answer.1);
        // The challenge was spent, as by any refused attestation.
        let retried = with_fields(body, json!({ "linkToken": Value::Null }));
        assert_error(
            &server.post("/v1/attestations", &retried).await,
            StatusCode::BAD_REQUEST,
            "challenge_invalid",
        );
    }
    // The hosted route refuses the same way, in its own shape.
    let challenge = server.challenge(APP).await;
    let object = attestation(&stranger, APP, &challenge);
    let body = json!({
        "keyId": key_id(&stranger),
        "attestation": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &object),
        "challenge": challenge,
        "appId": APP,
        "linkToken": token(json!({ "key_id": key_id(&alice) })),
    });
    let (status, hosted) = server.post("/api/v1/attestation/validate", &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{hosted}");
    assert_eq!(hosted["code"], "ATT_002");
    assert_eq!(hosted["details"]["reason"], "link_token_invalid");
    assert_eq!(hosted["details"]["linkReason"], "wrong_key");

    // Nothing of the stranger was stored, nothing of alice's changed.
    let missing = server
        .admin(
            reqwest::Method::GET,
            &format!(
                "/admin/v1/devices/{}",
                base64::Engine::encode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    stranger.key_id()
                )
            ),
            Some(common::ADMIN_TOKEN),
        )
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "device_not_found");
    assert_eq!(
        server.assert_counter(&alice, APP, 1).await.0,
        StatusCode::OK
    );
    let logged = decisions_of(&server, &her_device).await;
    assert_eq!(logged.len(), 2, "her attestation and assertion: {logged:?}");
}

async fn a_valid_link_token_links_and_supersedes_on_the_hosted_route_too(db: &Db) {
    let server = Server::start_linking(db).await;
    let lost = device();
    let answer = server
        .attest_as(&lost, APP, linked(APP, &lost, Some("bob"), None), |b| b)
        .await;
    let bobs_device = created(&answer)["deviceId"].as_str().unwrap().to_owned();

    let reinstalled = device();
    let challenge = server.challenge(APP).await;
    let object = attestation(&reinstalled, APP, &challenge);
    let token = sign_link_token(
        LINK_SECRET,
        &link_claims(APP, &reinstalled, Some("bob"), Some(&bobs_device)),
    );
    let body = json!({
        "keyId": key_id(&reinstalled),
        "attestation": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &object),
        "challenge": challenge,
        "appId": APP,
        "userId": "bob",
        "linkToken": token,
    });
    let (status, validated) = server.post("/api/v1/attestation/validate", &body).await;
    assert_eq!(status, StatusCode::OK, "{validated}");
    assert_eq!(validated["deviceIntelligence"]["deviceId"], bobs_device);
    assert_eq!(validated["deviceIntelligence"]["attestationCount"], 2);
    assert_eq!(
        validated["link"],
        json!({ "status": "verified", "userId": "bob", "deviceId": bobs_device })
    );
    assert_eq!(
        claims(validated["token"].as_str().unwrap())["sub"],
        bobs_device
    );
    assert_error(
        &server.assert_counter(&lost, APP, 1).await,
        StatusCode::FORBIDDEN,
        "key_superseded",
    );
    assert_eq!(
        server.assert_counter(&reinstalled, APP, 1).await.0,
        StatusCode::OK
    );
    assert_eq!(server.admin_device(&reinstalled).await["userId"], "bob");
}

/// `POST /admin/v1/devices/{keyId}/link` with the admin token.
async fn admin_link(
    server: &Server,
    key: &attest_types::KeyId,
    body: &Value,
    token: Option<&str>,
) -> (StatusCode, Value) {
    use base64::Engine;
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
    let mut request = server
        .client
        .post(server.url(&format!("/admin/v1/devices/{id}/link")))
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.expect("JSON"))
}

async fn the_admin_api_links_a_key_attested_before_its_user_signed_in(db: &Db) {
    let server = Server::start_linking(db).await;
    let admin = Some(common::ADMIN_TOKEN);
    let old = device();
    let answer = server
        .attest_as(&old, APP, linked(APP, &old, Some("carol"), None), |b| b)
        .await;
    let her_device = created(&answer)["deviceId"].as_str().unwrap().to_owned();
    // Re-installed, attested before she signed in: a new device.
    let reinstalled = device();
    let answer = server.attest_as(&reinstalled, APP, json!({}), |b| b).await;
    let fresh = created(&answer);
    assert_ne!(fresh["deviceId"], her_device);
    assert_eq!(fresh["link"], json!({ "status": "none" }));

    // Only with the admin token, and only with something to link.
    let carol = json!({ "userId": "carol" });
    assert_error(
        &admin_link(&server, &reinstalled.key_id(), &carol, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    for bad in [
        json!({}),
        json!({ "userId": "  " }),
        json!({ "userId": "a\u{7}b" }),
        json!({ "user": "carol" }),
    ] {
        assert_error(
            &admin_link(&server, &reinstalled.key_id(), &bad, admin).await,
            StatusCode::BAD_REQUEST,
            "malformed_request",
        );
    }
    assert_error(
        &admin_link(&server, &attest_types::KeyId([9; 32]), &carol, admin).await,
        StatusCode::NOT_FOUND,
        "device_not_found",
    );

    // Her backend (or an operator) links the new key to her: her device, her old key superseded.
    let (status, view) = admin_link(&server, &reinstalled.key_id(), &carol, admin).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["deviceId"], her_device);
    assert_eq!(view["userId"], "carol");
    assert_eq!(view["revokedAt"], Value::Null);
    assert_eq!(view["supersedes"], json!([key_id(&old)]));
    assert_error(
        &server.assert_counter(&old, APP, 1).await,
        StatusCode::FORBIDDEN,
        "key_superseded",
    );
    let (status, asserted) = server.assert_counter(&reinstalled, APP, 1).await;
    assert_eq!(status, StatusCode::OK, "{asserted}");
    assert_eq!(asserted["deviceId"], her_device);
    // A retired key is never moved.
    assert_error(
        &admin_link(
            &server,
            &old.key_id(),
            &json!({ "deviceId": "elsewhere" }),
            admin,
        )
        .await,
        StatusCode::FORBIDDEN,
        "key_superseded",
    );
    // By device id: the key moves there, keeping its user.
    let (status, view) = admin_link(
        &server,
        &reinstalled.key_id(),
        &json!({ "deviceId": "install-9" }),
        admin,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (&view["deviceId"], &view["userId"]),
        (&json!("install-9"), &json!("carol"))
    );
    assert_eq!(view["supersedes"], json!([]));
}
