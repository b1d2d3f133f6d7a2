//! Apple's server APIs in attestd (see docs/apple.md):
//!
//! - the **receipt refresh scheduler** ([`scheduler`]): exchanges each attested key's receipt
//!   with Apple between its Not Before and Expiration, and stores the new receipt and its
//!   **risk metric** in the key (`DeviceKey::receipt_risk_metric`), from where device
//!   intelligence, the risk score and tokens read it;
//! - the **DeviceCheck admin API** ([`device_check`]): validate a device token, query and update
//!   the two per-device bits;
//! - **Apple's health** ([`health`]): degraded while calls fail with 5xx or no answer, shown by
//!   `/readyz`, `/healthz` and `attestd_apple_degraded`. Attestation and assertion verification
//!   never call Apple and keep working.
//!
//! [`Apple`] holds the clients and the health; it lives in the server state. Without
//! credentials (`[apple] team_id`, `key_id`, `private_key_path`) nothing here calls Apple.

pub mod admin;
pub mod config;
pub mod device_check;
pub mod health;
pub mod schedule;
pub mod scheduler;
pub mod verify;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use attest_apple::{
    AppleCredentials, CredentialsError, DeviceCheckClient, HttpOptions, ReceiptClient,
};
use attest_core::apple::receipt::ReceiptVerifier;
use attest_store::Environment;

use super::config::{Config, ConfigError};

pub use config::{AppleArgs, AppleConfig, FileApple, RefreshSettings};
pub use health::{AppleHealth, AppleHealthView};

/// The Apple clients of one server, and what it has seen of Apple's health.
pub struct Apple {
    config: AppleConfig,
    clients: Option<Clients>,
    health: AppleHealth,
}

struct Clients {
    credentials: Arc<AppleCredentials>,
    receipts_production: ReceiptClient,
    receipts_development: ReceiptClient,
    device_check_production: DeviceCheckClient,
    device_check_development: DeviceCheckClient,
}

impl fmt::Debug for Apple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Apple")
            .field(
                "credentials",
                &self.clients.as_ref().map(|clients| &clients.credentials),
            )
            .field("refresh", &self.config.refresh_active())
            .field("health", &self.health.view().status)
            .finish_non_exhaustive()
    }
}

impl Apple {
    /// Reads the `.p8` key (if configured) and builds the clients. Receipts of development keys
    /// are verified against Apple's root plus the danger extra receipt roots, like
    /// attestations of apps that accept development keys; production receipts against
    /// Apple's root only.
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let apple = config.apple.clone();
        apple.validate()?;
        let clients = if apple.has_credentials() {
            Some(Clients::new(&apple, config)?)
        } else {
            None
        };
        Ok(Self {
            health: AppleHealth::new(apple.degraded_after_failures),
            config: apple,
            clients,
        })
    }

    /// The settings.
    pub fn config(&self) -> &AppleConfig {
        &self.config
    }

    /// Whether credentials are configured (Apple can be called at all).
    pub fn is_configured(&self) -> bool {
        self.clients.is_some()
    }

    /// Apple's health as this server sees it.
    pub fn health(&self) -> &AppleHealth {
        &self.health
    }

    /// The health detail for `/readyz` and `/healthz`; `None` without credentials.
    pub fn health_view(&self) -> Option<AppleHealthView> {
        self.clients.as_ref().map(|_| self.health.view())
    }

    /// The receipt client for keys of `environment`.
    pub fn receipt_client(&self, environment: Environment) -> Option<&ReceiptClient> {
        self.clients.as_ref().map(|clients| match environment {
            Environment::Production => &clients.receipts_production,
            Environment::Development => &clients.receipts_development,
        })
    }

    /// The DeviceCheck client for device tokens of `environment`.
    pub fn device_check(&self, environment: Environment) -> Option<&DeviceCheckClient> {
        self.clients.as_ref().map(|clients| match environment {
            Environment::Production => &clients.device_check_production,
            Environment::Development => &clients.device_check_development,
        })
    }
}

impl Clients {
    fn new(apple: &AppleConfig, config: &Config) -> Result<Self, ConfigError> {
        let (Some(team_id), Some(key_id), Some(path)) =
            (&apple.team_id, &apple.key_id, &apple.private_key_path)
        else {
            return Err(ConfigError::Invalid(
                "apple: team_id, key_id and private_key_path must be set together",
            ));
        };
        super::secrets::check_secret_file(
            path,
            "the Apple private key",
            config.danger_allow_readable_secrets,
        )?;
        let pem = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.display().to_string(),
            error,
        })?;
        let credentials = AppleCredentials::from_p8_pem(team_id.as_str(), key_id.as_str(), &pem)
            .map_err(|error| ConfigError::Invalid(credentials_problem(&error)))?;
        let credentials = Arc::new(credentials);

        let production_roots = Arc::new(ReceiptVerifier::apple());
        let development_roots = if config.danger_extra_receipt_roots.is_empty() {
            Arc::clone(&production_roots)
        } else {
            let extra = config
                .danger_extra_receipt_roots
                .iter()
                .map(|root| root.der.clone())
                .collect();
            Arc::new(ReceiptVerifier::with_extra_roots(extra).map_err(|_| {
                ConfigError::Invalid("apple: a danger extra receipt root is not usable")
            })?)
        };
        let receipts = |url: &str, verifier: &Arc<ReceiptVerifier>| {
            ReceiptClient::builder(Arc::clone(&credentials), Arc::clone(verifier))
                .base_url(url)
                .http_options(http_options(apple, url))
                .build()
                .map_err(|_| client_problem())
        };
        let device_check = |url: &str| {
            DeviceCheckClient::builder(Arc::clone(&credentials))
                .base_url(url)
                .http_options(http_options(apple, url))
                .build()
                .map_err(|_| client_problem())
        };
        Ok(Self {
            receipts_production: receipts(&apple.receipt_base_url_production, &production_roots)?,
            receipts_development: receipts(
                &apple.receipt_base_url_development,
                &development_roots,
            )?,
            device_check_production: device_check(&apple.devicecheck_base_url_production)?,
            device_check_development: device_check(&apple.devicecheck_base_url_development)?,
            credentials,
        })
    }
}

fn client_problem() -> ConfigError {
    ConfigError::Invalid("apple: a base URL is not http(s)://host[:port], or TLS set-up failed")
}

fn credentials_problem(error: &CredentialsError) -> &'static str {
    match error {
        CredentialsError::InvalidTeamId => "apple: team_id must be 10 ASCII letters or digits",
        CredentialsError::InvalidKeyId => "apple: key_id must be 10 ASCII letters or digits",
        CredentialsError::InvalidPem => {
            "apple: private_key_path is not a PEM PRIVATE KEY block (an Apple .p8 file)"
        }
        _ => "apple: private_key_path is not an unencrypted PKCS#8 P-256 key (an Apple .p8 file)",
    }
}

/// The configured timeout; environment proxies are ignored for loopback base URLs (local fakes
/// and sidecars), honoured otherwise.
fn http_options(apple: &AppleConfig, url: &str) -> HttpOptions {
    HttpOptions {
        timeout: apple.request_timeout,
        connect_timeout: apple.request_timeout.min(Duration::from_secs(5)),
        use_env_proxy: !is_loopback(url),
    }
}

fn is_loopback(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_bypass_proxies() {
        assert!(is_loopback("http://127.0.0.1:8080"));
        assert!(is_loopback("http://localhost"));
        assert!(is_loopback("http://[::1]:9"));
        assert!(!is_loopback("https://data.appattest.apple.com"));
        assert!(!is_loopback("not a url"));
    }

    #[test]
    fn without_credentials_nothing_is_built() {
        let config = Config::new("sqlite::memory:");
        let apple = Apple::new(&config).unwrap();
        assert!(!apple.is_configured());
        assert!(apple.health_view().is_none());
        assert!(apple.receipt_client(Environment::Production).is_none());
    }

    #[test]
    fn a_missing_or_bad_key_file_is_a_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new("sqlite::memory:");
        config.apple.team_id = Some("ABCDE12345".into());
        config.apple.key_id = Some("KEY1234567".into());
        config.apple.private_key_path = Some(dir.path().join("missing.p8"));
        assert!(matches!(Apple::new(&config), Err(ConfigError::Read { .. })));
        let path = dir.path().join("bad.p8");
        std::fs::write(&path, "not a key").unwrap();
        config.apple.private_key_path = Some(path.clone());
        // A key file others may read is refused before it is read.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Apple::new(&config),
            Err(ConfigError::ReadableSecret { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(Apple::new(&config), Err(ConfigError::Invalid(_))));
    }
}
