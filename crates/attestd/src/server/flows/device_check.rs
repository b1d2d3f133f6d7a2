//! The DeviceCheck fallback: a device that cannot use App Attest (older iOS, or
//! `DCAppAttestService.isSupported == false`) sends a DeviceCheck token instead; attestd asks
//! Apple about it, scores and decides it like any other request, and logs a `device_check`
//! decision. Weaker than App Attest (Apple vouches for a genuine device running one of the
//! team's apps, not for an untampered build of this one), hence opt-in per app
//! (`device_check_fallback`) and no JWT: the verdict is for the caller's backend to act on.

use std::sync::Arc;

use attest_policy::DeviceCheck;
use attest_store::{DecisionKind, SpentChallenge, Store};
use attest_types::Environment;
use aws_lc_rs::digest::{Context, SHA256};
use time::{Duration, OffsetDateTime};

use super::{Proof, conclude, decide_verified, now, refuse};
use crate::server::apple::device_check::{DeviceCheckError, DeviceCheckSignal};
use crate::server::context::RequestContext;
use crate::server::error::ApiError;
use crate::server::extract::decode_base64;
use crate::server::risk::Verdict;
use crate::server::risk::gather::Subject;
use crate::server::state::{App, AppState};

/// How long a presented DeviceCheck token is remembered as used. Apple does not document how
/// long a token stays valid; a month outlasts any plausible validity, and a replay after that
/// still needs Apple to accept the old token.
pub const DEVICE_TOKEN_MEMORY: Duration = Duration::days(30);

/// Domain separation for the spent-token record: the spent-challenge table holds challenge
/// nonces too. `v2`: SHA-256 of the token's **bytes**, so that a re-spelt token (URL-safe
/// alphabet, no padding, whitespace) is the same token.
const SPENT_TOKEN_DOMAIN: &[u8] = b"attestd devicecheck token v2\0";

/// Transition: before `v2`, the record was SHA-256 of the token's **text**. Tokens spent then
/// stay remembered under that digest for [`DEVICE_TOKEN_MEMORY`]; spending it too keeps them
/// spent (in the spelling clients send, standard base64, which is what `device_token` makes of
/// every spelling). One more insert per device check, which is rare and calls Apple anyway.
/// Once every instance has run with `v2` for 30 days, no `v1` record is left and this can go.
const SPENT_TOKEN_DOMAIN_V1: &[u8] = b"attestd devicecheck token v1\0";

/// What [`device_check`] needs from the request.
#[derive(Debug)]
pub struct DeviceCheckInput<'a> {
    /// The app the device runs.
    pub app: &'a Arc<App>,
    /// The token as `device_token` cleaned it: standard padded base64, one spelling per token.
    pub device_token: String,
    /// Which DeviceCheck service the token belongs to (development builds get development
    /// tokens).
    pub environment: Environment,
    /// The requester, with the optional user and device ids.
    pub context: RequestContext,
}

/// A DeviceCheck token Apple accepted, with the verdict.
#[derive(Debug)]
pub struct DeviceChecked {
    /// Apple's answer (valid, with the bits if ever set).
    pub answer: DeviceCheck,
    /// The score and the decision.
    pub verdict: Verdict,
}

/// Spends the token (once per token, across instances), asks Apple, then scores, decides and
/// logs. Apple unreachable (503) or not configured (409) answers without a decision: nothing
/// was learnt about the device.
pub async fn device_check(
    state: &Arc<AppState>,
    route: &'static str,
    input: DeviceCheckInput<'_>,
) -> Result<DeviceChecked, DeviceCheckError> {
    let app = input.app;
    if !app.config.device_check_fallback {
        return Err(ApiError::DeviceCheckDisabled.into());
    }
    if !app.config.environment.accepts(input.environment) {
        return Err(ApiError::field(
            "environment",
            format!(
                "this app accepts {} devices only",
                app.config.environment.as_str()
            ),
        )
        .into());
    }
    let started = now();
    let mut subject = Subject::claimed(DecisionKind::DeviceCheck, Some(app), None, &input.context);
    if !spend_token(state, &input.device_token, started).await? {
        let error = ApiError::DeviceTokenReused;
        return Err(refuse(state, route, &subject, error, Proof::None, started)
            .await
            .into());
    }
    let environment = input.environment;
    let answer = match state
        .apple
        .device_check_signal(&input.device_token, environment)
        .await
    {
        DeviceCheckSignal::Answered(answer) => answer,
        DeviceCheckSignal::NotConfigured => return Err(DeviceCheckError::NotConfigured),
        DeviceCheckSignal::Unavailable(error) => return Err(DeviceCheckError::Apple(error)),
    };
    subject.device_check = Some(answer);
    if !answer.valid {
        let error = ApiError::DeviceTokenInvalid;
        return Err(refuse(state, route, &subject, error, Proof::None, started)
            .await
            .into());
    }
    let (verdict, _) = decide_verified(state, app, &subject, started).await?;
    conclude(state, route, &subject, &verdict, started).await?;
    Ok(DeviceChecked { answer, verdict })
}

/// Records the token as used; `false` when it already was (in any spelling, or before `v2` in
/// the same spelling).
async fn spend_token(
    state: &AppState,
    device_token: &str,
    at: OffsetDateTime,
) -> Result<bool, ApiError> {
    let bytes = decode_base64("deviceToken", device_token)?;
    let expires_at = attest_store::whole_seconds(at) + DEVICE_TOKEN_MEMORY;
    for digest in [
        token_digest(SPENT_TOKEN_DOMAIN, &bytes),
        token_digest(SPENT_TOKEN_DOMAIN_V1, device_token.as_bytes()),
    ] {
        let spent = state
            .store
            .spend_challenge(SpentChallenge {
                nonce: &digest,
                expires_at,
            })
            .await?;
        if !spent {
            return Ok(false);
        }
    }
    Ok(true)
}

fn token_digest(domain: &[u8], token: &[u8]) -> [u8; 32] {
    let mut context = Context::new(&SHA256);
    context.update(domain);
    context.update(token);
    let mut digest = [0u8; 32];
    digest.copy_from_slice(context.finish().as_ref());
    digest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_digests_are_domain_separated_and_distinct() {
        let plain = {
            let mut context = Context::new(&SHA256);
            context.update(b"ABC");
            context.finish()
        };
        let digest = |token: &[u8]| token_digest(SPENT_TOKEN_DOMAIN, token);
        assert_ne!(digest(b"ABC").as_slice(), plain.as_ref());
        assert_ne!(digest(b"ABC"), digest(b"ABD"));
        assert_eq!(digest(b"ABC"), digest(b"ABC"));
        assert_ne!(digest(b"ABC"), token_digest(SPENT_TOKEN_DOMAIN_V1, b"ABC"));
    }
}
