//! The App Attest flows, free of HTTP: issue a challenge, register a key from an attestation,
//! accept an assertion. Handlers decode the request, call one of these and encode the answer.
//!
//! Every attestation and assertion ends in one [`Verdict`](super::risk::Verdict): the request's
//! signals are gathered, scored and decided by the app's policy, and the decision is logged
//! (see [`super::risk`]), whether the request succeeded or not.

mod assert;
mod attest;
mod device_check;
mod lineage;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use attest_core::apple::KeyId;
use attest_policy::{Policy, RiskWeights, Verification};
use attest_store::{DecisionKind, whole_seconds};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;

pub use assert::{AssertInput, Asserted, assert};
pub use attest::{AttestInput, LinkKeyInput, attest, link_key};
pub use device_check::{DeviceCheckInput, device_check};

use super::challenge::{self, ChallengePurpose, OpenedChallenge};
use super::dto::RiskView;
use super::error::ApiError;
use super::risk::gather::{Subject, gather};
use super::risk::record::{Entry, record, record_refusal};
use super::risk::{Verdict, evaluate};
use super::state::{App, AppState};
use super::telemetry::{Severity, count_verification, server_failure};

/// A challenge as handed to the client.
#[derive(Debug, Clone)]
pub struct IssuedChallenge {
    /// The MAC-authenticated challenge value (see [`crate::server::challenge`]).
    pub value: String,
    /// When it stops being accepted.
    pub expires_at: OffsetDateTime,
    /// Its lifetime.
    pub ttl: Duration,
}

/// Issues a single-use challenge for `app`, optionally bound to one key. No database write:
/// the value carries its own MAC; it is recorded when spent.
pub fn issue_challenge(
    state: &AppState,
    app: &App,
    purpose: ChallengePurpose,
    key_id: Option<KeyId>,
) -> Result<IssuedChallenge, ApiError> {
    let issued_at = now();
    let nonce = new_nonce(issued_at)?;
    let ttl = state.config.challenge_ttl;
    let expires_at = whole_seconds(issued_at) + ttl;
    let value = state
        .challenges
        .issue(app.id(), purpose, key_id, nonce, expires_at);
    Ok(IssuedChallenge {
        value,
        expires_at,
        ttl,
    })
}

/// Bytes of a challenge nonce that carry its issue time.
const NONCE_TIME_LEN: usize = 6;

/// A challenge nonce: the issue time in milliseconds (48 bits, big-endian) then 80 random bits.
///
/// The time prefix is for the store, not for security (the MAC authenticates the challenge and
/// its expiry is in the clear anyway): spent nonces are a primary key, and nonces that grow
/// with time are inserted at the right edge of its B-tree, where the pages of one group commit
/// are shared, instead of dirtying one random page each. 80 random bits keep nonces unique and
/// unpredictable.
fn new_nonce(at: OffsetDateTime) -> Result<[u8; challenge::NONCE_LEN], ApiError> {
    let mut nonce = [0u8; challenge::NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| ApiError::Internal)?;
    let millis = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let time = millis.to_be_bytes();
    nonce[..NONCE_TIME_LEN].copy_from_slice(&time[time.len() - NONCE_TIME_LEN..]);
    Ok(nonce)
}

/// Checks a challenge value presented to `app` for `purpose` (with `key_id` for assertions):
/// issued by this deployment, to this app and key, not expired. Spending it is up to the
/// caller.
fn open_challenge(
    state: &AppState,
    value: &str,
    app: &App,
    purpose: ChallengePurpose,
    key_id: Option<KeyId>,
    at: OffsetDateTime,
) -> Result<OpenedChallenge, ApiError> {
    state
        .challenges
        .open(value, app.id(), purpose, key_id, at)
        .map_err(|rejection| {
            tracing::debug!(reason = rejection.as_str(), "challenge refused");
            ApiError::ChallengeInvalid
        })
}

/// Scores and decides a request that verified.
async fn decide_verified(
    state: &Arc<AppState>,
    app: &App,
    subject: &Subject<'_>,
    now: OffsetDateTime,
) -> Result<(Verdict, Vec<attest_store::FailureCount>), ApiError> {
    let gathered = gather(state, subject, Verification::Ok, now).await?;
    let verdict = evaluate(&app.config.policy, &app.config.risk, &gathered.signals);
    Ok((verdict, gathered.failures))
}

/// Logs the verdict of a request that verified; an enforced deny becomes 403 `policy_denied`
/// with the explanation.
async fn conclude(
    state: &Arc<AppState>,
    route: &'static str,
    subject: &Subject<'_>,
    verdict: &Verdict,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    count_verification(kind_label(subject.kind), "ok");
    let entry = Entry {
        route,
        subject,
        code: "ok",
        verdict,
        now,
    };
    record(state, entry).await;
    if verdict.denied() {
        Err(denial(verdict))
    } else {
        Ok(())
    }
}

/// The 403 `policy_denied` of an enforced deny, with the explanation.
fn denial(verdict: &Verdict) -> ApiError {
    let decision = &verdict.decision;
    ApiError::Assessed {
        error: Box::new(ApiError::PolicyDenied {
            reasons: decision.reasons.iter().map(|r| r.code.as_str()).collect(),
            hosted_code: decision.hosted_code,
        }),
        risk: Box::new(RiskView::from(verdict).into_details()),
    }
}

/// What a refused request proved about the key it named.
///
/// A request proves **possession** of a key when its assertion's signature verifies against the
/// stored key *and* the signed client data carries a challenge this server issued for that key
/// and app that had not expired when the request arrived: the signature was then made by the
/// key's holder after the challenge was issued, at most a challenge lifetime ago. Anything less
/// proves nothing about the key's device: a garbage signature, a malformed object, an unknown,
/// revoked or expired key (refused before the signature is checked), a forged or stale
/// challenge, and a valid signature over a stale challenge, which is what an old captured
/// assertion replayed later looks like. Only refusals that proved possession count against the
/// key's device (`repeated_failures`, the key's replay and regression counters); every refusal
/// counts against its sender (address and app).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// Nothing about the key was proved.
    None,
    /// The request proved possession of the subject's key.
    Possession,
}

/// Decides and logs a refused request; returns `error` with the risk explanation added.
/// Server-side failures are returned as they are, undecided.
///
/// With [`Proof::Possession`] the refusal counts against the device of `subject.key`; with
/// [`Proof::None`] against its sender only, and `subject` must carry nothing the request did
/// not prove (no key, device or user: see [`Subject::claimed`]), so the refusal is scored on
/// its own and its answer tells nothing about the key it named.
async fn refuse(
    state: &Arc<AppState>,
    route: &'static str,
    subject: &Subject<'_>,
    error: ApiError,
    proof: Proof,
    now: OffsetDateTime,
) -> ApiError {
    if error.is_server_side() {
        return error;
    }
    let code = error.code();
    count_verification(kind_label(subject.kind), code);
    let gathered = match gather(state, subject, Verification::failed(code), now).await {
        Ok(gathered) => gathered,
        Err(store_error) => {
            server_failure(
                Severity::Dependency,
                "could not gather risk signals of a refusal",
                &store_error,
            );
            return error;
        }
    };
    let (default_policy, default_weights) = (Policy::default(), RiskWeights::default());
    let (policy, weights) = subject
        .app
        .map_or((&default_policy, &default_weights), |app| {
            (&app.config.policy, &app.config.risk)
        });
    let verdict = evaluate(policy, weights, &gathered.signals);
    let entry = Entry {
        route,
        subject,
        code,
        verdict: &verdict,
        now,
    };
    let proven_device = match proof {
        Proof::Possession => subject.key.map(|key| key.device_id.as_str()),
        Proof::None => None,
    };
    record_refusal(state, entry, proven_device).await;
    ApiError::Assessed {
        error: Box::new(error),
        risk: Box::new(RiskView::from(&verdict).into_details()),
    }
}

fn kind_label(kind: DecisionKind) -> &'static str {
    kind.as_str()
}

/// The challenge a payload carries: the payload itself, or the `challenge` field of a JSON
/// object payload.
pub fn challenge_in_payload(payload: &str) -> Option<Cow<'_, str>> {
    if payload.trim_start().starts_with('{') {
        #[derive(serde::Deserialize)]
        struct WithChallenge<'a> {
            #[serde(borrow)]
            challenge: Cow<'a, str>,
        }
        serde_json::from_str::<WithChallenge<'_>>(payload)
            .ok()
            .map(|body| body.challenge)
    } else {
        Some(Cow::Borrowed(payload))
    }
}

fn new_device_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::Internal)?;
    Ok(format!("dev_{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The wall clock, read once per request and passed down.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_grow_with_time_and_stay_random() {
        let at = OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap();
        let first = new_nonce(at).unwrap();
        let same_time = new_nonce(at).unwrap();
        let later = new_nonce(at + Duration::from_millis(1)).unwrap();
        assert_eq!(first[..NONCE_TIME_LEN], same_time[..NONCE_TIME_LEN]);
        assert_ne!(first, same_time, "80 random bits differ");
        assert!(
            later > first && later > same_time,
            "byte order follows time"
        );
        assert_eq!(
            first[..NONCE_TIME_LEN],
            1_780_000_000_000u64.to_be_bytes()[2..],
            "milliseconds, big-endian"
        );
    }

    #[test]
    fn a_payload_is_a_challenge_or_carries_one() {
        assert_eq!(challenge_in_payload("abc").as_deref(), Some("abc"));
        assert_eq!(
            challenge_in_payload(r#"{"challenge":"abc","amount":5}"#).as_deref(),
            Some("abc")
        );
        assert_eq!(challenge_in_payload(r#"{"amount":5}"#), None);
        assert_eq!(challenge_in_payload(r#"{"challenge":5}"#), None);
    }
}
