//! Android Key Attestation chains: the path walker, then the full verifier (every check, with a
//! status list and the strictest policy) against Google's pinned keys at a fixed time.
//! Input: a count byte, then certificates as 2-byte big-endian length + DER (see
//! docs/fuzzing.md for seeding from the real vectors). Run: `cargo fuzz run android_chain`.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use attest_core::UnixTime;
use attest_core::android::{
    AndroidPolicy, AndroidRequest, AndroidVerifier, ExpectedApp, Revocation, RevocationList,
};
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static AndroidVerifier {
    static VERIFIER: OnceLock<AndroidVerifier> = OnceLock::new();
    VERIFIER.get_or_init(AndroidVerifier::google)
}

fn split(data: &[u8]) -> Vec<&[u8]> {
    let Some((&count, mut rest)) = data.split_first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for _ in 0..(count % 17) {
        if rest.len() < 2 {
            break;
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        out.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let chain = split(data);
    let walked = verifier().walker().walk(&chain);
    let app = ExpectedApp {
        package_names: vec!["com.google.android.attestation".into()],
        signing_digests: None,
    };
    let list = RevocationList::from_entries([], UnixTime::since_unix_epoch(Duration::ZERO));
    let mut request = AndroidRequest::new(
        b"challenge",
        &app,
        Revocation::Check {
            list: &list,
            max_age: Duration::MAX,
        },
        UnixTime::since_unix_epoch(Duration::from_secs(1_772_000_000)),
    );
    request.policy = AndroidPolicy {
        allow_attest_key: data.len() % 2 == 0,
        require_verified_boot: data.len() % 3 == 0,
        ..AndroidPolicy::default()
    };
    let verified = verifier().verify(&chain, &request);
    // A chain the verifier accepts is one the walker accepts.
    if verified.is_ok() {
        assert!(walked.is_ok());
    }
});
