//! Where settings come from: command-line flags with their `ATTESTD_*` variables (clap) and
//! the TOML file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use attest_core::apple::{AppId, EnvironmentPolicy};
use serde::Deserialize;

use super::hooks::{FileWebhook, FileWebhookDelivery};
use super::{
    AppConfig, AppSetting, AppSpec, ConfigError, DatabaseUrl, LogFormat, Secret, SqliteLocking,
};

/// Flags (and their `ATTESTD_*` environment variables) of `attestd serve`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (see docs/operations.md); flags and environment override it.
    #[arg(long, env = "ATTESTD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "ATTESTD_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// `sqlite://FILE` (or a path: created if missing) or `postgres://...` (also read from
    /// DATABASE_URL) [default: sqlite://attestd.db].
    #[arg(
        long,
        env = "ATTESTD_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<DatabaseUrl>,
    /// Database connections per server process [default: 8 for SQLite, 10 for PostgreSQL].
    #[arg(long, env = "ATTESTD_DATABASE_MAX_CONNECTIONS", value_name = "N")]
    pub database_max_connections: Option<u32>,
    /// SQLite: `exclusive` (one process, no -shm file) or `shared` (other processes may open
    /// the database, e.g. for an online `sqlite3 .backup`) [default: exclusive].
    #[arg(long, env = "ATTESTD_SQLITE_LOCKING", value_enum)]
    pub sqlite_locking: Option<SqliteLocking>,
    /// File holding the key-encryption key (base64 of 32 random bytes, mode 0600 or 0400) that
    /// seals the signing keys and the challenge key in the database. Or set
    /// ATTESTD_KEY_ENCRYPTION_KEY to the base64 text itself.
    #[arg(long, env = "ATTESTD_KEY_ENCRYPTION_KEY_FILE", value_name = "FILE")]
    pub key_encryption_key_file: Option<PathBuf>,
    /// DANGER: start even though the database files or a secret file (key-encryption key,
    /// quick-start CA, Apple key) may be read by other users; logs a WARN for each.
    #[arg(long, env = "ATTESTD_DANGER_ALLOW_READABLE_SECRETS")]
    pub danger_allow_readable_secrets: bool,
    /// An accepted app: `TEAMID.bundle.id[=development|production|any]` (repeatable; the
    /// environment defaults to production). With none, serve starts in quick-start mode.
    #[arg(
        long = "app",
        env = "ATTESTD_APPS",
        value_delimiter = ',',
        value_name = "APP"
    )]
    pub apps: Vec<AppSpec>,
    /// DANGER: PEM file of an extra attestation root CA, trusted for apps that accept the
    /// development environment (repeatable). For simulators and tests only.
    #[arg(
        long = "danger-extra-attestation-root",
        env = "ATTESTD_DANGER_EXTRA_ATTESTATION_ROOTS",
        value_delimiter = ',',
        value_name = "PEM"
    )]
    pub danger_extra_attestation_roots: Vec<PathBuf>,
    /// DANGER: PEM file of an extra receipt root CA (repeatable), same rules.
    #[arg(
        long = "danger-extra-receipt-root",
        env = "ATTESTD_DANGER_EXTRA_RECEIPT_ROOTS",
        value_delimiter = ',',
        value_name = "PEM"
    )]
    pub danger_extra_receipt_roots: Vec<PathBuf>,
    /// An Android app: `PACKAGE=DIGEST[,DIGEST...]` (repeatable), DIGEST being the standard
    /// base64 (or hex) SHA-256 of a signing certificate; split at the first `=`. The app is
    /// named by its package. The config file's `[apps.android]` sets its policy knobs.
    #[arg(long = "android-app", value_name = "PACKAGE=DIGEST[,DIGEST...]")]
    pub android_apps: Vec<crate::server::android::app::AndroidAppConfig>,
    /// DANGER: PEM file of an extra Android attestation root (repeatable), trusted for Android
    /// apps besides Google's two keys. Never a real device; its chains are not looked up in
    /// Google's revocation list. For simulators and tests only.
    #[arg(
        long = "danger-extra-android-root",
        env = "ATTESTD_DANGER_EXTRA_ANDROID_ROOTS",
        value_delimiter = ',',
        value_name = "PEM"
    )]
    pub danger_extra_android_roots: Vec<PathBuf>,
    /// Bearer token for /admin/v1; without one the admin API answers 404.
    #[arg(
        long,
        env = "ATTESTD_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<Secret>,
    /// JWT `iss` claim [default: attestd].
    #[arg(long, env = "ATTESTD_ISSUER")]
    pub issuer: Option<String>,
    /// Challenge lifetime in seconds [default: 300].
    #[arg(long, env = "ATTESTD_CHALLENGE_TTL", value_name = "SECONDS")]
    pub challenge_ttl: Option<u64>,
    /// JWT lifetime in seconds for apps that set none [default: 3600].
    #[arg(long, env = "ATTESTD_TOKEN_TTL", value_name = "SECONDS")]
    pub token_ttl: Option<u64>,
    /// Largest accepted request body in bytes [default: 65536].
    #[arg(long, env = "ATTESTD_BODY_LIMIT", value_name = "BYTES")]
    pub body_limit: Option<usize>,
    /// Seconds after which a request is answered 503 `timeout` [default: 10].
    #[arg(long, env = "ATTESTD_REQUEST_TIMEOUT", value_name = "SECONDS")]
    pub request_timeout: Option<u64>,
    /// Seconds a client has to send a request's line and headers, from connecting or from its
    /// first byte after an idle pause; slower connections are closed [default: 10].
    #[arg(long, env = "ATTESTD_HEADER_READ_TIMEOUT", value_name = "SECONDS")]
    pub header_read_timeout: Option<u64>,
    /// Seconds a keep-alive connection may stay idle between requests [default: 75].
    #[arg(long, env = "ATTESTD_IDLE_TIMEOUT", value_name = "SECONDS")]
    pub idle_timeout: Option<u64>,
    /// Seconds requests in flight get to finish after SIGTERM or Ctrl-C; connections still
    /// open then are dropped [default: 10].
    #[arg(long, env = "ATTESTD_SHUTDOWN_TIMEOUT", value_name = "SECONDS")]
    pub shutdown_timeout: Option<u64>,
    /// Most connections served at once; more wait in the listen backlog [default: the
    /// open-file limit minus 128, at most 4096].
    #[arg(long, env = "ATTESTD_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Log format [default: text].
    #[arg(long, env = "ATTESTD_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, `tracing` syntax (also read from RUST_LOG) [default: info].
    #[arg(long, env = "ATTESTD_LOG", value_name = "FILTER")]
    pub log_filter: Option<String>,
    /// Directory of the quick-start simulator CA [default: ./attestd-dev].
    #[arg(long, env = "ATTESTD_QUICKSTART_DIR", value_name = "DIR")]
    pub quickstart_dir: Option<PathBuf>,
    /// Policy mode of one app: `TEAMID.bundle.id=off|monitor|enforce` (repeatable; overrides
    /// the file's `[apps.policy] mode`; default enforce).
    #[arg(
        long = "app-mode",
        env = "ATTESTD_APP_MODES",
        value_delimiter = ',',
        value_name = "APP=MODE"
    )]
    pub app_modes: Vec<AppSetting<attest_policy::PolicyMode>>,
    /// Deny (ATT_004 / `risk_above_max`) requests of one app scoring above N:
    /// `TEAMID.bundle.id=N` (repeatable; overrides `[apps.policy] max_risk_score`).
    #[arg(
        long = "app-max-risk-score",
        env = "ATTESTD_APP_MAX_RISK_SCORES",
        value_delimiter = ',',
        value_name = "APP=N"
    )]
    pub app_max_risk_scores: Vec<AppSetting<u8>>,
    /// The secret one app's backend signs link tokens with (HS256, at least 32 bytes):
    /// `TEAMID.bundle.id=SECRET` (repeatable; overrides `[[apps]] link_secret`). Without one,
    /// the app's attestations link no key to a user or device (see docs/api.md, "Linking").
    #[arg(
        long = "app-link-secret",
        env = "ATTESTD_APP_LINK_SECRETS",
        hide_env_values = true,
        value_delimiter = ',',
        value_name = "APP=SECRET"
    )]
    pub app_link_secrets: Vec<AppSetting<Secret>>,
    /// Days after which an unused key expires (`key_expired`); 0 = never [default: 180].
    #[arg(long, env = "ATTESTD_KEY_IDLE_EXPIRY_DAYS", value_name = "DAYS")]
    pub key_idle_expiry_days: Option<u64>,
    /// Days the decision log keeps a decision; 0 = forever [default: 90].
    #[arg(long, env = "ATTESTD_DECISION_RETENTION_DAYS", value_name = "DAYS")]
    pub decision_retention_days: Option<u64>,
    /// Take the client address from the last `X-Forwarded-For` entry (only behind a proxy that
    /// sets it) [default: the connection's address].
    #[arg(long, env = "ATTESTD_TRUST_X_FORWARDED_FOR")]
    pub trust_x_forwarded_for: bool,
    /// Requests per client address: `RATE/BURST` (a second / at once), `RATE`, or `off`
    /// (health, readiness and metrics are never limited) [default: 100/200].
    #[arg(long, env = "ATTESTD_RATE_LIMIT_ADDRESS", value_name = "RATE/BURST")]
    pub rate_limit_address: Option<super::RateSetting>,
    /// Assertions per key (counted when they prove possession of the key): `RATE/BURST`,
    /// `RATE`, or `off` [default: 5/20].
    #[arg(long, env = "ATTESTD_RATE_LIMIT_KEY", value_name = "RATE/BURST")]
    pub rate_limit_key: Option<super::RateSetting>,
    /// How instances sharing a database split the limits: `instances` (each enforces 1/N) or
    /// `none` (each enforces the whole limit) [default: instances].
    #[arg(long, env = "ATTESTD_RATE_LIMIT_SHARE", value_enum)]
    pub rate_limit_share: Option<super::LimitShare>,
    /// Refusals of one sender, app and code logged in full per counting window (the rest are
    /// counted only) [default: 10].
    #[arg(long, env = "ATTESTD_REFUSAL_LOG_SAMPLE", value_name = "N")]
    pub refusal_log_sample: Option<u32>,
    /// Apple credentials and receipt refresh (see docs/apple.md).
    #[command(flatten)]
    pub apple: crate::server::apple::AppleArgs,
    /// Google's Android attestation status list (see docs/operations.md).
    #[command(flatten)]
    pub android: crate::server::android::AndroidArgs,
}

/// The TOML file's shape; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) listen: Option<SocketAddr>,
    pub(super) database_url: Option<String>,
    pub(super) database_max_connections: Option<u32>,
    pub(super) sqlite_locking: Option<SqliteLocking>,
    pub(super) key_encryption_key_file: Option<PathBuf>,
    pub(super) danger_allow_readable_secrets: Option<bool>,
    pub(super) admin_token: Option<String>,
    pub(super) issuer: Option<String>,
    pub(super) challenge_ttl_secs: Option<u64>,
    pub(super) token_ttl_secs: Option<u64>,
    pub(super) body_limit_bytes: Option<usize>,
    pub(super) request_timeout_secs: Option<u64>,
    pub(super) header_read_timeout_secs: Option<u64>,
    pub(super) idle_timeout_secs: Option<u64>,
    pub(super) shutdown_timeout_secs: Option<u64>,
    pub(super) max_connections: Option<usize>,
    pub(super) log_format: Option<LogFormat>,
    pub(super) log_filter: Option<String>,
    pub(super) quickstart_dir: Option<PathBuf>,
    #[serde(default)]
    pub(super) danger_extra_attestation_roots: Vec<PathBuf>,
    #[serde(default)]
    pub(super) danger_extra_receipt_roots: Vec<PathBuf>,
    #[serde(default)]
    pub(super) danger_extra_android_roots: Vec<PathBuf>,
    #[serde(default)]
    pub(super) apps: Vec<FileApp>,
    pub(super) key_idle_expiry_days: Option<u64>,
    pub(super) decision_retention_days: Option<u64>,
    pub(super) key_churn_window_secs: Option<u64>,
    pub(super) failure_window_secs: Option<u64>,
    pub(super) trust_x_forwarded_for: Option<bool>,
    #[serde(default)]
    pub(super) webhooks: Vec<FileWebhook>,
    #[serde(default)]
    pub(super) webhook_delivery: FileWebhookDelivery,
    #[serde(default)]
    pub(super) rate_limits: super::limits::FileRateLimits,
    pub(super) refusal_log_sample: Option<u32>,
    pub(super) apple: Option<crate::server::apple::FileApple>,
    pub(super) android: Option<crate::server::android::FileAndroid>,
}

impl FileConfig {
    pub(super) fn read(path: &Path) -> Result<Self, ConfigError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: display.clone(),
            error,
        })?;
        toml::from_str(&text).map_err(|error| ConfigError::File {
            path: display,
            error: Box::new(error),
        })
    }
}

/// `[[apps]]` in the TOML file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileApp {
    id: Option<String>,
    android: Option<crate::server::android::app::FileAndroidApp>,
    environment: Option<String>,
    token_ttl_secs: Option<u64>,
    published: Option<bool>,
    policy: Option<attest_policy::Policy>,
    risk: Option<attest_policy::RiskWeights>,
    device_check_fallback: Option<bool>,
    link_secret: Option<String>,
}

impl FileApp {
    /// `id` is the App ID of the iOS side; an app without one is Android-only, named by its
    /// package.
    pub(super) fn resolve(self, default_token_ttl: u64) -> Result<AppConfig, ConfigError> {
        let android = self
            .android
            .map(|android| android.resolve().map_err(ConfigError::App))
            .transpose()?;
        let mut app = match (self.id, android) {
            (Some(id), android) => {
                let apple = AppId::new(id.as_str())
                    .map_err(|error| ConfigError::App(format!("{id:?}: {error}")))?;
                let environment = match self.environment.as_deref() {
                    None => EnvironmentPolicy::Production,
                    Some(text) => text
                        .parse()
                        .map_err(|error| ConfigError::App(format!("{id:?}: {error}")))?,
                };
                let mut app = AppConfig::new(apple, environment);
                app.android = android;
                app
            }
            (None, Some(android)) => {
                if self.environment.is_some() || self.device_check_fallback.is_some() {
                    return Err(ConfigError::App(format!(
                        "{:?}: environment and device_check_fallback are iOS settings",
                        android.package
                    )));
                }
                AppConfig::android(android)?
            }
            (None, None) => {
                return Err(ConfigError::App(
                    "an app needs an id (iOS App ID) or an [apps.android] package".into(),
                ));
            }
        };
        app.token_ttl = Duration::from_secs(self.token_ttl_secs.unwrap_or(default_token_ttl));
        if let Some(published) = self.published {
            app.published = published;
        }
        app.policy = self.policy.unwrap_or_default();
        app.risk = self.risk.unwrap_or_default();
        app.device_check_fallback = self.device_check_fallback.unwrap_or(false);
        app.link_secret = self.link_secret.map(Secret);
        Ok(app)
    }
}
