//! The provider token: loaded from a .p8 PEM, checked by an independent JWT library and by the
//! fake (signature, `kid`, `iss`, `iat`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use attest_apple::fake::{FakeApple, generate_credentials};
use attest_apple::{
    AppleCredentials, CredentialsError, DeviceCheckClient, Error, TOKEN_REUSE_SECS,
};
use attest_core::UnixTime;
use common::DEVICE_TOKEN;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

const TEAM_ID: &str = "ABCDE12345";
const KEY_ID: &str = "2X9R4HXF34";

/// A `.p8` file as Apple hands it out: PKCS#8 P-256 in a `PRIVATE KEY` PEM block.
fn p8_file() -> String {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem()
}

#[derive(Debug, serde::Deserialize, PartialEq)]
struct Claims {
    iss: String,
    iat: u64,
}

#[test]
fn p8_key_signs_a_token_an_independent_library_accepts() {
    let pem = p8_file();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let credentials = AppleCredentials::from_p8_pem(TEAM_ID, KEY_ID, &pem).unwrap();
    let token = credentials
        .authorization_jwt(UnixTime::since_unix_epoch(Duration::from_secs(
            1_800_000_000,
        )))
        .unwrap();

    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.kid.as_deref(), Some(KEY_ID));
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let key = DecodingKey::from_ec_pem(
        rcgen::KeyPair::from_pem(&pem)
            .unwrap()
            .public_key_pem()
            .as_bytes(),
    )
    .unwrap();
    let data = jsonwebtoken::decode::<Claims>(&token, &key, &validation).unwrap();
    assert_eq!(
        data.claims,
        Claims {
            iss: TEAM_ID.into(),
            iat: 1_800_000_000
        }
    );
}

#[test]
fn p8_with_windows_line_endings_and_surrounding_text_loads() {
    let pem = p8_file().replace('\n', "\r\n");
    let text = format!("AuthKey_{KEY_ID}.p8\r\n{pem}\r\n");
    assert!(AppleCredentials::from_p8_pem(TEAM_ID, KEY_ID, &text).is_ok());
}

#[test]
fn rejects_what_is_not_a_p256_p8_key() {
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
        .unwrap()
        .serialize_pem();
    assert_eq!(
        AppleCredentials::from_p8_pem(TEAM_ID, KEY_ID, &p384).map(|_| ()),
        Err(CredentialsError::InvalidPrivateKey)
    );
    assert_eq!(
        AppleCredentials::from_p8_pem(
            TEAM_ID,
            KEY_ID,
            "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----"
        )
        .map(|_| ()),
        Err(CredentialsError::InvalidPem)
    );
    assert_eq!(
        AppleCredentials::from_p8_pem("ABC", KEY_ID, &p8_file()).map(|_| ()),
        Err(CredentialsError::InvalidTeamId)
    );
}

#[test]
fn the_same_token_is_sent_for_twenty_minutes() {
    let credentials = generate_credentials(TEAM_ID, KEY_ID).unwrap();
    let at = |secs| UnixTime::since_unix_epoch(Duration::from_secs(secs));
    let first = credentials.authorization_jwt(at(10_000)).unwrap();
    assert_eq!(
        credentials.authorization_jwt(at(10_000 + 600)).unwrap(),
        first
    );
    assert_ne!(
        credentials
            .authorization_jwt(at(10_000 + TOKEN_REUSE_SECS))
            .unwrap(),
        first
    );
}

/// A DeviceCheck client for `apple` signing with `credentials`.
fn client_with(apple: &FakeApple, credentials: AppleCredentials) -> DeviceCheckClient {
    DeviceCheckClient::builder(Arc::new(credentials))
        .base_url(apple.base_url())
        .http_options(common::http_options())
        .build()
        .unwrap()
}

#[tokio::test]
async fn fake_rejects_a_token_signed_by_another_key_with_the_same_ids() {
    let trusted = Arc::new(generate_credentials(TEAM_ID, KEY_ID).unwrap());
    let apple = FakeApple::builder()
        .credentials(Arc::clone(&trusted))
        .start()
        .await
        .unwrap();
    let now = UnixTime::now();
    let other_key = AppleCredentials::from_p8_pem(TEAM_ID, KEY_ID, &p8_file()).unwrap();
    assert_eq!(
        client_with(&apple, other_key)
            .validate_device_token(DEVICE_TOKEN, now)
            .await,
        Err(Error::Unauthorized)
    );
    assert_eq!(apple.counts().unauthorized, 1);
}

#[tokio::test]
async fn fake_device_check_wants_a_bearer_token() {
    let apple = FakeApple::start().await;
    let jwt = apple
        .credentials()
        .authorization_jwt(UnixTime::now())
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!(
        "{}{}",
        apple.base_url(),
        attest_apple::VALIDATE_DEVICE_TOKEN_PATH
    );
    let body = serde_json::json!({
        "device_token": DEVICE_TOKEN,
        "transaction_id": "5b1c6e0c-1111-4222-8333-444455556666",
        "timestamp": UnixTime::now().as_secs() * 1000,
    });
    for authorization in [None, Some(jwt.clone()), Some(format!("Bearer {jwt}x"))] {
        let mut request = http.post(&url).json(&body);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 401);
        assert_eq!(
            answer.text().await.unwrap(),
            "Unable to verify authorization token"
        );
    }
    let answer = http
        .post(&url)
        .header("authorization", format!("Bearer {jwt}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
}

#[tokio::test]
async fn fake_checks_team_and_key_id_with_the_trusted_key() {
    // One private key, loaded under the right ids and under wrong ones: only the ids differ.
    let pem = p8_file();
    let trusted = Arc::new(AppleCredentials::from_p8_pem(TEAM_ID, KEY_ID, &pem).unwrap());
    let apple = FakeApple::builder()
        .credentials(trusted)
        .start()
        .await
        .unwrap();
    let now = UnixTime::now();
    let with_ids = |team: &str, key: &str| {
        client_with(
            &apple,
            AppleCredentials::from_p8_pem(team, key, &pem).unwrap(),
        )
    };
    assert!(
        with_ids(TEAM_ID, KEY_ID)
            .validate_device_token(DEVICE_TOKEN, now)
            .await
            .is_ok()
    );
    assert_eq!(
        with_ids("ZZZZZ99999", KEY_ID)
            .validate_device_token(DEVICE_TOKEN, now)
            .await,
        Err(Error::Unauthorized)
    );
    assert_eq!(
        with_ids(TEAM_ID, "ZZZZZ99999")
            .validate_device_token(DEVICE_TOKEN, now)
            .await,
        Err(Error::Unauthorized)
    );
}

#[tokio::test]
async fn fake_rejects_tokens_from_the_future_and_older_than_an_hour() {
    let apple = FakeApple::start().await;
    let client = DeviceCheckClient::builder(apple.credentials())
        .base_url(apple.base_url())
        .http_options(common::http_options())
        .build()
        .unwrap();
    let now = time::OffsetDateTime::now_utc();
    apple.set_now(now - time::Duration::minutes(5));
    assert_eq!(
        client
            .validate_device_token(DEVICE_TOKEN, common::unix(now))
            .await,
        Err(Error::Unauthorized),
        "iat five minutes ahead of Apple's clock"
    );
    apple.set_now(now + time::Duration::minutes(59));
    // iat fresh enough for the token, but the request timestamp is 59 minutes old: within
    // the fake's one-hour window too.
    assert!(
        client
            .validate_device_token(DEVICE_TOKEN, common::unix(now))
            .await
            .is_ok()
    );
    apple.set_now(now + time::Duration::minutes(61));
    assert_eq!(
        client
            .validate_device_token(DEVICE_TOKEN, common::unix(now))
            .await,
        Err(Error::Unauthorized)
    );
}
