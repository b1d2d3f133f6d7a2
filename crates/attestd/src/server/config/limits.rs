//! Rate-limit settings (`[rate_limits]`, `--rate-limit-*`): see `server::limits`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::server::limits::Rate;

/// Requests a second per address by default: many users may share an address (a carrier
/// gateway, an office), so this is a flood guard, not a per-user quota.
const DEFAULT_ADDRESS: Rate = Rate {
    per_second: 100.0,
    burst: 200.0,
};
/// Assertions a second per key: an app asserts for a user's actions, a few a minute.
const DEFAULT_KEY: Rate = Rate {
    per_second: 5.0,
    burst: 20.0,
};
/// Buckets per table (addresses, keys); one is ~100 bytes, so ~10 MB each at most.
const DEFAULT_MAX_TRACKED: usize = 100_000;
const DEFAULT_HEARTBEAT_SECS: u64 = 10;

/// `[rate_limits]` resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitSettings {
    /// Per client address (`None`: off).
    pub address: Option<Rate>,
    /// Per key, assertions that proved possession (`None`: off).
    pub key: Option<Rate>,
    /// Most buckets each table holds.
    pub max_tracked: usize,
    /// How the limits are split between instances.
    pub share: LimitShare,
    /// How often an instance writes its heartbeat and counts the others.
    pub heartbeat: Duration,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            address: Some(DEFAULT_ADDRESS),
            key: Some(DEFAULT_KEY),
            max_tracked: DEFAULT_MAX_TRACKED,
            share: LimitShare::Instances,
            heartbeat: Duration::from_secs(DEFAULT_HEARTBEAT_SECS),
        }
    }
}

impl RateLimitSettings {
    /// No limit at all (benchmarks, tests of other things).
    pub fn off() -> Self {
        Self {
            address: None,
            key: None,
            ..Self::default()
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_tracked == 0 {
            return Err(ConfigError::Invalid(
                "rate_limits.max_tracked must be at least 1",
            ));
        }
        if self.heartbeat.is_zero() {
            return Err(ConfigError::Invalid(
                "rate_limits.heartbeat_secs must be at least 1",
            ));
        }
        Ok(())
    }
}

/// How the instances sharing a database split the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LimitShare {
    /// Each instance enforces `1/N` of every rate and burst, `N` the live instances.
    Instances,
    /// Each instance enforces the whole limit (a sender may get `N` times it in total).
    None,
}

/// A limit as written: `RATE/BURST` (requests a second / at once), `RATE` (burst twice the
/// rate, at least 1), or `off`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSetting(pub Option<Rate>);

impl FromStr for RateSetting {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        let expected = || format!("{text:?}: expected RATE/BURST (e.g. 100/200), RATE or off");
        let (rate, burst) = match text.split_once('/') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (text, None),
        };
        let per_second: f64 = rate.trim().parse().map_err(|_| expected())?;
        if !(per_second.is_finite() && per_second > 0.0 && per_second <= 1e9) {
            return Err(format!("{text:?}: the rate must be above 0 (or off)"));
        }
        let burst = match burst {
            Some(burst) => {
                let burst: u32 = burst.trim().parse().map_err(|_| expected())?;
                if burst == 0 {
                    return Err(format!("{text:?}: the burst must be at least 1"));
                }
                f64::from(burst)
            }
            None => (per_second * 2.0).max(1.0).ceil(),
        };
        Ok(Self(Some(Rate { per_second, burst })))
    }
}

impl fmt::Display for RateSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("off"),
            Some(rate) => write!(f, "{}/{}", rate.per_second, rate.burst),
        }
    }
}

impl<'de> Deserialize<'de> for RateSetting {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `[rate_limits]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRateLimits {
    address: Option<RateSetting>,
    key: Option<RateSetting>,
    max_tracked: Option<usize>,
    share: Option<LimitShare>,
    heartbeat_secs: Option<u64>,
}

impl FileRateLimits {
    /// The file's settings under the flags' (`address`, `key`, `share`).
    pub(super) fn resolve(
        self,
        address: Option<RateSetting>,
        key: Option<RateSetting>,
        share: Option<LimitShare>,
    ) -> RateLimitSettings {
        let defaults = RateLimitSettings::default();
        RateLimitSettings {
            address: address.or(self.address).map_or(defaults.address, |s| s.0),
            key: key.or(self.key).map_or(defaults.key, |s| s.0),
            max_tracked: self.max_tracked.unwrap_or(defaults.max_tracked),
            share: share.or(self.share).unwrap_or(defaults.share),
            heartbeat: self
                .heartbeat_secs
                .map_or(defaults.heartbeat, Duration::from_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_rate_and_burst_or_off() {
        let parse = |text: &str| text.parse::<RateSetting>().map(|s| s.0);
        let rate = |per_second, burst| Some(Rate { per_second, burst });
        assert_eq!(parse("100/200"), Ok(rate(100.0, 200.0)));
        assert_eq!(parse(" 0.5 / 3 "), Ok(rate(0.5, 3.0)));
        assert_eq!(parse("10"), Ok(rate(10.0, 20.0)));
        assert_eq!(parse("0.1"), Ok(rate(0.1, 1.0)));
        assert_eq!(parse("OFF"), Ok(None));
        for bad in ["0", "-1/5", "5/0", "5/x", "fast", "NaN", "inf/3", ""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(RateSetting(rate(100.0, 200.0)).to_string(), "100/200");
    }
}
