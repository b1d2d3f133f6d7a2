//! Collects the [`Signals`] of one request from the request itself and the store.

use attest_core::apple::KeyId;
use attest_policy::{DeviceCheck, FailureCounts, RiskWeights, Signals, Verification, WindowCount};
use attest_store::{
    ContextQuery, DecisionKind, DeviceHistory, DeviceKey, FailureCount, FailureSubject, KeyContext,
    KeyFilter, Store, StoreError,
};
use time::OffsetDateTime;

use super::{KeyFacts, saturate};
use crate::server::config::Config;
use crate::server::context::RequestContext;
use crate::server::state::{App, AppState};

/// What a request is about, as far as the flow got before deciding.
#[derive(Debug)]
pub struct Subject<'a> {
    /// Attestation or assertion.
    pub kind: DecisionKind,
    /// The app (`None`: the key is unknown, or names an app no longer configured).
    pub app: Option<&'a App>,
    /// The key the request named.
    pub key_id: Option<KeyId>,
    /// The key: as stored (assertions) or as about to be stored (attestations).
    pub key: Option<&'a DeviceKey>,
    /// Whether the request attests `key` now (so one more key exists than the store holds).
    pub attesting: bool,
    /// The device's keys in the store (a key attested now excluded).
    pub history: DeviceHistory,
    /// The device, when known.
    pub device_id: Option<&'a str>,
    /// The user, when known (named by the client, or recorded with the key).
    pub user_id: Option<&'a str>,
    /// The requester.
    pub context: &'a RequestContext,
    /// The client's clock, when the payload carries it.
    pub client_time: Option<OffsetDateTime>,
    /// Counts already read with the key (assertions: [`Store::key_context`]), for the key's
    /// app; [`gather`] queries what is missing.
    pub prefetched: Option<&'a Prefetched>,
    /// Apple's answer about a DeviceCheck token the request carried.
    pub device_check: Option<DeviceCheck>,
}

/// Risk counts read together with the key, with the windows [`gather`] uses.
#[derive(Debug, Clone, Default)]
pub struct Prefetched {
    /// Refusals that proved possession of a key of the device, in the failure window, by code.
    pub failures: Vec<FailureCount>,
    /// The app's keys created from the address in the churn window.
    pub keys_from_ip: Option<u64>,
    /// The app's keys created for the user in the churn window.
    pub keys_for_user: Option<u64>,
}

/// What [`Store::key_context`] should read for a request from `context` at `now`: the counts
/// of [`gather`], with its windows. Both churn counts are read whatever the app's weights (the
/// app is only known once the key is read); [`gather`] ignores those whose weight is 0.
pub fn context_query(
    state: &AppState,
    context: &RequestContext,
    now: OffsetDateTime,
) -> ContextQuery {
    ContextQuery {
        client_ip: context.ip_text(),
        failures_since: tally_since(&state.config, now),
        keys_since: now - to_time(state.config.key_churn_window),
        count_ip_keys: true,
        count_user_keys: true,
    }
}

impl Prefetched {
    /// The counts of a [`KeyContext`].
    pub fn of(context: &KeyContext) -> Self {
        Self {
            failures: context.failures.clone(),
            keys_from_ip: context.keys_from_ip,
            keys_for_user: context.keys_for_user,
        }
    }
}

impl<'a> Subject<'a> {
    /// A request as claimed, before anything about it verified: no key, no history, the
    /// device and user ids the client named.
    pub fn claimed(
        kind: DecisionKind,
        app: Option<&'a App>,
        key_id: Option<KeyId>,
        context: &'a RequestContext,
    ) -> Self {
        Self {
            kind,
            app,
            key_id,
            key: None,
            attesting: false,
            history: DeviceHistory::default(),
            device_id: context.device_id.as_deref(),
            user_id: context.user_id.as_deref(),
            context,
            client_time: None,
            prefetched: None,
            device_check: None,
        }
    }

    /// The app's App ID, or `""` when unknown.
    pub fn app_id(&self) -> &str {
        self.app.map_or("", App::id)
    }
}

/// The signals and the recent failures they were computed from (shown as intelligence).
#[derive(Debug)]
pub struct Gathered {
    /// For [`super::evaluate`].
    pub signals: Signals,
    /// Recent refusals of the device that proved possession of its key, by code.
    pub failures: Vec<FailureCount>,
}

/// Reads what the risk factors need. Counts whose factor is switched off (weight 0) are not
/// queried.
pub async fn gather(
    state: &AppState,
    subject: &Subject<'_>,
    verification: Verification,
    now: OffsetDateTime,
) -> Result<Gathered, StoreError> {
    let defaults = RiskWeights::default();
    let weights = subject.app.map_or(&defaults, |app| &app.config.risk);
    let mut signals = Signals::new(now);
    signals.verification = verification;
    signals.client_time = subject.client_time;
    signals.device_check = subject.device_check;
    if let Some(key) = subject.key {
        KeyFacts::of(key, now).apply(&mut signals);
    }
    if let Some(app) = subject.app {
        signals.app_production_only = app.config.published;
    }

    let attesting = u32::from(subject.attesting);
    if subject.attesting || subject.key.is_some() {
        let first = subject.history.first_seen;
        signals.device_first_seen = match (first, subject.attesting) {
            (Some(first), true) => Some(first.min(now)),
            (None, true) => Some(now),
            (first, false) => first,
        };
        let stored = u32::try_from(subject.history.keys).unwrap_or(u32::MAX);
        signals.attestation_count = Some(stored.saturating_add(attesting));
    }

    let app_id = subject.app.map(|app| app.id().to_owned());
    let churn_window = to_time(state.config.key_churn_window);
    let since = now - churn_window;
    let client_ip = subject.context.ip_text();
    if let (Some(app_id), Some(user_id)) = (&app_id, subject.user_id)
        && weights.user_key_churn > 0
    {
        let filter = KeyFilter {
            app_id: Some(app_id.clone()),
            user_id: Some(user_id.to_owned()),
            created_since: Some(since),
            ..KeyFilter::default()
        };
        let count = match subject.prefetched.and_then(|p| p.keys_for_user) {
            Some(count) => saturate(count),
            None => saturate(state.store.count_device_keys(&filter).await?),
        };
        signals.new_keys_for_user = Some(WindowCount {
            count: count.saturating_add(attesting),
            window: churn_window,
        });
    }
    if let (Some(app_id), Some(ip)) = (&app_id, &client_ip)
        && weights.ip_key_churn > 0
    {
        let filter = KeyFilter {
            app_id: Some(app_id.clone()),
            client_ip: Some(ip.clone()),
            created_since: Some(since),
            ..KeyFilter::default()
        };
        let count = match subject.prefetched.and_then(|p| p.keys_from_ip) {
            Some(count) => saturate(count),
            None => saturate(state.store.count_device_keys(&filter).await?),
        };
        signals.new_keys_from_ip = Some(WindowCount {
            count: count.saturating_add(attesting),
            window: churn_window,
        });
    }

    let failure_window = to_time(state.config.failure_window);
    // Only refusals that proved possession of a key of the device count (see flows::Proof);
    // the address's refusals are its sender's, never a device's.
    let failures = match (subject.prefetched, &app_id, subject.device_id) {
        (Some(prefetched), _, _) => prefetched.failures.clone(),
        (None, Some(app_id), Some(device_id)) => {
            let device = FailureSubject::Device {
                app_id: app_id.clone(),
                device_id: device_id.to_owned(),
            };
            state
                .store
                .tallied_failures(&device, tally_since(&state.config, now))
                .await?
        }
        _ => Vec::new(),
    };
    signals.recent_failures = Some(FailureCounts {
        window: failure_window,
        by_code: failures
            .iter()
            .map(|f| (f.code.clone(), saturate(f.count)))
            .collect(),
    });
    Ok(Gathered { signals, failures })
}

/// The history of a device whose keys are `keys`.
pub fn history_of(keys: &[DeviceKey]) -> DeviceHistory {
    DeviceHistory {
        keys: u64::try_from(keys.len()).unwrap_or(u64::MAX),
        first_seen: keys.iter().map(|key| key.created_at).min(),
    }
}

/// The width of the windows refusals are counted in (`Store::record_refusal`): a twelfth of
/// `failure_window`, from 1 s to 5 minutes (the default window of an hour gives 5 minutes).
pub fn tally_seconds(config: &Config) -> u32 {
    let twelfth = config.failure_window.as_secs() / 12;
    u32::try_from(twelfth.clamp(1, 300)).unwrap_or(300)
}

/// The start of the oldest counting window the failure counts read at `now`: the one holding
/// `now - failure_window`. A count therefore covers at least `failure_window` and at most one
/// window width (5 minutes by default) more.
pub fn tally_since(config: &Config, now: OffsetDateTime) -> OffsetDateTime {
    let since = now - to_time(config.failure_window);
    attest_store::window_start(since, tally_seconds(config))
        .ok()
        .and_then(|start| OffsetDateTime::from_unix_timestamp(start).ok())
        .unwrap_or(since)
}

/// A configured window in `time`'s terms (a day if absurdly long).
pub fn to_time(duration: std::time::Duration) -> time::Duration {
    time::Duration::try_from(duration).unwrap_or(time::Duration::DAY)
}
