//! Per-app policy through HTTP: off, monitor and enforce; switching an app from monitor to
//! enforce blocks exactly what the decision log and metrics said it would; receipt,
//! environment and time-window rules; the hosted ATT_004 answer.

use crate::common;

use attest_policy::{ClockTime, Environment, Policy, PolicyMode, TimeWindow};
use attestd::server::Config;
use base64::Engine;
use common::{
    APP, Db, OTHER_APP, Server, attestation, attestation_body, attestation_with, claims, device,
    factor_names, key_id,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

on_both_stores!(
    switching_from_monitor_to_enforce_blocks_the_same_device,
    the_hosted_route_answers_att_004_for_a_high_risk_device,
    off_mode_enforces_no_rule_but_a_failed_proof_is_still_refused,
    receipt_and_environment_rules_in_monitor_and_enforce,
    time_windows_in_monitor_and_enforce,
);

fn with_policy(db: &Db, app: usize, policy: Policy) -> Config {
    let mut config = common::config(db);
    config.apps[app].policy = policy;
    config
}

fn max_risk(mode: PolicyMode, max: u8) -> Policy {
    Policy {
        mode,
        max_risk_score: Some(max),
        ..Policy::default()
    }
}

fn reason_codes(decision: &Value) -> Vec<&str> {
    decision["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect()
}

async fn switching_from_monitor_to_enforce_blocks_the_same_device(db: &Db) {
    let server = Server::start_with(with_policy(db, 0, max_risk(PolicyMode::Monitor, 20))).await;
    let risky = device();
    let clean = device();

    // Monitor: let through, marked, with what enforcing would do.
    let (status, attested) = server
        .attest_as(&risky, APP, json!({}), |b| b.omit_receipt())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{attested}");
    assert_eq!(attested["riskScore"], 35);
    let decision = &attested["decision"];
    assert_eq!(decision["outcome"], "allow_monitored");
    assert_eq!(decision["mode"], "monitor");
    assert_eq!(decision["wouldDeny"], true);
    assert_eq!(reason_codes(decision), ["risk_above_max"]);
    assert!(
        decision["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("risk score 35 > max 20"),
        "{decision}"
    );
    assert_eq!(decision["hostedCode"], "ATT_004");
    assert_eq!(attested["permissions"], json!(["basic", "payments"]));
    assert_eq!(
        claims(attested["token"].as_str().unwrap())["decision"],
        "allow_monitored"
    );
    let risky_device_id = attested["deviceId"].as_str().unwrap().to_owned();
    let (status, asserted) = server.assert_counter(&risky, APP, 1).await;
    assert_eq!(status, StatusCode::OK, "{asserted}");
    assert_eq!(asserted["decision"]["outcome"], "allow_monitored");

    let (status, fine) = server.attest_as(&clean, APP, json!({}), |b| b).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(fine["decision"]["outcome"], "allow");
    assert_eq!(fine["decision"]["wouldDeny"], false);

    // What enforcing would block: the log and the summary.
    let would = server
        .admin_get(&format!(
            "/admin/v1/decisions?appId={APP}&wouldDeny=true&outcome=allow_monitored"
        ))
        .await;
    let blocked = would["decisions"].as_array().unwrap();
    assert_eq!(blocked.len(), 2, "{would}");
    for entry in blocked {
        assert_eq!(entry["deviceId"], risky_device_id);
        assert_eq!(entry["reasons"][0]["code"], "risk_above_max");
        assert_eq!(entry["riskScore"], 35);
        assert_eq!(entry["riskBand"], "medium");
        assert_eq!(entry["mode"], "monitor");
    }
    assert_eq!(blocked[0]["kind"], "assertion");
    assert_eq!(blocked[1]["kind"], "attestation");
    let summary = server
        .admin_get(&format!("/admin/v1/apps/{APP}/summary"))
        .await;
    assert_eq!(summary["mode"], "monitor");
    assert_eq!(summary["maxRiskScore"], 20);
    assert_eq!(summary["total"], 3);
    assert_eq!(summary["wouldDenyAllowed"], 2);
    assert_eq!(summary["wouldDenyDevices"], 1);
    assert_eq!(
        summary["byReason"],
        json!([{ "outcome": "allow_monitored", "reason": "risk_above_max", "count": 2 }])
    );
    let metrics = server.metrics().await;
    for line in [
        format!(
            r#"attestd_decisions_total{{app="{APP}",outcome="allow_monitored",reason="risk_above_max"}}"#
        ),
        format!(r#"attestd_decisions_total{{app="{APP}",outcome="allow",reason="none"}}"#),
        format!(r#"attestd_risk_score_bucket{{app="{APP}",kind="attestation",le="50"}}"#),
        format!(r#"attestd_risk_factors_total{{app="{APP}",factor="receipt_missing"}}"#),
    ] {
        assert!(metrics.contains(&line), "{line} missing");
    }
    server.stop().await;

    // The same app, switched to enforce: the same device is now refused, the clean one is not.
    let server = Server::start_with(with_policy(db, 0, max_risk(PolicyMode::Enforce, 20))).await;
    let (status, denied) = server.assert_counter(&risky, APP, 2).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{denied}");
    assert_eq!(denied["code"], "policy_denied");
    let details = &denied["details"];
    assert_eq!(details["reasons"], json!(["risk_above_max"]));
    assert_eq!(details["hostedCode"], "ATT_004");
    assert_eq!(details["decision"]["outcome"], "deny");
    assert_eq!(details["decision"]["mode"], "enforce");
    assert_eq!(details["riskScore"], 35);
    assert_eq!(factor_names(details), ["receipt_missing", "new_device"]);
    assert_eq!(details["permissions"], json!([]));
    let (status, ok) = server.assert_counter(&clean, APP, 1).await;
    assert_eq!(status, StatusCode::OK, "{ok}");

    // The denied assertion was genuine: its counter moved on (counters never go back).
    assert_eq!(server.admin_device(&risky).await["counter"], 2);
    let denied_log = server
        .admin_get(&format!("/admin/v1/decisions?appId={APP}&outcome=deny"))
        .await;
    assert_eq!(
        denied_log["decisions"][0]["code"], "ok",
        "the proof verified"
    );
    assert_eq!(
        denied_log["decisions"][0]["reasons"][0]["code"],
        "risk_above_max"
    );
    let summary = server
        .admin_get(&format!("/admin/v1/apps/{APP}/summary"))
        .await;
    assert_eq!(summary["mode"], "enforce");
    assert_eq!(summary["wouldDenyDevices"], 1);
}

async fn the_hosted_route_answers_att_004_for_a_high_risk_device(db: &Db) {
    let mut config = with_policy(db, 0, max_risk(PolicyMode::Enforce, 20));
    config.apps[1].policy = Policy {
        require_valid_receipt: true,
        ..Policy::default()
    };
    let server = Server::start_with(config).await;
    for (app, status, code, error, reason) in [
        (
            APP,
            StatusCode::FORBIDDEN,
            "ATT_004",
            "high_risk_device",
            "risk_above_max",
        ),
        (
            OTHER_APP,
            StatusCode::FORBIDDEN,
            "ATT_002",
            "invalid_attestation",
            "receipt_missing",
        ),
    ] {
        let device = device();
        let challenge = server.challenge(app).await;
        let object = attestation_with(&device, app, &challenge, |b| b.omit_receipt());
        let body = json!({
            "keyId": key_id(&device),
            "attestation": base64::engine::general_purpose::STANDARD.encode(&object),
            "challenge": challenge,
            "appId": app,
        });
        let (got, answer) = server.post("/api/v1/attestation/validate", &body).await;
        assert_eq!(got, status, "{answer}");
        assert_eq!(answer["code"], code, "{answer}");
        assert_eq!(answer["error"], error);
        assert_eq!(answer["details"]["reason"], reason);
        assert_eq!(answer["details"]["riskScore"], 35);
        assert_eq!(
            factor_names(&answer["details"]),
            ["receipt_missing", "new_device"]
        );
    }
    // A clean device passes the hosted route with its risk.
    let device = device();
    let challenge = server.challenge(APP).await;
    let body = json!({
        "keyId": key_id(&device),
        "attestation": base64::engine::general_purpose::STANDARD
            .encode(attestation(&device, APP, &challenge)),
        "challenge": challenge,
        "appId": APP,
    });
    let (status, answer) = server.post("/api/v1/attestation/validate", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["deviceIntelligence"]["riskScore"], 5);
}

async fn off_mode_enforces_no_rule_but_a_failed_proof_is_still_refused(db: &Db) {
    let server = Server::start_with(with_policy(db, 0, max_risk(PolicyMode::Off, 0))).await;
    let (status, answer) = server
        .attest_as(&device(), APP, json!({}), |b| b.omit_receipt())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["decision"]["outcome"], "allow");
    assert_eq!(answer["decision"]["mode"], "off");
    assert_eq!(answer["decision"]["wouldDeny"], true);
    assert_eq!(reason_codes(&answer["decision"]), ["risk_above_max"]);

    // Off relaxes rules, never the proof: there is no verified key to let through.
    let device = device();
    let challenge = server.challenge(APP).await;
    let object = attestation(&device, APP, "not the challenge");
    let (status, error) = server
        .post(
            "/v1/attestations",
            &attestation_body(&device, APP, &challenge, &object),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["details"]["decision"]["outcome"], "deny");
    assert_eq!(
        reason_codes(&error["details"]["decision"]),
        ["verification_failed", "risk_above_max"]
    );
}

async fn receipt_and_environment_rules_in_monitor_and_enforce(db: &Db) {
    let strict = |mode| Policy {
        mode,
        require_valid_receipt: true,
        allowed_environments: vec![Environment::Production],
        ..Policy::default()
    };
    let mut config = with_policy(db, 0, strict(PolicyMode::Monitor));
    config.apps[1].policy = strict(PolicyMode::Enforce);
    let server = Server::start_with(config).await;

    let (status, monitored) = server
        .attest_as(&device(), APP, json!({}), |b| b.omit_receipt())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{monitored}");
    assert_eq!(monitored["decision"]["outcome"], "allow_monitored");
    assert_eq!(
        reason_codes(&monitored["decision"]),
        ["receipt_missing", "environment_not_allowed"]
    );
    assert_eq!(monitored["decision"]["hostedCode"], "ATT_002");

    let (status, denied) = server
        .attest_as(&device(), OTHER_APP, json!({}), |b| {
            b.receipt_with(|r| r.corrupt_signature())
        })
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{denied}");
    assert_eq!(denied["code"], "policy_denied");
    assert_eq!(
        denied["details"]["reasons"],
        json!(["receipt_invalid", "environment_not_allowed"])
    );
    assert!(
        denied["details"]["decision"]["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .contains("receipt_signature_invalid")
    );
}

async fn time_windows_in_monitor_and_enforce(db: &Db) {
    // A one-hour window starting two hours from now: now is always outside it.
    let hour = OffsetDateTime::now_utc().hour();
    let later = |offset: u8| ClockTime::new((hour + offset) % 24, 0).unwrap();
    let closed = vec![TimeWindow {
        days: None,
        start: later(2),
        end: later(3),
        utc_offset_minutes: 0,
    }];
    // start == end: the whole day.
    let open = vec![TimeWindow {
        days: None,
        start: later(0),
        end: later(0),
        utc_offset_minutes: 0,
    }];
    let window = |mode, windows| Policy {
        mode,
        time_windows: windows,
        ..Policy::default()
    };
    let mut config = with_policy(db, 0, window(PolicyMode::Monitor, closed.clone()));
    config.apps[1].policy = window(PolicyMode::Enforce, closed);
    let server = Server::start_with(config).await;

    let (status, monitored) = server.attest_as(&device(), APP, json!({}), |b| b).await;
    assert_eq!(status, StatusCode::CREATED, "{monitored}");
    assert_eq!(monitored["decision"]["outcome"], "allow_monitored");
    assert_eq!(
        reason_codes(&monitored["decision"]),
        ["outside_time_window"]
    );
    assert!(
        monitored["decision"].get("hostedCode").is_none(),
        "no hosted code"
    );

    let enforced = device();
    let (status, denied) = server
        .attest_as(&enforced, OTHER_APP, json!({}), |b| b)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{denied}");
    assert_eq!(denied["details"]["reasons"], json!(["outside_time_window"]));
    server.stop().await;

    let mut config = with_policy(db, 0, window(PolicyMode::Monitor, open.clone()));
    config.apps[1].policy = window(PolicyMode::Enforce, open);
    let server = Server::start_with(config).await;
    let (status, allowed) = server
        .attest_as(&device(), OTHER_APP, json!({}), |b| b)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{allowed}");
    assert_eq!(allowed["decision"]["outcome"], "allow");
    // The key denied by the window was stored; inside the window its assertions pass.
    let (status, asserted) = server.assert_counter(&enforced, OTHER_APP, 1).await;
    assert_eq!(status, StatusCode::OK, "{asserted}");
}
