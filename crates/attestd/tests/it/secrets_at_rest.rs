//! Secrets at rest through the real server, on both stores: with a key-encryption key the JWT
//! signing keys and the challenge key are sealed in the database, existing plaintext ones are
//! sealed at startup (the same keys: tokens and challenges issued before stay valid), a server
//! without the key or with another one refuses to start, and instances sharing the database
//! and the key interoperate.

use crate::common;

use std::os::unix::fs::PermissionsExt;

use attestd::server::config::Secret;
use attestd::server::{Config, ServeError};
use base64::Engine;
use common::{ADMIN_TOKEN, APP, Db, Server, attestation, attestation_body, device};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::Connection;

on_both_stores!(
    a_key_encryption_key_seals_the_secrets_and_is_then_required,
    plaintext_secrets_are_sealed_at_startup_and_stay_the_same_keys,
    instances_sharing_the_database_and_the_key_interoperate,
);

const SEALED_PREFIX: &[u8] = b"attestd-sealed:v1:";

fn kek(byte: u8) -> Secret {
    Secret::new(base64::engine::general_purpose::STANDARD.encode([byte; 32]))
}

fn config_with(db: &Db, key: Option<Secret>) -> Config {
    let mut config = common::config(db);
    config.key_encryption_key = key;
    config
}

/// `server::run` on `config`, for a configuration that must not start: its error.
async fn refused(config: Config) -> ServeError {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    attestd::server::run(config, listener, std::future::pending())
        .await
        .expect_err("the server must not start")
}

/// Every value of `column` in `table`, read past the store.
async fn raw(db: &Db, query: &'static str) -> Vec<Vec<u8>> {
    if db.url.starts_with("sqlite:") {
        let mut connection = sqlx::SqliteConnection::connect(&db.url).await.expect("raw");
        sqlx::query_scalar(query)
            .fetch_all(&mut connection)
            .await
            .expect("raw read")
    } else {
        let mut connection = sqlx::PgConnection::connect(&db.url).await.expect("raw");
        sqlx::query_scalar(query)
            .fetch_all(&mut connection)
            .await
            .expect("raw read")
    }
}

/// The kid of a token, and whether it verifies against `server`'s JWKS.
async fn verifies(server: &Server, token: &str) -> bool {
    let (_, jwks) = server.get("/.well-known/jwks.json").await;
    let jwks: JwkSet = serde_json::from_value(jwks).expect("JWKS");
    let kid = jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid");
    let Some(jwk) = jwks.find(&kid) else {
        return false;
    };
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[APP]);
    jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_jwk(jwk).expect("key"),
        &validation,
    )
    .is_ok()
}

async fn a_key_encryption_key_seals_the_secrets_and_is_then_required(db: &Db) {
    let server = Server::start_with(config_with(db, Some(kek(1)))).await;
    let token = server.attest(&device()).await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    // A challenge issued now, answered after the restart: the challenge key survived.
    let pending = device();
    let challenge = server.challenge(APP).await;
    server.stop().await;

    for row in raw(db, "SELECT private_pkcs8 FROM signing_keys").await {
        assert!(row.starts_with(SEALED_PREFIX), "{:02x?}", &row[..8]);
        assert_ne!(row[0], 0x30, "no PKCS#8 SEQUENCE in the row");
    }
    let secrets = raw(db, "SELECT secret FROM server_secrets").await;
    assert!(!secrets.is_empty() && secrets.iter().all(|row| row.starts_with(SEALED_PREFIX)));

    let error = refused(config_with(db, None)).await.to_string();
    assert!(
        error.contains("the database's secrets are encrypted")
            && error.contains("ATTESTD_KEY_ENCRYPTION_KEY"),
        "{error}"
    );
    let error = refused(config_with(db, Some(kek(2)))).await.to_string();
    assert!(
        error.contains("wrong ATTESTD_KEY_ENCRYPTION_KEY"),
        "{error}"
    );

    // The right key, from a file this time.
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("kek");
    std::fs::write(&file, format!("{}\n", kek(1).expose())).expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let mut config = config_with(db, None);
    config.key_encryption_key_file = Some(file.clone());
    let server = Server::start_with(config).await;
    assert!(verifies(&server, &token).await, "the same signing key");
    let body = attestation_body(
        &pending,
        APP,
        &challenge,
        &attestation(&pending, APP, &challenge),
    );
    let (status, answer) = server.post("/v1/attestations", &body).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the same challenge key: {answer}"
    );
    server.stop().await;

    // A key file others may read is refused.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut config = config_with(db, None);
    config.key_encryption_key_file = Some(file);
    let error = refused(config).await.to_string();
    assert!(error.contains("0644") && error.contains("kek"), "{error}");
}

async fn plaintext_secrets_are_sealed_at_startup_and_stay_the_same_keys(db: &Db) {
    let server = Server::start_with(config_with(db, None)).await;
    let token = server.attest(&device()).await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let pending = device();
    let challenge = server.challenge(APP).await;
    server.stop().await;
    let plaintext = raw(db, "SELECT private_pkcs8 FROM signing_keys").await;
    assert!(
        plaintext.iter().all(|row| row.first() == Some(&0x30)),
        "stored as given"
    );

    let server = Server::start_with(config_with(db, Some(kek(3)))).await;
    assert!(verifies(&server, &token).await, "sealed, not replaced");
    let body = attestation_body(
        &pending,
        APP,
        &challenge,
        &attestation(&pending, APP, &challenge),
    );
    let (status, answer) = server.post("/v1/attestations", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    server.stop().await;
    let sealed = raw(db, "SELECT private_pkcs8 FROM signing_keys").await;
    assert_eq!(sealed.len(), plaintext.len());
    for (sealed, plain) in sealed.iter().zip(&plaintext) {
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(
            !sealed
                .windows(16)
                .any(|window| plain.windows(16).any(|run| run == window)),
            "no run of the PKCS#8 survives in the sealed row"
        );
    }
    let secrets = raw(db, "SELECT secret FROM server_secrets").await;
    assert!(secrets.iter().all(|row| row.starts_with(SEALED_PREFIX)));
}

async fn instances_sharing_the_database_and_the_key_interoperate(db: &Db) {
    let first = Server::start_with(config_with(db, Some(kek(4)))).await;
    let second = Server::start_with(config_with(db, Some(kek(4)))).await;
    let token = first.attest(&device()).await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert!(verifies(&second, &token).await);
    // A challenge of one instance, answered at the other.
    let pending = device();
    let challenge = first.challenge(APP).await;
    let body = attestation_body(
        &pending,
        APP,
        &challenge,
        &attestation(&pending, APP, &challenge),
    );
    let (status, answer) = second.post("/v1/attestations", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    let (status, rotated) = first
        .admin(
            Method::POST,
            "/admin/v1/signing-keys/rotate",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_kid = rotated["kid"].as_str().expect("kid").to_owned();
    // Another instance starting now signs with the rotated key, sealed by the first one.
    let third = Server::start_with(config_with(db, Some(kek(4)))).await;
    let token = third.attest(&device()).await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let kid = jsonwebtoken::decode_header(&token).expect("header").kid;
    assert_eq!(kid.as_deref(), Some(new_kid.as_str()));
    assert!(verifies(&first, &token).await);
    for server in [first, second, third] {
        server.stop().await;
    }
}
