//! Authenticator data in both contexts. Run: `cargo fuzz run authenticator_data`.
#![no_main]

use attest_core::apple::authenticator_data::{AuthenticatorData, Context};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for context in [Context::Attestation, Context::Assertion] {
        if let Ok(parsed) = AuthenticatorData::parse(data, context) {
            // A successful parse accounts for every byte.
            assert_eq!(parsed.raw, data);
        }
    }
});
