//! Legacy SafetyNet JWS: the full `SafetyNetVerifier::verify` (format, RS256 signature, chain
//! to the pinned GlobalSign roots, hostname, validity, payload, nonce, package) at a fixed
//! time, then the payload parser on the same bytes as JSON. Input: the compact JWS as bytes
//! (seeds: `python3 fuzz/scripts/seed_android.py`). Run: `cargo fuzz run safetynet`.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use attest_core::UnixTime;
use attest_core::android::safetynet::{SafetyNetPayload, SafetyNetRequest, SafetyNetVerifier};
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static SafetyNetVerifier {
    static VERIFIER: OnceLock<SafetyNetVerifier> = OnceLock::new();
    VERIFIER.get_or_init(SafetyNetVerifier::google)
}

fuzz_target!(|data: &[u8]| {
    // yubico-safetynet-2019's nonce, package and time: its seed verifies, so mutations reach
    // every step.
    let request = SafetyNetRequest {
        nonce: "KB9zp2cQXVJPgfovI02sA7g2MP/XoKVAdh83m9J8miQ=",
        package_name: Some("com.google.android.gms"),
        time: UnixTime::since_unix_epoch(Duration::from_secs(1_547_561_822)),
    };
    let verified = verifier().verify(data, &request);
    if let Ok(verified) = verified {
        // A verified response is never hardware backed and carries the expected nonce.
        assert!(!verified.hardware_backed());
        assert_eq!(verified.payload().nonce, request.nonce);
    }
    let _ = SafetyNetPayload::from_unverified_json(data);
});
