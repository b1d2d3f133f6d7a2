//! The JWKS holds the active key and the keys whose tokens may still be in use: a replaced key
//! leaves it once its successor has been signing for the longest token lifetime (plus a
//! margin), whether or not anyone rotates again, and is deleted a day after that. Times are
//! injected through the store (keys created hours ago), and the rest goes through HTTP.

use crate::common;

use attest_store::{AnyStore, SigningKey, Store};
use attest_token::SigningKeyPair;
use common::{ADMIN_TOKEN, Db, Server};
use reqwest::{Method, StatusCode};
use time::{Duration, OffsetDateTime};

on_both_stores!(replaced_keys_leave_the_jwks_when_their_tokens_have_expired);

fn key(created_at: OffsetDateTime, retired_at: Option<OffsetDateTime>) -> SigningKey {
    let pair = SigningKeyPair::generate().expect("key");
    SigningKey {
        kid: pair.kid().to_owned(),
        algorithm: "ES256".into(),
        private_pkcs8: pair.pkcs8_der().to_vec(),
        created_at: attest_store::whole_seconds(created_at),
        retired_at: retired_at.map(attest_store::whole_seconds),
    }
}

async fn published(server: &Server) -> Vec<String> {
    let (status, jwks) = server.get("/.well-known/jwks.json").await;
    assert_eq!(status, StatusCode::OK);
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| key["kid"].as_str().expect("kid").to_owned())
        .collect()
}

async fn replaced_keys_leave_the_jwks_when_their_tokens_have_expired(db: &Db) {
    // Tokens live an hour (the test apps' default). Three keys: one retired two days ago, one
    // replaced two hours ago (its last tokens expired an hour ago), and the active one.
    let now = OffsetDateTime::now_utc();
    let gone = key(now - Duration::days(4), Some(now - Duration::days(2)));
    let replaced = key(now - Duration::hours(5), None);
    let active = key(now - Duration::hours(2), None);
    let store = AnyStore::connect(&db.url).await.expect("store");
    for key in [&gone, &replaced, &active] {
        store.insert_signing_key(key).await.expect("seed");
    }
    store.close().await;

    let server = Server::start(db).await;
    assert_eq!(published(&server).await, std::slice::from_ref(&active.kid));
    let token = server.attest(&common::device()).await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let kid = jsonwebtoken::decode_header(&token).expect("header").kid;
    assert_eq!(kid.as_deref(), Some(active.kid.as_str()));

    // A rotation keeps the key it replaces: its tokens are an hour from expiring.
    let (status, rotated) = server
        .admin(
            Method::POST,
            "/admin/v1/signing-keys/rotate",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["kid"].as_str().expect("kid").to_owned();
    assert_eq!(rotated["published"], serde_json::json!([new, active.kid]));
    assert_eq!(published(&server).await, [new.clone(), active.kid.clone()]);
    server.stop().await;

    let store = AnyStore::connect(&db.url).await.expect("store");
    let stored = store.signing_keys().await.expect("keys");
    store.close().await;
    let kids: Vec<(&str, bool)> = stored
        .iter()
        .map(|key| (key.kid.as_str(), key.retired_at.is_some()))
        .collect();
    assert_eq!(
        kids,
        [
            (replaced.kid.as_str(), true),
            (active.kid.as_str(), false),
            (new.as_str(), false)
        ],
        "the key retired two days ago is deleted, the replaced one retired"
    );
}
