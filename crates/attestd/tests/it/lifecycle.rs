//! The key lifecycle through HTTP: a restored device whose counter goes backwards, a key lost
//! and re-attested (by device id and by user id, vouched for by the backend's link token),
//! development and production keys of one device, revoked and expired keys; each with what the
//! client is told to do.

use crate::common;

use std::time::Duration;

use attest_core::apple::EnvironmentPolicy;
use attest_store::Store;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{ADMIN_TOKEN, APP, Db, OTHER_APP, Server, assert_error, device, key_id, linked};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_stores!(
    a_restored_device_whose_counter_goes_backwards_must_reattest,
    a_lost_key_reattested_for_the_same_device_is_superseded_and_linked,
    simultaneous_re_attestations_of_one_device_leave_one_active_key,
    a_lost_key_reattested_for_the_same_user_keeps_the_device,
    development_and_production_keys_of_one_device_are_tracked_separately,
    a_revoked_key_must_reattest,
    an_idle_key_expires,
    idle_keys_are_expired_by_the_maintenance_task,
    old_decisions_are_purged_by_the_maintenance_task,
    bad_ids_and_admin_queries_are_refused_with_400,
);

#[track_caller]
fn reattest(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_error(answer, status, code);
    assert_eq!(
        answer.1["details"]["action"], "reattest_required",
        "{}",
        answer.1
    );
}

async fn created(answer: (StatusCode, Value)) -> Value {
    assert_eq!(answer.0, StatusCode::CREATED, "{}", answer.1);
    answer.1
}

async fn a_restored_device_whose_counter_goes_backwards_must_reattest(db: &Db) {
    let server = Server::start_linking(db).await;
    let original = device();
    let attested = created(server.attest_as(&original, APP, json!({}), |b| b).await).await;
    let device_id = attested["deviceId"].as_str().unwrap().to_owned();
    for counter in 1..=5 {
        assert_eq!(
            server.assert_counter(&original, APP, counter).await.0,
            StatusCode::OK
        );
    }

    // Restored from a backup taken at counter 3: the key state went backwards.
    let answer = server.assert_counter(&original, APP, 3).await;
    reattest(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "counter_regressed",
    );
    assert_eq!(answer.1["details"]["anomaly"], "regression");
    assert_eq!(answer.1["details"]["storedCounter"], 5);
    assert_eq!(answer.1["details"]["counter"], 3);
    // The same counter again is a replay, not a regression: no re-attestation needed.
    let replay = server.assert_counter(&original, APP, 5).await;
    assert_error(&replay, StatusCode::UNPROCESSABLE_ENTITY, "counter_invalid");
    assert_eq!(replay.1["details"]["anomaly"], "replay");
    assert!(replay.1["details"].get("action").is_none());

    // The app re-attests a new key for its device (its backend vouching); the old key is
    // superseded.
    let fresh = device();
    let vouched = linked(APP, &fresh, None, Some(&device_id));
    let reattested = created(server.attest_as(&fresh, APP, vouched, |b| b).await).await;
    assert_eq!(reattested["deviceId"], device_id);
    assert_eq!(reattested["link"]["status"], "verified");
    assert_eq!(reattested["supersedes"], json!([key_id(&original)]));
    let answer = server.assert_counter(&original, APP, 6).await;
    reattest(&answer, StatusCode::FORBIDDEN, "key_superseded");
    assert_eq!(
        server.assert_counter(&fresh, APP, 1).await.0,
        StatusCode::OK
    );

    let old = server.admin_device(&original).await;
    assert_eq!(old["counterRegressions"], 1);
    assert_eq!(old["replays"], 1);
    assert_eq!(old["revocationReason"], "superseded");
    assert_eq!(old["supersededBy"], key_id(&fresh));
    assert_eq!(
        old["counter"], 5,
        "a regression never moves the counter back"
    );
}

async fn a_lost_key_reattested_for_the_same_device_is_superseded_and_linked(db: &Db) {
    let server = Server::start_linking(db).await;
    let keys: Vec<_> = (0..3).map(|_| device()).collect();
    for (index, key) in keys.iter().enumerate() {
        let vouched = linked(APP, key, None, Some("vendor-id-1"));
        let answer = created(server.attest_as(key, APP, vouched, |b| b).await).await;
        let expected: Vec<String> = keys[..index].iter().rev().take(1).map(key_id).collect();
        assert_eq!(answer["supersedes"], json!(expected), "key {index}");
        assert_eq!(answer["deviceIntelligence"]["attestationCount"], index + 1);
    }

    // The admin API shows the chain, oldest first, each key linked to its successor.
    let detail = server.admin_device(&keys[2]).await;
    let chain: Vec<(Value, Value, Value)> = detail["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["keyId"].clone(),
                k["supersededBy"].clone(),
                k["revocationReason"].clone(),
            )
        })
        .collect();
    assert_eq!(
        chain,
        [
            (
                json!(key_id(&keys[0])),
                json!(key_id(&keys[1])),
                json!("superseded")
            ),
            (
                json!(key_id(&keys[1])),
                json!(key_id(&keys[2])),
                json!("superseded")
            ),
            (json!(key_id(&keys[2])), Value::Null, Value::Null),
        ]
    );
    let intelligence = &detail["intelligence"];
    assert_eq!(intelligence["attestationCount"], 3);
    assert_eq!(intelligence["activeKeys"], 1);
    assert_eq!(intelligence["environments"], json!(["development"]));
    assert_eq!(detail["recentDecisions"].as_array().unwrap().len(), 3);
    assert_eq!(detail["recentDecisions"][0]["deviceId"], "vendor-id-1");

    for old in &keys[..2] {
        reattest(
            &server.assert_counter(old, APP, 1).await,
            StatusCode::FORBIDDEN,
            "key_superseded",
        );
    }
    assert_eq!(
        server.assert_counter(&keys[2], APP, 1).await.0,
        StatusCode::OK
    );
}

async fn simultaneous_re_attestations_of_one_device_leave_one_active_key(db: &Db) {
    let server = Server::start_linking(db).await;
    let ids = |key| linked(APP, key, None, Some("vendor-id-race"));
    let first = device();
    created(server.attest_as(&first, APP, ids(&first), |b| b).await).await;
    // Six new keys for the same device at once (an app retrying, or two installs racing).
    let keys: Vec<_> = (0..6).map(|_| device()).collect();
    let attest = |key| server.attest_as(key, APP, ids(key), |b| b);
    let answers = tokio::join!(
        attest(&keys[0]),
        attest(&keys[1]),
        attest(&keys[2]),
        attest(&keys[3]),
        attest(&keys[4]),
        attest(&keys[5]),
    );
    for answer in [
        answers.0, answers.1, answers.2, answers.3, answers.4, answers.5,
    ] {
        created(answer).await;
    }
    let detail = server.admin_device(&first).await;
    let stored = detail["keys"].as_array().unwrap();
    assert_eq!(stored.len(), 7, "{detail}");
    let active: Vec<&Value> = stored.iter().filter(|k| k["revokedAt"].is_null()).collect();
    assert_eq!(active.len(), 1, "exactly one active key: {detail}");
    let winner = active[0]["keyId"].clone();
    // Every other key is superseded, and following the links ends at the active key.
    let successor = |id: &Value| {
        stored
            .iter()
            .find(|k| &k["keyId"] == id)
            .map(|k| k["supersededBy"].clone())
            .unwrap()
    };
    for key in stored {
        let mut id = key["keyId"].clone();
        for _ in 0..stored.len() {
            match successor(&id) {
                Value::Null => break,
                next => id = next,
            }
        }
        assert_eq!(id, winner, "{detail}");
        if key["keyId"] != winner {
            assert_eq!(key["revocationReason"], "superseded");
        }
    }
}

async fn a_lost_key_reattested_for_the_same_user_keeps_the_device(db: &Db) {
    let server = Server::start_linking(db).await;
    let alice = |key| linked(APP, key, Some("alice@example.com"), None);
    let lost = device();
    let first = created(server.attest_as(&lost, APP, alice(&lost), |b| b).await).await;
    let device_id = first["deviceId"].as_str().unwrap().to_owned();
    assert!(device_id.starts_with("dev_"));
    assert_eq!(
        first["link"],
        json!({ "status": "verified", "userId": "alice@example.com" })
    );
    // Another user's key is left alone.
    let bob = device();
    let vouched = linked(APP, &bob, Some("bob@example.com"), None);
    created(server.attest_as(&bob, APP, vouched, |b| b).await).await;

    let replacement = device();
    let second = created(
        server
            .attest_as(&replacement, APP, alice(&replacement), |b| b)
            .await,
    )
    .await;
    assert_eq!(second["deviceId"], device_id, "the device carries over");
    assert_eq!(second["supersedes"], json!([key_id(&lost)]));
    let intelligence = &second["deviceIntelligence"];
    assert_eq!(intelligence["attestationCount"], 2);
    assert_eq!(intelligence["userIds"], json!(["alice@example.com"]));
    assert!(
        second["riskFactors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["name"] != "user_key_churn")
    );

    reattest(
        &server.assert_counter(&lost, APP, 1).await,
        StatusCode::FORBIDDEN,
        "key_superseded",
    );
    assert_eq!(
        server.assert_counter(&replacement, APP, 1).await.0,
        StatusCode::OK
    );
    assert_eq!(server.assert_counter(&bob, APP, 1).await.0, StatusCode::OK);
    assert_eq!(
        server.admin_device(&lost).await["userId"],
        "alice@example.com"
    );
    // The admin API lists the user's keys over time: the superseded one and its replacement.
    let listed = server
        .admin_get("/admin/v1/devices?userId=alice%40example.com")
        .await;
    let listed: Vec<&Value> = listed["devices"].as_array().unwrap().iter().collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|d| d["userId"] == "alice@example.com"));
    let by_device = server
        .admin_get(&format!("/admin/v1/devices?deviceId={device_id}"))
        .await;
    assert_eq!(by_device["devices"].as_array().unwrap().len(), 2);
}

async fn development_and_production_keys_of_one_device_are_tracked_separately(db: &Db) {
    let mut config = common::linking_config(db);
    config.apps[1].environment = EnvironmentPolicy::Any;
    let server = Server::start_with(config).await;
    let install = |key| linked(OTHER_APP, key, None, Some("install-42"));
    let development = device();
    let production = attest_sim::Device::new(attest_sim::Environment::Production);

    let dev = created(
        server
            .attest_as(&development, OTHER_APP, install(&development), |b| b)
            .await,
    )
    .await;
    assert_eq!(dev["deviceIntelligence"]["environment"], "development");
    // A production key of the same device, as Apple's root would have vouched for it (the
    // simulator's CA, an extra root, vouches for development keys only: see danger_roots.rs).
    let store = attest_store::AnyStore::connect(&db.url)
        .await
        .expect("open the store");
    let now = attest_store::whole_seconds(time::OffsetDateTime::now_utc());
    let stored = attest_store::DeviceKey::new(
        production.key_id(),
        "install-42",
        OTHER_APP,
        attest_store::Environment::Production,
        production.public_key_spki(),
        attest_store::AppleEvidence::default(),
        now,
    );
    store.insert_device_key(&stored, &[]).await.expect("store");
    store.close().await;

    // A new development key replaces only the development key.
    let development2 = device();
    let dev2 = created(
        server
            .attest_as(&development2, OTHER_APP, install(&development2), |b| b)
            .await,
    )
    .await;
    assert_eq!(
        dev2["supersedes"],
        json!([key_id(&development)]),
        "another environment is another lineage"
    );
    assert_eq!(
        dev2["deviceIntelligence"]["environments"],
        json!(["development", "production"])
    );
    assert_eq!(dev2["deviceIntelligence"]["activeKeys"], 2);
    assert_eq!(
        server.assert_counter(&production, OTHER_APP, 1).await.0,
        StatusCode::OK
    );
    assert_eq!(
        server.assert_counter(&development2, OTHER_APP, 1).await.0,
        StatusCode::OK
    );
    reattest(
        &server.assert_counter(&development, OTHER_APP, 1).await,
        StatusCode::FORBIDDEN,
        "key_superseded",
    );
    let detail = server.admin_device(&production).await;
    assert_eq!(detail["environment"], "production");
    assert_eq!(detail["keys"].as_array().unwrap().len(), 3);
    assert_eq!(detail["intelligence"]["activeKeys"], 2);
}

async fn a_revoked_key_must_reattest(db: &Db) {
    let server = Server::start_linking(db).await;
    let revoked = device();
    let attested = created(server.attest_as(&revoked, APP, json!({}), |b| b).await).await;
    let path = format!(
        "/admin/v1/devices/{}/revoke",
        URL_SAFE_NO_PAD.encode(revoked.key_id())
    );
    let (status, view) = server.admin(Method::POST, &path, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["revocationReason"], "revoked");
    let answer = server.assert_counter(&revoked, APP, 1).await;
    reattest(&answer, StatusCode::FORBIDDEN, "key_revoked");
    assert_eq!(answer.1["details"]["decision"]["outcome"], "deny");

    // Re-attesting the device gives a working key; the revoked one stays revoked, unlinked.
    let fresh = device();
    let vouched = linked(APP, &fresh, None, attested["deviceId"].as_str());
    let again = created(server.attest_as(&fresh, APP, vouched, |b| b).await).await;
    assert_eq!(again["deviceId"], attested["deviceId"]);
    assert_eq!(again["supersedes"], json!([]));
    assert_eq!(
        server.assert_counter(&fresh, APP, 1).await.0,
        StatusCode::OK
    );
    let old = server.admin_device(&revoked).await;
    assert_eq!(old["revocationReason"], "revoked");
    assert_eq!(old["supersededBy"], Value::Null);

    let stranger = device();
    reattest(
        &server.assert_counter(&stranger, APP, 1).await,
        StatusCode::NOT_FOUND,
        "key_unknown",
    );
}

async fn an_idle_key_expires(db: &Db) {
    let mut config = common::config(db);
    config.key_idle_expiry = Some(Duration::from_secs(2));
    let server = Server::start_with(config).await;
    let idle = device();
    let active = device();
    server.attest(&idle).await;
    server.attest(&active).await;
    for _ in 0..4 {
        // `active` keeps being used; `idle` is not.
        tokio::time::sleep(Duration::from_millis(900)).await;
        let counter = server.admin_device(&active).await["counter"]
            .as_u64()
            .unwrap() as u32
            + 1;
        assert_eq!(
            server.assert_counter(&active, APP, counter).await.0,
            StatusCode::OK
        );
    }
    reattest(
        &server.assert_counter(&idle, APP, 1).await,
        StatusCode::FORBIDDEN,
        "key_expired",
    );
    let stored = server.admin_device(&idle).await;
    assert_eq!(stored["revocationReason"], "expired");
    assert!(stored["revokedAt"].is_string());
    // Still expired, still there: keys are never deleted.
    reattest(
        &server.assert_counter(&idle, APP, 1).await,
        StatusCode::FORBIDDEN,
        "key_expired",
    );
}

async fn idle_keys_are_expired_by_the_maintenance_task(db: &Db) {
    let mut config = common::config(db);
    config.key_idle_expiry = Some(Duration::from_secs(1));
    config.maintenance_interval = Duration::from_millis(200);
    let server = Server::start_with(config).await;
    let idle = device();
    server.attest(&idle).await;
    let mut reason = Value::Null;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        reason = server.admin_device(&idle).await["revocationReason"].clone();
        if reason == "expired" {
            break;
        }
    }
    assert_eq!(reason, "expired", "expired without any request");
    assert!(
        server
            .metrics()
            .await
            .contains("attestd_keys_expired_total")
    );
}

async fn old_decisions_are_purged_by_the_maintenance_task(db: &Db) {
    let mut config = common::config(db);
    config.decision_retention = Some(Duration::from_secs(86_400));
    config.maintenance_interval = Duration::from_millis(200);
    // An old decision, logged before the server starts (as if by an earlier run).
    let store = attest_store::AnyStore::connect(&db.url)
        .await
        .expect("open the store");
    let long_ago =
        attest_store::whole_seconds(time::OffsetDateTime::now_utc()) - time::Duration::days(2);
    let old = attest_store::Decision::new(
        long_ago,
        APP,
        "/v1/assertions",
        attest_store::Outcome::Deny,
        "counter_invalid",
    );
    store.record_decision(&old).await.expect("log");
    let server = Server::start_with(config).await;
    server.attest(&device()).await;
    let mut ats = Vec::new();
    for _ in 0..200 {
        let (status, list) = server
            .admin(Method::GET, "/admin/v1/decisions", Some(ADMIN_TOKEN))
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        ats = list["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["code"].as_str().unwrap().to_owned())
            .collect();
        if !ats.iter().any(|code| code == "counter_invalid") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ats, ["ok"], "the old decision is gone, the new one stays");
    assert!(
        server
            .metrics()
            .await
            .contains("attestd_decisions_purged_total")
    );
    store.close().await;
}

async fn bad_ids_and_admin_queries_are_refused_with_400(db: &Db) {
    let server = Server::start(db).await;
    for (field, value) in [
        ("userId", json!("x".repeat(129))),
        ("deviceId", json!("tab\tinside")),
        ("userId", json!(42)),
    ] {
        let answer = server
            .attest_as(&device(), APP, json!({ field: value }), |b| b)
            .await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
    }
    for query in [
        "/admin/v1/decisions?outcome=maybe",
        "/admin/v1/decisions?wouldDeny=perhaps",
        "/admin/v1/decisions?since=yesterday",
        "/admin/v1/decisions?beforeId=abc",
        "/admin/v1/decisions?keyId=not-a-key",
        "/admin/v1/apps/TESTTEAM01.dev.attestd.tests/summary?since=soon",
        "/admin/v1/webhooks/deliveries?limit=-1",
    ] {
        let answer = server.admin(Method::GET, query, Some(ADMIN_TOKEN)).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
    }
    let answer = server
        .admin(
            Method::GET,
            "/admin/v1/apps/NOPE.app/summary",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "unknown_app");
    // Empty ids are no ids; `since` takes unix seconds too.
    let answer = server
        .attest_as(
            &device(),
            APP,
            json!({ "userId": "  ", "deviceId": "" }),
            |b| b,
        )
        .await;
    assert_eq!(answer.0, StatusCode::CREATED, "{}", answer.1);
    assert!(answer.1["deviceId"].as_str().unwrap().starts_with("dev_"));
    assert_eq!(answer.1["link"], json!({ "status": "none" }));
    let log = server
        .admin_get(&format!(
            "/admin/v1/decisions?since=0&limit=1&appId={OTHER_APP}"
        ))
        .await;
    assert_eq!(log["decisions"], json!([]));
}
