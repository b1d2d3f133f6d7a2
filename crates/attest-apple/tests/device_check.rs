//! The DeviceCheck client against the fake.

mod common;

use std::time::Duration;

use attest_apple::fake::{FakeApple, Scripted};
use attest_apple::{
    BitState, DEVICE_CHECK_DEVELOPMENT_URL, DEVICE_CHECK_PRODUCTION_URL, DeviceCheckClient, Error,
    QUERY_TWO_BITS_PATH, TwoBits, UPDATE_TWO_BITS_PATH, device_check_base_url,
};
use attest_core::UnixTime;
use common::{DEVICE_TOKEN, device_check_client};
use time::OffsetDateTime;

#[test]
fn base_urls_are_apples() {
    assert_eq!(
        DEVICE_CHECK_PRODUCTION_URL,
        "https://api.devicecheck.apple.com"
    );
    assert_eq!(
        DEVICE_CHECK_DEVELOPMENT_URL,
        "https://api.development.devicecheck.apple.com"
    );
    assert_eq!(
        device_check_base_url(attest_core::apple::Environment::Production),
        DEVICE_CHECK_PRODUCTION_URL
    );
}

#[tokio::test]
async fn never_set_device_is_not_found() {
    let apple = FakeApple::start().await;
    let client = device_check_client(&apple);
    assert_eq!(
        client.query_two_bits(DEVICE_TOKEN, UnixTime::now()).await,
        Ok(TwoBits::NotFound)
    );
}

#[tokio::test]
async fn both_not_found_texts_are_understood() {
    let apple = FakeApple::start().await;
    let client = device_check_client(&apple);
    for text in [
        "Bit State Not Found",
        "Failed to find bit state",
        "bit state not found\n",
    ] {
        apple.push_response(Scripted::ok_text(text));
        assert_eq!(
            client.query_two_bits(DEVICE_TOKEN, UnixTime::now()).await,
            Ok(TwoBits::NotFound),
            "{text:?}"
        );
    }
}

#[tokio::test]
async fn update_then_query_returns_the_bits() {
    let apple = FakeApple::start().await;
    let client = device_check_client(&apple);
    let now = UnixTime::now();
    client
        .update_two_bits(DEVICE_TOKEN, true, false, now)
        .await
        .unwrap();
    assert_eq!(apple.bits(DEVICE_TOKEN), Some((true, false)));
    let today = OffsetDateTime::now_utc();
    let month = format!("{:04}-{:02}", today.year(), u8::from(today.month()));
    assert_eq!(
        client.query_two_bits(DEVICE_TOKEN, now).await,
        Ok(TwoBits::Found(BitState {
            bit0: true,
            bit1: false,
            last_update_time: Some(month),
        }))
    );
    client
        .update_two_bits(DEVICE_TOKEN, false, true, now)
        .await
        .unwrap();
    let Ok(TwoBits::Found(state)) = client.query_two_bits(DEVICE_TOKEN, now).await else {
        panic!("bits expected");
    };
    assert_eq!((state.bit0, state.bit1), (false, true));
    // Another device is unaffected.
    assert_eq!(
        client.query_two_bits("b3RoZXI=", now).await,
        Ok(TwoBits::NotFound)
    );
}

#[tokio::test]
async fn requests_carry_apples_fields_and_a_bearer_token() {
    let apple = FakeApple::start().await;
    let client = device_check_client(&apple);
    let now = UnixTime::now();
    client
        .update_two_bits(DEVICE_TOKEN, true, true, now)
        .await
        .unwrap();
    client.query_two_bits(DEVICE_TOKEN, now).await.unwrap();
    let requests = apple.requests();
    assert_eq!(requests.len(), 2);
    let update = &requests[0];
    assert_eq!(update.path, UPDATE_TWO_BITS_PATH);
    assert_eq!(update.content_type.as_deref(), Some("application/json"));
    assert!(
        update
            .authorization
            .as_deref()
            .unwrap()
            .starts_with("Bearer ")
    );
    let body: serde_json::Value = serde_json::from_slice(&update.body).unwrap();
    assert_eq!(body["device_token"], DEVICE_TOKEN);
    assert_eq!(body["bit0"], true);
    assert_eq!(body["bit1"], true);
    assert_eq!(body["timestamp"], now.as_secs() * 1000);
    let query: serde_json::Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(requests[1].path, QUERY_TWO_BITS_PATH);
    assert!(query.get("bit0").is_none());
    // A fresh transaction id per request.
    assert_ne!(body["transaction_id"], query["transaction_id"]);
    assert_eq!(query["transaction_id"].as_str().unwrap().len(), 36);
}

#[tokio::test]
async fn validate_accepts_a_token_even_with_line_breaks() {
    let apple = FakeApple::start().await;
    let client = device_check_client(&apple);
    let wrapped = "QWxhZGRpbjpv\r\ncGVuIHNlc2FtZQ==\n";
    assert_eq!(
        client.validate_device_token(wrapped, UnixTime::now()).await,
        Ok(())
    );
    let body: serde_json::Value =
        serde_json::from_slice(&apple.requests().pop().unwrap().body).unwrap();
    assert_eq!(body["device_token"], DEVICE_TOKEN);
}

#[tokio::test]
async fn status_400_malformed_device_token() {
    let apple = FakeApple::start().await;
    let client = device_check_client(&apple);
    for token in ["", "not base64!"] {
        assert_eq!(
            client.validate_device_token(token, UnixTime::now()).await,
            Err(Error::InvalidDeviceToken)
        );
    }
}

#[tokio::test]
async fn status_400_stale_timestamp() {
    // A fake whose clock is three hours ahead, accepting day-old tokens: the token passes, the
    // request timestamp (the client's clock) does not.
    let lenient = FakeApple::builder()
        .max_token_age(Duration::from_secs(24 * 3600))
        .start()
        .await
        .unwrap();
    lenient.set_now(OffsetDateTime::now_utc() + time::Duration::hours(3));
    assert_eq!(
        device_check_client(&lenient)
            .query_two_bits(DEVICE_TOKEN, UnixTime::now())
            .await,
        Err(Error::InvalidTimestamp)
    );
}

#[tokio::test]
async fn status_401_for_a_token_older_than_an_hour() {
    let apple = FakeApple::start().await;
    apple.set_now(OffsetDateTime::now_utc() + time::Duration::minutes(61));
    assert_eq!(
        device_check_client(&apple)
            .query_two_bits(DEVICE_TOKEN, UnixTime::now())
            .await,
        Err(Error::Unauthorized)
    );
}

#[tokio::test]
async fn each_documented_400_text_maps_to_its_error() {
    let apple = FakeApple::start().await;
    let client = device_check_client(&apple);
    let cases = [
        (
            "Missing or incorrectly formatted device token payload",
            Error::InvalidDeviceToken,
        ),
        ("Missing or incorrectly formatted bits", Error::InvalidBits),
        (
            "Missing or incorrectly formatted time stamp",
            Error::InvalidTimestamp,
        ),
        (
            "Invalid or missing transaction id",
            Error::InvalidTransactionId,
        ),
        ("Something Apple has not said before", Error::BadRequest),
    ];
    for (text, expected) in cases {
        apple.push_response(Scripted::Reply {
            status: 400,
            headers: Vec::new(),
            body: text.as_bytes().to_vec(),
        });
        assert_eq!(
            client
                .update_two_bits(DEVICE_TOKEN, true, false, UnixTime::now())
                .await,
            Err(expected)
        );
    }
}

#[tokio::test]
async fn status_401_for_a_token_of_another_key() {
    let apple = FakeApple::start().await;
    let stranger = attest_apple::fake::generate_credentials(
        apple.credentials().team_id(),
        apple.credentials().key_id(),
    )
    .unwrap();
    let client = DeviceCheckClient::builder(std::sync::Arc::new(stranger))
        .base_url(apple.base_url())
        .http_options(common::http_options())
        .build()
        .unwrap();
    assert_eq!(
        client.query_two_bits(DEVICE_TOKEN, UnixTime::now()).await,
        Err(Error::Unauthorized)
    );
    assert_eq!(apple.counts().unauthorized, 1);
    assert_eq!(apple.counts().query_two_bits, 1);
}

#[tokio::test]
async fn statuses_429_5xx_and_dropped_connections() {
    let apple = FakeApple::start().await;
    let client = device_check_client(&apple);
    let now = UnixTime::now();
    apple.push_response(Scripted::rate_limited(Duration::from_secs(3)));
    assert_eq!(
        client.validate_device_token(DEVICE_TOKEN, now).await,
        Err(Error::RateLimited {
            retry_after: Some(Duration::from_secs(3))
        })
    );
    for status in [500, 503] {
        apple.push_response(Scripted::status(status));
        assert_eq!(
            client.query_two_bits(DEVICE_TOKEN, now).await,
            Err(Error::ServerError { status })
        );
    }
    apple.push_response(Scripted::status(405));
    assert_eq!(
        client.query_two_bits(DEVICE_TOKEN, now).await,
        Err(Error::UnexpectedStatus { status: 405 })
    );
    apple.push_response(Scripted::Drop);
    assert!(matches!(
        client.update_two_bits(DEVICE_TOKEN, true, true, now).await,
        Err(Error::Transport(_))
    ));
    // Nothing was stored by the dropped update.
    assert_eq!(apple.bits(DEVICE_TOKEN), None);
}

#[tokio::test]
async fn slow_answer_times_out() {
    let apple = FakeApple::start().await;
    let client = DeviceCheckClient::builder(apple.credentials())
        .base_url(apple.base_url())
        .http_options(attest_apple::HttpOptions {
            timeout: Duration::from_millis(300),
            ..common::http_options()
        })
        .build()
        .unwrap();
    apple.push_response(Scripted::Delay(Duration::from_secs(3)));
    let result = client.query_two_bits(DEVICE_TOKEN, UnixTime::now()).await;
    assert!(
        matches!(&result, Err(Error::Transport(detail)) if detail.starts_with("timed out")),
        "{result:?}"
    );
}

#[tokio::test]
async fn unreadable_query_answer_is_malformed() {
    let apple = FakeApple::start().await;
    let client = device_check_client(&apple);
    apple.push_response(Scripted::ok_text(r#"{"bit0":"yes"}"#));
    assert!(matches!(
        client.query_two_bits(DEVICE_TOKEN, UnixTime::now()).await,
        Err(Error::MalformedResponse(_))
    ));
}
