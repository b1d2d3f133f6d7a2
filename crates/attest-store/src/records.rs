//! The records the store keeps: plain data, no database types.
//!
//! Times are [`OffsetDateTime`]s. Both backends store them as unix seconds, so a time read back
//! has no sub-second part; pass whole seconds (see [`crate::whole_seconds`]) when a round trip
//! must compare equal.

use std::fmt;

use time::OffsetDateTime;

pub use attest_types::{
    AndroidEvidence, AppleEvidence, DecisionKind, Environment, Evidence, KeyId, Outcome, Platform,
    PolicyMode, RevocationReason, UnknownValue,
};

/// The largest page [`crate::Store::list_device_keys`] and [`crate::Store::list_decisions`]
/// return; bigger limits are lowered to it so one request cannot read a whole table.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// A challenge being spent (see [`crate::Store::spend_challenge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpentChallenge<'a> {
    /// The challenge's random nonce (16 to 64 bytes), unique across all apps.
    pub nonce: &'a [u8],
    /// When the challenge expires: the nonce is remembered at least until then.
    pub expires_at: OffsetDateTime,
}

/// An accepted assertion's writes, made in one transaction by
/// [`crate::Store::commit_assertion`].
#[derive(Debug, Clone, Copy)]
pub struct AssertionCommit<'a> {
    /// The challenge the assertion's client data carries.
    pub challenge: SpentChallenge<'a>,
    /// The key that signed.
    pub key_id: KeyId,
    /// The assertion's counter, which must be greater than the stored one; `None` for a key
    /// whose platform signs without a counter (the spent challenge is then the only replay
    /// defence).
    pub counter: Option<u32>,
    /// The request's time (the key's new `last_seen_at`).
    pub seen_at: OffsetDateTime,
    /// The decision to log if the assertion is accepted.
    pub decision: &'a Decision,
}

/// What [`crate::Store::commit_assertion`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "only `Accepted` means the assertion may be accepted"]
pub enum AssertionCommitted {
    /// The challenge is spent, the counter advanced and the decision logged.
    Accepted {
        /// The logged decision's id.
        decision_id: i64,
    },
    /// The challenge was spent before: nothing changed.
    ChallengeSpent,
    /// The challenge is now spent but the counter did not advance (never
    /// [`CounterAdvance::Advanced`]); no decision was logged.
    NotAdvanced(CounterAdvance),
}

/// The keys a device has had for one app (every key, revoked ones included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceHistory {
    /// How many keys.
    pub keys: u64,
    /// When the first of them was attested.
    pub first_seen: Option<OffsetDateTime>,
}

/// An attested key, of any platform, and what the server has learned about it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceKey {
    /// SHA-256 of the key's public point (App Attest) or of its SubjectPublicKeyInfo (Android).
    pub key_id: KeyId,
    /// The server's identifier for the device (or installation) the key belongs to.
    pub device_id: String,
    /// The App ID the key was attested for.
    pub app_id: String,
    /// The environment named by the attestation's AAGUID (always production on Android).
    pub environment: Environment,
    /// The credential public key as DER SubjectPublicKeyInfo.
    pub public_key_spki: Vec<u8>,
    /// The highest sign counter accepted so far (0 right after attestation); `None` exactly
    /// when the key's platform signs without a counter ([`Platform::has_counter`]).
    pub counter: Option<u32>,
    /// The risk metric from the latest receipt, when one has been fetched.
    pub receipt_risk_metric: Option<i64>,
    /// When the key was attested.
    pub created_at: OffsetDateTime,
    /// When the key was last used (attestation or accepted assertion).
    pub last_seen_at: OffsetDateTime,
    /// How many attestations have been accepted for this key (normally 1).
    pub attestation_count: u64,
    /// How many assertions have advanced the counter.
    pub assertion_count: u64,
    /// When the key was revoked; a revoked key is never accepted again.
    pub revoked_at: Option<OffsetDateTime>,
    /// The key that replaced this one (for example after the app lost its key and re-attested).
    pub superseded_by: Option<KeyId>,
    /// What the platform's verifier proved at attestation; its platform is the key's.
    pub evidence: Evidence,
    /// The user id the client named when it attested the key, if any.
    pub user_id: Option<String>,
    /// The client address the attestation came from, if known.
    pub client_ip: Option<String>,
    /// Assertions whose counter was lower than the stored one (see
    /// [`crate::Store::record_counter_anomaly`]).
    pub counter_regressions: u64,
    /// Assertions replayed with the stored counter.
    pub replays: u64,
    /// Why the key stopped being accepted, when it did. `None` with `revoked_at` set means a key
    /// revoked before reasons were recorded (read it as [`RevocationReason::Revoked`]).
    pub revocation_reason: Option<RevocationReason>,
}

impl DeviceKey {
    /// A key just attested at `at` with `evidence`: counter 0 if its platform has one, one
    /// attestation, no assertion, not revoked, no user or address. Set the other fields as
    /// needed.
    pub fn new(
        key_id: KeyId,
        device_id: impl Into<String>,
        app_id: impl Into<String>,
        environment: Environment,
        public_key_spki: Vec<u8>,
        evidence: impl Into<Evidence>,
        at: OffsetDateTime,
    ) -> Self {
        let evidence = evidence.into();
        Self {
            counter: evidence.platform().has_counter().then_some(0),
            key_id,
            device_id: device_id.into(),
            app_id: app_id.into(),
            environment,
            public_key_spki,
            receipt_risk_metric: None,
            created_at: at,
            last_seen_at: at,
            attestation_count: 1,
            assertion_count: 0,
            revoked_at: None,
            superseded_by: None,
            evidence,
            user_id: None,
            client_ip: None,
            counter_regressions: 0,
            replays: 0,
            revocation_reason: None,
        }
    }

    /// The platform whose attestation proved the key.
    pub const fn platform(&self) -> Platform {
        self.evidence.platform()
    }
}

/// A suspicious assertion counter, recorded by [`crate::Store::record_counter_anomaly`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CounterAnomaly {
    /// The counter was lower than the stored one: another copy of the key state (a restored
    /// backup, a clone) or a relayed old assertion.
    Regression,
    /// The counter equalled the stored one: the same assertion sent again.
    Replay,
}

/// What [`crate::Store::advance_counter`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "only `Advanced` means the assertion may be accepted"]
pub enum CounterAdvance {
    /// The stored counter was lower and now equals the new one: accept the assertion.
    Advanced,
    /// The new counter is not greater than the stored one: a replayed or cloned assertion.
    Replayed {
        /// The counter the store holds.
        stored: u32,
    },
    /// The key is revoked.
    Revoked,
    /// No key has this id.
    UnknownKey,
}

impl CounterAdvance {
    /// Whether the counter moved forward.
    pub fn is_advanced(self) -> bool {
        matches!(self, Self::Advanced)
    }
}

/// One allow/deny decision for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// When the decision was made.
    pub at: OffsetDateTime,
    /// The App ID the request claimed.
    pub app_id: String,
    /// The key the request used, when it named one.
    pub key_id: Option<KeyId>,
    /// The route that decided (`/v1/attest`, `/v1/assert`, ...).
    pub route: String,
    /// Allowed, allowed in monitor mode, or denied.
    pub outcome: Outcome,
    /// The stable error or success code (`nonce_mismatch`, `ok`, ...).
    pub code: String,
    /// The risk score from 0 (trusted) to 100, when one was computed.
    pub risk_score: Option<u8>,
    /// Whether an attestation or an assertion was decided (`None` in rows written before kinds
    /// were recorded).
    pub kind: Option<DecisionKind>,
    /// The device the request was about, when known.
    pub device_id: Option<String>,
    /// The user id the client named, when known.
    pub user_id: Option<String>,
    /// The client address, when known.
    pub client_ip: Option<String>,
    /// The key's environment, when known.
    pub environment: Option<Environment>,
    /// The app's policy mode at the time.
    pub mode: Option<PolicyMode>,
    /// Whether enforce mode would deny this request (whatever the mode was).
    pub would_deny: bool,
    /// Every failed policy rule, in the policy's order.
    pub reasons: Vec<DecisionReason>,
    /// The risk factors that triggered, with their points and evidence.
    pub factors: Vec<DecisionFactor>,
}

impl Decision {
    /// A decision with the required fields; everything else empty (no key, score, reasons...).
    pub fn new(
        at: OffsetDateTime,
        app_id: impl Into<String>,
        route: impl Into<String>,
        outcome: Outcome,
        code: impl Into<String>,
    ) -> Self {
        Self {
            at,
            app_id: app_id.into(),
            key_id: None,
            route: route.into(),
            outcome,
            code: code.into(),
            risk_score: None,
            kind: None,
            device_id: None,
            user_id: None,
            client_ip: None,
            environment: None,
            mode: None,
            would_deny: false,
            reasons: Vec::new(),
            factors: Vec::new(),
        }
    }
}

/// One failed policy rule of a decision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecisionReason {
    /// The rule's stable snake_case code (`risk_above_max`, ...). Unique within a decision.
    pub code: String,
    /// What failed, with the numbers.
    pub message: String,
}

/// One risk factor of a decision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecisionFactor {
    /// The factor's stable snake_case name (`new_device`, ...).
    pub name: String,
    /// The points it added.
    pub points: u8,
    /// The numbers that triggered it.
    pub evidence: String,
}

/// A decision as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedDecision {
    /// The log position: increasing, so newer decisions have larger ids.
    pub id: i64,
    /// The decision.
    pub decision: Decision,
}

/// Which decisions [`crate::Store::list_decisions`] returns; `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecisionFilter {
    /// Only this App ID.
    pub app_id: Option<String>,
    /// Only this key.
    pub key_id: Option<KeyId>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Only decisions at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only decisions older than this log id: pass the last id of a page to get the next page.
    pub before_id: Option<i64>,
    /// Only decisions that enforcing would (`true`) or would not (`false`) deny.
    pub would_deny: Option<bool>,
    /// Only decisions about this device.
    pub device_id: Option<String>,
}

/// A JWT signing key of attest-token.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// The key id put in JWT headers and the JWKS.
    pub kid: String,
    /// The JWS algorithm (`ES256`).
    pub algorithm: String,
    /// The private key as PKCS#8 DER. Secret: never logged (`Debug` redacts it).
    pub private_pkcs8: Vec<u8>,
    /// When the key was created.
    pub created_at: OffsetDateTime,
    /// When the key stopped being used for verification, if it has.
    pub retired_at: Option<OffsetDateTime>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("private_pkcs8", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

/// `time` without its sub-second part: the precision the store keeps.
pub fn whole_seconds(time: OffsetDateTime) -> OffsetDateTime {
    time.replace_nanosecond(0).unwrap_or(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enumerations_round_trip_through_their_stored_text() {
        for environment in [Environment::Development, Environment::Production] {
            assert_eq!(environment.as_str().parse(), Ok(environment));
        }
        for outcome in [Outcome::Allow, Outcome::AllowMonitored, Outcome::Deny] {
            assert_eq!(outcome.as_str().parse(), Ok(outcome));
        }
        for reason in [
            RevocationReason::Revoked,
            RevocationReason::Superseded,
            RevocationReason::Expired,
        ] {
            assert_eq!(reason.as_str().parse(), Ok(reason));
        }
        for kind in [
            DecisionKind::Attestation,
            DecisionKind::Assertion,
            DecisionKind::DeviceCheck,
        ] {
            assert_eq!(kind.as_str().parse(), Ok(kind));
        }
        for mode in [PolicyMode::Off, PolicyMode::Monitor, PolicyMode::Enforce] {
            assert_eq!(mode.as_str().parse(), Ok(mode));
        }
        assert!("Allow".parse::<Outcome>().is_err());
    }

    #[test]
    fn signing_key_debug_hides_the_private_key() {
        let key = SigningKey {
            kid: "k1".into(),
            algorithm: "ES256".into(),
            private_pkcs8: vec![0xAB; 8],
            created_at: OffsetDateTime::UNIX_EPOCH,
            retired_at: None,
        };
        let text = format!("{key:?}");
        assert!(text.contains("<redacted>"));
        assert!(!text.contains("171"), "{text}");
    }
}
