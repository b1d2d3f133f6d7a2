//! Receipts (PKCS#7, BER): parse, then verify against Apple Root CA - G3 at a fixed time.
//! Run: `cargo fuzz run receipt`.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use attest_core::UnixTime;
use attest_core::apple::receipt::{ReceiptVerifier, parse_receipt};
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static ReceiptVerifier {
    static VERIFIER: OnceLock<ReceiptVerifier> = OnceLock::new();
    VERIFIER.get_or_init(ReceiptVerifier::apple)
}

fuzz_target!(|data: &[u8]| {
    if parse_receipt(data).is_ok() {
        let at = UnixTime::since_unix_epoch(Duration::from_secs(1_611_404_801));
        let _ = verifier().verify(data, at);
    }
});
