//! Stateless one-time challenges: a server issues them without storing anything.
//!
//! A challenge value is 42 bytes:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format version (1) |
//! | 16 | nonce (unique and unpredictable; attestd puts the issue time first, see below) |
//! | 8 | expiry, unix seconds, big-endian |
//! | 1 | flags: bit 0 = assertion (else attestation), bit 1 = bound to a key |
//! | 16 | HMAC-SHA256 tag, truncated to 128 bits |
//!
//! The tag covers the first 26 bytes, the App ID and, for a bound challenge, the key id; so a
//! challenge cannot be moved to another app or key, have its purpose or expiry changed, or be
//! made up without the MAC key. Single use is not this module's business: the server records
//! the nonce when the challenge is spent (attestd: `Store::spend_challenge`) and must remember
//! it at least until the expiry.
//!
//! Pure: the nonce, the MAC key and the time are inputs. This module only needs the nonce to be
//! unique per challenge; attestd makes its first 6 bytes the issue time in milliseconds and the
//! other 10 random, so that spent nonces are inserted in time order.

use std::fmt;

use aws_lc_rs::{constant_time, hmac};
use time::OffsetDateTime;

use crate::apple::KeyId;

/// Length of a challenge nonce.
pub const NONCE_LEN: usize = 16;

/// Length of a challenge value.
pub const VALUE_LEN: usize = BODY_LEN + TAG_LEN;

/// The smallest MAC key [`ChallengeKey::new`] accepts.
pub const MIN_SECRET_LEN: usize = 32;

const VERSION: u8 = 1;
const BODY_LEN: usize = 1 + NONCE_LEN + 8 + 1;
const TAG_LEN: usize = 16;
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

/// Why a challenge value is refused. A server answers all of them the same way (attestd:
/// `challenge_invalid`); the distinction is for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeRejection {
    /// Not a challenge this format describes: wrong length, version or flags.
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
    /// When it expires (the first instant it is refused).
    pub expires_at: OffsetDateTime,
}

/// The MAC key shared by every server instance that issues and checks challenges.
pub struct ChallengeKey {
    key: hmac::Key,
}

/// A MAC key shorter than [`MIN_SECRET_LEN`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a challenge MAC key of {0} bytes (at least {MIN_SECRET_LEN})")]
pub struct ShortSecret(pub usize);

impl ChallengeKey {
    /// A key from a secret of at least [`MIN_SECRET_LEN`] random bytes.
    pub fn new(secret: &[u8]) -> Result<Self, ShortSecret> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(ShortSecret(secret.len()));
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        })
    }

    /// The challenge value for `app_id` with this nonce and expiry, bound to `key_id` if given.
    pub fn issue(
        &self,
        app_id: &str,
        purpose: ChallengePurpose,
        key_id: Option<KeyId>,
        nonce: [u8; NONCE_LEN],
        expires_at: OffsetDateTime,
    ) -> [u8; VALUE_LEN] {
        let mut flags = 0;
        if purpose == ChallengePurpose::Assertion {
            flags |= FLAG_ASSERTION;
        }
        if key_id.is_some() {
            flags |= FLAG_BOUND;
        }
        let mut body = [0u8; BODY_LEN];
        let (version, rest) = body.split_at_mut(1);
        let (nonce_field, rest) = rest.split_at_mut(NONCE_LEN);
        let (expiry_field, flags_field) = rest.split_at_mut(8);
        version.copy_from_slice(&[VERSION]);
        nonce_field.copy_from_slice(&nonce);
        expiry_field.copy_from_slice(&expires_at.unix_timestamp().to_be_bytes());
        flags_field.copy_from_slice(&[flags]);
        let tag = self.tag(app_id, &body, key_id.as_ref());
        let mut value = [0u8; VALUE_LEN];
        let (value_body, value_tag) = value.split_at_mut(BODY_LEN);
        value_body.copy_from_slice(&body);
        value_tag.copy_from_slice(tag.as_ref().get(..TAG_LEN).unwrap_or_default());
        value
    }

    /// Checks `value` as a challenge for `app_id` and `purpose`, presented with `key_id` (the
    /// key an assertion names; `None` for attestations) at `now`.
    pub fn open(
        &self,
        value: &[u8],
        app_id: &str,
        purpose: ChallengePurpose,
        key_id: Option<KeyId>,
        now: OffsetDateTime,
    ) -> Result<OpenedChallenge, ChallengeRejection> {
        if value.len() != VALUE_LEN {
            return Err(ChallengeRejection::Malformed);
        }
        let (body, tag) = value.split_at(BODY_LEN);
        let (&version, rest) = body.split_first().ok_or(ChallengeRejection::Malformed)?;
        let (nonce, rest) = rest
            .split_first_chunk::<NONCE_LEN>()
            .ok_or(ChallengeRejection::Malformed)?;
        let (expiry, rest) = rest
            .split_first_chunk::<8>()
            .ok_or(ChallengeRejection::Malformed)?;
        let &[flags] = rest else {
            return Err(ChallengeRejection::Malformed);
        };
        if version != VERSION || flags & !(FLAG_ASSERTION | FLAG_BOUND) != 0 {
            return Err(ChallengeRejection::Malformed);
        }
        // A bound challenge's tag covers the key it was bound to; checking it with the key the
        // request names refuses a challenge presented with another key.
        let bound = if flags & FLAG_BOUND != 0 {
            Some(key_id.ok_or(ChallengeRejection::Unauthentic)?)
        } else {
            None
        };
        let expected = self.tag(app_id, body, bound.as_ref());
        // Compared in constant time, so the tag cannot be guessed byte by byte.
        let expected = expected.as_ref().get(..TAG_LEN).unwrap_or_default();
        constant_time::verify_slices_are_equal(expected, tag)
            .map_err(|_| ChallengeRejection::Unauthentic)?;
        let issued_for = if flags & FLAG_ASSERTION != 0 {
            ChallengePurpose::Assertion
        } else {
            ChallengePurpose::Attestation
        };
        if issued_for != purpose {
            return Err(ChallengeRejection::WrongPurpose);
        }
        let expires_at = OffsetDateTime::from_unix_timestamp(i64::from_be_bytes(*expiry))
            .map_err(|_| ChallengeRejection::Malformed)?;
        if now >= expires_at {
            return Err(ChallengeRejection::Expired);
        }
        Ok(OpenedChallenge {
            nonce: *nonce,
            expires_at,
        })
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
    const ASSERTION: ChallengePurpose = ChallengePurpose::Assertion;
    const ATTESTATION: ChallengePurpose = ChallengePurpose::Attestation;

    fn key() -> ChallengeKey {
        ChallengeKey::new(&[7u8; 32]).unwrap()
    }

    fn issue(purpose: ChallengePurpose, key_id: Option<KeyId>) -> [u8; VALUE_LEN] {
        key().issue(APP, purpose, key_id, NONCE, NOW + Duration::minutes(5))
    }

    #[test]
    fn an_issued_challenge_opens_for_its_app_purpose_and_key() {
        let value = issue(ATTESTATION, None);
        let opened = key().open(&value, APP, ATTESTATION, None, NOW).unwrap();
        assert_eq!(opened.nonce, NONCE);
        assert_eq!(opened.expires_at, NOW + Duration::minutes(5));

        let bound = issue(ASSERTION, Some(KeyId([1; 32])));
        let opened = key().open(&bound, APP, ASSERTION, Some(KeyId([1; 32])), NOW);
        assert!(opened.is_ok(), "{opened:?}");
        // An unbound assertion challenge may be used by any key of the app.
        let unbound = issue(ASSERTION, None);
        let opened = key().open(&unbound, APP, ASSERTION, Some(KeyId([2; 32])), NOW);
        assert!(opened.is_ok(), "{opened:?}");
    }

    #[test]
    fn a_challenge_does_not_move_to_another_app_key_purpose_or_secret() {
        let bound = issue(ASSERTION, Some(KeyId([1; 32])));
        let one = Some(KeyId([1; 32]));
        let refused = |key: &ChallengeKey, app, purpose, key_id| {
            key.open(&bound, app, purpose, key_id, NOW).unwrap_err()
        };
        let other_secret = ChallengeKey::new(&[8u8; 32]).unwrap();
        for (rejection, expected) in [
            (
                refused(&key(), "TEAMID1234.com.example.other", ASSERTION, one),
                ChallengeRejection::Unauthentic,
            ),
            (
                refused(&key(), APP, ASSERTION, Some(KeyId([2; 32]))),
                ChallengeRejection::Unauthentic,
            ),
            (
                refused(&key(), APP, ASSERTION, None),
                ChallengeRejection::Unauthentic,
            ),
            (
                refused(&other_secret, APP, ASSERTION, one),
                ChallengeRejection::Unauthentic,
            ),
            (
                refused(&key(), APP, ATTESTATION, one),
                ChallengeRejection::WrongPurpose,
            ),
        ] {
            assert_eq!(rejection, expected);
        }
        let attestation = issue(ATTESTATION, None);
        assert_eq!(
            key().open(&attestation, APP, ASSERTION, one, NOW),
            Err(ChallengeRejection::WrongPurpose)
        );
    }

    #[test]
    fn a_challenge_expires_at_its_expiry() {
        let value = issue(ATTESTATION, None);
        let open = |now| key().open(&value, APP, ATTESTATION, None, now);
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
        let value = issue(ATTESTATION, None);
        for index in 0..VALUE_LEN {
            for bit in 0..8 {
                let mut altered = value;
                altered[index] ^= 1 << bit;
                let opened = key().open(&altered, APP, ATTESTATION, None, NOW);
                assert!(opened.is_err(), "byte {index} bit {bit} accepted");
            }
        }
    }

    #[test]
    fn values_of_another_length_or_version_are_malformed() {
        let value = issue(ATTESTATION, None);
        for bytes in [
            &[][..],
            &value[..VALUE_LEN - 1],
            &[value.as_slice(), &[0]].concat(),
        ] {
            assert_eq!(
                key().open(bytes, APP, ATTESTATION, None, NOW),
                Err(ChallengeRejection::Malformed)
            );
        }
        let mut other_version = value;
        other_version[0] = 2;
        assert_eq!(
            key().open(&other_version, APP, ATTESTATION, None, NOW),
            Err(ChallengeRejection::Malformed)
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        assert_eq!(ChallengeKey::new(&[1; 31]).unwrap_err(), ShortSecret(31));
    }

    #[test]
    fn nonces_and_expiries_are_carried_exactly() {
        for (nonce, expires_at) in [
            ([0u8; NONCE_LEN], NOW + Duration::seconds(1)),
            ([0xff; NONCE_LEN], datetime!(2100-01-01 00:00:00 UTC)),
        ] {
            let value = key().issue(APP, ASSERTION, None, nonce, expires_at);
            let opened = key().open(&value, APP, ASSERTION, None, NOW).unwrap();
            assert_eq!((opened.nonce, opened.expires_at), (nonce, expires_at));
        }
    }
}
