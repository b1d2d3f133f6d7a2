//! Google's Android attestation status list, fetched on a schedule, stored, and held parsed in
//! memory for the verifiers.
//!
//! One tokio task per instance ([`start`]). Each round it first reads the store: a list another
//! instance saved later than the one in memory replaces it, and if that list is younger than
//! the interval this round fetches nothing (instances sharing a database share the fetching).
//! Otherwise it fetches the list (conditionally, with `If-None-Match` when the list held has an
//! ETag), parses it with the core's parser, saves it (the store keeps the newest fetch, see
//! `attest_store::Store::save_revocation_list`) and swaps it in. A list that does not parse is
//! never stored nor used: the old one stays, and so does a 5xx, a timeout or a transport
//! failure, each waiting a backoff before the next try. A 304 confirms the list held: it is
//! saved again with the new fetch time, which resets its age.
//!
//! [`RevocationLists::load`] reads the stored list before the server serves (a database read,
//! never the network), so a restarted instance verifies at once; the first fetch runs in the
//! background. Verifiers take [`RevocationLists::for_verification`] and
//! [`RevocationLists::max_age`] into `attest_core::android::Revocation::Check`, which fails
//! closed (`revocation_list_stale`) once the list is older than the maximum age, or when none
//! was ever held.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use attest_core::UnixTime;
use attest_core::android::revocation::{MAX_STATUS_LIST_LEN, RevocationList};
use attest_store::{
    AnyStore, NewRevocationList, RevocationListAttempt, RevocationListSaved, RevocationListState,
    Store, StoreError, StoredRevocationList,
};
use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use time::OffsetDateTime;
use tokio::sync::watch;

use super::config::RevocationListSettings;

/// `attestd_android_revocation_list_age_seconds`: age of the list held (absent before the
/// first one).
pub const AGE_GAUGE: &str = "attestd_android_revocation_list_age_seconds";
/// `attestd_android_revocation_list_stale`: 1 while Android attestations fail closed (no list,
/// or one older than the maximum age), 0 otherwise.
pub const STALE_GAUGE: &str = "attestd_android_revocation_list_stale";
/// `attestd_android_revocation_list_fetches_total{result}`: fetches by outcome.
pub const FETCH_COUNTER: &str = "attestd_android_revocation_list_fetches_total";

/// A list held in memory, with what the next conditional request needs.
#[derive(Debug)]
pub struct HeldList {
    /// The parsed list; its `fetched_at` is the fetch (or 304) time.
    pub list: Arc<RevocationList>,
    /// The JSON as served, to save it again after a 304.
    body: Arc<[u8]>,
    /// When it was fetched or last confirmed.
    pub fetched_at: OffsetDateTime,
    /// Its ETag, if the answer had one.
    pub etag: Option<String>,
    /// Its Last-Modified, if the answer had one.
    pub last_modified: Option<String>,
}

/// The status list of this server: the parsed list held, and the last fetch attempt known
/// (this instance's or, read from the store, another's).
///
/// Invariant: the list held only ever moves to one fetched later, and every list held parsed
/// with the core's parser, so a verifier never sees an unparsable or older list after a newer
/// one.
#[derive(Debug)]
pub struct RevocationLists {
    settings: RevocationListSettings,
    held: RwLock<Option<Arc<HeldList>>>,
    last_attempt: RwLock<Option<RevocationListAttempt>>,
}

/// How a fetch ended, as recorded (`fetched`, `not_modified` or an error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Fetched,
    NotModified,
    Failed(&'static str),
}

impl Outcome {
    fn code(self) -> &'static str {
        match self {
            Self::Fetched => "fetched",
            Self::NotModified => "not_modified",
            Self::Failed(code) => code,
        }
    }
}

impl RevocationLists {
    /// Nothing held yet.
    pub fn new(settings: RevocationListSettings) -> Self {
        Self {
            settings,
            held: RwLock::new(None),
            last_attempt: RwLock::new(None),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &RevocationListSettings {
        &self.settings
    }

    /// The parsed list to verify with, if one is held. `None` must fail closed.
    pub fn list(&self) -> Option<Arc<RevocationList>> {
        self.held().map(|held| Arc::clone(&held.list))
    }

    /// The list held, with its validators.
    pub fn held(&self) -> Option<Arc<HeldList>> {
        read(&self.held).clone()
    }

    /// The list to verify with, as `Revocation::Check { list: &list, max_age: self.max_age() }`.
    /// With no list held, an empty list fetched at the Unix epoch, which the core refuses as
    /// `revocation_list_stale`: a verifier fails closed without a case of its own.
    pub fn for_verification(&self) -> Arc<RevocationList> {
        self.list().unwrap_or_else(|| {
            Arc::new(RevocationList::from_entries(
                [],
                UnixTime::since_unix_epoch(Duration::ZERO),
            ))
        })
    }

    /// The oldest list verifiers accept.
    pub fn max_age(&self) -> Duration {
        self.settings.max_age
    }

    /// The last fetch attempt known.
    pub fn last_attempt(&self) -> Option<RevocationListAttempt> {
        read(&self.last_attempt).clone()
    }

    /// Adopts what the store holds when it is newer than what memory holds. A stored list that
    /// no longer parses (an older attestd, a hand edit) is logged and ignored. Returns whether
    /// memory holds a list afterwards.
    pub async fn load(&self, store: &AnyStore) -> Result<bool, StoreError> {
        let RevocationListState { list, last_attempt } = store.revocation_list().await?;
        if let Some(attempt) = last_attempt {
            self.note_attempt(attempt);
        }
        if let Some(stored) = list {
            self.adopt_stored(stored);
        }
        self.publish(now());
        Ok(self.held().is_some())
    }

    fn adopt_stored(&self, stored: StoredRevocationList) {
        if self
            .held()
            .is_some_and(|held| held.fetched_at >= stored.fetched_at)
        {
            return;
        }
        match RevocationList::parse(&stored.body, unix_time(stored.fetched_at)) {
            Ok(list) => self.hold(HeldList {
                list: Arc::new(list),
                body: Arc::from(stored.body),
                fetched_at: stored.fetched_at,
                etag: stored.etag,
                last_modified: stored.last_modified,
            }),
            Err(error) => tracing::error!(
                %error,
                "the stored Android revocation list does not parse; ignoring it"
            ),
        }
    }

    /// Holds `list` unless a list fetched later is held (the invariant).
    fn hold(&self, list: HeldList) {
        let mut held = self
            .held
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if held
            .as_ref()
            .is_none_or(|current| current.fetched_at < list.fetched_at)
        {
            *held = Some(Arc::new(list));
        }
    }

    fn note_attempt(&self, attempt: RevocationListAttempt) {
        let mut last = self
            .last_attempt
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.as_ref().is_none_or(|known| known.at <= attempt.at) {
            *last = Some(attempt);
        }
    }

    /// Sets the age and staleness gauges as of `at` (only where the fetcher is enabled).
    pub fn publish(&self, at: OffsetDateTime) {
        if !self.settings.enabled {
            return;
        }
        let held = self.held();
        let age = held.as_ref().map(|held| age(held.fetched_at, at));
        if let Some(age) = age {
            metrics::gauge!(AGE_GAUGE).set(age.as_secs_f64());
        }
        let stale = age.is_none_or(|age| age > self.settings.max_age);
        metrics::gauge!(STALE_GAUGE).set(if stale { 1.0 } else { 0.0 });
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Writers replace the value whole: a poisoned lock still holds a consistent one.
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How old a list fetched at `fetched_at` is at `at` (zero if fetched later).
pub fn age(fetched_at: OffsetDateTime, at: OffsetDateTime) -> Duration {
    Duration::try_from(at - fetched_at).unwrap_or(Duration::ZERO)
}

fn now() -> OffsetDateTime {
    attest_store::whole_seconds(OffsetDateTime::now_utc())
}

fn unix_time(at: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(at.unix_timestamp()).unwrap_or(0),
    ))
}

/// The running fetcher.
#[derive(Debug)]
pub struct FetcherHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl FetcherHandle {
    /// Stops the fetcher (a fetch in flight is dropped) and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await
            && error.is_panic()
        {
            tracing::error!("the Android revocation list fetcher panicked");
        }
    }
}

/// Starts the fetcher if `[android] revocation_list_enabled`; says at start why not otherwise.
/// Never waits for the network.
pub fn start(lists: &Arc<RevocationLists>, store: &AnyStore) -> Option<FetcherHandle> {
    let settings = lists.settings();
    if !settings.enabled {
        tracing::info!(
            "Android revocation list fetching disabled ([android] revocation_list_enabled = \
             false)"
        );
        return None;
    }
    let client = match reqwest::Client::builder()
        .timeout(settings.request_timeout)
        .connect_timeout(settings.request_timeout)
        .user_agent(concat!("attestd/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the HTTP client for the Android revocation list");
            return None;
        }
    };
    metrics::describe_gauge!(
        AGE_GAUGE,
        "Seconds since the Android attestation status list held was fetched"
    );
    metrics::describe_gauge!(
        STALE_GAUGE,
        "1 while Android attestations fail closed: no status list, or one older than the \
         maximum age"
    );
    metrics::describe_counter!(
        FETCH_COUNTER,
        "Fetches of the Android attestation status list by result (fetched, not_modified or \
         the error code)"
    );
    tracing::info!(
        url = %settings.url,
        interval = ?settings.interval,
        max_age = ?settings.max_age,
        "Android revocation list fetcher started"
    );
    let (stop, stopped) = watch::channel(false);
    let fetcher = Fetcher {
        lists: Arc::clone(lists),
        store: store.clone(),
        client,
    };
    let task = tokio::spawn(fetcher.run(stopped));
    Some(FetcherHandle { stop, task })
}

struct Fetcher {
    lists: Arc<RevocationLists>,
    store: AnyStore,
    client: reqwest::Client,
}

impl Fetcher {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        loop {
            let wait = self.round(&mut failures).await;
            tokio::select! {
                _ = stopped.changed() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One round; returns how long to wait before the next.
    async fn round(&self, failures: &mut u32) -> Duration {
        let settings = self.lists.settings();
        if let Err(error) = self.lists.load(&self.store).await {
            tracing::warn!(%error, "could not read the stored Android revocation list");
        }
        // The list held is not due yet (this instance or another fetched it recently): wait
        // for it to come due.
        if let Some(held) = self.lists.held() {
            let age = age(held.fetched_at, now());
            if age < settings.interval {
                *failures = 0;
                return settings.interval - age + jitter(settings.jitter);
            }
        }
        let outcome = self.fetch().await;
        let at = now();
        metrics::counter!(FETCH_COUNTER, "result" => outcome.code()).increment(1);
        let attempt = RevocationListAttempt {
            at,
            status: outcome.code().to_owned(),
        };
        if let Err(error) = self.store.record_revocation_list_attempt(&attempt).await {
            tracing::warn!(%error, "could not record the Android revocation list attempt");
        }
        self.lists.note_attempt(attempt);
        self.lists.publish(at);
        match outcome {
            Outcome::Fetched | Outcome::NotModified => {
                *failures = 0;
                settings.interval + jitter(settings.jitter)
            }
            Outcome::Failed(code) => {
                *failures = failures.saturating_add(1);
                let backoff = backoff(settings, *failures);
                tracing::warn!(
                    code,
                    failures = *failures,
                    retry_in = ?backoff,
                    "could not fetch the Android revocation list; keeping the one held"
                );
                backoff + jitter(settings.jitter.min(backoff))
            }
        }
    }

    async fn fetch(&self) -> Outcome {
        let held = self.lists.held();
        let mut request = self.client.get(&self.lists.settings().url);
        if let Some(held) = &held {
            if let Some(etag) = &held.etag {
                request = request.header(IF_NONE_MATCH, etag);
            } else if let Some(last_modified) = &held.last_modified {
                request = request.header(IF_MODIFIED_SINCE, last_modified);
            }
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Outcome::Failed(transport_code(&error)),
        };
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            let Some(held) = held else {
                return Outcome::Failed("unexpected_not_modified");
            };
            return self.confirm(&held).await;
        }
        if !status.is_success() {
            return Outcome::Failed(status_code(status));
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|value: &reqwest::header::HeaderValue| value.to_str().ok())
                .filter(|value| !value.is_empty() && value.len() <= attest_store::MAX_VALIDATOR_LEN)
                .map(str::to_owned)
        };
        let etag = header(ETAG);
        let last_modified = header(LAST_MODIFIED);
        // Bound from the core: the parser refuses more than MAX_STATUS_LIST_LEN anyway; reading
        // stops as soon as the body passes it.
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_STATUS_LIST_LEN {
                        return Outcome::Failed("too_large");
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(error) => return Outcome::Failed(transport_code(&error)),
            }
        }
        let fetched_at = now();
        let list = match RevocationList::parse(&body, unix_time(fetched_at)) {
            Ok(list) => list,
            Err(error) => {
                tracing::error!(%error, "the Android revocation list served does not parse; not storing it");
                return Outcome::Failed("unparsable");
            }
        };
        let held = HeldList {
            list: Arc::new(list),
            body: Arc::from(body),
            fetched_at,
            etag,
            last_modified,
        };
        self.save(held).await;
        Outcome::Fetched
    }

    /// A 304: the list held is current as of now.
    async fn confirm(&self, held: &HeldList) -> Outcome {
        let fetched_at = now();
        match RevocationList::parse(&held.body, unix_time(fetched_at)) {
            Ok(list) => {
                self.save(HeldList {
                    list: Arc::new(list),
                    body: Arc::clone(&held.body),
                    fetched_at,
                    etag: held.etag.clone(),
                    last_modified: held.last_modified.clone(),
                })
                .await;
                Outcome::NotModified
            }
            // Unreachable: the body held parsed before.
            Err(_) => Outcome::Failed("unparsable"),
        }
    }

    /// Saves a parsed list and holds it. Held even if the store fails (this instance verifies
    /// with the newest list it has); a newer stored list is adopted instead.
    async fn save(&self, held: HeldList) {
        let new = NewRevocationList {
            body: &held.body,
            fetched_at: held.fetched_at,
            etag: held.etag.as_deref(),
            last_modified: held.last_modified.as_deref(),
        };
        let entries = held.list.len();
        match self.store.save_revocation_list(&new).await {
            Ok(RevocationListSaved::Stored) => {
                tracing::info!(entries, "Android revocation list stored");
                self.lists.hold(held);
            }
            Ok(RevocationListSaved::Stale) => {
                // Another instance saved a list fetched at the same second or later.
                self.lists.hold(held);
                if let Err(error) = self.lists.load(&self.store).await {
                    tracing::warn!(%error, "could not read the stored Android revocation list");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not store the Android revocation list");
                self.lists.hold(held);
            }
        }
    }
}

fn transport_code(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "transport"
    }
}

fn status_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        429 => "http_429",
        500 => "http_500",
        502 => "http_502",
        503 => "http_503",
        504 => "http_504",
        400..=428 | 430..=499 => "http_4xx",
        501 | 505..=599 => "http_5xx",
        _ => "http_unexpected",
    }
}

/// The backoff after `failures` failures in a row: doubled each time, capped.
fn backoff(settings: &RevocationListSettings, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    settings
        .failure_backoff
        .saturating_mul(1 << doublings)
        .min(settings.failure_backoff_max)
}

/// A random duration below `window` (zero for an empty window).
fn jitter(window: Duration) -> Duration {
    let millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return Duration::ZERO;
    }
    let mut random = [0u8; 8];
    // Jitter only spreads load; should the system RNG fail, no jitter is fine.
    if aws_lc_rs::rand::fill(&mut random).is_err() {
        return Duration::ZERO;
    }
    Duration::from_millis(u64::from_le_bytes(random) % millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let settings = RevocationListSettings::default();
        let secs = Duration::from_secs;
        assert_eq!(backoff(&settings, 1), secs(30));
        assert_eq!(backoff(&settings, 2), secs(60));
        assert_eq!(backoff(&settings, 4), secs(240));
        assert_eq!(backoff(&settings, 10), secs(15 * 60));
        assert_eq!(backoff(&settings, u32::MAX), secs(15 * 60));
    }

    #[test]
    fn jitter_stays_inside_its_window() {
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
        for _ in 0..100 {
            assert!(jitter(Duration::from_secs(2)) < Duration::from_secs(2));
        }
    }

    #[test]
    fn a_list_fetched_earlier_never_replaces_the_one_held() {
        let lists = RevocationLists::new(RevocationListSettings::default());
        let held = |seconds: i64, body: &[u8]| {
            let fetched_at = OffsetDateTime::from_unix_timestamp(seconds).unwrap();
            HeldList {
                list: Arc::new(RevocationList::parse(body, unix_time(fetched_at)).unwrap()),
                body: Arc::from(body),
                fetched_at,
                etag: None,
                last_modified: None,
            }
        };
        lists.hold(held(200, b"{\"entries\":{\"1\":{\"status\":\"REVOKED\"}}}"));
        lists.hold(held(100, b"{\"entries\":{}}"));
        assert_eq!(lists.list().unwrap().len(), 1);
        lists.hold(held(300, b"{\"entries\":{}}"));
        assert!(lists.list().unwrap().is_empty());
    }

    #[test]
    fn without_a_list_verification_fails_closed() {
        let lists = RevocationLists::new(RevocationListSettings::default());
        let list = lists.for_verification();
        assert!(list.is_empty());
        let today = unix_time(OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap());
        assert!(list.age_at(today) > lists.max_age());
    }

    #[test]
    fn age_is_never_negative() {
        let t = |s| OffsetDateTime::from_unix_timestamp(s).unwrap();
        assert_eq!(age(t(100), t(160)), Duration::from_secs(60));
        assert_eq!(age(t(100), t(10)), Duration::ZERO);
    }
}
