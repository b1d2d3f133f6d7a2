//! Attestation objects: strict parse, then the full verifier (chain, nonce, receipt) at a
//! fixed time. Run: `cargo fuzz run attestation`.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use attest_core::UnixTime;
use attest_core::apple::attestation::{AttestationObject, AttestationRequest, AttestationVerifier};
use attest_core::apple::{AppId, EnvironmentPolicy, KeyId};
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static AttestationVerifier {
    static VERIFIER: OnceLock<AttestationVerifier> = OnceLock::new();
    VERIFIER.get_or_init(AttestationVerifier::apple)
}

fuzz_target!(|data: &[u8]| {
    let parsed = AttestationObject::parse(data);
    // Only structurally valid objects reach the verifier; both must return, never panic.
    if let Ok(object) = parsed {
        let app_ids = [AppId::new("1234567890.com.example.myapp").unwrap()];
        let key_id = object
            .auth_data
            .attested_credential
            .as_ref()
            .and_then(|c| KeyId::from_slice(c.credential_id))
            .unwrap_or(KeyId([0; 32]));
        let at = UnixTime::since_unix_epoch(Duration::from_secs(1_776_795_193));
        let mut request =
            AttestationRequest::new(key_id, b"example_server_challenge", &app_ids, at);
        request.environment = EnvironmentPolicy::Any;
        let _ = verifier().verify(data, &request);
    }
});
