//! Every step's failure, proven with simulator-built objects that break exactly one thing.
//!
//! A correct object from the simulator verifies (`baseline_*` tests); each other test changes
//! one input and asserts the exact error.

use std::sync::OnceLock;
use std::time::Duration as StdDuration;

use attest_core::UnixTime;
use attest_core::apple::assertion::{
    AssertionRequest, CredentialPublicKey, hash_client_data, verify_assertion,
};
use attest_core::apple::attestation::{
    AttestationRequest, AttestationVerifier, ReceiptCheck, ReceiptPolicy,
};
use attest_core::apple::receipt::{ReceiptError, ReceiptVerifier, SignatureForm};
use attest_core::apple::{
    AppId, AppleError, ChainFailure, CounterExpectation, Environment as CoreEnvironment,
    EnvironmentPolicy, ValidityFailure,
};
use attest_sim::{Device, Environment, ReceiptCa, ReceiptType, TestCa};
use time::{Duration, OffsetDateTime, macros::datetime};

const APP: &str = "ABCDE12345.com.example.app";
const NOW: OffsetDateTime = datetime!(2026-06-01 12:00:00 UTC);
const CLIENT_DATA_HASH: [u8; 32] = [0x5a; 32];

struct Fixture {
    ca: TestCa,
    receipts: ReceiptCa,
    verifier: AttestationVerifier,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ca = TestCa::generate();
        let receipts = ReceiptCa::generate();
        let verifier = AttestationVerifier::with_roots(
            vec![ca.root_der().to_vec()],
            ReceiptVerifier::with_roots(vec![receipts.root_der().to_vec()]).unwrap(),
        )
        .unwrap();
        Fixture {
            ca,
            receipts,
            verifier,
        }
    })
}

fn at(time: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(StdDuration::from_secs(time.unix_timestamp() as u64))
}

fn app_ids() -> Vec<AppId> {
    vec![AppId::new(APP).unwrap()]
}

/// Verifies `object` as made by `device` for [`APP`] with the standard inputs.
fn verify(
    device: &Device,
    object: &[u8],
) -> Result<attest_core::apple::attestation::VerifiedAttestation, AppleError> {
    verify_with(device, object, EnvironmentPolicy::Any, NOW)
}

fn verify_with(
    device: &Device,
    object: &[u8],
    environment: EnvironmentPolicy,
    time: OffsetDateTime,
) -> Result<attest_core::apple::attestation::VerifiedAttestation, AppleError> {
    let app_ids = app_ids();
    let mut request =
        AttestationRequest::new(device.key_id(), &CLIENT_DATA_HASH, &app_ids, at(time));
    request.environment = environment;
    fixture().verifier.verify(object, &request)
}

fn builder(device: &Device) -> attest_sim::AttestationBuilder<'_> {
    let f = fixture();
    device.attestation(&f.ca, &f.receipts, APP, &CLIENT_DATA_HASH, NOW)
}

fn malformed(result: Result<impl std::fmt::Debug, AppleError>) {
    match result {
        Err(AppleError::Malformed { .. }) => {}
        other => panic!("expected malformed, got {other:?}"),
    }
}

// ---------------------------------------------------------------- baselines

#[test]
fn baseline_simulated_attestation_verifies_in_both_environments() {
    for environment in [Environment::Development, Environment::Production] {
        let device = Device::new(environment);
        let verified = verify(&device, &builder(&device).build().object).unwrap();
        assert_eq!(verified.key_id(), &device.key_id());
        assert_eq!(verified.public_key(), device.public_key_spki());
        assert_eq!(verified.environment().as_str(), environment.as_str());
        assert!(matches!(verified.receipt(), ReceiptCheck::Verified(_)));
    }
}

#[test]
fn baseline_ios27_attestation_reports_its_extensions() {
    let device = Device::new(Environment::Production);
    let verified = verify(&device, &builder(&device).ios27().build().object).unwrap();
    assert_eq!(verified.bundle_version(), Some("1"));
    assert_eq!(verified.validation_category(), Some(&[1, 0, 0, 0][..]));
}

// ---------------------------------------------------------------- format

#[test]
fn rejects_attestation_with_other_format() {
    let device = Device::new(Environment::Production);
    let object = builder(&device).fmt("packed").build().object;
    assert_eq!(
        verify(&device, &object).unwrap_err(),
        AppleError::UnsupportedFormat
    );
}

#[test]
fn rejects_attestation_with_duplicate_cbor_key() {
    let device = Device::new(Environment::Production);
    malformed(verify(
        &device,
        &builder(&device).duplicate_key("fmt").build().object,
    ));
}

#[test]
fn rejects_attestation_with_indefinite_lengths() {
    let device = Device::new(Environment::Production);
    malformed(verify(
        &device,
        &builder(&device).indefinite_lengths().build().object,
    ));
    malformed(verify(
        &device,
        &builder(&device).indefinite_outer_map().build().object,
    ));
}

#[test]
fn rejects_attestation_with_trailing_bytes() {
    let device = Device::new(Environment::Production);
    malformed(verify(
        &device,
        &builder(&device).trailing_bytes(&[0]).build().object,
    ));
}

#[test]
fn rejects_attestation_without_authdata_or_x5c() {
    let device = Device::new(Environment::Production);
    malformed(verify(
        &device,
        &builder(&device).remove_key("authData").build().object,
    ));
    malformed(verify(&device, &builder(&device).omit_x5c().build().object));
    malformed(verify(
        &device,
        &builder(&device).x5c_leaf_only().build().object,
    ));
}

#[test]
fn rejects_authdata_with_bytes_after_the_extension_map() {
    let device = Device::new(Environment::Production);
    malformed(verify(
        &device,
        &builder(&device)
            .ios27()
            .extra_auth_data(&[0x00])
            .build()
            .object,
    ));
}

#[test]
fn rejects_every_truncation_of_a_valid_attestation() {
    let device = Device::new(Environment::Production);
    let object = builder(&device).build().object;
    for cut in 0..object.len() {
        assert!(verify(&device, &object[..cut]).is_err(), "cut at {cut}");
    }
}

// ---------------------------------------------------------------- step 1: chain

#[test]
fn rejects_attestation_from_an_untrusted_ca() {
    let device = Device::new(Environment::Production);
    let stranger = TestCa::generate();
    let f = fixture();
    let object = device
        .attestation(&stranger, &f.receipts, APP, &CLIENT_DATA_HASH, NOW)
        .build()
        .object;
    // Same names as the trusted CA, other keys: the issuer matches by name, the signature fails.
    assert!(matches!(
        verify(&device, &object).unwrap_err(),
        AppleError::CertificateChainInvalid(
            ChainFailure::BadSignature | ChainFailure::UnknownIssuer
        )
    ));
}

#[test]
fn rejects_attestation_from_the_real_apple_root_when_only_a_test_root_is_trusted() {
    // And the converse: a test CA is not trusted by the Apple-only verifier.
    let device = Device::new(Environment::Production);
    let object = builder(&device).build().object;
    let app_ids = app_ids();
    let request = AttestationRequest::new(device.key_id(), &CLIENT_DATA_HASH, &app_ids, at(NOW));
    assert_eq!(
        AttestationVerifier::apple()
            .verify(&object, &request)
            .unwrap_err(),
        AppleError::CertificateChainInvalid(ChainFailure::UnknownIssuer)
    );
}

#[test]
fn rejects_attestation_with_intermediate_swapped_for_another() {
    let device = Device::new(Environment::Production);
    let other = TestCa::generate();
    let object = builder(&device)
        .x5c_intermediate(other.intermediate_der().to_vec())
        .build()
        .object;
    assert!(matches!(
        verify(&device, &object).unwrap_err(),
        AppleError::CertificateChainInvalid(_)
    ));
}

#[test]
fn rejects_attestation_with_reversed_x5c() {
    let device = Device::new(Environment::Production);
    assert!(matches!(
        verify(&device, &builder(&device).x5c_reversed().build().object).unwrap_err(),
        AppleError::CertificateChainInvalid(_)
    ));
}

#[test]
fn rejects_leaf_with_a_foreign_extended_key_usage() {
    let device = Device::new(Environment::Production);
    let object = builder(&device)
        .leaf_eku(vec![vec![1, 3, 6, 1, 5, 5, 7, 3, 1]])
        .build()
        .object;
    assert_eq!(
        verify(&device, &object).unwrap_err(),
        AppleError::CertificateChainInvalid(ChainFailure::WrongKeyUsage)
    );
}

#[test]
fn rejects_expired_and_not_yet_valid_leaf() {
    let device = Device::new(Environment::Production);
    let object = builder(&device).build().object;
    assert_eq!(
        verify_with(
            &device,
            &object,
            EnvironmentPolicy::Any,
            NOW + Duration::days(30)
        )
        .unwrap_err(),
        AppleError::CertificateExpired(ValidityFailure::Expired)
    );
    assert_eq!(
        verify_with(
            &device,
            &object,
            EnvironmentPolicy::Any,
            NOW - Duration::days(30)
        )
        .unwrap_err(),
        AppleError::CertificateExpired(ValidityFailure::NotYetValid)
    );
}

#[test]
fn cached_intermediate_still_has_its_validity_checked() {
    // The first verification caches the intermediate; a later one outside the intermediate's
    // validity must still fail even though the leaf itself is valid then.
    let f = fixture();
    let short_ca = TestCa::builder()
        .intermediate_validity(NOW - Duration::days(10), NOW + Duration::days(1))
        .build();
    let verifier = AttestationVerifier::with_roots(
        vec![short_ca.root_der().to_vec()],
        ReceiptVerifier::with_roots(vec![f.receipts.root_der().to_vec()]).unwrap(),
    )
    .unwrap();
    let device = Device::new(Environment::Production);
    let app_ids = app_ids();
    let first = device
        .attestation(&short_ca, &f.receipts, APP, &CLIENT_DATA_HASH, NOW)
        .build();
    let request = |time| {
        let mut r = AttestationRequest::new(device.key_id(), &CLIENT_DATA_HASH, &app_ids, at(time));
        r.environment = EnvironmentPolicy::Any;
        r
    };
    verifier.verify(&first.object, &request(NOW)).unwrap();
    let later = NOW + Duration::days(2);
    let second = device
        .attestation(&short_ca, &f.receipts, APP, &CLIENT_DATA_HASH, later)
        .build();
    assert_eq!(
        verifier
            .verify(&second.object, &request(later))
            .unwrap_err(),
        AppleError::CertificateExpired(ValidityFailure::Expired)
    );
}

// ---------------------------------------------------------------- steps 2–4: nonce

#[test]
fn rejects_attestation_for_another_client_data_hash() {
    let device = Device::new(Environment::Production);
    let f = fixture();
    let object = device
        .attestation(&f.ca, &f.receipts, APP, &[0x11; 32], NOW)
        .build()
        .object;
    assert_eq!(
        verify(&device, &object).unwrap_err(),
        AppleError::NonceMismatch
    );
}

#[test]
fn rejects_leaf_with_wrong_missing_or_malformed_nonce() {
    let device = Device::new(Environment::Production);
    for object in [
        builder(&device).nonce(vec![0u8; 32]).build().object,
        builder(&device).omit_nonce_extension().build().object,
        builder(&device)
            .nonce_extension(attest_sim::NonceExtension::Raw(vec![0x04, 0x20, 0x00]))
            .build()
            .object,
    ] {
        assert_eq!(
            verify(&device, &object).unwrap_err(),
            AppleError::NonceMismatch
        );
    }
}

#[test]
fn rejects_authdata_changed_after_the_certificate_was_issued() {
    // One flipped bit in authData changes the nonce, whatever field it lands in.
    let device = Device::new(Environment::Production);
    let built = builder(&device).build();
    let mut auth_data = built.auth_data.clone();
    auth_data[33] ^= 0x01; // a counter byte
    let object = builder(&device)
        .auth_data(auth_data)
        .nonce(built.nonce.clone())
        .build()
        .object;
    assert_eq!(
        verify(&device, &object).unwrap_err(),
        AppleError::NonceMismatch
    );
}

// ---------------------------------------------------------------- step 5: key id

#[test]
fn rejects_attestation_presented_with_another_key_id() {
    let device = Device::new(Environment::Production);
    let other = Device::new(Environment::Production);
    let object = builder(&device).build().object;
    assert_eq!(
        verify(&other, &object).unwrap_err(),
        AppleError::KeyIdMismatch
    );
}

// ---------------------------------------------------------------- step 6: App ID

#[test]
fn rejects_attestation_for_another_app() {
    let device = Device::new(Environment::Production);
    let object = builder(&device)
        .rp_id_for("ABCDE12345.com.example.other")
        .build()
        .object;
    assert_eq!(
        verify(&device, &object).unwrap_err(),
        AppleError::AppIdMismatch
    );
}

// ---------------------------------------------------------------- step 7: counter

#[test]
fn rejects_attestation_with_nonzero_counter() {
    let device = Device::new(Environment::Production);
    let object = builder(&device).counter(1).build().object;
    assert_eq!(
        verify(&device, &object).unwrap_err(),
        AppleError::CounterInvalid {
            counter: 1,
            expectation: CounterExpectation::Zero
        }
    );
}

// ---------------------------------------------------------------- step 8: environment

#[test]
fn rejects_development_key_where_production_is_required_and_vice_versa() {
    let development = Device::new(Environment::Development);
    let object = builder(&development).build().object;
    assert_eq!(
        verify_with(&development, &object, EnvironmentPolicy::Production, NOW)
            .unwrap_err()
            .code(),
        "environment_mismatch"
    );
    assert_eq!(
        verify_with(&development, &object, EnvironmentPolicy::Development, NOW)
            .unwrap()
            .environment(),
        CoreEnvironment::Development
    );
    let production = Device::new(Environment::Production);
    let object = builder(&production).build().object;
    assert_eq!(
        verify_with(&production, &object, EnvironmentPolicy::Development, NOW)
            .unwrap_err()
            .code(),
        "environment_mismatch"
    );
}

#[test]
fn rejects_unknown_aaguid() {
    let device = Device::new(Environment::Production);
    let object = builder(&device).aaguid(*b"notappattest1234").build().object;
    assert_eq!(
        verify(&device, &object).unwrap_err(),
        AppleError::EnvironmentMismatch {
            found: "unknown",
            accepted: "any"
        }
    );
}

/// The server's verifier: Apple's roots plus the simulator's CAs as *extra* roots.
fn with_extra_roots() -> AttestationVerifier {
    let f = fixture();
    AttestationVerifier::with_extra_roots(
        vec![f.ca.root_der().to_vec()],
        vec![f.receipts.root_der().to_vec()],
    )
    .unwrap()
}

fn request_for<'a>(
    device: &Device,
    app_ids: &'a [AppId],
    environment: EnvironmentPolicy,
) -> AttestationRequest<'a> {
    let mut request = AttestationRequest::new(device.key_id(), &CLIENT_DATA_HASH, app_ids, at(NOW));
    request.environment = environment;
    request
}

#[test]
fn rejects_production_key_under_an_extra_root_whatever_the_policy_accepts() {
    let verifier = with_extra_roots();
    let app_ids = app_ids();
    let production = Device::new(Environment::Production);
    let object = builder(&production).build().object;
    for environment in [EnvironmentPolicy::Any, EnvironmentPolicy::Production] {
        // Twice: the second call takes the remembered-intermediate fast path, which must know
        // the intermediate's root as well as the full path validation does.
        for _ in 0..2 {
            assert_eq!(
                verifier
                    .verify(&object, &request_for(&production, &app_ids, environment))
                    .unwrap_err(),
                AppleError::EnvironmentMismatch {
                    found: "production",
                    accepted: "development (the chain ends at an extra root)",
                },
                "{environment:?}"
            );
        }
    }
    // The same root vouches for development keys, receipt included.
    let development = Device::new(Environment::Development);
    let object = builder(&development).build().object;
    let verified = verifier
        .verify(
            &object,
            &request_for(&development, &app_ids, EnvironmentPolicy::Any),
        )
        .unwrap();
    assert_eq!(verified.environment(), CoreEnvironment::Development);
    assert!(matches!(verified.receipt(), ReceiptCheck::Verified(_)));
}

#[test]
fn rejects_production_key_whose_receipt_chains_to_an_extra_receipt_root() {
    // The attestation chain's root stands in for Apple's (`with_roots`); the receipt's is an
    // extra one: a receipt is not covered by the nonce, so anyone could swap one in.
    let f = fixture();
    let verifier = AttestationVerifier::with_roots(
        vec![f.ca.root_der().to_vec()],
        ReceiptVerifier::with_extra_roots(vec![f.receipts.root_der().to_vec()]).unwrap(),
    )
    .unwrap();
    let app_ids = app_ids();
    let production = Device::new(Environment::Production);
    let object = builder(&production).build().object;
    assert_eq!(
        receipt_error(verifier.verify(
            &object,
            &request_for(&production, &app_ids, EnvironmentPolicy::Any)
        )),
        ReceiptError::ChainInvalid(ChainFailure::UnknownIssuer)
    );
    let development = Device::new(Environment::Development);
    let object = builder(&development).build().object;
    assert!(
        verifier
            .verify(
                &object,
                &request_for(&development, &app_ids, EnvironmentPolicy::Any)
            )
            .is_ok()
    );
}

// ---------------------------------------------------------------- step 9: credential id / key

#[test]
fn rejects_credential_id_that_is_not_the_key_id() {
    let device = Device::new(Environment::Production);
    let object = builder(&device)
        .credential_id(vec![0x42; 32])
        .build()
        .object;
    assert_eq!(
        verify(&device, &object).unwrap_err(),
        AppleError::CredentialIdMismatch
    );
}

#[test]
fn rejects_cose_key_that_is_not_the_certificate_key() {
    let device = Device::new(Environment::Production);
    let other = Device::new(Environment::Production);
    let object = builder(&device).cose_key_of(&other).build().object;
    assert_eq!(
        verify(&device, &object).unwrap_err(),
        AppleError::CredentialKeyMismatch
    );
}

// ---------------------------------------------------------------- receipt

fn receipt_error(result: Result<impl std::fmt::Debug, AppleError>) -> ReceiptError {
    match result {
        Err(AppleError::ReceiptInvalid(error)) => error,
        other => panic!("expected receipt_invalid, got {other:?}"),
    }
}

#[test]
fn rejects_attestation_without_receipt_unless_policy_reports() {
    let device = Device::new(Environment::Production);
    let object = builder(&device).omit_receipt().build().object;
    assert!(matches!(
        receipt_error(verify(&device, &object)),
        ReceiptError::Malformed(_)
    ));

    let app_ids = app_ids();
    let mut request =
        AttestationRequest::new(device.key_id(), &CLIENT_DATA_HASH, &app_ids, at(NOW));
    request.receipt = ReceiptPolicy::Report;
    let verified = fixture().verifier.verify(&object, &request).unwrap();
    assert_eq!(verified.receipt(), &ReceiptCheck::Missing);
}

#[test]
fn rejects_receipt_for_another_app_or_key_or_of_the_wrong_type() {
    let device = Device::new(Environment::Production);
    let other = Device::new(Environment::Production);
    let other_leaf = builder(&other).build().leaf;
    let cases: Vec<(attest_sim::AttestationBuilder<'_>, ReceiptError)> = vec![
        (
            builder(&device).receipt_with(|r| r.app_id("ABCDE12345.com.example.other")),
            ReceiptError::AppIdMismatch,
        ),
        (
            builder(&device).receipt_with(move |r| r.attested_certificate(other_leaf)),
            ReceiptError::PublicKeyMismatch,
        ),
        (
            builder(&device).receipt_with(|r| r.receipt_type(ReceiptType::Receipt)),
            ReceiptError::WrongType,
        ),
    ];
    for (builder, expected) in cases {
        assert_eq!(
            receipt_error(verify(&device, &builder.build().object)),
            expected
        );
    }
}

#[test]
fn rejects_receipt_with_bad_signature_or_payload() {
    let device = Device::new(Environment::Production);
    let object = builder(&device)
        .receipt_with(|r| r.corrupt_signature())
        .build()
        .object;
    assert_eq!(
        receipt_error(verify(&device, &object)),
        ReceiptError::SignatureInvalid
    );
    let object = builder(&device)
        .receipt_with(|r| r.tamper_payload_after_signing())
        .build()
        .object;
    let error = receipt_error(verify(&device, &object));
    assert!(
        // The flipped byte may also land in a field that no longer parses.
        matches!(
            error,
            ReceiptError::SignatureInvalid
                | ReceiptError::DigestMismatch
                | ReceiptError::Malformed(_)
        ),
        "{error:?}"
    );
}

#[test]
fn rejects_receipt_created_after_verification_time_or_outside_leaf_validity() {
    let device = Device::new(Environment::Production);
    let object = builder(&device)
        .receipt_with(|r| r.created_at(NOW + Duration::hours(1)))
        .build()
        .object;
    assert_eq!(
        receipt_error(verify(&device, &object)),
        ReceiptError::CreatedInFuture
    );
    let object = builder(&device)
        .receipt_with(|r| r.created_at(NOW - Duration::days(20)))
        .build()
        .object;
    assert_eq!(
        receipt_error(verify(&device, &object)),
        ReceiptError::CreatedOutsideCertificateValidity
    );
}

#[test]
fn receipt_signed_by_an_untrusted_receipt_ca_is_rejected() {
    let device = Device::new(Environment::Production);
    let stranger = ReceiptCa::generate();
    let f = fixture();
    let object = device
        .attestation(&f.ca, &stranger, APP, &CLIENT_DATA_HASH, NOW)
        .build()
        .object;
    assert!(matches!(
        receipt_error(verify(&device, &object)),
        ReceiptError::ChainInvalid(_) | ReceiptError::NotReceiptSigner
    ));
}

#[test]
fn standalone_receipt_in_ber_with_risk_metric_verifies() {
    let f = fixture();
    let device = Device::new(Environment::Development);
    let attestation = builder(&device).build();
    let bytes = attestation
        .refresh_receipt(&f.receipts)
        .risk_metric(7)
        .created_at(NOW)
        .ber()
        .build();
    let verifier = ReceiptVerifier::with_roots(vec![f.receipts.root_der().to_vec()]).unwrap();
    let verified = verifier.verify(&bytes, at(NOW)).unwrap();
    assert_eq!(verified.receipt.risk_metric, Some(7));
    assert_eq!(verified.signature_form, SignatureForm::Content);
}

// ---------------------------------------------------------------- assertions

fn verify_assertion_for(
    device: &Device,
    object: &[u8],
    client_data: &[u8],
    previous_counter: u32,
) -> Result<u32, AppleError> {
    let key = CredentialPublicKey::from_spki(&device.public_key_spki()).unwrap();
    let hash = hash_client_data(client_data);
    let app_ids = app_ids();
    let request = AssertionRequest {
        public_key: &key,
        client_data_hash: &hash,
        app_ids: &app_ids,
        previous_counter,
    };
    verify_assertion(object, &request).map(|v| v.counter())
}

#[test]
fn baseline_simulated_assertion_verifies() {
    let device = Device::new(Environment::Production);
    let object = device.assert(APP, b"{\"challenge\":\"abc\"}", 5);
    assert_eq!(
        verify_assertion_for(&device, &object, b"{\"challenge\":\"abc\"}", 4),
        Ok(5)
    );
}

#[test]
fn rejects_assertion_with_replayed_or_regressed_counter() {
    let device = Device::new(Environment::Production);
    let object = device.assert(APP, b"payload", 5);
    for previous in [5, 6, u32::MAX] {
        assert_eq!(
            verify_assertion_for(&device, &object, b"payload", previous),
            Err(AppleError::CounterInvalid {
                counter: 5,
                expectation: CounterExpectation::GreaterThan(previous)
            })
        );
    }
}

#[test]
fn rejects_assertion_over_other_client_data_or_by_another_key() {
    let device = Device::new(Environment::Production);
    let object = device.assert(APP, b"payload", 1);
    assert_eq!(
        verify_assertion_for(&device, &object, b"payload!", 0),
        Err(AppleError::SignatureInvalid)
    );
    let other = Device::new(Environment::Production);
    let forged = device
        .assertion(APP, b"payload", 1)
        .signed_by(&other)
        .build()
        .object;
    assert_eq!(
        verify_assertion_for(&device, &forged, b"payload", 0),
        Err(AppleError::SignatureInvalid)
    );
    let corrupted = device
        .assertion(APP, b"payload", 1)
        .corrupt_signature()
        .build()
        .object;
    assert_eq!(
        verify_assertion_for(&device, &corrupted, b"payload", 0),
        Err(AppleError::SignatureInvalid)
    );
}

#[test]
fn rejects_assertion_for_another_app() {
    let device = Device::new(Environment::Production);
    let object = device
        .assertion(APP, b"payload", 1)
        .rp_id_for("ABCDE12345.com.example.other")
        .build()
        .object;
    assert_eq!(
        verify_assertion_for(&device, &object, b"payload", 0),
        Err(AppleError::AppIdMismatch)
    );
}

#[test]
fn rejects_double_hashed_nonce() {
    // Signing SHA256(nonce) instead of the nonce: what a verifier that pre-hashes would accept.
    let device = Device::new(Environment::Production);
    let honest = device.assertion(APP, b"payload", 1).build();
    let auth_data = {
        let parsed = attest_core::apple::assertion::AssertionObject::parse(&honest.object).unwrap();
        parsed.auth_data.raw.to_vec()
    };
    let mut nonce_input = auth_data.clone();
    nonce_input.extend_from_slice(&hash_client_data(b"payload"));
    let nonce = hash_client_data(&nonce_input);
    let double = hash_client_data(&nonce);
    let forged = device
        .assertion(APP, b"payload", 1)
        .sign_message(&double)
        .build()
        .object;
    assert_eq!(
        verify_assertion_for(&device, &forged, b"payload", 0),
        Err(AppleError::SignatureInvalid)
    );
}

#[test]
fn accepts_ios27_assertion_extension_map_and_rejects_bytes_after_it() {
    let device = Device::new(Environment::Production);
    let extensions = attest_sim::ios27_auth_data_extensions();
    let object = device
        .assertion(APP, b"payload", 2)
        .auth_data_extensions(&extensions)
        .build()
        .object;
    assert_eq!(verify_assertion_for(&device, &object, b"payload", 1), Ok(2));
    let mut trailing = extensions.clone();
    trailing.push(0);
    let object = device
        .assertion(APP, b"payload", 2)
        .auth_data_extensions(&trailing)
        .build()
        .object;
    malformed(verify_assertion_for(&device, &object, b"payload", 1));
}

#[test]
fn rejects_malformed_assertion_objects() {
    let device = Device::new(Environment::Production);
    let object = device.assert(APP, b"payload", 1);
    for cut in 0..object.len() {
        assert!(
            verify_assertion_for(&device, &object[..cut], b"payload", 0).is_err(),
            "cut {cut}"
        );
    }
    malformed(verify_assertion_for(&device, &[0xa0], b"payload", 0));
    malformed(verify_assertion_for(&device, b"not cbor", b"payload", 0));
}
