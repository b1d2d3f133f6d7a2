//! `attestd serve`: the HTTP server.
//!
//! ```text
//! cargo run --release -- serve                                   # quick-start mode
//! cargo run --release -- serve --app TEAMID.com.example.app      # production app
//! ```
//!
//! [`serve`] loads the configuration, sets up logging and a runtime, binds and calls [`run`];
//! tests call [`run`] directly with a [`Config`] and a listener bound to `127.0.0.1:0`.

pub mod android;
pub mod apple;
mod challenge;
pub mod config;
mod context;
mod dto;
mod error;
mod extract;
mod flows;
pub mod limits;
mod link;
pub mod listener;
mod openapi;
mod platform;
pub mod quickstart;
mod readiness;
mod risk;
mod routes;
mod secrets;
mod state;
mod telemetry;
mod tokens;
mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use attest_store::{AnyStore, Store, StoreError, StoreOptions};
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use tokio::net::TcpListener;

pub use config::{
    AppConfig, Config, ConfigError, LimitShare, LogFormat, RateLimitSettings, ServeArgs, TrustRoot,
    WebhookConfig, WebhookEvent, WebhookSettings,
};
pub use error::ApiError;
pub use openapi::ApiDoc;

use quickstart::{DevCa, QuickStartError};
use state::{AppState, Apps, KeyCache};
use tokens::{TokenError, Tokens};

/// How often signing keys are re-read, so that a rotation on one node reaches the JWKS of the
/// others.
const SIGNING_KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// How long tasks still running when `run` returned may take before the process exits anyway.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a spent challenge is remembered after it expired: far more than any clock skew
/// between instances.
const SPENT_CHALLENGE_GRACE: time::Duration = time::Duration::HOUR;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Quick-start mode could not prepare its CA.
    #[error("quick-start mode: {0}")]
    QuickStart(#[from] QuickStartError),
    /// No app is configured and the listen address is not loopback: quick-start mode, which
    /// trusts a local simulator CA, would be reachable from the network.
    #[error(
        "no app is configured, and quick-start mode (a demo app trusting the local simulator \
         CA, whose keys anyone holding attestd-dev/ has) only listens on loopback, not on \
         {0}: configure an app (--app TEAMID.bundle.id, ATTESTD_APPS or [[apps]] in the \
         config file), or listen on 127.0.0.1 to try attestd out"
    )]
    QuickStartNotLoopback(SocketAddr),
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// A configured root is not usable by the verifier.
    #[error("trust roots: {0}")]
    Roots(#[from] state::StateError),
    /// The JWT signing keys could not be loaded or created.
    #[error("signing keys: {0}")]
    Tokens(#[from] TokenError),
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// Binding or serving failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs `attestd serve` to completion (blocking); the exit code for `main`.
pub fn serve(args: &ServeArgs) -> ExitCode {
    let config = match Config::load(args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("attestd: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_tracing(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = listener::bind(config.listen)?;
        run(config, listener, shutdown_signal()).await
    });
    // Whatever still runs (a blocking task) must not hold up the exit past the deadline that
    // `run` kept.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "attestd stopped");
            ExitCode::FAILURE
        }
    }
}

/// Serves on `listener` until `shutdown` completes, then drains in-flight requests.
///
/// With no app configured, enters quick-start mode first (see [`quickstart`]).
pub async fn run(
    mut config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let address = listener.local_addr()?;
    if config.apps.is_empty() {
        if !address.ip().is_loopback() {
            return Err(ServeError::QuickStartNotLoopback(address));
        }
        enter_quickstart(&mut config, address)?;
    }
    config.validate()?;
    warn_about_danger_roots(&config);

    let key_encryption_key = secrets::key_encryption_key(&config)?;
    let options = StoreOptions {
        max_connections: config.database_max_connections,
        allow_readable_files: config.danger_allow_readable_secrets,
        sqlite_locking: config.sqlite_locking.into(),
        key_encryption_key: key_encryption_key.clone(),
        ..StoreOptions::default()
    };
    let store = AnyStore::connect_with(config.database_url.expose(), &options).await?;
    secrets::warn_about_readable_database_files(&store);
    match &key_encryption_key {
        Some(key) => tracing::info!(
            key_id = %key.id(),
            "signing keys and the challenge key are sealed at rest with the key-encryption key"
        ),
        None => tracing::warn!(
            "signing keys and the challenge key are stored unencrypted in the database: anyone \
             who reads it (a file copy, a backup) can mint tokens; set \
             ATTESTD_KEY_ENCRYPTION_KEY (docs/operations.md, Secrets and backups)"
        ),
    }
    let tokens = Tokens::load_or_create(&store, tokens::longest_ttl(&config.apps)).await?;
    let apple = apple::Apple::new(&config)?;
    let challenges = challenge_key(&store).await?;
    let android = android::Android::new(&config.android);
    let apps = Apps::new(&config, &android.revocation)?;
    if config.android.revocation_list.enabled {
        // A database read, never the network: a restarted instance verifies at once, the
        // first fetch runs in the background.
        match android.revocation.load(&store).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "no Android revocation list stored yet: Android attestations fail closed until                  the first fetch"
            ),
            Err(error) => {
                tracing::warn!(%error, "could not read the stored Android revocation list")
            }
        }
    }
    let config_limits = config.rate_limits.clone();
    let state = Arc::new(AppState {
        apple,
        android,
        challenges,
        keys: KeyCache::new(config.key_cache_capacity),
        request_keys: KeyCache::new(config.key_cache_capacity),
        metrics: telemetry::metrics_handle(),
        webhooks: webhooks::Webhooks::new(&config),
        config,
        store,
        apps,
        tokens,
        readiness: readiness::Readiness::default(),
        limits: limits::RateLimits::new(&config_limits),
    });
    // Before serving: an instance joining a cluster splits the limits from its first request.
    state.limits.heartbeat(&state.store).await;
    let limiter = tokio::spawn(limits::maintain(Arc::clone(&state)));
    let maintenance = tokio::spawn(maintain(Arc::clone(&state)));
    let refresher = apple::scheduler::start(&state);
    let revocation_fetcher = android::revocation::start(&state.android.revocation, &state.store);
    let (stop_deliveries, deliveries_stopped) = tokio::sync::watch::channel(false);
    let mut deliverer = tokio::spawn(webhooks::deliver::run(
        Arc::clone(&state),
        deliveries_stopped,
    ));

    let limits = listener::Limits::of(&state.config);
    tracing::info!(
        %address,
        backend = state.store.backend_name(),
        apps = ?state.apps.ids(),
        admin_api = state.config.admin_token.is_some(),
        max_connections = limits.max_connections,
        header_read_timeout = ?limits.header_read_timeout,
        idle_timeout = ?limits.idle_timeout,
        "attestd listening"
    );
    // Webhook attempts in flight finish while the connections drain, so that no delivery stays
    // claimed until its lease lapses; an attempt cannot outlast its timeout, nor shutdown its
    // deadline.
    let shutdown_started = Arc::new(std::sync::OnceLock::new());
    let shutdown = {
        let started = Arc::clone(&shutdown_started);
        async move {
            shutdown.await;
            let _ = started.set(tokio::time::Instant::now());
            let _ = stop_deliveries.send(true);
        }
    };
    let router = routes::router(Arc::clone(&state));
    listener::serve(listener, router, limits, shutdown).await;
    maintenance.abort();
    limiter.abort();
    let started = shutdown_started
        .get()
        .copied()
        .unwrap_or_else(tokio::time::Instant::now);
    let grace = (state.config.webhook_settings.attempt_timeout + Duration::from_secs(1))
        .min(state.config.shutdown_timeout);
    if tokio::time::timeout_at(started + grace, &mut deliverer)
        .await
        .is_err()
    {
        deliverer.abort();
        let _ = deliverer.await;
    }
    // Wait for the aborted tasks so that nothing uses the store after it is closed.
    let _ = maintenance.await;
    let _ = limiter.await;
    state.limits.leave(&state.store).await;
    if let Some(refresher) = refresher {
        refresher.stop().await;
    }
    if let Some(fetcher) = revocation_fetcher {
        fetcher.stop().await;
    }
    state.store.close().await;
    tracing::info!("attestd stopped");
    Ok(())
}

fn enter_quickstart(config: &mut Config, address: SocketAddr) -> Result<(), ServeError> {
    let (ca, created) = DevCa::load_or_create(&config.quickstart_dir)?;
    for file in quickstart::CA_FILES {
        secrets::check_secret_file(
            &config.quickstart_dir.join(file),
            "the quick-start simulator CA's private key",
            config.danger_allow_readable_secrets,
        )?;
    }
    ca.apply(config)?;
    // The fetcher is on by default only when a configured app has an Android side, decided
    // while the configuration was loaded, before quick start added the demo apps: it stays
    // off unless `[android] revocation_list_enabled` said otherwise. The demo app's chains
    // are under a danger root, never looked up in the list, so it needs no network.
    let revocation_list = if config.android.revocation_list.enabled {
        "fetched, as configured"
    } else {
        "not fetched (the demo chains are never looked up in it)"
    };
    tracing::warn!(
        dir = %config.quickstart_dir.display(),
        created = ?created,
        app = config::QUICKSTART_APP_ID,
        android_app = config::QUICKSTART_ANDROID_PACKAGE,
        android_revocation_list = revocation_list,
        %address,
        "QUICK-START MODE: no app configured. Trusting the simulator CAs in this directory for \
         the development-only iOS demo app and the Android demo app, on loopback only. Anyone \
         with these files can mint attestations. Google's Android revocation list is {}. \
         Configure --app TEAMID.bundle.id or --android-app PACKAGE=DIGEST for real devices.",
        revocation_list
    );
    Ok(())
}

fn warn_about_danger_roots(config: &Config) {
    let development_apps: Vec<&str> = config
        .apps
        .iter()
        .filter(|app| app.environment != attest_core::apple::EnvironmentPolicy::Production)
        .map(|app| app.id.as_str())
        .collect();
    let roots = config
        .danger_extra_attestation_roots
        .iter()
        .map(|root| ("attestation", root))
        .chain(
            config
                .danger_extra_receipt_roots
                .iter()
                .map(|root| ("receipt", root)),
        );
    for (kind, root) in roots {
        tracing::warn!(
            kind,
            source = %root.source,
            sha256 = %hex::encode(digest::digest(&digest::SHA256, &root.der)),
            apps = ?development_apps,
            "DANGER: trusting an extra {kind} root CA besides Apple's for apps that accept \
             development keys; attestations it signs are NOT from real Apple devices"
        );
    }
    let android_apps: Vec<&str> = config
        .apps
        .iter()
        .filter(|app| app.android.is_some())
        .map(|app| app.id.as_str())
        .collect();
    for root in &config.danger_extra_android_roots {
        tracing::warn!(
            kind = "android",
            source = %root.source,
            sha256 = %hex::encode(digest::digest(&digest::SHA256, &root.der)),
            apps = ?android_apps,
            "DANGER: trusting an extra Android attestation root besides Google's for every \
             Android app; chains it signs are NOT from real devices (their keys' evidence says \
             anchor \"extra\") and are not looked up in Google's revocation list"
        );
    }
}

/// The challenge MAC key every instance of the database shares: the first one to start draws
/// it.
async fn challenge_key(store: &AnyStore) -> Result<challenge::Challenges, ServeError> {
    let mut candidate = [0u8; challenge::SECRET_LEN];
    SystemRandom::new()
        .fill(&mut candidate)
        .map_err(|_| ServeError::Random)?;
    let secret = store
        .server_secret(challenge::SECRET_NAME, &candidate, flows::now())
        .await?;
    challenge::Challenges::new(&secret)
        .map_err(|error| StoreError::Corrupt(format!("the stored challenge key: {error}")).into())
}

/// Background upkeep: purge spent challenges long expired, expire idle keys, pick up signing keys rotated
/// elsewhere.
async fn maintain(state: Arc<AppState>) {
    let mut purge = tokio::time::interval(state.config.maintenance_interval);
    let mut refresh = tokio::time::interval(SIGNING_KEY_REFRESH_INTERVAL);
    loop {
        tokio::select! {
            _ = purge.tick() => {
                let now = flows::now();
                // Instances' clocks may disagree: a challenge is remembered for a margin after
                // it expired, so an instance whose clock is behind still finds it spent.
                let before = now - SPENT_CHALLENGE_GRACE;
                match state.store.purge_spent_challenges(before).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::debug!(purged, "spent challenges forgotten"),
                    Err(error) => tracing::warn!(%error, "could not purge spent challenges"),
                }
                expire_idle_keys(&state, now).await;
                purge_decisions(&state, now).await;
                purge_failure_tallies(&state, now).await;
            }
            _ = refresh.tick() => {
                if let Err(error) = state.tokens.refresh(&state.store).await {
                    tracing::warn!(%error, "could not refresh signing keys");
                }
            }
        }
    }
}

/// Most decisions deleted per maintenance round (in batches of 1,000, one transaction each),
/// so a first purge of a large log is spread over several rounds.
const DECISION_PURGE_BATCHES: usize = 20;

/// Deletes decisions older than `decision_retention`.
async fn purge_decisions(state: &AppState, now: time::OffsetDateTime) {
    let Some(retention) = state.config.decision_retention else {
        return;
    };
    let before = now - risk::gather::to_time(retention);
    let mut purged = 0;
    for _ in 0..DECISION_PURGE_BATCHES {
        match state
            .store
            .purge_decisions(before, attest_store::MAX_PAGE_SIZE)
            .await
        {
            Ok(count) => {
                purged += count;
                if count < u64::from(attest_store::MAX_PAGE_SIZE) {
                    break;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not purge old decisions");
                break;
            }
        }
    }
    if purged > 0 {
        metrics::counter!("attestd_decisions_purged_total").increment(purged);
        tracing::info!(purged, "old decisions deleted");
    }
}

/// How long refusal tallies are kept at least: the admin API shows a sender's refusals of the
/// last day.
const FAILURE_TALLY_RETENTION: time::Duration = time::Duration::DAY;

/// Forgets refusal tallies older than both the failure window and a day.
async fn purge_failure_tallies(state: &AppState, now: time::OffsetDateTime) {
    let window = risk::gather::to_time(state.config.failure_window)
        + time::Duration::seconds(i64::from(risk::gather::tally_seconds(&state.config)));
    let before = now - window.max(FAILURE_TALLY_RETENTION);
    match state.store.purge_failure_tallies(before).await {
        Ok(0) => {}
        Ok(purged) => tracing::debug!(purged, "old refusal tallies forgotten"),
        Err(error) => tracing::warn!(%error, "could not purge refusal tallies"),
    }
}

/// Marks keys unused for longer than `key_idle_expiry` as expired (they stay stored).
async fn expire_idle_keys(state: &AppState, now: time::OffsetDateTime) {
    let Some(expiry) = state.config.key_idle_expiry else {
        return;
    };
    let idle_before = now - risk::gather::to_time(expiry);
    match state
        .store
        .expire_idle_keys(idle_before, attest_store::whole_seconds(now))
        .await
    {
        Ok(0) => {}
        Ok(expired) => {
            metrics::counter!("attestd_keys_expired_total").increment(expired);
            tracing::info!(expired, "idle keys expired");
        }
        Err(error) => tracing::warn!(%error, "could not expire idle keys"),
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested; draining requests");
}
