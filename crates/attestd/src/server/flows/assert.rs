//! Accepting an assertion: the key must be known, live (not revoked, superseded or expired) and
//! its counter must move forward; a counter that went backwards is told apart from a replay.
//!
//! The hot path costs two database round trips: one read (the key with its device's history
//! and the risk signals' counts, [`Store::key_context`]) and one write transaction (challenge spent, counter advanced,
//! decision logged: [`Store::commit_assertion`]). The decision is made before that
//! transaction, on the key as the transaction will leave it; if the transaction does not
//! advance the counter (a concurrent request won), the request is refused and decided again
//! as a failure.

use std::sync::Arc;

use attest_core::apple::assertion::{AssertionRequest, hash_client_data, verify_assertion};
use attest_core::apple::{AppleError, KeyId};
use attest_store::{
    AssertionCommit, AssertionCommitted, CounterAdvance, CounterAnomaly, DecisionKind,
    DeviceHistory, DeviceKey, RevocationReason, SpentChallenge, Store, whole_seconds,
};
use time::OffsetDateTime;

use super::{
    IssuedChallenge, challenge_in_payload, decide_verified, denial, issue_challenge, now,
    open_challenge, refuse,
};
use crate::server::challenge::{ChallengePurpose, OpenedChallenge};
use crate::server::context::RequestContext;
use crate::server::error::ApiError;
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
    /// The assertion object (CBOR).
    pub assertion: &'a [u8],
    /// The requester.
    pub context: RequestContext,
}

/// An assertion accepted by [`assert`].
#[derive(Debug)]
pub struct Asserted {
    /// The key as stored after this assertion.
    pub device: DeviceKey,
    /// The new counter.
    pub counter: u32,
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
    let query = context_query(state, &input.context, started);
    let Some(context) = state.store.key_context(input.key_id.0, &query).await? else {
        let subject = Subject::claimed(
            DecisionKind::Assertion,
            None,
            Some(input.key_id),
            &input.context,
        );
        return Err(refuse(state, route, &subject, ApiError::KeyUnknown, started).await);
    };
    let prefetched = Prefetched::of(&context);
    let (mut key, history) = (context.key, context.history);
    let app = state.apps.get(&key.app_id).map(Arc::clone);
    let checked = check(state, app.as_deref(), &mut key, &input, started).await;
    let (app, (counter, challenge)) = match (app.as_deref(), checked) {
        (Some(app), Ok(checked)) => (app, checked),
        (_, Err(error)) => {
            let subject = subject_of(app.as_deref(), &key, history, &input, &prefetched);
            return Err(refuse(state, route, &subject, error, started).await);
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
            key_id: input.key_id.0,
            counter,
            seen_at: seen,
            decision: &decision,
        })
        .await?;
    if let Some(refused) = refusal(committed) {
        (key.counter, key.assertion_count, key.last_seen_at) = stored;
        let error = match refused {
            // Another request advanced the counter since the key was read.
            Refusal::Counter { stored } => {
                key.counter = stored;
                anomaly(state, &mut key, counter, stored).await
            }
            Refusal::Other(error) => error,
        };
        let subject = subject_of(Some(app), &key, history, &input, &prefetched);
        return Err(refuse(state, route, &subject, error, started).await);
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

/// What the risk evaluation of an assertion is about.
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

/// The checks that need no write, in order: app, liveness, signature and counter against the
/// stored key, and the challenge the client data carries (authentic, for this app and key, not
/// expired; spent by the commit). Counter anomalies are recorded on the key (and in `key`).
async fn check(
    state: &AppState,
    app: Option<&App>,
    key: &mut DeviceKey,
    input: &AssertInput<'_>,
    at: OffsetDateTime,
) -> Result<(u32, OpenedChallenge), ApiError> {
    let app = app.ok_or_else(|| ApiError::UnknownApp(key.app_id.clone()))?;
    check_live(state, key, at).await?;
    let public_key = state
        .keys
        .get_or_parse(input.key_id, &key.public_key_spki)
        .map_err(|error| {
            server_failure(Severity::Bug, "stored public key does not parse", &error);
            ApiError::Internal
        })?;
    let client_data_hash = hash_client_data(input.payload.as_bytes());
    let request = AssertionRequest {
        public_key: &public_key,
        client_data_hash: &client_data_hash,
        app_ids: &app.ids,
        previous_counter: key.counter,
    };
    let verified = match verify_assertion(input.assertion, &request) {
        Ok(verified) => verified,
        // The signature verified (it is checked first), the counter did not move forward.
        Err(AppleError::CounterInvalid { counter, .. }) => {
            let stored = key.counter;
            return Err(anomaly(state, key, counter, stored).await);
        }
        Err(error) => return Err(error.into()),
    };
    // Step 6 — the client data carries a challenge this server issued for this key.
    let value = challenge_in_payload(input.payload).ok_or(ApiError::ChallengeInvalid)?;
    let challenge = open_challenge(
        state,
        &value,
        app,
        ChallengePurpose::Assertion,
        Some(input.key_id),
        at,
    )?;
    Ok((verified.counter(), challenge))
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

/// Records a counter that did not move forward: lower than stored is a regression (the key
/// state went backwards: a restored backup, a clone, a relayed old assertion), equal is a
/// replay.
async fn anomaly(state: &AppState, key: &mut DeviceKey, counter: u32, stored: u32) -> ApiError {
    let (kind, error) = if counter < stored {
        key.counter_regressions = key.counter_regressions.saturating_add(1);
        (
            CounterAnomaly::Regression,
            ApiError::CounterRegressed { counter, stored },
        )
    } else {
        key.replays = key.replays.saturating_add(1);
        (
            CounterAnomaly::Replay,
            ApiError::CounterInvalid { counter, stored },
        )
    };
    if let Err(error) = state.store.record_counter_anomaly(key.key_id, kind).await {
        server_failure(
            Severity::Dependency,
            "could not record a counter anomaly",
            &error,
        );
    }
    error
}
