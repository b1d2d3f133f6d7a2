//! Races: two server instances on one database, the same attestation and the same assertion
//! each submitted 50 times at once. Exactly one of each may succeed.

use crate::common;

use std::sync::Arc;

use common::{APP, Db, Server, assertion_body, attestation, attestation_body, device};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::task::JoinSet;

const ATTEMPTS: usize = 50;

on_both_stores!(
    one_of_fifty_identical_requests_wins_across_two_instances,
    one_of_fifty_identical_android_requests_wins_across_two_instances,
);

/// Sends `body` to `path` `ATTEMPTS` times at once, alternating between the servers.
async fn race(
    servers: &[Arc<Server>; 2],
    path: &'static str,
    body: &Value,
) -> Vec<(StatusCode, Value)> {
    let mut requests = JoinSet::new();
    for attempt in 0..ATTEMPTS {
        let server = Arc::clone(&servers[attempt % 2]);
        let body = body.clone();
        requests.spawn(async move { server.post(path, &body).await });
    }
    requests.join_all().await
}

async fn one_of_fifty_identical_requests_wins_across_two_instances(db: &Db) {
    let servers = [
        Arc::new(Server::start(db).await),
        Arc::new(Server::start(db).await),
    ];
    let device = device();

    let challenge = servers[0].challenge(APP).await;
    let body = attestation_body(
        &device,
        APP,
        &challenge,
        &attestation(&device, APP, &challenge),
    );
    let answers = race(&servers, "/v1/attestations", &body).await;
    let winners: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for (status, body) in answers
        .iter()
        .filter(|(status, _)| *status != StatusCode::CREATED)
    {
        assert_eq!(*status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["code"], "challenge_invalid", "{body}");
    }

    let next = winners[0].1["nextChallenge"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    let assertion = device.assert(APP, next.as_bytes(), 1);
    let body = assertion_body(&device, &next, &assertion);
    let answers = race(&servers, "/v1/assertions", &body).await;
    let accepted = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    assert_eq!(accepted, 1, "{answers:?}");
    for (status, body) in answers
        .iter()
        .filter(|(status, _)| *status != StatusCode::OK)
    {
        let code = body["code"].as_str().unwrap_or_default();
        match code {
            "challenge_invalid" => assert_eq!(*status, StatusCode::BAD_REQUEST),
            "counter_invalid" => assert_eq!(*status, StatusCode::UNPROCESSABLE_ENTITY),
            _ => panic!("unexpected answer {status} {body}"),
        }
    }
}

/// Android has no counter: the spent challenge alone lets one of the copies through.
async fn one_of_fifty_identical_android_requests_wins_across_two_instances(db: &Db) {
    use crate::android::{
        PACKAGE, SIGNING_DIGEST, android_config, attestation_body, chain, signed_request,
    };
    let servers = [
        Arc::new(Server::start_with(android_config(db)).await),
        Arc::new(Server::start_with(android_config(db)).await),
    ];
    let challenge = servers[0].challenge(PACKAGE).await;
    let device = chain(&challenge, PACKAGE, &SIGNING_DIGEST);
    let answers = race(
        &servers,
        "/v1/attestations",
        &attestation_body(&device, &challenge),
    )
    .await;
    let winners: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    let next = winners[0].1["nextChallenge"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    let answers = race(&servers, "/v1/assertions", &signed_request(&device, &next)).await;
    let accepted = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    assert_eq!(accepted, 1, "{answers:?}");
    for (status, body) in answers
        .iter()
        .filter(|(status, _)| *status != StatusCode::OK)
    {
        assert_eq!(*status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["code"], "challenge_invalid", "{body}");
    }
}
