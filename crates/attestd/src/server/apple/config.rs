//! The `[apple]` section: credentials, base URLs and the receipt-refresh schedule.

use std::path::{Path, PathBuf};
use std::time::Duration;

use attest_apple::{
    DEVICE_CHECK_DEVELOPMENT_URL, DEVICE_CHECK_PRODUCTION_URL, RECEIPT_DEVELOPMENT_URL,
    RECEIPT_PRODUCTION_URL, RetryPolicy,
};
use serde::Deserialize;

use crate::server::config::ConfigError;

const HOUR: Duration = Duration::from_secs(60 * 60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Flags (and `ATTESTD_APPLE_*` variables) for the common Apple settings; the rest is in the
/// `[apple]` section of the file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AppleArgs {
    /// Apple team id of the DeviceCheck key (10 characters).
    #[arg(
        long = "apple-team-id",
        env = "ATTESTD_APPLE_TEAM_ID",
        value_name = "TEAMID"
    )]
    pub team_id: Option<String>,
    /// Key id of the DeviceCheck key (10 characters).
    #[arg(
        long = "apple-key-id",
        env = "ATTESTD_APPLE_KEY_ID",
        value_name = "KEYID"
    )]
    pub key_id: Option<String>,
    /// The DeviceCheck key's `.p8` file (PEM PKCS#8 P-256).
    #[arg(
        long = "apple-private-key",
        env = "ATTESTD_APPLE_PRIVATE_KEY_PATH",
        value_name = "P8"
    )]
    pub private_key_path: Option<PathBuf>,
    /// Refresh receipts (risk metric) in the background [default: true when credentials are
    /// set].
    #[arg(
        long = "apple-refresh",
        env = "ATTESTD_APPLE_REFRESH_ENABLED",
        value_name = "BOOL"
    )]
    pub refresh_enabled: Option<bool>,
    /// Receipt exchanges in flight at once, per instance [default: 4].
    #[arg(
        long = "apple-refresh-concurrency",
        env = "ATTESTD_APPLE_REFRESH_CONCURRENCY",
        value_name = "N"
    )]
    pub refresh_concurrency: Option<usize>,
    /// Receipt exchanges started per second, per instance; 0 = unlimited [default: 10].
    #[arg(
        long = "apple-refresh-rate",
        env = "ATTESTD_APPLE_REFRESH_RATE",
        value_name = "PER_SECOND"
    )]
    pub refresh_rate_per_sec: Option<f64>,
}

/// `[apple]` in the TOML file; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileApple {
    team_id: Option<String>,
    key_id: Option<String>,
    private_key_path: Option<PathBuf>,
    receipt_base_url_production: Option<String>,
    receipt_base_url_development: Option<String>,
    devicecheck_base_url_production: Option<String>,
    devicecheck_base_url_development: Option<String>,
    request_timeout_secs: Option<u64>,
    device_check_signal_timeout_ms: Option<u64>,
    retry_max_attempts: Option<u32>,
    retry_base_delay_ms: Option<u64>,
    retry_max_delay_secs: Option<u64>,
    degraded_after_failures: Option<u32>,
    refresh_enabled: Option<bool>,
    refresh_concurrency: Option<usize>,
    refresh_rate_per_sec: Option<f64>,
    refresh_batch_size: Option<u32>,
    refresh_poll_interval_secs: Option<u64>,
    refresh_lease_secs: Option<u64>,
    first_refresh_delay_secs: Option<u64>,
    first_refresh_jitter_secs: Option<u64>,
    refresh_interval_secs: Option<u64>,
    refresh_jitter_secs: Option<u64>,
    failure_backoff_secs: Option<u64>,
    failure_backoff_max_secs: Option<u64>,
    rejected_backoff_secs: Option<u64>,
}

/// When and how fast receipts are refreshed. See docs/apple.md for the schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshSettings {
    /// Exchanges in flight at once, per instance.
    pub concurrency: usize,
    /// Exchanges started per second, per instance; 0 = unlimited.
    pub rate_per_sec: f64,
    /// Most keys claimed at once (also bounded by free concurrency).
    pub batch_size: u32,
    /// How often the store is asked for due keys when none were due.
    pub poll_interval: Duration,
    /// How long a claimed key stays reserved for this instance.
    pub lease: Duration,
    /// First refresh of a new key: its `ATTEST` receipt's creation + this ...
    pub first_delay: Duration,
    /// ... + a random part of this window, to spread the load.
    pub first_jitter: Duration,
    /// Shortest time between two refreshes of a key (and at least the receipt's Not Before).
    pub interval: Duration,
    /// Random spread added to every scheduled refresh.
    pub jitter: Duration,
    /// Backoff after the first 5xx or transport failure, doubled per further failure.
    pub failure_backoff: Duration,
    /// Cap of that backoff.
    pub failure_backoff_max: Duration,
    /// Backoff after an answer that will not change by retrying soon (400, 401, 404, a receipt
    /// that does not verify), doubled up to 8 times this.
    pub rejected_backoff: Duration,
}

impl Default for RefreshSettings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            rate_per_sec: 10.0,
            batch_size: 32,
            poll_interval: Duration::from_secs(30),
            lease: Duration::from_secs(10 * 60),
            first_delay: DAY,
            first_jitter: 6 * HOUR,
            interval: DAY,
            jitter: 6 * HOUR,
            failure_backoff: Duration::from_secs(60),
            failure_backoff_max: 6 * HOUR,
            rejected_backoff: DAY,
        }
    }
}

/// The resolved `[apple]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AppleConfig {
    /// Team id of the DeviceCheck key.
    pub team_id: Option<String>,
    /// Key id of the DeviceCheck key.
    pub key_id: Option<String>,
    /// The `.p8` file; read when the server starts.
    pub private_key_path: Option<PathBuf>,
    /// Receipt API for production keys.
    pub receipt_base_url_production: String,
    /// Receipt API for development keys.
    pub receipt_base_url_development: String,
    /// DeviceCheck API, production.
    pub devicecheck_base_url_production: String,
    /// DeviceCheck API, development.
    pub devicecheck_base_url_development: String,
    /// Whole-request timeout of one call to Apple.
    pub request_timeout: Duration,
    /// How long an attestation or `/v1/device-checks` request waits for Apple's DeviceCheck
    /// answer (all retries included) before going on without it.
    pub device_check_signal_timeout: Duration,
    /// Retries within one exchange (5xx, transport, short `Retry-After`).
    pub retry: RetryPolicy,
    /// Consecutive 5xx or transport failures after which Apple counts as degraded.
    pub degraded_after_failures: u32,
    /// `None`: refresh when credentials are configured.
    pub refresh_enabled: Option<bool>,
    /// The schedule.
    pub refresh: RefreshSettings,
}

impl Default for AppleConfig {
    fn default() -> Self {
        Self {
            team_id: None,
            key_id: None,
            private_key_path: None,
            receipt_base_url_production: RECEIPT_PRODUCTION_URL.to_owned(),
            receipt_base_url_development: RECEIPT_DEVELOPMENT_URL.to_owned(),
            devicecheck_base_url_production: DEVICE_CHECK_PRODUCTION_URL.to_owned(),
            devicecheck_base_url_development: DEVICE_CHECK_DEVELOPMENT_URL.to_owned(),
            request_timeout: Duration::from_secs(10),
            device_check_signal_timeout: Duration::from_secs(2),
            retry: RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(30),
            },
            degraded_after_failures: 3,
            refresh_enabled: None,
            refresh: RefreshSettings::default(),
        }
    }
}

impl AppleConfig {
    /// Defaults, then the file's `[apple]` (paths relative to `base`), then flags.
    pub fn resolve(
        args: &AppleArgs,
        file: Option<FileApple>,
        base: &Path,
    ) -> Result<Self, ConfigError> {
        let file = file.unwrap_or_default();
        let mut config = Self::default();
        let secs = Duration::from_secs;
        config.team_id = args.team_id.clone().or(file.team_id);
        config.key_id = args.key_id.clone().or(file.key_id);
        config.private_key_path = args
            .private_key_path
            .clone()
            .or_else(|| file.private_key_path.map(|path| base.join(path)));
        let urls = [
            (
                &mut config.receipt_base_url_production,
                file.receipt_base_url_production,
            ),
            (
                &mut config.receipt_base_url_development,
                file.receipt_base_url_development,
            ),
            (
                &mut config.devicecheck_base_url_production,
                file.devicecheck_base_url_production,
            ),
            (
                &mut config.devicecheck_base_url_development,
                file.devicecheck_base_url_development,
            ),
        ];
        for (slot, value) in urls {
            if let Some(value) = value {
                *slot = value;
            }
        }
        if let Some(value) = file.request_timeout_secs {
            config.request_timeout = secs(value);
        }
        if let Some(value) = file.device_check_signal_timeout_ms {
            config.device_check_signal_timeout = Duration::from_millis(value);
        }
        if let Some(value) = file.retry_max_attempts {
            config.retry.max_attempts = value;
        }
        if let Some(value) = file.retry_base_delay_ms {
            config.retry.base_delay = Duration::from_millis(value);
        }
        if let Some(value) = file.retry_max_delay_secs {
            config.retry.max_delay = secs(value);
        }
        if let Some(value) = file.degraded_after_failures {
            config.degraded_after_failures = value;
        }
        config.refresh_enabled = args.refresh_enabled.or(file.refresh_enabled);
        let refresh = &mut config.refresh;
        if let Some(value) = args.refresh_concurrency.or(file.refresh_concurrency) {
            refresh.concurrency = value;
        }
        if let Some(value) = args.refresh_rate_per_sec.or(file.refresh_rate_per_sec) {
            refresh.rate_per_sec = value;
        }
        if let Some(value) = file.refresh_batch_size {
            refresh.batch_size = value;
        }
        let durations = [
            (&mut refresh.poll_interval, file.refresh_poll_interval_secs),
            (&mut refresh.lease, file.refresh_lease_secs),
            (&mut refresh.first_delay, file.first_refresh_delay_secs),
            (&mut refresh.first_jitter, file.first_refresh_jitter_secs),
            (&mut refresh.interval, file.refresh_interval_secs),
            (&mut refresh.jitter, file.refresh_jitter_secs),
            (&mut refresh.failure_backoff, file.failure_backoff_secs),
            (
                &mut refresh.failure_backoff_max,
                file.failure_backoff_max_secs,
            ),
            (&mut refresh.rejected_backoff, file.rejected_backoff_secs),
        ];
        for (slot, value) in durations {
            if let Some(value) = value {
                *slot = secs(value);
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Whether team id, key id and key file are all set.
    pub fn has_credentials(&self) -> bool {
        self.team_id.is_some() && self.key_id.is_some() && self.private_key_path.is_some()
    }

    /// Whether the scheduler runs: credentials set and refresh not turned off.
    pub fn refresh_active(&self) -> bool {
        self.has_credentials() && self.refresh_enabled.unwrap_or(true)
    }

    /// The longest one exchange may take: every attempt timing out, every backoff at its cap.
    pub fn exchange_budget(&self) -> Duration {
        let attempts = self.retry.max_attempts.max(1);
        self.request_timeout * attempts + self.retry.max_delay * (attempts - 1)
    }

    /// Checks the settings that `resolve` and `server::run` rely on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let set = [
            self.team_id.is_some(),
            self.key_id.is_some(),
            self.private_key_path.is_some(),
        ];
        if set.iter().any(|&s| s) && !set.iter().all(|&s| s) {
            return Err(ConfigError::Invalid(
                "apple: team_id, key_id and private_key_path must be set together",
            ));
        }
        if self.refresh_enabled == Some(true) && !self.has_credentials() {
            return Err(ConfigError::Invalid(
                "apple: refresh_enabled needs team_id, key_id and private_key_path",
            ));
        }
        let refresh = &self.refresh;
        if !(1..=256).contains(&refresh.concurrency) {
            return Err(ConfigError::Invalid(
                "apple: refresh concurrency must be 1 to 256",
            ));
        }
        if !refresh.rate_per_sec.is_finite() || refresh.rate_per_sec < 0.0 {
            return Err(ConfigError::Invalid(
                "apple: refresh rate must be 0 (unlimited) or more",
            ));
        }
        if refresh.batch_size == 0 || refresh.poll_interval.is_zero() {
            return Err(ConfigError::Invalid(
                "apple: refresh batch size and poll interval must be positive",
            ));
        }
        if self.device_check_signal_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "apple: device_check_signal_timeout_ms must be positive",
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "apple: request timeout must be positive",
            ));
        }
        if refresh.failure_backoff.is_zero()
            || refresh.failure_backoff_max < refresh.failure_backoff
            || refresh.rejected_backoff.is_zero()
        {
            return Err(ConfigError::Invalid(
                "apple: backoffs must be positive and failure_backoff_max at least failure_backoff",
            ));
        }
        // A claimed key may wait for the rate limit and a free slot, then take one whole
        // exchange; its lease must outlast that, or another instance would claim it meanwhile.
        let pacing = if refresh.rate_per_sec > 0.0 {
            Duration::from_secs_f64(
                (refresh.concurrency as f64 / refresh.rate_per_sec).min(86_400.0),
            )
        } else {
            Duration::ZERO
        };
        if refresh.lease < self.exchange_budget() * 2 + pacing + Duration::from_secs(1) {
            return Err(ConfigError::Invalid(
                "apple: refresh lease must exceed twice the exchange budget (request timeout × \
                 attempts + retry delays) plus concurrency / rate",
            ));
        }
        for url in [
            &self.receipt_base_url_production,
            &self.receipt_base_url_development,
            &self.devicecheck_base_url_production,
            &self.devicecheck_base_url_development,
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError::Invalid(
                    "apple: base URLs must be http(s)://host[:port]",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_apples_urls_and_refresh_needs_credentials() {
        let config = AppleConfig::default();
        assert_eq!(
            config.receipt_base_url_production,
            "https://data.appattest.apple.com"
        );
        assert_eq!(
            config.devicecheck_base_url_development,
            "https://api.development.devicecheck.apple.com"
        );
        assert!(!config.has_credentials() && !config.refresh_active());
        config.validate().unwrap();
    }

    #[test]
    fn file_then_flags() {
        let file: FileApple = toml::from_str(
            "team_id = \"ABCDE12345\"\nkey_id = \"KEY1234567\"\nprivate_key_path = \"k.p8\"\n\
             refresh_concurrency = 2\nrefresh_interval_secs = 7200\n\
             receipt_base_url_development = \"http://127.0.0.1:9\"\n",
        )
        .unwrap();
        let args = AppleArgs {
            refresh_concurrency: Some(8),
            refresh_enabled: Some(false),
            ..AppleArgs::default()
        };
        let config = AppleConfig::resolve(&args, Some(file), Path::new("/etc/attestd")).unwrap();
        assert_eq!(
            config.private_key_path.as_deref(),
            Some(Path::new("/etc/attestd/k.p8"))
        );
        assert_eq!(config.refresh.concurrency, 8);
        assert_eq!(config.refresh.interval, Duration::from_secs(7200));
        assert_eq!(config.receipt_base_url_development, "http://127.0.0.1:9");
        assert!(config.has_credentials() && !config.refresh_active());
    }

    #[test]
    fn partial_credentials_and_bad_values_are_refused() {
        let partial = AppleConfig {
            team_id: Some("ABCDE12345".into()),
            ..AppleConfig::default()
        };
        assert!(partial.validate().is_err());
        let enabled_without_key = AppleConfig {
            refresh_enabled: Some(true),
            ..AppleConfig::default()
        };
        assert!(enabled_without_key.validate().is_err());
        let mut short_lease = AppleConfig::default();
        short_lease.refresh.lease = Duration::from_secs(5);
        assert!(short_lease.validate().is_err());
        let mut no_concurrency = AppleConfig::default();
        no_concurrency.refresh.concurrency = 0;
        assert!(no_concurrency.validate().is_err());
        assert!(toml::from_str::<FileApple>("tem_id = \"x\"").is_err());
    }
}
