//! The receipt client against the fake, one test per answer Apple documents.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use attest_apple::fake::{FakeApple, Scripted};
use attest_apple::{
    ATTESTATION_DATA_PATH, AuthorizationScheme, Error, RECEIPT_DEVELOPMENT_URL,
    RECEIPT_PRODUCTION_URL, ReceiptClient, ReceiptRefresh, receipt_base_url,
};
use attest_core::UnixTime;
use attest_core::apple::receipt::{ReceiptError, ReceiptType};
use attest_sim::{Environment, ReceiptCa};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{APP_ID, attest, receipt_client, setup, unix};
use time::OffsetDateTime;

fn refreshed(outcome: ReceiptRefresh) -> (Vec<u8>, attest_core::apple::receipt::VerifiedReceipt) {
    match outcome {
        ReceiptRefresh::Refreshed { receipt, verified } => (receipt, *verified),
        ReceiptRefresh::NotModified => panic!("expected a new receipt, got 304"),
    }
}

#[test]
fn base_urls_are_apples() {
    assert_eq!(RECEIPT_PRODUCTION_URL, "https://data.appattest.apple.com");
    assert_eq!(
        RECEIPT_DEVELOPMENT_URL,
        "https://data-development.appattest.apple.com"
    );
    assert_eq!(
        receipt_base_url(attest_core::apple::Environment::Development),
        RECEIPT_DEVELOPMENT_URL
    );
    let client = ReceiptClient::builder(
        common_credentials(),
        Arc::new(attest_core::apple::receipt::ReceiptVerifier::apple()),
    )
    .build()
    .unwrap();
    assert_eq!(
        client.endpoint(),
        "https://data.appattest.apple.com/v1/attestationData"
    );
}

fn common_credentials() -> Arc<attest_apple::AppleCredentials> {
    Arc::new(attest_apple::fake::generate_credentials("ABCDE12345", "KEYID12345").unwrap())
}

#[tokio::test]
async fn status_200_returns_a_verified_receipt_with_the_risk_metric() {
    let s = setup().await;
    s.apple.set_risk_metric(4);
    let (bytes, verified) = refreshed(s.client.refresh(&s.receipt, UnixTime::now()).await.unwrap());
    let receipt = &verified.receipt;
    assert_eq!(receipt.receipt_type, ReceiptType::Receipt);
    assert_eq!(receipt.app_id, APP_ID);
    assert_eq!(receipt.risk_metric, Some(4));
    assert_eq!(receipt.attested_certificate, s.attestation.leaf);
    assert_eq!(receipt.environment.as_deref(), Some("sandbox"));
    assert!(receipt.not_before.unwrap() > receipt.creation_time);
    // The bytes returned are the receipt itself, verifiable on their own.
    let again = s
        .apple
        .receipt_verifier()
        .verify(&bytes, UnixTime::now())
        .unwrap();
    assert_eq!(again, verified);

    // The request was the base64 receipt with the bare token.
    let request = s.apple.requests().pop().unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, ATTESTATION_DATA_PATH);
    assert_eq!(request.body, STANDARD.encode(&s.receipt).into_bytes());
    let authorization = request.authorization.unwrap();
    assert!(!authorization.starts_with("Bearer "));
    assert_eq!(authorization.split('.').count(), 3);
}

#[tokio::test]
async fn risk_metric_can_be_set_per_key_and_per_call() {
    let s = setup().await;
    let other = attest(&s.apple, Environment::Development);
    s.apple.set_risk_metric(2);
    s.apple.set_risk_metric_for_key(s.attestation.key_id, 9);
    let now = UnixTime::now();
    let metric = |outcome| refreshed(outcome).1.receipt.risk_metric;

    assert_eq!(
        metric(s.client.refresh(&s.receipt, now).await.unwrap()),
        Some(9)
    );
    let other_receipt = other.receipt.clone().unwrap();
    assert_eq!(
        metric(s.client.refresh(&other_receipt, now).await.unwrap()),
        Some(2)
    );
    s.apple.push_response(Scripted::RiskMetric(30));
    assert_eq!(
        metric(s.client.refresh(&s.receipt, now).await.unwrap()),
        Some(30)
    );
    assert_eq!(
        metric(s.client.refresh(&s.receipt, now).await.unwrap()),
        Some(9)
    );
}

#[tokio::test]
async fn status_304_before_not_before_then_200_after_it() {
    let s = setup().await;
    let start = OffsetDateTime::now_utc();
    s.apple.set_now(start);
    let (first, verified) = refreshed(s.client.refresh(&s.receipt, unix(start)).await.unwrap());
    let not_before = verified.receipt.not_before.unwrap();

    // Exchanging the new receipt right away: too early.
    let outcome = s.client.refresh(&first, unix(start)).await.unwrap();
    assert_eq!(outcome, ReceiptRefresh::NotModified);

    // After its Not Before, Apple issues the next one.
    let later = not_before + time::Duration::minutes(1);
    s.apple.set_now(later);
    let (_, next) = refreshed(s.client.refresh(&first, unix(later)).await.unwrap());
    assert!(next.receipt.creation_time > verified.receipt.creation_time);
}

#[tokio::test]
async fn status_400_incorrect_environment_for_a_receipt_of_the_other_environment() {
    let s = setup().await;
    let production = attest(&s.apple, Environment::Production);
    let result = s
        .client
        .refresh(&production.receipt.unwrap(), UnixTime::now())
        .await;
    assert_eq!(result, Err(Error::IncorrectEnvironment));
    assert_eq!(result.unwrap_err().code(), "apple_incorrect_environment");
}

#[tokio::test]
async fn status_400_bad_payload() {
    let s = setup().await;
    s.apple.push_response(Scripted::status(400));
    let result = s.client.refresh(&s.receipt, UnixTime::now()).await;
    assert_eq!(result, Err(Error::BadPayload));
}

#[tokio::test]
async fn fake_answers_bad_payload_to_what_is_not_a_base64_receipt() {
    let apple = FakeApple::start().await;
    let jwt = apple
        .credentials()
        .authorization_jwt(UnixTime::now())
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{}{ATTESTATION_DATA_PATH}", apple.base_url());
    // The mistakes seen in the field: raw CBOR, JSON, base64 of something else.
    let bodies: [&[u8]; 3] = [
        &[0xa3, 0x63, 0x66, 0x6d, 0x74],
        br#"{"keyId":"abc","attestationData":"xyz"}"#,
        b"aGVsbG8gd29ybGQ=",
    ];
    for body in bodies {
        let answer = http
            .post(&url)
            .header("authorization", &jwt)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 400);
        assert_eq!(answer.text().await.unwrap(), "Bad Payload");
    }
}

#[tokio::test]
async fn a_malformed_receipt_is_not_sent() {
    let s = setup().await;
    let result = s.client.refresh(b"not a receipt", UnixTime::now()).await;
    assert!(matches!(result, Err(Error::InvalidPreviousReceipt(_))));
    assert_eq!(s.apple.counts().total, 0);
}

#[tokio::test]
async fn status_401_for_a_token_signed_by_another_key() {
    let s = setup().await;
    let stranger = attest_apple::fake::generate_credentials(
        s.apple.credentials().team_id(),
        s.apple.credentials().key_id(),
    )
    .unwrap();
    let client = ReceiptClient::builder(Arc::new(stranger), Arc::new(s.apple.receipt_verifier()))
        .base_url(s.apple.base_url())
        .http_options(common::http_options())
        .build()
        .unwrap();
    let result = client.refresh(&s.receipt, UnixTime::now()).await;
    assert_eq!(result, Err(Error::Unauthorized));
    assert_eq!(s.apple.counts().unauthorized, 1);
}

#[tokio::test]
async fn bearer_form_is_accepted_unless_the_fake_insists_on_the_bare_token() {
    let lenient = setup().await;
    let bearer = ReceiptClient::builder(
        lenient.apple.credentials(),
        Arc::new(lenient.apple.receipt_verifier()),
    )
    .base_url(lenient.apple.base_url())
    .authorization_scheme(AuthorizationScheme::Bearer)
    .build()
    .unwrap();
    assert!(
        bearer
            .refresh(&lenient.receipt, UnixTime::now())
            .await
            .is_ok()
    );
    let sent = lenient
        .apple
        .requests()
        .pop()
        .unwrap()
        .authorization
        .unwrap();
    assert!(sent.starts_with("Bearer "));

    let strict = FakeApple::builder()
        .receipt_authorization(AuthorizationScheme::Raw)
        .start()
        .await
        .unwrap();
    let attestation = attest(&strict, Environment::Development);
    let bearer = ReceiptClient::builder(strict.credentials(), Arc::new(strict.receipt_verifier()))
        .base_url(strict.base_url())
        .authorization_scheme(AuthorizationScheme::Bearer)
        .build()
        .unwrap();
    let receipt = attestation.receipt.unwrap();
    assert_eq!(
        bearer.refresh(&receipt, UnixTime::now()).await,
        Err(Error::Unauthorized)
    );
    assert!(
        receipt_client(&strict)
            .refresh(&receipt, UnixTime::now())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn status_404_no_data_for_a_revoked_key() {
    let s = setup().await;
    s.apple.revoke_key(s.attestation.key_id);
    let result = s.client.refresh(&s.receipt, UnixTime::now()).await;
    assert_eq!(result, Err(Error::NoData));

    let other = setup().await;
    other.apple.push_response(Scripted::status(404));
    assert_eq!(
        other.client.refresh(&other.receipt, UnixTime::now()).await,
        Err(Error::NoData)
    );
}

#[tokio::test]
async fn status_429_carries_retry_after_in_seconds_or_as_a_date() {
    let s = setup().await;
    let now = UnixTime::now();
    s.apple
        .push_response(Scripted::rate_limited(Duration::from_secs(7)));
    assert_eq!(
        s.client.refresh(&s.receipt, now).await,
        Err(Error::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        })
    );

    let at = SystemTime::now() + Duration::from_secs(120);
    s.apple.push_response(Scripted::Reply {
        status: 429,
        headers: vec![("Retry-After".into(), httpdate::fmt_http_date(at))],
        body: b"Too Many Requests".to_vec(),
    });
    let wait = s
        .client
        .refresh(&s.receipt, now)
        .await
        .unwrap_err()
        .retry_after()
        .unwrap();
    assert!(
        (Duration::from_secs(115)..=Duration::from_secs(120)).contains(&wait),
        "{wait:?}"
    );

    s.apple.push_response(Scripted::status(429));
    assert_eq!(
        s.client.refresh(&s.receipt, now).await,
        Err(Error::RateLimited { retry_after: None })
    );
}

#[tokio::test]
async fn status_500_and_503_are_server_errors() {
    let s = setup().await;
    for status in [500, 503, 502] {
        s.apple.push_response(Scripted::status(status));
        let error = s
            .client
            .refresh(&s.receipt, UnixTime::now())
            .await
            .unwrap_err();
        assert_eq!(error, Error::ServerError { status });
        assert!(error.is_retryable());
        assert_eq!(error.code(), "apple_server_error");
    }
}

#[tokio::test]
async fn undocumented_statuses_are_unexpected() {
    let s = setup().await;
    for status in [403, 405, 302] {
        s.apple.push_response(Scripted::status(status));
        assert_eq!(
            s.client.refresh(&s.receipt, UnixTime::now()).await,
            Err(Error::UnexpectedStatus { status })
        );
    }
}

#[tokio::test]
async fn dropped_connection_is_a_transport_error_and_the_next_call_works() {
    let s = setup().await;
    s.apple.push_response(Scripted::Drop);
    let error = s
        .client
        .refresh(&s.receipt, UnixTime::now())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Transport(_)), "{error:?}");
    assert_eq!(error.code(), "apple_unreachable");
    assert_eq!(s.apple.counts().dropped, 1);
    assert!(s.client.refresh(&s.receipt, UnixTime::now()).await.is_ok());
}

#[tokio::test]
async fn slow_answer_times_out() {
    let s = setup().await;
    let impatient =
        ReceiptClient::builder(s.apple.credentials(), Arc::new(s.apple.receipt_verifier()))
            .base_url(s.apple.base_url())
            .http_options(attest_apple::HttpOptions {
                timeout: Duration::from_millis(300),
                ..common::http_options()
            })
            .build()
            .unwrap();
    s.apple
        .push_response(Scripted::Delay(Duration::from_secs(3)));
    let started = std::time::Instant::now();
    let error = impatient
        .refresh(&s.receipt, UnixTime::now())
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    match error {
        Error::Transport(detail) => assert!(detail.starts_with("timed out"), "{detail}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn nothing_listening_is_a_transport_error() {
    let s = setup().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let client =
        ReceiptClient::builder(s.apple.credentials(), Arc::new(s.apple.receipt_verifier()))
            .base_url(format!("http://{closed}"))
            .http_options(common::http_options())
            .build()
            .unwrap();
    let error = client
        .refresh(&s.receipt, UnixTime::now())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Transport(detail) if detail.starts_with("connection failed")),
        "{error:?}"
    );
}

/// Scripts a 200 whose body is `receipt` in base64.
fn answer_with(apple: &FakeApple, receipt: &[u8]) {
    apple.push_response(Scripted::ok_text(&STANDARD.encode(receipt)));
}

#[tokio::test]
async fn a_receipt_from_apple_for_another_key_is_rejected() {
    let s = setup().await;
    let other = attest(&s.apple, Environment::Development);
    answer_with(
        &s.apple,
        &other.refresh_receipt(s.apple.receipt_ca()).build(),
    );
    assert_eq!(
        s.client.refresh(&s.receipt, UnixTime::now()).await,
        Err(Error::InvalidReceiptFromApple(
            ReceiptError::PublicKeyMismatch
        ))
    );
}

#[tokio::test]
async fn a_receipt_from_apple_for_another_app_is_rejected() {
    let s = setup().await;
    let receipt = s
        .attestation
        .refresh_receipt(s.apple.receipt_ca())
        .app_id("ABCDE12345.com.example.other")
        .build();
    answer_with(&s.apple, &receipt);
    assert_eq!(
        s.client.refresh(&s.receipt, UnixTime::now()).await,
        Err(Error::InvalidReceiptFromApple(ReceiptError::AppIdMismatch))
    );
}

#[tokio::test]
async fn an_attest_receipt_from_apple_is_rejected() {
    let s = setup().await;
    answer_with(&s.apple, &s.receipt.clone());
    assert_eq!(
        s.client.refresh(&s.receipt, UnixTime::now()).await,
        Err(Error::InvalidReceiptFromApple(ReceiptError::WrongType))
    );
}

#[tokio::test]
async fn a_receipt_signed_by_another_ca_is_rejected() {
    let s = setup().await;
    let stranger = ReceiptCa::generate();
    answer_with(&s.apple, &s.attestation.refresh_receipt(&stranger).build());
    let error = s
        .client
        .refresh(&s.receipt, UnixTime::now())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::InvalidReceiptFromApple(ReceiptError::ChainInvalid(_))
        ),
        "{error:?}"
    );
    assert_eq!(error.code(), "apple_invalid_receipt");
}

#[tokio::test]
async fn a_tampered_or_future_or_non_base64_receipt_from_apple_is_rejected() {
    let s = setup().await;
    let ca = s.apple.receipt_ca();
    answer_with(
        &s.apple,
        &s.attestation
            .refresh_receipt(ca)
            .tamper_payload_after_signing()
            .build(),
    );
    assert!(matches!(
        s.client.refresh(&s.receipt, UnixTime::now()).await,
        Err(Error::InvalidReceiptFromApple(_))
    ));

    let tomorrow = OffsetDateTime::now_utc() + time::Duration::days(1);
    answer_with(
        &s.apple,
        &s.attestation
            .refresh_receipt(ca)
            .created_at(tomorrow)
            .build(),
    );
    assert_eq!(
        s.client.refresh(&s.receipt, UnixTime::now()).await,
        Err(Error::InvalidReceiptFromApple(
            ReceiptError::CreatedInFuture
        ))
    );

    s.apple
        .push_response(Scripted::ok_text("<html>maintenance</html>"));
    assert_eq!(
        s.client.refresh(&s.receipt, UnixTime::now()).await,
        Err(Error::InvalidReceiptFromApple(ReceiptError::Malformed(
            "Apple's answer is not base64"
        )))
    );
}

#[tokio::test]
async fn an_oversized_answer_is_refused() {
    let s = setup().await;
    s.apple.push_response(Scripted::Reply {
        status: 200,
        headers: Vec::new(),
        body: vec![b'A'; attest_apple::MAX_ANSWER_LEN + 1],
    });
    assert!(matches!(
        s.client.refresh(&s.receipt, UnixTime::now()).await,
        Err(Error::MalformedResponse(_))
    ));
}
