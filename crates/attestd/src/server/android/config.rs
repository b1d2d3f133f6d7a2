//! The `[android]` section: Google's attestation status list (revocation).

use std::time::Duration;

use serde::Deserialize;

use crate::server::config::ConfigError;

/// Where Google serves the attestation status list.
pub const GOOGLE_STATUS_URL: &str = "https://android.googleapis.com/attestation/status";

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(60 * 60);

/// Flags (and `ATTESTD_ANDROID_*` variables) for the status list; the rest is in the
/// `[android]` section of the file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AndroidArgs {
    /// Fetch Google's Android attestation status list (revocation) in the background
    /// [default: true when an app has an Android side].
    #[arg(
        long = "android-revocation-list",
        env = "ATTESTD_ANDROID_REVOCATION_LIST_ENABLED",
        value_name = "BOOL"
    )]
    pub revocation_list_enabled: Option<bool>,
    /// Where to fetch the status list [default: Google's].
    #[arg(
        long = "android-revocation-list-url",
        env = "ATTESTD_ANDROID_REVOCATION_LIST_URL",
        value_name = "URL"
    )]
    pub revocation_list_url: Option<String>,
    /// Seconds between two fetches of the status list [default: 3600].
    #[arg(
        long = "android-revocation-list-interval",
        env = "ATTESTD_ANDROID_REVOCATION_LIST_INTERVAL_SECS",
        value_name = "SECONDS"
    )]
    pub revocation_list_interval_secs: Option<u64>,
    /// Age in seconds after which the status list is stale and Android attestations fail
    /// closed [default: 86400].
    #[arg(
        long = "android-revocation-list-max-age",
        env = "ATTESTD_ANDROID_REVOCATION_LIST_MAX_AGE_SECS",
        value_name = "SECONDS"
    )]
    pub revocation_list_max_age_secs: Option<u64>,
}

/// `[android]` in the TOML file; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAndroid {
    revocation_list_enabled: Option<bool>,
    revocation_list_url: Option<String>,
    revocation_list_interval_secs: Option<u64>,
    revocation_list_jitter_secs: Option<u64>,
    revocation_list_max_age_secs: Option<u64>,
    revocation_list_timeout_secs: Option<u64>,
    revocation_list_failure_backoff_secs: Option<u64>,
    revocation_list_failure_backoff_max_secs: Option<u64>,
}

impl FileAndroid {
    /// Whether the file says whether to fetch the list.
    pub fn sets_enabled(&self) -> bool {
        self.revocation_list_enabled.is_some()
    }
}

/// How the status list is fetched and how old it may get. See docs/operations.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationListSettings {
    /// Whether the fetcher runs. By default, whenever an app has an Android side.
    pub enabled: bool,
    /// The status list URL (Google's, or a mirror for air-gapped setups).
    pub url: String,
    /// Time between two successful fetches (a 304 is one).
    pub interval: Duration,
    /// Random spread added to every wait, so that instances do not fetch in step.
    pub jitter: Duration,
    /// Older than this, the list is stale: Android attestations fail closed
    /// (`revocation_list_stale`).
    pub max_age: Duration,
    /// Whole-request timeout of one fetch.
    pub request_timeout: Duration,
    /// Wait after the first failed fetch, doubled per further failure ...
    pub failure_backoff: Duration,
    /// ... up to this.
    pub failure_backoff_max: Duration,
}

impl Default for RevocationListSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            url: GOOGLE_STATUS_URL.to_owned(),
            interval: HOUR,
            jitter: 5 * MINUTE,
            max_age: 24 * HOUR,
            request_timeout: Duration::from_secs(30),
            failure_backoff: Duration::from_secs(30),
            failure_backoff_max: 15 * MINUTE,
        }
    }
}

/// The resolved `[android]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AndroidConfig {
    /// Google's attestation status list.
    pub revocation_list: RevocationListSettings,
}

impl AndroidConfig {
    /// Defaults, then the file's `[android]`, then flags.
    pub fn resolve(args: &AndroidArgs, file: Option<FileAndroid>) -> Result<Self, ConfigError> {
        let file = file.unwrap_or_default();
        let mut config = Self::default();
        let list = &mut config.revocation_list;
        if let Some(enabled) = args
            .revocation_list_enabled
            .or(file.revocation_list_enabled)
        {
            list.enabled = enabled;
        }
        if let Some(url) = args
            .revocation_list_url
            .clone()
            .or(file.revocation_list_url)
        {
            list.url = url;
        }
        let durations = [
            (
                &mut list.interval,
                args.revocation_list_interval_secs
                    .or(file.revocation_list_interval_secs),
            ),
            (&mut list.jitter, file.revocation_list_jitter_secs),
            (
                &mut list.max_age,
                args.revocation_list_max_age_secs
                    .or(file.revocation_list_max_age_secs),
            ),
            (&mut list.request_timeout, file.revocation_list_timeout_secs),
            (
                &mut list.failure_backoff,
                file.revocation_list_failure_backoff_secs,
            ),
            (
                &mut list.failure_backoff_max,
                file.revocation_list_failure_backoff_max_secs,
            ),
        ];
        for (slot, value) in durations {
            if let Some(value) = value {
                *slot = Duration::from_secs(value);
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Refuses settings that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let list = &self.revocation_list;
        let url = reqwest::Url::parse(&list.url)
            .map_err(|_| ConfigError::Invalid("android: revocation_list_url is not a URL"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(ConfigError::Invalid(
                "android: revocation_list_url must be https:// (or http:// for a local mirror)",
            ));
        }
        let zero = Duration::ZERO;
        if list.interval == zero
            || list.request_timeout == zero
            || list.failure_backoff == zero
            || list.failure_backoff_max < list.failure_backoff
        {
            return Err(ConfigError::Invalid(
                "android: the revocation list interval, timeout and backoff must be at least 1 \
                 second, and the backoff maximum at least the backoff",
            ));
        }
        if list.max_age <= list.interval + list.jitter {
            return Err(ConfigError::Invalid(
                "android: revocation_list_max_age must exceed the interval plus its jitter, or \
                 the list would go stale between two fetches",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fetch_googles_list_hourly_and_fail_closed_after_a_day() {
        let config = AndroidConfig::resolve(&AndroidArgs::default(), None).unwrap();
        let list = config.revocation_list;
        assert!(!list.enabled);
        assert_eq!(list.url, GOOGLE_STATUS_URL);
        assert_eq!(list.interval, HOUR);
        assert_eq!(list.max_age, 24 * HOUR);
    }

    #[test]
    fn flags_override_the_file() {
        let file: FileAndroid = toml::from_str(
            "revocation_list_enabled = false\nrevocation_list_url = \"https://mirror.example/status\"\n\
             revocation_list_interval_secs = 600\nrevocation_list_jitter_secs = 0\n",
        )
        .unwrap();
        let args = AndroidArgs {
            revocation_list_enabled: Some(true),
            revocation_list_max_age_secs: Some(7200),
            ..AndroidArgs::default()
        };
        let list = AndroidConfig::resolve(&args, Some(file))
            .unwrap()
            .revocation_list;
        assert!(list.enabled);
        assert_eq!(list.url, "https://mirror.example/status");
        assert_eq!(list.interval, Duration::from_secs(600));
        assert_eq!(list.jitter, Duration::ZERO);
        assert_eq!(list.max_age, Duration::from_secs(7200));
    }

    #[test]
    fn refuses_settings_that_cannot_work() {
        for (file, args) in [
            (
                "revocation_list_url = \"ftp://x/status\"\n",
                AndroidArgs::default(),
            ),
            (
                "revocation_list_url = \"not a url\"\n",
                AndroidArgs::default(),
            ),
            (
                "revocation_list_interval_secs = 0\n",
                AndroidArgs::default(),
            ),
            (
                "",
                AndroidArgs {
                    revocation_list_max_age_secs: Some(3600),
                    ..AndroidArgs::default()
                },
            ),
        ] {
            let file: FileAndroid = toml::from_str(file).unwrap();
            assert!(
                matches!(
                    AndroidConfig::resolve(&args, Some(file)),
                    Err(ConfigError::Invalid(_))
                ),
                "{args:?}"
            );
        }
    }
}
