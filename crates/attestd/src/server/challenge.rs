//! Stateless one-time challenges: issuing one costs no database write.
//!
//! A challenge value is `base64url(body || tag)`, 56 characters:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format version (1) |
//! | 16 | random nonce |
//! | 8 | expiry, unix seconds, big-endian |
//! | 1 | flags: bit 0 = assertion (else attestation), bit 1 = bound to a key |
//! | 16 | HMAC-SHA256 tag, truncated to 128 bits |
//!
//! The tag covers the body, the App ID and, for a bound challenge, the key id; so a challenge
//! cannot be moved to another app or key, have its purpose or expiry changed, or be made up.
//! The MAC key is a [`Store::server_secret`](attest_store::Store::server_secret), the same for
//! every instance sharing the database. Single use is the store's job: the nonce is spent with
//! [`Store::spend_challenge`](attest_store::Store::spend_challenge) (or inside
//! [`Store::commit_assertion`](attest_store::Store::commit_assertion)) when the challenge is
//! used, and remembered until well after it expires.
//!
//! This module is pure: randomness and time are inputs.

use std::fmt;

use attest_core::apple::KeyId;
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;

/// The name of the MAC key among the store's server secrets.
pub const SECRET_NAME: &str = "challenge-mac-v1";

/// Length of the MAC key generated on first start.
pub const SECRET_LEN: usize = 32;

/// Length of a challenge nonce.
pub const NONCE_LEN: usize = 16;

const VERSION: u8 = 1;
const BODY_LEN: usize = 1 + NONCE_LEN + 8 + 1;
const TAG_LEN: usize = 16;
const VALUE_LEN: usize = BODY_LEN + TAG_LEN;
/// base64url without padding of [`VALUE_LEN`] bytes.
const TEXT_LEN: usize = (VALUE_LEN * 4).div_ceil(3);
const DOMAIN: &[u8] = b"attestd challenge v1\0";
const FLAG_ASSERTION: u8 = 1;
const FLAG_BOUND: u8 = 2;

/// What a challenge may be spent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengePurpose {
    /// Registering a new key (the attestation's `clientDataHash` input).
    Attestation,
    /// Signing one request with an attested key (the assertion's `clientDataHash` input).
    Assertion,
}

/// Why a challenge value is refused. All of them are `challenge_invalid` to the client; the
/// distinction is for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeRejection {
    /// Not a challenge this server could have issued: wrong length, encoding or version.
    Malformed,
    /// The tag does not match: forged, altered, issued to another app, bound to another key,
    /// or issued under another MAC key.
    Unauthentic,
    /// Issued for the other purpose.
    WrongPurpose,
    /// Past its expiry.
    Expired,
}

impl ChallengeRejection {
    /// A snake_case label for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unauthentic => "unauthentic",
            Self::WrongPurpose => "wrong_purpose",
            Self::Expired => "expired",
        }
    }
}

/// A challenge whose tag, purpose and expiry checked out; its nonce is still to be spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenedChallenge {
    /// The nonce to spend.
    pub nonce: [u8; NONCE_LEN],
    /// When it expires.
    pub expires_at: OffsetDateTime,
}

/// The MAC key that issues and checks challenges.
pub struct ChallengeKey {
    key: hmac::Key,
}

impl ChallengeKey {
    /// A key from the shared secret.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The challenge value for `app_id` with this nonce and expiry, bound to `key_id` if given.
    pub fn issue(
        &self,
        app_id: &str,
        purpose: ChallengePurpose,
        key_id: Option<KeyId>,
        nonce: [u8; NONCE_LEN],
        expires_at: OffsetDateTime,
    ) -> String {
        let mut value = [0u8; VALUE_LEN];
        value[0] = VERSION;
        value[1..=NONCE_LEN].copy_from_slice(&nonce);
        value[1 + NONCE_LEN..BODY_LEN - 1]
            .copy_from_slice(&expires_at.unix_timestamp().to_be_bytes());
        let mut flags = 0;
        if purpose == ChallengePurpose::Assertion {
            flags |= FLAG_ASSERTION;
        }
        if key_id.is_some() {
            flags |= FLAG_BOUND;
        }
        value[BODY_LEN - 1] = flags;
        let tag = self.tag(app_id, &value[..BODY_LEN], key_id.as_ref());
        value[BODY_LEN..].copy_from_slice(&tag.as_ref()[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(value)
    }

    /// Checks `text` as a challenge for `app_id` and `purpose`, presented with `key_id` (the
    /// key an assertion names; `None` for attestations) at `now`.
    pub fn open(
        &self,
        text: &str,
        app_id: &str,
        purpose: ChallengePurpose,
        key_id: Option<KeyId>,
        now: OffsetDateTime,
    ) -> Result<OpenedChallenge, ChallengeRejection> {
        if text.len() != TEXT_LEN {
            return Err(ChallengeRejection::Malformed);
        }
        let mut value = [0u8; VALUE_LEN];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut value) {
            Ok(VALUE_LEN) => {}
            _ => return Err(ChallengeRejection::Malformed),
        }
        let flags = value[BODY_LEN - 1];
        if value[0] != VERSION || flags & !(FLAG_ASSERTION | FLAG_BOUND) != 0 {
            return Err(ChallengeRejection::Malformed);
        }
        // A bound challenge's tag covers the key it was bound to; checking it with the key the
        // request names rejects a challenge presented with another key.
        let bound = if flags & FLAG_BOUND != 0 {
            Some(key_id.ok_or(ChallengeRejection::Unauthentic)?)
        } else {
            None
        };
        let expected = self.tag(app_id, &value[..BODY_LEN], bound.as_ref());
        // Compared in constant time, so the tag cannot be guessed byte by byte.
        if aws_lc_rs::constant_time::verify_slices_are_equal(
            &expected.as_ref()[..TAG_LEN],
            &value[BODY_LEN..],
        )
        .is_err()
        {
            return Err(ChallengeRejection::Unauthentic);
        }
        let issued_for = if flags & FLAG_ASSERTION != 0 {
            ChallengePurpose::Assertion
        } else {
            ChallengePurpose::Attestation
        };
        if issued_for != purpose {
            return Err(ChallengeRejection::WrongPurpose);
        }
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&value[1 + NONCE_LEN..BODY_LEN - 1]);
        let expires_at = OffsetDateTime::from_unix_timestamp(i64::from_be_bytes(expiry))
            .map_err(|_| ChallengeRejection::Malformed)?;
        // `expires_at` is the first instant the challenge is no longer valid.
        if now >= expires_at {
            return Err(ChallengeRejection::Expired);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&value[1..=NONCE_LEN]);
        Ok(OpenedChallenge { nonce, expires_at })
    }

    fn tag(&self, app_id: &str, body: &[u8], key_id: Option<&KeyId>) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(DOMAIN);
        // Length-prefixed, so no App ID can be extended into another field.
        context.update(
            &u64::try_from(app_id.len())
                .unwrap_or(u64::MAX)
                .to_be_bytes(),
        );
        context.update(app_id.as_bytes());
        context.update(body);
        if let Some(key_id) = key_id {
            context.update(&key_id.0);
        }
        context.sign()
    }
}

impl fmt::Debug for ChallengeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChallengeKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;
    use time::macros::datetime;

    const APP: &str = "TEAMID1234.com.example.app";
    const NOW: OffsetDateTime = datetime!(2026-11-23 12:00:00 UTC);
    const NONCE: [u8; NONCE_LEN] = [0x5a; NONCE_LEN];

    fn key() -> ChallengeKey {
        ChallengeKey::new(&[7u8; SECRET_LEN])
    }

    fn issue(purpose: ChallengePurpose, key_id: Option<KeyId>) -> String {
        key().issue(APP, purpose, key_id, NONCE, NOW + Duration::minutes(5))
    }

    #[test]
    fn an_issued_challenge_opens_for_its_app_purpose_and_key() {
        let value = issue(ChallengePurpose::Attestation, None);
        assert_eq!(value.len(), TEXT_LEN);
        let opened = key()
            .open(&value, APP, ChallengePurpose::Attestation, None, NOW)
            .expect("opens");
        assert_eq!(opened.nonce, NONCE);
        assert_eq!(opened.expires_at, NOW + Duration::minutes(5));

        let bound = issue(ChallengePurpose::Assertion, Some(KeyId([1; 32])));
        let opened = key().open(
            &bound,
            APP,
            ChallengePurpose::Assertion,
            Some(KeyId([1; 32])),
            NOW,
        );
        assert!(opened.is_ok(), "{opened:?}");
        // An unbound assertion challenge may be used by any key of the app.
        let unbound = issue(ChallengePurpose::Assertion, None);
        let opened = key().open(
            &unbound,
            APP,
            ChallengePurpose::Assertion,
            Some(KeyId([2; 32])),
            NOW,
        );
        assert!(opened.is_ok(), "{opened:?}");
    }

    #[test]
    fn a_challenge_does_not_move_to_another_app_key_purpose_or_secret() {
        let bound = issue(ChallengePurpose::Assertion, Some(KeyId([1; 32])));
        let open = |key: &ChallengeKey, app, purpose, key_id| {
            key.open(&bound, app, purpose, key_id, NOW).unwrap_err()
        };
        let assertion = ChallengePurpose::Assertion;
        assert_eq!(
            open(
                &key(),
                "TEAMID1234.com.example.other",
                assertion,
                Some(KeyId([1; 32]))
            ),
            ChallengeRejection::Unauthentic
        );
        assert_eq!(
            open(&key(), APP, assertion, Some(KeyId([2; 32]))),
            ChallengeRejection::Unauthentic
        );
        assert_eq!(
            open(&key(), APP, assertion, None),
            ChallengeRejection::Unauthentic
        );
        assert_eq!(
            open(
                &ChallengeKey::new(&[8u8; SECRET_LEN]),
                APP,
                assertion,
                Some(KeyId([1; 32]))
            ),
            ChallengeRejection::Unauthentic
        );
        assert_eq!(
            open(
                &key(),
                APP,
                ChallengePurpose::Attestation,
                Some(KeyId([1; 32]))
            ),
            ChallengeRejection::WrongPurpose
        );
        let attestation = issue(ChallengePurpose::Attestation, None);
        assert_eq!(
            key()
                .open(&attestation, APP, assertion, Some(KeyId([1; 32])), NOW)
                .unwrap_err(),
            ChallengeRejection::WrongPurpose
        );
    }

    #[test]
    fn a_challenge_expires_at_its_expiry() {
        let value = issue(ChallengePurpose::Attestation, None);
        let open = |now| key().open(&value, APP, ChallengePurpose::Attestation, None, now);
        assert!(open(NOW + Duration::minutes(5) - Duration::seconds(1)).is_ok());
        assert_eq!(
            open(NOW + Duration::minutes(5)),
            Err(ChallengeRejection::Expired)
        );
        assert_eq!(
            open(NOW + Duration::days(400)),
            Err(ChallengeRejection::Expired)
        );
    }

    #[test]
    fn every_altered_bit_is_refused() {
        let value = issue(ChallengePurpose::Attestation, None);
        let bytes = URL_SAFE_NO_PAD.decode(&value).expect("base64");
        for index in 0..bytes.len() {
            for bit in 0..8 {
                let mut altered = bytes.clone();
                altered[index] ^= 1 << bit;
                let text = URL_SAFE_NO_PAD.encode(&altered);
                let opened = key().open(&text, APP, ChallengePurpose::Attestation, None, NOW);
                assert!(opened.is_err(), "byte {index} bit {bit} accepted");
            }
        }
    }

    #[test]
    fn malformed_values_are_refused_without_panicking() {
        let value = issue(ChallengePurpose::Attestation, None);
        for text in [
            "",
            "abc",
            &value[..TEXT_LEN - 1],
            &format!("{value}A"),
            &value.replace(|c: char| c.is_ascii_alphabetic(), "+"),
            &"=".repeat(TEXT_LEN),
            &"é".repeat(TEXT_LEN / 2),
        ] {
            let opened = key().open(text, APP, ChallengePurpose::Attestation, None, NOW);
            assert!(opened.is_err(), "{text:?} accepted");
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(&value).expect("base64");
        bytes[0] = 2;
        let other_version = URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(
            key().open(
                &other_version,
                APP,
                ChallengePurpose::Attestation,
                None,
                NOW
            ),
            Err(ChallengeRejection::Malformed)
        );
    }

    #[test]
    fn nonces_and_expiries_are_carried_exactly() {
        for (nonce, expires_at) in [
            ([0u8; NONCE_LEN], NOW + Duration::seconds(1)),
            ([0xff; NONCE_LEN], datetime!(2100-01-01 00:00:00 UTC)),
        ] {
            let value = key().issue(APP, ChallengePurpose::Assertion, None, nonce, expires_at);
            let opened = key()
                .open(&value, APP, ChallengePurpose::Assertion, None, NOW)
                .expect("opens");
            assert_eq!((opened.nonce, opened.expires_at), (nonce, expires_at));
        }
    }
}
