//! App Attest as a [`PlatformVerifier`]: attestation objects and assertions, checked by the
//! core (`attest_core::apple`) against the app's App ID, environments and the stored key.

use attest_core::apple::AppleError;
use attest_core::apple::KeyId;
use attest_core::apple::assertion::{
    AssertionRequest, CredentialPublicKey, hash_client_data, verify_assertion,
};
use attest_core::apple::attestation::{
    AttestationRequest, ReceiptCheck, ReceiptPolicy, hash_challenge,
};
use attest_store::DeviceKey;
use time::OffsetDateTime;

use crate::server::error::ApiError;
use crate::server::platform::{PlatformVerifier, Signed, VerifiedKey, unix_time};
use crate::server::state::{App, AppState, AppleSide};
use crate::server::telemetry::{Severity, server_failure};

/// App Attest (`ios`, `apple-app-attest`).
#[derive(Debug)]
pub struct AppAttest;

impl PlatformVerifier for AppAttest {
    /// The attestation object (CBOR) from `attestKey`.
    type Attestation = Vec<u8>;
    /// The assertion object (CBOR) from `generateAssertion`.
    type Assertion = Vec<u8>;

    fn verify_attestation(
        app: &App,
        key_id: KeyId,
        challenge: &str,
        attestation: &Vec<u8>,
        at: OffsetDateTime,
    ) -> Result<VerifiedKey, ApiError> {
        let side = apple_side(app)?;
        let client_data_hash = hash_challenge(challenge.as_bytes());
        let mut request =
            AttestationRequest::new(key_id, &client_data_hash, &side.ids, unix_time(at));
        request.environment = app.config.environment;
        // The receipt's validity is scored (`receipt_invalid`, `receipt_missing`) and can be
        // required by the policy (`require_valid_receipt`), so the core reports it.
        request.receipt = ReceiptPolicy::Report;
        let verified = side.verifier.verify(attestation, &request)?;
        Ok(VerifiedKey {
            public_key_spki: verified.public_key().to_vec(),
            environment: verified.environment(),
            evidence: verified.evidence().into(),
            receipt: verified.receipt_bytes().to_vec(),
            receipt_risk_metric: match verified.receipt() {
                ReceiptCheck::Verified(receipt) => receipt.receipt.risk_metric.map(i64::from),
                _ => None,
            },
        })
    }

    fn verify_assertion(
        state: &AppState,
        app: &App,
        key: &DeviceKey,
        payload: &str,
        assertion: &Vec<u8>,
    ) -> Result<Signed, ApiError> {
        // An App Attest key always has a counter (the store checks it).
        let stored = key.counter.ok_or(ApiError::KeyUnknown)?;
        let side = apple_side(app)?;
        let public_key = state
            .keys
            .get_or_parse(key.key_id, || {
                CredentialPublicKey::from_spki(&key.public_key_spki)
            })
            .map_err(|error| {
                server_failure(Severity::Bug, "stored public key does not parse", &error);
                ApiError::Internal
            })?;
        let client_data_hash = hash_client_data(payload.as_bytes());
        let request = AssertionRequest {
            public_key: &public_key,
            client_data_hash: &client_data_hash,
            app_ids: &side.ids,
            previous_counter: stored,
        };
        match verify_assertion(assertion, &request) {
            Ok(verified) => Ok(Signed::Verified {
                counter: Some(verified.counter()),
            }),
            // The signature verified (the core checks it first), the counter did not move.
            Err(AppleError::CounterInvalid { counter, .. }) => {
                Ok(Signed::CounterNotAdvanced { counter, stored })
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// The app's iOS side: 400 `unsupported_platform` for an Android-only app.
fn apple_side(app: &App) -> Result<&AppleSide, ApiError> {
    app.apple.as_ref().ok_or(ApiError::UnsupportedPlatform {
        field: "platform",
        value: "ios".into(),
    })
}
