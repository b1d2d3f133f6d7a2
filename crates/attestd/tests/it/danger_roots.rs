//! Danger roots (`danger_extra_attestation_roots`, quick start's CA) vouch for development keys
//! only: an app that accepts `any` environment still refuses a production key whose chain ends
//! at one, over both attestation routes.

use crate::common;

use attest_core::apple::EnvironmentPolicy;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{ADMIN_TOKEN, Db, OTHER_APP, Server, assert_error, attestation, attestation_body};
use reqwest::{Method, StatusCode};
use serde_json::json;

on_both_stores!(a_production_key_under_a_danger_root_is_refused_even_for_an_app_accepting_any);

async fn a_production_key_under_a_danger_root_is_refused_even_for_an_app_accepting_any(db: &Db) {
    let mut config = common::config(db);
    config.apps[1].environment = EnvironmentPolicy::Any;
    let server = Server::start_with(config).await;

    // The simulator signs a production AAGUID with the test CA, a danger root.
    let production = attest_sim::Device::new(attest_sim::Environment::Production);
    let challenge = server.challenge(OTHER_APP).await;
    let object = attestation(&production, OTHER_APP, &challenge);
    let answer = server
        .post(
            "/v1/attestations",
            &attestation_body(&production, OTHER_APP, &challenge, &object),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "environment_mismatch",
    );
    assert!(
        answer.1["message"].as_str().unwrap().contains("extra root"),
        "{}",
        answer.1
    );
    let challenge = server.challenge(OTHER_APP).await;
    let object = attestation(&production, OTHER_APP, &challenge);
    let hosted = json!({
        "keyId": common::key_id(&production),
        "attestation": STANDARD.encode(&object),
        "challenge": challenge,
        "appId": OTHER_APP,
    });
    let (status, refused) = server.post("/api/v1/attestation/validate", &hosted).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["code"], "ATT_002");
    assert_eq!(refused["details"]["reason"], "environment_mismatch");
    // No key, no token.
    let path = format!(
        "/admin/v1/devices/{}",
        URL_SAFE_NO_PAD.encode(production.key_id())
    );
    assert_error(
        &server.admin(Method::GET, &path, Some(ADMIN_TOKEN)).await,
        StatusCode::NOT_FOUND,
        "device_not_found",
    );

    // The same root still vouches for a development key of the same app.
    let development = common::device();
    let (status, attested) = server
        .attest_as(&development, OTHER_APP, json!({}), |b| b)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{attested}");
    assert_eq!(
        common::claims(attested["token"].as_str().unwrap())["env"],
        "development"
    );
}
