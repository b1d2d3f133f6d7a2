//! Challenge values: any bytes presented as a challenge are refused or opened without panic,
//! and a value opens only as what it was issued for. Run: `cargo fuzz run challenge`.
#![no_main]

use attest_core::apple::KeyId;
use attest_core::challenge::{ChallengeKey, ChallengePurpose, NONCE_LEN};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

const APP: &str = "TEAMID1234.com.example.app";

fuzz_target!(|data: &[u8]| {
    let Ok(key) = ChallengeKey::new(&[0x42; 32]) else {
        return;
    };
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let purpose = if selector & 1 == 0 {
        ChallengePurpose::Attestation
    } else {
        ChallengePurpose::Assertion
    };
    let key_id = (selector & 2 != 0).then_some(KeyId([selector; 32]));
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();

    // Arbitrary bytes: no panic, and nothing forged opens (the tag is 128 bits).
    assert!(key.open(rest, APP, purpose, key_id, now).is_err());

    // Issue from the input, then open: it opens exactly as issued, and not as anything else.
    if let Some((nonce, rest)) = rest.split_first_chunk::<NONCE_LEN>()
        && let Some((expiry, _)) = rest.split_first_chunk::<8>()
        && let Ok(expires_at) = OffsetDateTime::from_unix_timestamp(i64::from_be_bytes(*expiry))
    {
        let value = key.issue(APP, purpose, key_id, *nonce, expires_at);
        let opened = key.open(&value, APP, purpose, key_id, now);
        match opened {
            Ok(opened) => {
                assert!(now < expires_at);
                assert_eq!((opened.nonce, opened.expires_at), (*nonce, expires_at));
            }
            Err(_) => assert!(now >= expires_at),
        }
        assert!(key.open(&value, "TEAMID1234.com.example.other", purpose, key_id, now).is_err());
        let other = match purpose {
            ChallengePurpose::Attestation => ChallengePurpose::Assertion,
            ChallengePurpose::Assertion => ChallengePurpose::Attestation,
        };
        assert!(key.open(&value, APP, other, key_id, now).is_err());
    }
});
