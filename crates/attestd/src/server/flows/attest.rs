//! Registering a key, the same steps for every platform: spend the challenge, check the link
//! token, verify the attestation (the platform's verifier, `server::platform`), place the key
//! in its device's lineage, score and decide, store it, supersede the keys it replaces.
//!
//! Only ids a link token vouches for (`server::link`) place a key in an existing lineage or
//! name its user; a refused request never carries any, so it cannot touch anyone's device.

use std::sync::Arc;

use attest_core::apple::KeyId;
use attest_store::{
    DecisionKind, DeviceKey, KeyFilter, MAX_PAGE_SIZE, RevocationReason, SpentChallenge, Store,
    StoreError, whole_seconds,
};
use serde_json::json;
use time::OffsetDateTime;

use super::lineage::Lineage;
use super::{
    IssuedChallenge, Proof, conclude, decide_verified, issue_challenge, now, open_challenge, refuse,
};
use crate::server::apple::device_check::DeviceCheckSignal;
use crate::server::challenge::ChallengePurpose;
use crate::server::config::WebhookEvent;
use crate::server::context::RequestContext;
use crate::server::dto::{DeviceCheckView, DeviceIntelligence};
use crate::server::error::ApiError;
use crate::server::extract::encode_key_id;
use crate::server::link::{self, Link, LinkRequest};
use crate::server::platform::{AttestationProof, VerifiedKey};
use crate::server::risk::Verdict;
use crate::server::risk::gather::{Subject, history_of};
use crate::server::state::{App, AppState};
use crate::server::telemetry::{Severity, server_failure};
use crate::server::tokens::IssuedToken;

/// What [`attest`] needs from the request.
#[derive(Debug)]
pub struct AttestInput<'a> {
    /// The app the attestation is for.
    pub app: &'a Arc<App>,
    /// The key id the app reported.
    pub key_id: KeyId,
    /// The challenge text the app attested (App Attest: hashed into clientDataHash).
    pub challenge: &'a str,
    /// The platform's attestation.
    pub proof: AttestationProof,
    /// The requester (its address; no user or device: those come from `link`).
    pub context: RequestContext,
    /// The user and device ids the body named, and the link token vouching for them.
    pub link: LinkRequest,
    /// A DeviceCheck token from the same device (as `device_token` cleans it: standard padded
    /// base64), to ask Apple about (iOS only).
    pub device_check_token: Option<String>,
}

/// A key registered by [`attest`].
#[derive(Debug)]
pub struct Attested {
    /// The stored key.
    pub device: DeviceKey,
    /// The JWT issued for it.
    pub token: IssuedToken,
    /// A one-time challenge for the key's first assertion.
    pub next_challenge: IssuedChallenge,
    /// The score and the decision.
    pub verdict: Verdict,
    /// What the server knows about the device.
    pub intelligence: DeviceIntelligence,
    /// The keys this one superseded.
    pub superseded: Vec<KeyId>,
    /// What the key was linked with.
    pub link: Link,
}

/// Registers a key: spends the challenge, verifies the attestation, stores the key (never
/// replacing an existing one), supersedes the keys it replaces, issues a JWT and a first
/// assertion challenge. Every outcome is decided and logged.
pub async fn attest(
    state: &Arc<AppState>,
    route: &'static str,
    input: AttestInput<'_>,
) -> Result<Attested, ApiError> {
    let started = now();
    match verify(state, &input, started).await {
        Ok((verified, link)) => register(state, route, &input, &verified, link, started).await,
        Err(error) => {
            let subject = claimed(&input);
            Err(refuse(state, route, &subject, error, Proof::None, started).await)
        }
    }
}

/// The request as claimed, before anything verified.
fn claimed<'a>(input: &'a AttestInput<'a>) -> Subject<'a> {
    Subject::claimed(
        DecisionKind::Attestation,
        Some(input.app),
        Some(input.key_id),
        &input.context,
    )
}

/// Spends the challenge (first, whatever happens next: a failed attestation cannot be retried
/// with the same challenge, and racing requests get one chance between them), checks the link
/// token (an HMAC: cheap), then verifies the attestation.
async fn verify(
    state: &AppState,
    input: &AttestInput<'_>,
    at: OffsetDateTime,
) -> Result<(VerifiedKey, Link), ApiError> {
    let app = input.app;
    let opened = open_challenge(
        state,
        input.challenge,
        app,
        ChallengePurpose::Attestation,
        None,
        at,
    )?;
    let spent = state
        .store
        .spend_challenge(SpentChallenge {
            nonce: &opened.nonce,
            expires_at: opened.expires_at,
        })
        .await?;
    if !spent {
        return Err(ApiError::ChallengeInvalid);
    }
    let secret = app
        .config
        .link_secret
        .as_ref()
        .map(|s| s.expose().as_bytes());
    let link = link::resolve(&input.link, secret, app.id(), &input.key_id, at)?;
    // A chain and a receipt cost a few milliseconds of CPU: off the async workers.
    let app = Arc::clone(app);
    let key_id = input.key_id;
    let proof = input.proof.clone();
    let challenge = input.challenge.to_owned();
    let verified = tokio::task::spawn_blocking(move || proof.verify(&app, key_id, &challenge, at))
        .await
        .map_err(|_| ApiError::Internal)?;
    Ok((verified?, link))
}

async fn register(
    state: &Arc<AppState>,
    route: &'static str,
    input: &AttestInput<'_>,
    verified: &VerifiedKey,
    link: Link,
    now: OffsetDateTime,
) -> Result<Attested, ApiError> {
    let app = input.app;
    // The vouched ids, now that the request proved the key: only these place the key.
    let context = input.context.linked(&link);
    let environment = verified.environment;
    let lineage = Lineage::resolve(&state.store, app.id(), &context, environment).await?;
    let device = new_key(input, &context, verified, &lineage, now);
    let device_check = match &input.device_check_token {
        Some(token) => Some(state.apple.device_check_signal(token, environment).await),
        None => None,
    };
    let subject = Subject {
        kind: DecisionKind::Attestation,
        app: Some(app),
        key_id: Some(input.key_id),
        key: Some(&device),
        attesting: true,
        history: history_of(&lineage.device_keys),
        device_id: Some(&device.device_id),
        user_id: device.user_id.as_deref(),
        context: &context,
        client_time: None,
        prefetched: None,
        device_check: device_check.as_ref().and_then(DeviceCheckSignal::answer),
    };
    // Scored before the key is stored: the counts of the store plus this key.
    let (verdict, failures) = decide_verified(state, app, &subject, now).await?;
    match state
        .store
        .insert_device_key(&device, &verified.receipt)
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            let subject = claimed(input);
            return Err(refuse(
                state,
                route,
                &subject,
                ApiError::KeyAlreadyAttested,
                Proof::None,
                now,
            )
            .await);
        }
        Err(error) => return Err(error.into()),
    }
    if verdict.denied() {
        // Returns the denial. The key stays stored (it is a verified fact about the device) but
        // replaces nothing and gets no token.
        conclude(state, route, &subject, &verdict, now).await?;
    }
    let superseded = supersede(state, app, &device, &lineage, now).await;
    if lineage.device_keys.is_empty() {
        let data = json!({
            "deviceId": device.device_id,
            "keyId": encode_key_id(&device.key_id),
            "userId": device.user_id,
            "environment": device.environment.as_str(),
            "riskScore": verdict.assessment.score,
            "riskBand": verdict.assessment.band.as_str(),
        });
        state
            .webhooks
            .emit(&state.store, WebhookEvent::DeviceNew, app.id(), data, now)
            .await;
    }
    let token = state.tokens.issue(
        &state.config.issuer,
        app,
        &device,
        now,
        verdict.claims_for(&device),
    )?;
    let next_challenge =
        issue_challenge(state, app, ChallengePurpose::Assertion, Some(input.key_id))?;
    conclude(state, route, &subject, &verdict, now).await?;
    let mut device_keys = lineage.device_keys.clone();
    for key in device_keys
        .iter_mut()
        .filter(|k| superseded.contains(&k.key_id))
    {
        key.superseded_by = Some(device.key_id);
        key.revoked_at = key.revoked_at.or(Some(device.created_at));
        key.revocation_reason = key.revocation_reason.or(Some(RevocationReason::Superseded));
    }
    let mut intelligence = DeviceIntelligence::of(&device, &device_keys, &failures);
    intelligence.device_check = device_check.as_ref().map(DeviceCheckView::from);
    Ok(Attested {
        device,
        token,
        next_challenge,
        verdict,
        intelligence,
        superseded,
        link,
    })
}

/// The key as it will be stored.
fn new_key(
    input: &AttestInput<'_>,
    context: &RequestContext,
    verified: &VerifiedKey,
    lineage: &Lineage,
    now: OffsetDateTime,
) -> DeviceKey {
    let mut device = DeviceKey::new(
        input.key_id,
        lineage.device_id.clone(),
        input.app.id(),
        verified.environment,
        verified.public_key_spki.clone(),
        verified.evidence.clone(),
        whole_seconds(now),
    );
    device.receipt_risk_metric = verified.receipt_risk_metric;
    device.user_id.clone_from(&context.user_id);
    device.client_ip = context.ip_text();
    device
}

/// What [`link_key`] needs: the admin API's link of an attested key.
#[derive(Debug)]
pub struct LinkKeyInput {
    /// The key to link.
    pub key_id: KeyId,
    /// The user it belongs to (kept as it is when `None`).
    pub user_id: Option<String>,
    /// The device it belongs to. Without one, the device of the user's newest other active key
    /// in the key's environment, or the key's own device.
    pub device_id: Option<String>,
}

/// A key [`link_key`] linked.
#[derive(Debug)]
pub struct KeyLinked {
    /// The key as stored now (superseded itself if its new device had a newer key).
    pub device: DeviceKey,
    /// The keys it superseded.
    pub superseded: Vec<KeyId>,
}

/// Links an attested, active key to a user and/or device on the operator's word (the admin
/// API): for a key attested before the app's backend could vouch for it (a re-installed app
/// whose user signed in afterwards). The key joins the device and its lineage settles as after
/// an attestation: the key stored last wins, and `key.superseded` is emitted per link.
pub async fn link_key(state: &Arc<AppState>, input: LinkKeyInput) -> Result<KeyLinked, ApiError> {
    let at = now();
    let key = state
        .store
        .device_key(input.key_id)
        .await?
        .ok_or(ApiError::DeviceNotFound)?;
    retired(&key)?;
    let app = state
        .apps
        .get(&key.app_id)
        .ok_or_else(|| ApiError::UnknownApp(key.app_id.clone()))?;
    let device_id = match (&input.device_id, &input.user_id) {
        (Some(device_id), _) => device_id.clone(),
        (None, Some(user_id)) => {
            let active = state
                .store
                .find_device_keys(
                    &KeyFilter {
                        app_id: Some(key.app_id.clone()),
                        user_id: Some(user_id.clone()),
                        environment: Some(key.environment),
                        active_only: true,
                        ..KeyFilter::default()
                    },
                    MAX_PAGE_SIZE,
                )
                .await?;
            // Oldest first: the last other one is the user's newest.
            active
                .iter()
                .rev()
                .find(|other| other.key_id != key.key_id)
                .map_or_else(|| key.device_id.clone(), |other| other.device_id.clone())
        }
        (None, None) => {
            return Err(ApiError::field(
                "userId",
                "name a userId, a deviceId or both",
            ));
        }
    };
    match state
        .store
        .link_device_key(key.key_id, &device_id, input.user_id.as_deref())
        .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound) => {
            // Revoked (or superseded) between the read and the update.
            let now_stored = state.store.device_key(key.key_id).await?;
            return Err(now_stored.map_or(ApiError::DeviceNotFound, |stored| {
                retired(&stored).err().unwrap_or(ApiError::DeviceNotFound)
            }));
        }
        Err(error) => return Err(error.into()),
    }
    let device_keys = state
        .store
        .find_device_keys(
            &KeyFilter {
                app_id: Some(key.app_id.clone()),
                device_id: Some(device_id.clone()),
                ..KeyFilter::default()
            },
            MAX_PAGE_SIZE,
        )
        .await?;
    let linked = device_keys
        .iter()
        .find(|stored| stored.key_id == key.key_id)
        .cloned()
        .ok_or(ApiError::Internal)?;
    let lineage = Lineage {
        device_id,
        device_keys,
    };
    let superseded = supersede(state, app, &linked, &lineage, at).await;
    tracing::info!(
        key_id = %hex::encode(key.key_id),
        device = %linked.device_id,
        superseded = superseded.len(),
        "device key linked by the admin API"
    );
    let device = state
        .store
        .device_key(key.key_id)
        .await?
        .ok_or(ApiError::DeviceNotFound)?;
    Ok(KeyLinked { device, superseded })
}

/// The refusal for a key no longer active, as its assertions get it.
fn retired(key: &DeviceKey) -> Result<(), ApiError> {
    match (key.revoked_at, key.revocation_reason) {
        (None, _) => Ok(()),
        (Some(_), Some(RevocationReason::Superseded)) => Err(ApiError::KeySuperseded),
        (Some(_), Some(RevocationReason::Expired)) => Err(ApiError::KeyExpired),
        (Some(_), _) => Err(ApiError::KeyRevoked),
    }
}

/// Settles the lineage of `device` on one active key (the one stored last: `device`, unless a
/// concurrent re-attestation of the same device stored its key after it) and emits
/// `key.superseded` for each link made. Returns the keys `device` superseded.
async fn supersede(
    state: &Arc<AppState>,
    app: &App,
    device: &DeviceKey,
    lineage: &Lineage,
    now: OffsetDateTime,
) -> Vec<KeyId> {
    let linked = match state
        .store
        .settle_lineage(
            app.id(),
            &device.device_id,
            device.environment,
            whole_seconds(now),
        )
        .await
    {
        Ok(linked) => linked,
        Err(error) => {
            server_failure(
                Severity::Dependency,
                "could not supersede the keys of a re-attested device",
                &error,
            );
            return Vec::new();
        }
    };
    let mut superseded = Vec::new();
    for (old, new) in linked {
        if new == device.key_id {
            superseded.push(old);
        } else if old == device.key_id {
            tracing::info!(
                device = %device.device_id,
                "a concurrent re-attestation of the same device stored a newer key"
            );
        }
        metrics::counter!("attestd_keys_superseded_total", "app" => app.id().to_owned())
            .increment(1);
        let old_created_at = lineage
            .device_keys
            .iter()
            .chain(std::iter::once(device))
            .find(|key| key.key_id == old)
            .map(|key| crate::server::dto::rfc3339(key.created_at));
        let data = json!({
            "deviceId": device.device_id,
            "userId": device.user_id,
            "environment": device.environment.as_str(),
            "oldKeyId": encode_key_id(&old),
            "newKeyId": encode_key_id(&new),
            "oldKeyCreatedAt": old_created_at,
        });
        state
            .webhooks
            .emit(
                &state.store,
                WebhookEvent::KeySuperseded,
                app.id(),
                data,
                now,
            )
            .await;
    }
    superseded
}
