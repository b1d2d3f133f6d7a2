//! Challenge values as text: the stateless, MAC-authenticated challenges of
//! [`attest_core::challenge`] in base64url (no padding), 56 characters.
//!
//! The MAC key is a [`Store::server_secret`](attest_store::Store::server_secret), the same for
//! every instance sharing the database; single use is the store's job (the nonce is spent with
//! [`Store::spend_challenge`](attest_store::Store::spend_challenge) or inside
//! [`Store::commit_assertion`](attest_store::Store::commit_assertion)).

use attest_core::apple::KeyId;
use attest_core::challenge::{ChallengeKey, ChallengeRejection, VALUE_LEN};
pub use attest_core::challenge::{ChallengePurpose, NONCE_LEN, OpenedChallenge, ShortSecret};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;

/// The name of the MAC key among the store's server secrets.
pub const SECRET_NAME: &str = "challenge-mac-v1";

/// Length of the MAC key drawn on first start.
pub const SECRET_LEN: usize = 32;

/// base64url without padding of a challenge value.
pub const TEXT_LEN: usize = (VALUE_LEN * 4).div_ceil(3);

/// Issues and checks challenge texts.
#[derive(Debug)]
pub struct Challenges {
    key: ChallengeKey,
}

impl Challenges {
    /// With the shared MAC key.
    pub fn new(secret: &[u8]) -> Result<Self, ShortSecret> {
        Ok(Self {
            key: ChallengeKey::new(secret)?,
        })
    }

    /// A challenge text (see [`ChallengeKey::issue`]).
    pub fn issue(
        &self,
        app_id: &str,
        purpose: ChallengePurpose,
        key_id: Option<KeyId>,
        nonce: [u8; NONCE_LEN],
        expires_at: OffsetDateTime,
    ) -> String {
        URL_SAFE_NO_PAD.encode(self.key.issue(app_id, purpose, key_id, nonce, expires_at))
    }

    /// Checks a challenge text (see [`ChallengeKey::open`]).
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
            Ok(VALUE_LEN) => self.key.open(&value, app_id, purpose, key_id, now),
            _ => Err(ChallengeRejection::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    const APP: &str = "TEAMID1234.com.example.app";

    #[test]
    fn texts_round_trip_and_anything_else_is_malformed() {
        let challenges = Challenges::new(&[7; SECRET_LEN]).unwrap();
        let now = OffsetDateTime::now_utc();
        let purpose = ChallengePurpose::Attestation;
        let text = challenges.issue(APP, purpose, None, [1; NONCE_LEN], now + Duration::MINUTE);
        assert_eq!(text.len(), TEXT_LEN);
        let opened = challenges.open(&text, APP, purpose, None, now).unwrap();
        assert_eq!(opened.nonce, [1; NONCE_LEN]);
        for bad in [
            String::new(),
            "abc".to_owned(),
            text[..TEXT_LEN - 1].to_owned(),
            format!("{text}A"),
            "=".repeat(TEXT_LEN),
            "é".repeat(TEXT_LEN / 2),
            text.replace(|c: char| c.is_ascii_alphabetic(), "+"),
        ] {
            assert_eq!(
                challenges.open(&bad, APP, purpose, None, now),
                Err(ChallengeRejection::Malformed),
                "{bad:?}"
            );
        }
    }
}
