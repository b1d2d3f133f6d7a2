//! The one typed configuration of `attestd serve`, loaded once at startup.
//!
//! Precedence, lowest first: built-in defaults, the TOML file named by `--config`, `ATTESTD_*`
//! environment variables, command-line flags. This is the only module that reads the process
//! environment. Secrets (admin token, database URL credentials) are redacted in `Debug`.

mod hooks;
mod limits;
mod sources;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use attest_core::apple::{AppId, EnvironmentPolicy};

pub use hooks::{WebhookConfig, WebhookEvent, WebhookSettings};
pub use limits::{LimitShare, RateLimitSettings, RateSetting};
use sources::FileConfig;
pub use sources::ServeArgs;
pub use values::{AppSetting, AppSpec, DatabaseUrl, LogFormat, Secret, SqliteLocking, TrustRoot};

/// The App ID registered when no app is configured (quick-start mode).
pub const QUICKSTART_APP_ID: &str = "QUICKSTART.dev.attestd.demo";
/// The package of the demo Android app registered in quick-start mode (its app name too).
pub const QUICKSTART_ANDROID_PACKAGE: &str = "dev.attestd.demo";
/// The signing-certificate digest the quick-start demo Android app accepts: SHA-256 of the
/// bytes `attestd quick-start demo signing certificate` (no real certificate has it), hex
/// `3fa4b564081e8de5c1e2eea19eb01bb4518df1885c2951cf6797f4da55db1665`.
pub const QUICKSTART_ANDROID_SIGNING_DIGEST: [u8; 32] = [
    0x3f, 0xa4, 0xb5, 0x64, 0x08, 0x1e, 0x8d, 0xe5, 0xc1, 0xe2, 0xee, 0xa1, 0x9e, 0xb0, 0x1b, 0xb4,
    0x51, 0x8d, 0xf1, 0x88, 0x5c, 0x29, 0x51, 0xcf, 0x67, 0x97, 0xf4, 0xda, 0x55, 0xdb, 0x16, 0x65,
];
/// Where quick-start mode keeps its simulator CA, relative to the working directory.
pub const DEFAULT_QUICKSTART_DIR: &str = "attestd-dev";

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Created (mode 0600) when missing: every SQLite URL form is, unless it says `mode=rw`/`ro`.
const DEFAULT_DATABASE_URL: &str = "sqlite://attestd.db";
/// The environment variable holding the key-encryption key itself (base64). Only the
/// environment: a flag would show it in the process list.
pub const KEY_ENCRYPTION_KEY_ENV: &str = "ATTESTD_KEY_ENCRYPTION_KEY";
const DEFAULT_ISSUER: &str = "attestd";
/// Five minutes: long enough for a slow `attestKey` round trip, short enough to bound replay.
const DEFAULT_CHALLENGE_TTL_SECS: u64 = 300;
const DEFAULT_TOKEN_TTL_SECS: u64 = 3600;
/// Apple's attestation objects are 5–10 KB, base64 adds a third: 64 KiB is a wide margin that
/// still bounds the work a hostile body can cause (the core also caps objects at 64 KiB).
const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 10;
/// A client on a slow mobile link sends a request head (a few hundred bytes) in well under a
/// second; ten seconds cuts slowloris clients without cutting real ones.
const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// Longer than the idle timeout of the load balancers in front (AWS ALB: 60 s), so that they,
/// not attestd, close idle connections: a backend closing first races the balancer's next
/// request on that connection (a 502).
const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 75;
/// Requests run at most `request_timeout` (10 s): in-flight ones finish within this.
const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 10;
/// Parsed assertion keys kept in memory; one entry is ~200 bytes.
const DEFAULT_KEY_CACHE_CAPACITY: usize = 100_000;
/// Half a year: an app in regular use asserts far more often; a key idle that long most likely
/// belongs to an uninstalled app or a retired device.
const DEFAULT_KEY_IDLE_EXPIRY_DAYS: u64 = 180;
/// Decisions are kept a quarter: long enough to compare a monitor period with enforcement.
const DEFAULT_DECISION_RETENTION_DAYS: u64 = 90;
/// The windows attest-policy recommends: 24 h for new keys per user and per address, 1 h for
/// recent failures.
const DEFAULT_KEY_CHURN_WINDOW_SECS: u64 = 86_400;
const DEFAULT_FAILURE_WINDOW_SECS: u64 = 3_600;
const DEFAULT_MAINTENANCE_INTERVAL_SECS: u64 = 60;
/// Refusals of one sender, app and code logged in full per counting window (5 minutes by
/// default); the rest are counted only. Enough to see what a sender tried.
const DEFAULT_REFUSAL_LOG_SAMPLE: u32 = 10;
const DAY_SECS: u64 = 86_400;

/// The resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Database URL; the scheme picks the backend.
    pub database_url: DatabaseUrl,
    /// Connection pool size; `None` takes the backend's default.
    pub database_max_connections: Option<u32>,
    /// SQLite: whether other processes may open the database while attestd runs.
    pub sqlite_locking: SqliteLocking,
    /// The key-encryption key (base64 of 32 bytes) that seals the signing keys and the
    /// challenge key in the database, from `ATTESTD_KEY_ENCRYPTION_KEY`.
    pub key_encryption_key: Option<Secret>,
    /// A file holding the key-encryption key instead (mode 0600 or 0400).
    pub key_encryption_key_file: Option<PathBuf>,
    /// Start even if the database files or secret files may be read by other users (WARN).
    pub danger_allow_readable_secrets: bool,
    /// Accepted apps. Empty means quick-start mode (see `server::quickstart`).
    pub apps: Vec<AppConfig>,
    /// Extra attestation roots (DER), trusted only for apps that accept development keys.
    pub danger_extra_attestation_roots: Vec<TrustRoot>,
    /// Extra receipt roots (DER), same rule.
    pub danger_extra_receipt_roots: Vec<TrustRoot>,
    /// Extra Android attestation roots (DER), trusted for Android apps besides Google's two
    /// keys; chains under them are never real devices and are not looked up in Google's
    /// revocation list.
    pub danger_extra_android_roots: Vec<TrustRoot>,
    /// Bearer token of the admin API; `None` disables it.
    pub admin_token: Option<Secret>,
    /// JWT `iss`.
    pub issuer: String,
    /// Challenge lifetime.
    pub challenge_ttl: Duration,
    /// Largest accepted request body.
    pub body_limit: usize,
    /// Time after which a request is abandoned with 503 `timeout`.
    pub request_timeout: Duration,
    /// Time a client has to send a request head (request line and headers), counted from the
    /// connection's start or from the first byte after an idle pause; then it is closed.
    pub header_read_timeout: Duration,
    /// A keep-alive connection idle (no request) for longer is closed.
    pub idle_timeout: Duration,
    /// After SIGTERM or Ctrl-C, how long requests in flight may take to finish; connections
    /// still open then are dropped and the server stops.
    pub shutdown_timeout: Duration,
    /// Most connections served at once (more wait in the listen backlog); `None` derives it
    /// from the open-file limit (see `server::listener`).
    pub max_connections: Option<usize>,
    /// Text or JSON logs.
    pub log_format: LogFormat,
    /// `tracing` filter directives.
    pub log_filter: String,
    /// Directory of the quick-start simulator CA.
    pub quickstart_dir: PathBuf,
    /// How many parsed assertion keys stay in memory.
    pub key_cache_capacity: usize,
    /// Keys unused for longer expire (`key_expired`); `None` = never.
    pub key_idle_expiry: Option<Duration>,
    /// Decisions older than this are deleted from the log; `None` = kept forever.
    pub decision_retention: Option<Duration>,
    /// The window of the `user_key_churn` and `ip_key_churn` counts.
    pub key_churn_window: Duration,
    /// The window of the `repeated_failures` count.
    pub failure_window: Duration,
    /// Take the client address from the last `X-Forwarded-For` entry.
    pub trust_forwarded_for: bool,
    /// Webhook endpoints.
    pub webhooks: Vec<WebhookConfig>,
    /// Webhook event detection and retries.
    pub webhook_settings: WebhookSettings,
    /// `[apple]`: credentials, base URLs and the receipt refresh schedule (docs/apple.md).
    pub apple: crate::server::apple::AppleConfig,
    /// `[android]`: Google's attestation status list (docs/operations.md).
    pub android: crate::server::android::AndroidConfig,
    /// How often spent challenges and old decisions are purged and idle keys expired.
    pub maintenance_interval: Duration,
    /// Per-address and per-key rate limits (`[rate_limits]`).
    pub rate_limits: RateLimitSettings,
    /// Refusals of one sender, app and code logged in full per counting window; the rest are
    /// counted only (`refusal_log_sample`).
    pub refusal_log_sample: u32,
}

impl Config {
    /// Defaults only: no app (quick-start mode), SQLite `./attestd.db`.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: DatabaseUrl(database_url.into()),
            database_max_connections: None,
            sqlite_locking: SqliteLocking::default(),
            key_encryption_key: None,
            key_encryption_key_file: None,
            danger_allow_readable_secrets: false,
            apps: Vec::new(),
            danger_extra_attestation_roots: Vec::new(),
            danger_extra_android_roots: Vec::new(),
            danger_extra_receipt_roots: Vec::new(),
            admin_token: None,
            issuer: DEFAULT_ISSUER.to_owned(),
            challenge_ttl: Duration::from_secs(DEFAULT_CHALLENGE_TTL_SECS),
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
            header_read_timeout: Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            shutdown_timeout: Duration::from_secs(DEFAULT_SHUTDOWN_TIMEOUT_SECS),
            max_connections: None,
            log_format: LogFormat::Text,
            log_filter: "info".to_owned(),
            quickstart_dir: PathBuf::from(DEFAULT_QUICKSTART_DIR),
            key_cache_capacity: DEFAULT_KEY_CACHE_CAPACITY,
            key_idle_expiry: Some(Duration::from_secs(DEFAULT_KEY_IDLE_EXPIRY_DAYS * DAY_SECS)),
            decision_retention: Some(Duration::from_secs(
                DEFAULT_DECISION_RETENTION_DAYS * DAY_SECS,
            )),
            key_churn_window: Duration::from_secs(DEFAULT_KEY_CHURN_WINDOW_SECS),
            failure_window: Duration::from_secs(DEFAULT_FAILURE_WINDOW_SECS),
            trust_forwarded_for: false,
            webhooks: Vec::new(),
            webhook_settings: WebhookSettings::default(),
            apple: crate::server::apple::AppleConfig::default(),
            android: crate::server::android::AndroidConfig::default(),
            maintenance_interval: Duration::from_secs(DEFAULT_MAINTENANCE_INTERVAL_SECS),
            rate_limits: RateLimitSettings::default(),
            refusal_log_sample: DEFAULT_REFUSAL_LOG_SAMPLE,
        }
    }

    /// Loads defaults, then the file, then the environment and flags (already merged by clap).
    pub fn load(args: &ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        let base = args
            .config
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(Path::new(""));
        let database_url = args
            .database_url
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok().map(DatabaseUrl))
            .or(file.database_url.map(DatabaseUrl))
            .unwrap_or_else(|| DatabaseUrl(DEFAULT_DATABASE_URL.to_owned()));
        let mut config = Self::new(database_url.0);
        config.listen = match args.listen.or(file.listen) {
            Some(listen) => listen,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|_| ConfigError::Invalid("listen"))?,
        };
        config.database_max_connections = args
            .database_max_connections
            .or(file.database_max_connections);
        config.sqlite_locking = args
            .sqlite_locking
            .or(file.sqlite_locking)
            .unwrap_or_default();
        config.key_encryption_key = std::env::var(KEY_ENCRYPTION_KEY_ENV)
            .ok()
            .filter(|key| !key.trim().is_empty())
            .map(Secret);
        config.key_encryption_key_file = args
            .key_encryption_key_file
            .clone()
            .or_else(|| file.key_encryption_key_file.map(|path| base.join(path)));
        config.danger_allow_readable_secrets = args.danger_allow_readable_secrets
            || file.danger_allow_readable_secrets.unwrap_or(false);
        let default_token_ttl = args
            .token_ttl
            .or(file.token_ttl_secs)
            .unwrap_or(DEFAULT_TOKEN_TTL_SECS);
        config.apps = if args.apps.is_empty() && args.android_apps.is_empty() {
            file.apps
                .into_iter()
                .map(|app| app.resolve(default_token_ttl))
                .collect::<Result<_, _>>()?
        } else {
            let apple = args
                .apps
                .iter()
                .map(|spec| Ok(AppConfig::new(spec.id.clone(), spec.environment)));
            let android = args
                .android_apps
                .iter()
                .map(|android| AppConfig::android(android.clone()));
            apple
                .chain(android)
                .map(|app| {
                    app.map(|mut app: AppConfig| {
                        app.token_ttl = Duration::from_secs(default_token_ttl);
                        app
                    })
                })
                .collect::<Result<_, ConfigError>>()?
        };
        for setting in &args.app_modes {
            config.app_mut(&setting.app_id)?.policy.mode = setting.value;
        }
        for setting in &args.app_max_risk_scores {
            config.app_mut(&setting.app_id)?.policy.max_risk_score = Some(setting.value);
        }
        for setting in &args.app_link_secrets {
            config.app_mut(&setting.app_id)?.link_secret = Some(setting.value.clone());
        }
        if let Some(days) = args.key_idle_expiry_days.or(file.key_idle_expiry_days) {
            config.key_idle_expiry = (days > 0).then(|| Duration::from_secs(days * DAY_SECS));
        }
        if let Some(days) = args
            .decision_retention_days
            .or(file.decision_retention_days)
        {
            config.decision_retention = (days > 0).then(|| Duration::from_secs(days * DAY_SECS));
        }
        if let Some(secs) = file.key_churn_window_secs {
            config.key_churn_window = Duration::from_secs(secs);
        }
        if let Some(secs) = file.failure_window_secs {
            config.failure_window = Duration::from_secs(secs);
        }
        config.trust_forwarded_for =
            args.trust_x_forwarded_for || file.trust_x_forwarded_for.unwrap_or(false);
        config.rate_limits = file.rate_limits.resolve(
            args.rate_limit_address,
            args.rate_limit_key,
            args.rate_limit_share,
        );
        if let Some(sample) = args.refusal_log_sample.or(file.refusal_log_sample) {
            config.refusal_log_sample = sample;
        }
        config.webhooks = file
            .webhooks
            .into_iter()
            .map(|hook| hook.resolve())
            .collect();
        config.webhook_settings = file.webhook_delivery.resolve();
        config.apple = crate::server::apple::AppleConfig::resolve(&args.apple, file.apple, base)?;
        let explicit = args.android.revocation_list_enabled.is_some()
            || file
                .android
                .as_ref()
                .is_some_and(crate::server::android::FileAndroid::sets_enabled);
        config.android =
            crate::server::android::AndroidConfig::resolve(&args.android, file.android)?;
        if !explicit {
            // The list is fetched whenever an app has an Android side, unless told otherwise.
            config.android.revocation_list.enabled =
                config.apps.iter().any(|app| app.android.is_some());
        }
        let attestation_roots = pick_paths(
            &args.danger_extra_attestation_roots,
            &file.danger_extra_attestation_roots,
            base,
        );
        let receipt_roots = pick_paths(
            &args.danger_extra_receipt_roots,
            &file.danger_extra_receipt_roots,
            base,
        );
        config.danger_extra_attestation_roots = attestation_roots
            .iter()
            .map(|path| TrustRoot::from_pem_file(path))
            .collect::<Result<_, _>>()?;
        config.danger_extra_android_roots = pick_paths(
            &args.danger_extra_android_roots,
            &file.danger_extra_android_roots,
            base,
        )
        .iter()
        .map(|path| TrustRoot::from_pem_file(path))
        .collect::<Result<_, _>>()?;
        config.danger_extra_receipt_roots = receipt_roots
            .iter()
            .map(|path| TrustRoot::from_pem_file(path))
            .collect::<Result<_, _>>()?;
        config.admin_token = args.admin_token.clone().or(file.admin_token.map(Secret));
        if let Some(issuer) = args.issuer.clone().or(file.issuer) {
            config.issuer = issuer;
        }
        if let Some(secs) = args.challenge_ttl.or(file.challenge_ttl_secs) {
            config.challenge_ttl = Duration::from_secs(secs);
        }
        if let Some(limit) = args.body_limit.or(file.body_limit_bytes) {
            config.body_limit = limit;
        }
        if let Some(secs) = args.request_timeout.or(file.request_timeout_secs) {
            config.request_timeout = Duration::from_secs(secs);
        }
        if let Some(secs) = args.header_read_timeout.or(file.header_read_timeout_secs) {
            config.header_read_timeout = Duration::from_secs(secs);
        }
        if let Some(secs) = args.idle_timeout.or(file.idle_timeout_secs) {
            config.idle_timeout = Duration::from_secs(secs);
        }
        if let Some(secs) = args.shutdown_timeout.or(file.shutdown_timeout_secs) {
            config.shutdown_timeout = Duration::from_secs(secs);
        }
        if let Some(limit) = args.max_connections.or(file.max_connections) {
            config.max_connections = Some(limit);
        }
        if let Some(format) = args.log_format.or(file.log_format) {
            config.log_format = format;
        }
        if let Some(filter) = args
            .log_filter
            .clone()
            .or_else(|| std::env::var("RUST_LOG").ok())
            .or(file.log_filter)
        {
            config.log_filter = filter;
        }
        if let Some(dir) = args.quickstart_dir.clone() {
            config.quickstart_dir = dir;
        } else if let Some(dir) = file.quickstart_dir {
            config.quickstart_dir = base.join(dir);
        }
        config.validate()?;
        Ok(config)
    }

    /// The configured app with this App ID, to change its settings.
    fn app_mut(&mut self, app_id: &str) -> Result<&mut AppConfig, ConfigError> {
        self.apps
            .iter_mut()
            .find(|app| app.names().any(|name| name == app_id))
            .ok_or_else(|| ConfigError::App(format!("{app_id:?} is not a configured app")))
    }

    /// Checks the rules that span several settings. `server::run` calls it too.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for app in &self.apps {
            app.policy
                .validate()
                .and_then(|()| app.risk.validate())
                .map_err(|error| ConfigError::App(format!("{}: {error}", app.id.as_str())))?;
            if let Some(secret) = &app.link_secret
                && secret.expose().len() < crate::server::link::MIN_LINK_SECRET_LEN
            {
                return Err(ConfigError::App(format!(
                    "{}: link_secret must be at least {} bytes (e.g. `openssl rand -base64 48`)",
                    app.id.as_str(),
                    crate::server::link::MIN_LINK_SECRET_LEN
                )));
            }
        }
        for webhook in &self.webhooks {
            webhook.validate()?;
        }
        self.webhook_settings.validate()?;
        self.rate_limits.validate()?;
        self.apple.validate()?;
        self.android.validate()?;
        if self.key_churn_window.is_zero() || self.failure_window.is_zero() {
            return Err(ConfigError::Invalid(
                "risk windows must be at least one second",
            ));
        }
        if self.maintenance_interval.is_zero() {
            return Err(ConfigError::Invalid(
                "maintenance interval must be positive",
            ));
        }
        let has_danger_roots = !self.danger_extra_attestation_roots.is_empty()
            || !self.danger_extra_receipt_roots.is_empty();
        let any_development = self
            .apps
            .iter()
            .any(|app| app.environment != EnvironmentPolicy::Production);
        if has_danger_roots && !self.apps.is_empty() && !any_development {
            return Err(ConfigError::DangerRootsWithoutDevelopmentApp);
        }
        if self.challenge_ttl.is_zero() {
            return Err(ConfigError::Invalid(
                "challenge TTL must be at least one second",
            ));
        }
        if self.apps.iter().any(|app| app.token_ttl.is_zero()) {
            return Err(ConfigError::Invalid(
                "token TTL must be at least one second",
            ));
        }
        if self.body_limit < 1024 {
            return Err(ConfigError::Invalid(
                "body limit must be at least 1024 bytes",
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "request timeout must be at least one second",
            ));
        }
        if self.header_read_timeout.is_zero() || self.idle_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "header read and idle timeouts must be at least one second",
            ));
        }
        if self.max_connections == Some(0) {
            return Err(ConfigError::Invalid("max_connections must be at least 1"));
        }
        if self.key_encryption_key.is_some() && self.key_encryption_key_file.is_some() {
            return Err(ConfigError::Invalid(
                "set ATTESTD_KEY_ENCRYPTION_KEY or key_encryption_key_file, not both",
            ));
        }
        if let Some(key) = &self.key_encryption_key {
            parse_key_encryption_key(key.expose()).map_err(|reason| {
                ConfigError::KeyEncryptionKey(KEY_ENCRYPTION_KEY_ENV.into(), reason)
            })?;
        }
        let mut ids: Vec<&str> = self.apps.iter().flat_map(AppConfig::names).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|pair| pair.first() == pair.get(1)) {
            return Err(ConfigError::Invalid(
                "an app is configured twice (names and Android packages must be unique)",
            ));
        }
        if !self.danger_extra_android_roots.is_empty()
            && !self.apps.is_empty()
            && !self.apps.iter().any(|app| app.android.is_some())
        {
            return Err(ConfigError::Invalid(
                "danger_extra_android_roots without any app with an Android side",
            ));
        }
        Ok(())
    }
}

fn pick_paths(flags: &[PathBuf], file: &[PathBuf], base: &Path) -> Vec<PathBuf> {
    if flags.is_empty() {
        file.iter().map(|path| base.join(path)).collect()
    } else {
        flags.to_vec()
    }
}

/// A key-encryption key from its base64 text (standard or URL-safe alphabet, padded or not,
/// surrounding whitespace ignored): exactly 32 bytes.
pub fn parse_key_encryption_key(
    text: &str,
) -> Result<attest_store::KeyEncryptionKey, &'static str> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or("not base64 (make one with: openssl rand -base64 32)")?;
    attest_store::KeyEncryptionKey::new(&bytes)
        .map_err(|_| "not 32 bytes once decoded (make one with: openssl rand -base64 32)")
}

/// One accepted app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    /// The app's name, as requests and the decision log name it: its App ID
    /// (`TEAMID.bundle.id`) when it has an iOS side, else its Android package name.
    pub id: attest_types::AppId,
    /// The iOS side: the App ID App Attest checks; `None` for an Android-only app.
    pub apple: Option<AppId>,
    /// The Android side (`--android-app`, `[apps.android]`): package, signing certificates and
    /// Key Attestation policy; `None` for an iOS-only app.
    pub android: Option<crate::server::android::app::AndroidAppConfig>,
    /// Accepted App Attest environments (iOS side).
    pub environment: EnvironmentPolicy,
    /// Lifetime of the JWTs issued for this app.
    pub token_ttl: Duration,
    /// Whether the app is published (App Store, TestFlight, Enterprise), so that a development
    /// key is suspicious (`development_key_in_production_app`). Default: production-only apps.
    pub published: bool,
    /// Mode and rules (`[apps.policy]`).
    pub policy: attest_policy::Policy,
    /// Risk factor weights and thresholds (`[apps.risk]`).
    pub risk: attest_policy::RiskWeights,
    /// Whether `POST /v1/device-checks` accepts a DeviceCheck token alone, for devices without
    /// App Attest. Default `false`: DeviceCheck proves a genuine device running one of the
    /// team's apps, not an untampered build of this app, so it is opt-in.
    pub device_check_fallback: bool,
    /// The secret the app's backend signs link tokens with (HS256). Only a valid link token
    /// links a new key to a user or device; without a secret, `userId`/`deviceId` are ignored
    /// (see `server::link`).
    pub link_secret: Option<Secret>,
}

impl AppConfig {
    /// An iOS app with the default token lifetime, policy (enforce) and weights.
    pub fn new(id: AppId, environment: EnvironmentPolicy) -> Self {
        Self {
            id: id.name().clone(),
            apple: Some(id),
            android: None,
            environment,
            token_ttl: Duration::from_secs(DEFAULT_TOKEN_TTL_SECS),
            published: environment == EnvironmentPolicy::Production,
            policy: attest_policy::Policy::default(),
            risk: attest_policy::RiskWeights::default(),
            device_check_fallback: false,
            link_secret: None,
        }
    }

    /// An Android-only app, named by its package.
    pub fn android(
        android: crate::server::android::app::AndroidAppConfig,
    ) -> Result<Self, ConfigError> {
        let id = attest_types::AppId::new(android.package.as_str())
            .map_err(|error| ConfigError::App(format!("{:?}: {error}", android.package)))?;
        Ok(Self {
            id,
            apple: None,
            android: Some(android),
            environment: EnvironmentPolicy::Production,
            token_ttl: Duration::from_secs(DEFAULT_TOKEN_TTL_SECS),
            published: true,
            policy: attest_policy::Policy::default(),
            risk: attest_policy::RiskWeights::default(),
            device_check_fallback: false,
            link_secret: None,
        })
    }

    /// The names a request may call the app by: its name and its Android package.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let package = self
            .android
            .as_ref()
            .map(|android| android.package.as_str())
            .filter(|package| *package != self.id.as_str());
        std::iter::once(self.id.as_str()).chain(package)
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        error: std::io::Error,
    },
    /// The TOML file is not valid.
    #[error("invalid configuration file {path}: {error}")]
    File {
        /// The file.
        path: String,
        /// The TOML error.
        #[source]
        error: Box<toml::de::Error>,
    },
    /// An extra root is not a usable certificate.
    #[error("extra root {file}: {reason}")]
    Root {
        /// The file.
        file: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An app entry is invalid.
    #[error("invalid app {0}")]
    App(String),
    /// Danger roots would apply to no app: refuse rather than silently ignore them.
    #[error(
        "danger_extra_*_root is set but every configured app is production-only; extra roots \
         apply only to apps that accept development keys (TEAM.bundle=development or =any)"
    )]
    DangerRootsWithoutDevelopmentApp,
    /// A value is out of range.
    #[error("invalid setting: {0}")]
    Invalid(&'static str),
    /// A webhook entry is invalid.
    #[error("invalid webhook {0}")]
    Webhook(String),
    /// The key-encryption key (from the environment variable or the file named) is unusable.
    #[error("key-encryption key from {0}: {1}")]
    KeyEncryptionKey(String, &'static str),
    /// A file holding a secret may be read by other users.
    #[error(
        "{} holds a secret ({what}) and is accessible to other users (mode {mode:04o}): chmod \
         600 it, or start with --danger-allow-readable-secrets",
        path.display()
    )]
    ReadableSecret {
        /// The file.
        path: PathBuf,
        /// What it holds.
        what: &'static str,
        /// Its permission bits.
        mode: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(spec: &str) -> AppConfig {
        let spec: AppSpec = spec.parse().unwrap();
        AppConfig::new(spec.id, spec.environment)
    }

    #[test]
    fn app_spec_defaults_to_production() {
        let spec: AppSpec = "TEAM.com.example".parse().unwrap();
        assert_eq!(spec.environment, EnvironmentPolicy::Production);
        let spec: AppSpec = "TEAM.com.example=any".parse().unwrap();
        assert_eq!(spec.environment, EnvironmentPolicy::Any);
        assert!("TEAM.com.example=staging".parse::<AppSpec>().is_err());
        assert!("nodot".parse::<AppSpec>().is_err());
    }

    #[test]
    fn danger_roots_are_refused_when_every_app_is_production_only() {
        let mut config = Config::new("sqlite::memory:");
        config.apps = vec![app("TEAM.com.example")];
        config.danger_extra_attestation_roots = vec![TrustRoot {
            source: "test".into(),
            der: vec![1],
        }];
        assert!(matches!(
            config.validate(),
            Err(ConfigError::DangerRootsWithoutDevelopmentApp)
        ));
        config.apps.push(app("TEAM.com.example.dev=development"));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn debug_redacts_secrets() {
        let mut config = Config::new("postgres://user:hunter2@db/attestd");
        config.admin_token = Some(Secret::new("s3cret-admin"));
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("s3cret-admin"), "{text}");
        assert!(text.contains("postgres"), "{text}");
    }

    #[test]
    fn the_key_encryption_key_is_32_bytes_of_base64_and_redacted() {
        use base64::Engine as _;
        let bytes = [0x5Au8; 32];
        for engine in [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            let text = format!(" {}\n", engine.encode(bytes));
            assert!(parse_key_encryption_key(&text).is_ok(), "{text}");
        }
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        assert!(parse_key_encryption_key(&short).is_err());
        assert!(parse_key_encryption_key("not base64!").is_err());

        let mut config = Config::new("sqlite::memory:");
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        config.key_encryption_key = Some(Secret::new(text.clone()));
        assert!(config.validate().is_ok());
        assert!(!format!("{config:?}").contains(&text));
        config.key_encryption_key_file = Some(PathBuf::from("/etc/attestd/kek"));
        assert!(config.validate().is_err(), "both the key and a file");
        config.key_encryption_key = Some(Secret::new(short));
        config.key_encryption_key_file = None;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::KeyEncryptionKey(..))
        ));
    }

    #[test]
    fn file_settings_are_overridden_by_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attestd.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nchallenge_ttl_secs = 60\ntoken_ttl_secs = 120\n\
             [[apps]]\nid = \"TEAM.com.example\"\nenvironment = \"any\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            challenge_ttl: Some(30),
            database_url: Some("sqlite::memory:".parse().unwrap()),
            ..ServeArgs::default()
        };
        let config = Config::load(&args).unwrap();
        assert_eq!(config.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(config.challenge_ttl, Duration::from_secs(30));
        assert_eq!(config.apps.len(), 1);
        assert_eq!(config.apps[0].environment, EnvironmentPolicy::Any);
        assert_eq!(config.apps[0].token_ttl, Duration::from_secs(120));
    }

    #[test]
    fn per_app_policy_and_weights_come_from_the_file_and_flags_override_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attestd.toml");
        std::fs::write(
            &path,
            "key_idle_expiry_days = 30\n\
             [[webhooks]]\nurl = \"https://hooks.example.com/a\"\nsecret = \"s\"\n\
             events = [\"device.new\", \"key.superseded\"]\n\
             [webhook_delivery]\nmax_attempts = 3\n\
             [[apps]]\nid = \"TEAM.com.example\"\n\
             [apps.policy]\nmode = \"monitor\"\nmax_risk_score = 60\n\
             [apps.risk]\nnew_device = 0\n\
             [[apps]]\nid = \"TEAM.com.other\"\nenvironment = \"any\"\npublished = true\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            database_url: Some("sqlite::memory:".parse().unwrap()),
            app_modes: vec!["TEAM.com.other=monitor".parse().unwrap()],
            app_max_risk_scores: vec!["TEAM.com.other=75".parse().unwrap()],
            ..ServeArgs::default()
        };
        let config = Config::load(&args).unwrap();
        let (first, second) = (&config.apps[0], &config.apps[1]);
        assert_eq!(first.policy.mode, attest_policy::PolicyMode::Monitor);
        assert_eq!(first.policy.max_risk_score, Some(60));
        assert_eq!(first.risk.new_device, 0);
        assert_eq!(
            first.risk.receipt_missing, 30,
            "other weights keep their default"
        );
        assert!(first.published, "production apps are published by default");
        assert_eq!(second.policy.mode, attest_policy::PolicyMode::Monitor);
        assert_eq!(second.policy.max_risk_score, Some(75));
        assert!(second.published);
        assert_eq!(
            config.key_idle_expiry,
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(config.webhooks.len(), 1);
        assert_eq!(
            config.webhooks[0].events,
            [WebhookEvent::DeviceNew, WebhookEvent::KeySuperseded]
        );
        assert_eq!(config.webhook_settings.max_attempts, 3);
        assert!(!format!("{config:?}").contains("secret = "));
    }

    #[test]
    fn invalid_policies_flags_and_webhooks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| {
            let path = dir.path().join("attestd.toml");
            std::fs::write(&path, text).unwrap();
            ServeArgs {
                config: Some(path),
                database_url: Some("sqlite::memory:".parse().unwrap()),
                ..ServeArgs::default()
            }
        };
        let app = "[[apps]]\nid = \"TEAM.com.example\"\n";
        for bad in [
            format!("{app}[apps.policy]\nmode = \"audit\"\n"),
            format!("{app}[apps.policy]\nmax_risk_score = 101\n"),
            format!("{app}[apps.risk]\nclock_skw = 1\n"),
            format!("{app}[apps.risk]\nnew_device = 101\n"),
            format!("{app}[[webhooks]]\nurl = \"ftp://x\"\nsecret = \"s\"\n"),
            format!("{app}[[webhooks]]\nurl = \"https://x\"\nsecret = \"\"\n"),
            format!(
                "{app}[[webhooks]]\nurl = \"https://x\"\nsecret = \"s\"\nevents = [\"device.old\"]\n"
            ),
        ] {
            assert!(Config::load(&write(&bad)).is_err(), "{bad}");
        }
        let mut args = write(app);
        args.app_modes = vec!["TEAM.com.unknown=monitor".parse().unwrap()];
        assert!(matches!(Config::load(&args), Err(ConfigError::App(_))));
        assert!(
            "TEAM.com.example=audit"
                .parse::<AppSetting<attest_policy::PolicyMode>>()
                .is_err()
        );
        assert!(
            "TEAM.com.example"
                .parse::<AppSetting<attest_policy::PolicyMode>>()
                .is_err()
        );
        let mut args = write(app);
        args.key_idle_expiry_days = Some(0);
        assert_eq!(Config::load(&args).unwrap().key_idle_expiry, None);
    }

    #[test]
    fn link_secrets_come_from_the_file_or_a_flag_are_redacted_and_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attestd.toml");
        let long = "s".repeat(32);
        std::fs::write(
            &path,
            format!(
                "[[apps]]\nid = \"TEAM.com.example\"\nlink_secret = \"{long}\"\n\
                 [[apps]]\nid = \"TEAM.com.other\"\n"
            ),
        )
        .unwrap();
        let args = |flags: Vec<&str>| ServeArgs {
            config: Some(path.clone()),
            database_url: Some("sqlite::memory:".parse().unwrap()),
            app_link_secrets: flags.into_iter().map(|f| f.parse().unwrap()).collect(),
            ..ServeArgs::default()
        };
        let config = Config::load(&args(vec![])).unwrap();
        assert_eq!(config.apps[0].link_secret, Some(Secret::new(long.clone())));
        assert_eq!(config.apps[1].link_secret, None);
        assert!(!format!("{config:?}").contains(&long));

        let flag = format!("TEAM.com.other={}", "f".repeat(40));
        let config = Config::load(&args(vec![flag.as_str()])).unwrap();
        assert_eq!(
            config.apps[1].link_secret,
            Some(Secret::new("f".repeat(40)))
        );
        assert!(!format!("{args:?}", args = args(vec![flag.as_str()])).contains("ffff"));

        let short = "TEAM.com.other=only-31-bytes-0123456789abcdefg";
        assert!(matches!(
            Config::load(&args(vec![short])),
            Err(ConfigError::App(message)) if message.contains("at least 32 bytes")
        ));
        assert!(matches!(
            Config::load(&args(vec![
                "TEAM.com.unknown=0123456789abcdef0123456789abcdef"
            ])),
            Err(ConfigError::App(_))
        ));
    }

    #[test]
    fn connection_limits_have_defaults_come_from_the_file_and_flags_override_them() {
        let defaults = Config::new("sqlite::memory:");
        assert_eq!(defaults.header_read_timeout, Duration::from_secs(10));
        assert_eq!(defaults.idle_timeout, Duration::from_secs(75));
        assert_eq!(defaults.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(defaults.max_connections, None, "derived from RLIMIT_NOFILE");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attestd.toml");
        let write = |text: &str| {
            std::fs::write(&path, text).unwrap();
            ServeArgs {
                config: Some(path.clone()),
                database_url: Some("sqlite::memory:".parse().unwrap()),
                ..ServeArgs::default()
            }
        };
        let mut args = write(
            "header_read_timeout_secs = 5\nidle_timeout_secs = 30\n\
             shutdown_timeout_secs = 3\nmax_connections = 100\n",
        );
        args.idle_timeout = Some(20);
        args.max_connections = Some(50);
        let config = Config::load(&args).unwrap();
        assert_eq!(config.header_read_timeout, Duration::from_secs(5));
        assert_eq!(config.idle_timeout, Duration::from_secs(20));
        assert_eq!(config.shutdown_timeout, Duration::from_secs(3));
        assert_eq!(config.max_connections, Some(50));

        for bad in [
            "header_read_timeout_secs = 0\n",
            "idle_timeout_secs = 0\n",
            "max_connections = 0\n",
        ] {
            assert!(
                matches!(Config::load(&write(bad)), Err(ConfigError::Invalid(_))),
                "{bad}"
            );
        }
        // No wait at all is a valid (if abrupt) shutdown.
        assert!(Config::load(&write("shutdown_timeout_secs = 0\n")).is_ok());
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attestd.toml");
        std::fs::write(&path, "listn = \"127.0.0.1:9000\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        assert!(matches!(Config::load(&args), Err(ConfigError::File { .. })));
    }

    #[test]
    fn rate_limits_and_the_refusal_sample_come_from_the_file_and_flags_override_them() {
        use crate::server::limits::Rate;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attestd.toml");
        std::fs::write(
            &path,
            "refusal_log_sample = 3\n\
             [rate_limits]\naddress = \"off\"\nkey = \"2/8\"\nmax_tracked = 500\n\
             share = \"none\"\nheartbeat_secs = 30\n",
        )
        .unwrap();
        let args = |flags: ServeArgs| ServeArgs {
            config: Some(path.clone()),
            database_url: Some("sqlite::memory:".parse().unwrap()),
            ..flags
        };
        let config = Config::load(&args(ServeArgs::default())).unwrap();
        let limits = &config.rate_limits;
        assert_eq!(limits.address, None);
        assert_eq!(
            limits.key,
            Some(Rate {
                per_second: 2.0,
                burst: 8.0
            })
        );
        assert_eq!(limits.max_tracked, 500);
        assert_eq!(limits.share, LimitShare::None);
        assert_eq!(limits.heartbeat, Duration::from_secs(30));
        assert_eq!(config.refusal_log_sample, 3);

        let flags = ServeArgs {
            rate_limit_address: Some("50/60".parse().unwrap()),
            rate_limit_key: Some("off".parse().unwrap()),
            rate_limit_share: Some(LimitShare::Instances),
            refusal_log_sample: Some(0),
            ..ServeArgs::default()
        };
        let config = Config::load(&args(flags)).unwrap();
        assert_eq!(
            config.rate_limits.address,
            Some(Rate {
                per_second: 50.0,
                burst: 60.0
            })
        );
        assert_eq!(config.rate_limits.key, None);
        assert_eq!(config.rate_limits.share, LimitShare::Instances);
        assert_eq!(config.refusal_log_sample, 0);

        // Defaults: on, 100/200 per address and 5/20 per key.
        let defaults = Config::new("sqlite::memory:").rate_limits;
        assert_eq!(
            defaults.address.map(|r| (r.per_second, r.burst)),
            Some((100.0, 200.0))
        );
        assert_eq!(
            defaults.key.map(|r| (r.per_second, r.burst)),
            Some((5.0, 20.0))
        );
        for bad in [
            "[rate_limits]\naddress = \"fast\"\n",
            "[rate_limits]\nmax_tracked = 0\n",
            "[rate_limits]\nburst = 3\n",
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(Config::load(&args(ServeArgs::default())).is_err(), "{bad}");
        }
    }
}
