//! The KeyDescription parser on arbitrary bytes, both as the extension value and as a whole
//! certificate. Run: `cargo fuzz run android_key_description`.
#![no_main]

use attest_core::android::KeyDescription;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = KeyDescription::parse(data) {
        // Whatever parses answers its accessors without panicking.
        let _ = parsed.security_level();
        let _ = parsed.application_id();
    }
    let _ = KeyDescription::of_certificate(data);
});
