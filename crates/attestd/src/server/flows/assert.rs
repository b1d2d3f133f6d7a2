//! Accepting an assertion: the key must be known, live (not revoked, superseded or expired) and
//! its counter must move forward; a counter that went backwards is told apart from a replay.

use std::sync::Arc;

use attest_core::apple::assertion::{AssertionRequest, hash_client_data, verify_assertion};
use attest_core::apple::{AppleError, KeyId};
use attest_store::{
    ChallengePurpose, CounterAdvance, CounterAnomaly, DecisionKind, DeviceKey, KeyFilter,
    MAX_PAGE_SIZE, RevocationReason, Store, whole_seconds,
};
use time::OffsetDateTime;

use super::{
    IssuedChallenge, challenge_in_payload, conclude, decide_verified, issue_challenge, now, refuse,
};
use crate::server::context::RequestContext;
use crate::server::error::ApiError;
use crate::server::risk::gather::{Subject, to_time};
use crate::server::risk::{Verdict, client_time};
use crate::server::state::{App, AppState};

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
    let Some(mut key) = state.store.device_key(input.key_id.0).await? else {
        let subject = Subject {
            kind: DecisionKind::Assertion,
            app: None,
            key_id: Some(input.key_id),
            key: None,
            attesting: false,
            device_keys: &[],
            device_id: None,
            user_id: None,
            context: &input.context,
            client_time: None,
        };
        return Err(refuse(state, route, &subject, ApiError::KeyUnknown, started).await);
    };
    let app = state.apps.get(&key.app_id).map(Arc::clone);
    let device_keys = state
        .store
        .find_device_keys(
            &KeyFilter {
                app_id: Some(key.app_id.clone()),
                device_id: Some(key.device_id.clone()),
                ..KeyFilter::default()
            },
            MAX_PAGE_SIZE,
        )
        .await?;
    let accepted = accept(state, app.as_deref(), &mut key, &input, started).await;
    let subject = Subject {
        kind: DecisionKind::Assertion,
        app: app.as_deref(),
        key_id: Some(input.key_id),
        key: Some(&key),
        attesting: false,
        device_keys: &device_keys,
        device_id: Some(&key.device_id),
        user_id: key.user_id.as_deref(),
        context: &input.context,
        client_time: client_time(input.payload),
    };
    let (app, counter) = match (app.as_deref(), accepted) {
        (Some(app), Ok(counter)) => (app, counter),
        (_, Err(error)) => return Err(refuse(state, route, &subject, error, started).await),
        (None, Ok(_)) => return Err(ApiError::Internal),
    };
    let (verdict, _) = decide_verified(state, app, &subject, started).await?;
    if verdict.denied() {
        // Returns the denial; the counter has advanced (it must never go back).
        conclude(state, route, &subject, &verdict, started).await?;
    }
    let next_challenge =
        issue_challenge(state, app, ChallengePurpose::Assertion, Some(input.key_id)).await?;
    conclude(state, route, &subject, &verdict, started).await?;
    Ok(Asserted {
        device: key,
        counter,
        next_challenge,
        verdict,
    })
}

/// The checks, in order; on success `key` holds the advanced counter. Counter anomalies are
/// recorded on the key (and in `key`).
async fn accept(
    state: &AppState,
    app: Option<&App>,
    key: &mut DeviceKey,
    input: &AssertInput<'_>,
    at: OffsetDateTime,
) -> Result<u32, ApiError> {
    let app = app.ok_or_else(|| ApiError::UnknownApp(key.app_id.clone()))?;
    check_live(state, key, at).await?;
    let public_key = state
        .keys
        .get_or_parse(input.key_id, &key.public_key_spki)
        .map_err(|error| {
            tracing::error!(%error, "stored public key does not parse");
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

    // Step 6 — the client data carries a challenge this server issued; spend it now.
    let challenge_value = challenge_in_payload(input.payload).ok_or(ApiError::ChallengeInvalid)?;
    state
        .store
        .take_challenge(&challenge_value, app.id(), at)
        .await?
        .filter(|challenge| {
            challenge.purpose == ChallengePurpose::Assertion
                && challenge.key_id.is_none_or(|bound| bound == input.key_id.0)
        })
        .ok_or(ApiError::ChallengeInvalid)?;

    let counter = verified.counter();
    let seen = whole_seconds(at);
    match state
        .store
        .advance_counter(key.key_id, counter, seen)
        .await?
    {
        CounterAdvance::Advanced => {
            key.counter = counter;
            key.assertion_count = key.assertion_count.saturating_add(1);
            key.last_seen_at = seen;
            Ok(counter)
        }
        // Another request advanced the counter since the key was read.
        CounterAdvance::Replayed { stored } => Err(anomaly(state, key, counter, stored).await),
        CounterAdvance::Revoked => Err(ApiError::KeyRevoked),
        CounterAdvance::UnknownKey => Err(ApiError::KeyUnknown),
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
        tracing::warn!(%error, "could not record a counter anomaly");
    }
    error
}
