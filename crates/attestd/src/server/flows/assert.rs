//! Accepting an assertion: the key must be known, live (not revoked, superseded or expired) and
//! its counter must move forward; a counter that went backwards is told apart from a replay.
//!
//! A refusal counts against the key's device only if the request proved possession of the key
//! (see [`Proof`]): a stranger who knows a keyId can send garbage in its name, or replay an old
//! assertion of it, and must not move its risk. Such refusals are scored on their own (no fact
//! about the key goes into the answer) and count against their sender.
//!
//! The hot path costs two database round trips: one read (the key with its device's history
//! and the risk signals' counts, [`Store::key_context`]) and one write transaction (challenge spent, counter advanced,
//! decision logged: [`Store::commit_assertion`]). The decision is made before that
//! transaction, on the key as the transaction will leave it; if the transaction does not
//! advance the counter (a concurrent request won), the request is refused and decided again
//! as a failure.

use std::sync::Arc;
use std::time::Instant;

use attest_core::apple::KeyId;
use attest_store::{
    AssertionCommit, AssertionCommitted, CounterAdvance, CounterAnomaly, DecisionKind,
    DeviceHistory, DeviceKey, RevocationReason, SpentChallenge, Store, whole_seconds,
};
use time::OffsetDateTime;

use super::{
    IssuedChallenge, Proof, challenge_in_payload, decide_verified, denial, issue_challenge, now,
    open_challenge, refuse,
};
use crate::server::challenge::{ChallengePurpose, OpenedChallenge};
use crate::server::context::RequestContext;
use crate::server::error::ApiError;
use crate::server::platform::{AssertionProof, Signed};
use crate::server::risk::gather::{Prefetched, Subject, context_query, to_time};
use crate::server::risk::record::{Entry, after_logging, log_entry};
use crate::server::risk::{Verdict, client_time};
use crate::server::state::{App, AppState};
use crate::server::telemetry::{Severity, count_verification, server_failure};

/// What [`assert`] needs from the request.
#[derive(Debug)]
pub struct AssertInput<'a> {
    /// The key the assertion claims.
    pub key_id: KeyId,
    /// The exact client data the app signed.
    pub payload: &'a str,
    /// The platform's signature over the payload.
    pub proof: AssertionProof,
    /// The requester.
    pub context: RequestContext,
}

/// An assertion accepted by [`assert`].
#[derive(Debug)]
pub struct Asserted {
    /// The key as stored after this assertion.
    pub device: DeviceKey,
    /// The new counter, on platforms whose keys have one.
    pub counter: Option<u32>,
    /// A one-time challenge for the next assertion.
    pub next_challenge: IssuedChallenge,
    /// The score and the decision.
    pub verdict: Verdict,
}

/// Accepts one assertion: the key is known and live, the signature verifies over the payload,
/// the payload carries a challenge we issued (spent now), and the counter advances. Every
/// outcome is decided and logged.
pub async fn assert(
    state: &Arc<AppState>,
    route: &'static str,
    input: AssertInput<'_>,
) -> Result<Asserted, ApiError> {
    let started = now();
    // Checked before any work, charged only once the request proves possession of the key.
    state.limits.check_key(input.key_id, Instant::now())?;
    let query = context_query(state, &input.context, started);
    let Some(context) = state.store.key_context(input.key_id, &query).await? else {
        let subject = stranger(None, &input);
        let error = ApiError::KeyUnknown;
        return Err(refuse(state, route, &subject, error, Proof::None, started).await);
    };
    let prefetched = Prefetched::of(&context);
    let (mut key, history) = (context.key, context.history);
    let app = state.apps.get(&key.app_id).map(Arc::clone);
    let checked = check(state, app.as_deref(), &mut key, &input, started).await;
    let (app, (counter, challenge)) = match (app.as_deref(), checked) {
        (Some(app), Ok(checked)) => {
            state.limits.charge_key(input.key_id, Instant::now());
            (app, checked)
        }
        (app, Err(Refused::Proven(error))) => {
            state.limits.charge_key(input.key_id, Instant::now());
            let subject = subject_of(app, &key, history, &input, &prefetched);
            return Err(refuse(state, route, &subject, error, Proof::Possession, started).await);
        }
        (app, Err(Refused::Unproven(error))) => {
            let subject = stranger(app, &input);
            return Err(refuse(state, route, &subject, error, Proof::None, started).await);
        }
        (None, Ok(_)) => return Err(ApiError::Internal),
    };

    // Decide on the key as the commit leaves it (put back if the commit refuses).
    let seen = whole_seconds(started);
    let stored = (key.counter, key.assertion_count, key.last_seen_at);
    key.counter = counter;
    key.assertion_count = key.assertion_count.saturating_add(1);
    key.last_seen_at = seen;
    let (verdict, decision) = {
        let subject = subject_of(Some(app), &key, history, &input, &prefetched);
        let (verdict, _) = decide_verified(state, app, &subject, started).await?;
        let decision = log_entry(&entry(route, &subject, &verdict, started));
        (verdict, decision)
    };
    let committed = state
        .store
        .commit_assertion(AssertionCommit {
            challenge: SpentChallenge {
                nonce: &challenge.nonce,
                expires_at: challenge.expires_at,
            },
            key_id: input.key_id,
            counter,
            seen_at: seen,
            decision: &decision,
        })
        .await?;
    if let Some(refused) = refusal(committed) {
        (key.counter, key.assertion_count, key.last_seen_at) = stored;
        let error = match refused {
            // Another request advanced the counter since the key was read.
            Refusal::Counter { stored } => match counter {
                Some(counter) => {
                    key.counter = Some(stored);
                    anomaly(state, &mut key, counter, stored).await
                }
                // A key without a counter is never refused for one.
                None => ApiError::Internal,
            },
            Refusal::Other(error) => error,
        };
        // The signature verified over a live challenge of this key: possession proved.
        let subject = subject_of(Some(app), &key, history, &input, &prefetched);
        return Err(refuse(state, route, &subject, error, Proof::Possession, started).await);
    }
    count_verification(DecisionKind::Assertion.as_str(), "ok");
    let subject = subject_of(Some(app), &key, history, &input, &prefetched);
    after_logging(state, &entry(route, &subject, &verdict, started)).await;
    if verdict.denied() {
        // The counter has advanced (it must never go back); no next challenge.
        return Err(denial(&verdict));
    }
    let next_challenge =
        issue_challenge(state, app, ChallengePurpose::Assertion, Some(input.key_id))?;
    Ok(Asserted {
        device: key,
        counter,
        next_challenge,
        verdict,
    })
}

/// The log entry of an accepted assertion.
fn entry<'a>(
    route: &'static str,
    subject: &'a Subject<'a>,
    verdict: &'a Verdict,
    now: OffsetDateTime,
) -> Entry<'a> {
    Entry {
        route,
        subject,
        code: "ok",
        verdict,
        now,
    }
}

/// Why a commit refused an assertion that verified.
enum Refusal {
    /// The stored counter is not below the assertion's: a concurrent request got there first.
    Counter { stored: u32 },
    /// Anything else, as the error to answer.
    Other(ApiError),
}

/// `None` if the commit accepted the assertion.
fn refusal(committed: AssertionCommitted) -> Option<Refusal> {
    Some(match committed {
        AssertionCommitted::Accepted { .. } => return None,
        AssertionCommitted::ChallengeSpent => Refusal::Other(ApiError::ChallengeInvalid),
        AssertionCommitted::NotAdvanced(advance) => match advance {
            CounterAdvance::Replayed { stored } => Refusal::Counter { stored },
            CounterAdvance::Revoked => Refusal::Other(ApiError::KeyRevoked),
            CounterAdvance::UnknownKey => Refusal::Other(ApiError::KeyUnknown),
            CounterAdvance::Advanced => Refusal::Other(ApiError::Internal),
        },
    })
}

/// What the risk evaluation of an assertion that proved possession of its key is about.
fn subject_of<'a>(
    app: Option<&'a App>,
    key: &'a DeviceKey,
    history: DeviceHistory,
    input: &'a AssertInput<'_>,
    prefetched: &'a Prefetched,
) -> Subject<'a> {
    Subject {
        kind: DecisionKind::Assertion,
        app,
        key_id: Some(input.key_id),
        key: Some(key),
        attesting: false,
        history,
        device_id: Some(&key.device_id),
        user_id: key.user_id.as_deref(),
        context: &input.context,
        client_time: client_time(input.payload),
        // Read for the key's app: of no use if that app is no longer configured.
        prefetched: app.is_some().then_some(prefetched),
        device_check: None,
    }
}

/// What the risk evaluation of an assertion that proved nothing is about: the app of the key it
/// named and the keyId itself (logged, to show what was tried), nothing of the key's device.
fn stranger<'a>(app: Option<&'a App>, input: &'a AssertInput<'_>) -> Subject<'a> {
    Subject::claimed(
        DecisionKind::Assertion,
        app,
        Some(input.key_id),
        &input.context,
    )
}

/// Why [`check`] refused an assertion, with what the request proved.
enum Refused {
    /// The signature verified over a live challenge of the key (see [`Proof::Possession`]).
    Proven(ApiError),
    /// Nothing about the key was proved.
    Unproven(ApiError),
}

impl<E: Into<ApiError>> From<E> for Refused {
    /// Any error before possession is proved.
    fn from(error: E) -> Self {
        Self::Unproven(error.into())
    }
}

/// The checks that need no write, in order: app, liveness, signature and counter against the
/// stored key, and the challenge the client data carries (authentic, for this app and key, not
/// expired; spent by the commit). A counter that did not move forward is recorded on the key
/// (and in `key`) only once the challenge shows the signature is fresh: the same counter under a
/// stale challenge is an old assertion sent again, which anyone who once saw it can do.
async fn check(
    state: &AppState,
    app: Option<&App>,
    key: &mut DeviceKey,
    input: &AssertInput<'_>,
    at: OffsetDateTime,
) -> Result<(Option<u32>, OpenedChallenge), Refused> {
    let app = app.ok_or_else(|| ApiError::UnknownApp(key.app_id.clone()))?;
    check_live(state, key, at).await?;
    let signed = input.proof.verify(state, app, key, input.payload)?;
    // The client data carries a challenge this server issued for this key.
    let challenge = || {
        let value = challenge_in_payload(input.payload).ok_or(ApiError::ChallengeInvalid)?;
        open_challenge(
            state,
            &value,
            app,
            ChallengePurpose::Assertion,
            Some(input.key_id),
            at,
        )
    };
    match signed {
        Signed::Verified { counter } => Ok((counter, challenge()?)),
        // The signature verified, the counter did not move forward.
        Signed::CounterNotAdvanced { counter, stored } => {
            if challenge().is_err() {
                return Err(Refused::Unproven(counter_error(counter, stored).1));
            }
            Err(Refused::Proven(anomaly(state, key, counter, stored).await))
        }
    }
}

/// Refuses a key that is revoked, superseded or expired; expires a key idle past the limit.
async fn check_live(
    state: &AppState,
    key: &mut DeviceKey,
    at: OffsetDateTime,
) -> Result<(), ApiError> {
    if key.revoked_at.is_some() {
        return Err(match key.revocation_reason {
            Some(RevocationReason::Superseded) => ApiError::KeySuperseded,
            Some(RevocationReason::Expired) => ApiError::KeyExpired,
            _ if key.superseded_by.is_some() => ApiError::KeySuperseded,
            _ => ApiError::KeyRevoked,
        });
    }
    let Some(expiry) = state.config.key_idle_expiry else {
        return Ok(());
    };
    let idle_before = at - to_time(expiry);
    if key.last_seen_at >= idle_before {
        return Ok(());
    }
    let now = whole_seconds(at);
    if state
        .store
        .expire_device_key(key.key_id, idle_before, now)
        .await?
    {
        metrics::counter!("attestd_keys_expired_total").increment(1);
        key.revoked_at = Some(now);
        key.revocation_reason = Some(RevocationReason::Expired);
    }
    Err(ApiError::KeyExpired)
}

/// A counter that did not move forward: lower than stored is a regression (the key state went
/// backwards: a restored backup, a clone, a relayed old assertion), equal is a replay.
fn counter_error(counter: u32, stored: u32) -> (CounterAnomaly, ApiError) {
    if counter < stored {
        (
            CounterAnomaly::Regression,
            ApiError::CounterRegressed { counter, stored },
        )
    } else {
        (
            CounterAnomaly::Replay,
            ApiError::CounterInvalid { counter, stored },
        )
    }
}

/// Records, on the key, a counter that did not move forward in an assertion that proved
/// possession (see [`counter_error`]).
async fn anomaly(state: &AppState, key: &mut DeviceKey, counter: u32, stored: u32) -> ApiError {
    let (kind, error) = counter_error(counter, stored);
    match kind {
        CounterAnomaly::Regression => {
            key.counter_regressions = key.counter_regressions.saturating_add(1);
        }
        CounterAnomaly::Replay => key.replays = key.replays.saturating_add(1),
    }
    if let Err(error) = state.store.record_counter_anomaly(key.key_id, kind).await {
        server_failure(
            Severity::Dependency,
            "could not record a counter anomaly",
            &error,
        );
    }
    error
}
