//! Shared set-up: a fake Apple, a simulated device attested with the fake's receipt CA, and
//! clients pointed at the fake.
#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attest_apple::fake::FakeApple;
use attest_apple::{DeviceCheckClient, HttpOptions, ReceiptClient, Sleeper};
use attest_core::UnixTime;
use attest_sim::{Attestation, Device, Environment, TestCa};
use time::OffsetDateTime;

pub const APP_ID: &str = "ABCDE12345.com.example.app";

/// A base64 device token, as `DCDevice.generateToken` gives (shortened).
pub const DEVICE_TOKEN: &str = "QWxhZGRpbjpvcGVuIHNlc2FtZQ==";

/// Short timeouts so that failure tests stay fast; no proxies (loopback only).
pub fn http_options() -> HttpOptions {
    HttpOptions {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        use_env_proxy: false,
    }
}

pub fn unix(at: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(at.unix_timestamp()).unwrap(),
    ))
}

/// An attestation of a new device key in `environment`, its receipt from the fake's CA.
pub fn attest(apple: &FakeApple, environment: Environment) -> Attestation {
    Device::new(environment)
        .attestation(
            &TestCa::generate(),
            apple.receipt_ca(),
            APP_ID,
            &[7; 32],
            OffsetDateTime::now_utc(),
        )
        .build()
}

pub fn receipt_client(apple: &FakeApple) -> ReceiptClient {
    ReceiptClient::builder(apple.credentials(), Arc::new(apple.receipt_verifier()))
        .base_url(apple.base_url())
        .http_options(http_options())
        .build()
        .unwrap()
}

pub fn device_check_client(apple: &FakeApple) -> DeviceCheckClient {
    DeviceCheckClient::builder(apple.credentials())
        .base_url(apple.base_url())
        .http_options(http_options())
        .build()
        .unwrap()
}

/// A running fake with one attested device.
pub struct Setup {
    pub apple: FakeApple,
    pub attestation: Attestation,
    /// The attestation's ATTEST receipt.
    pub receipt: Vec<u8>,
    pub client: ReceiptClient,
}

pub async fn setup() -> Setup {
    let apple = FakeApple::start().await;
    let attestation = attest(&apple, Environment::Development);
    let receipt = attestation.receipt.clone().unwrap();
    let client = receipt_client(&apple);
    Setup {
        apple,
        attestation,
        receipt,
        client,
    }
}

/// Records the delays instead of waiting.
#[derive(Debug, Default)]
pub struct RecordingSleeper(Mutex<Vec<Duration>>);

impl RecordingSleeper {
    pub fn delays(&self) -> Vec<Duration> {
        self.0.lock().unwrap().clone()
    }
}

impl Sleeper for RecordingSleeper {
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        self.0.lock().unwrap().push(duration);
        std::future::ready(())
    }
}
