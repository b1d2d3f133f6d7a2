//! Per-app policy: mode, rules, permissions by band and time-of-day windows.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, UtcOffset, Weekday};

use crate::ConfigError;
use crate::risk::Band;
use crate::signals::Environment;

pub use attest_types::PolicyMode;

/// The rules for one app.
///
/// Every field has a default (see [`Policy::default`]), so a config names only what it changes;
/// unknown field names are rejected. Call [`Policy::validate`] after loading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Default `enforce`.
    pub mode: PolicyMode,
    /// Deny (`risk_above_max`, hosted code `ATT_004`) when the score is **above** this.
    /// Default none: the score is reported and drives permissions but never denies by itself.
    /// 75 denies only the critical band; 50 denies high and critical.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_risk_score: Option<u8>,
    /// Deny when the key's receipt is invalid, missing or unknown. Default `false`: receipt
    /// problems raise the score instead.
    pub require_valid_receipt: bool,
    /// The key environments accepted. Default both: the app's verification settings already
    /// reject keys from the wrong environment (`environment_mismatch`); narrow this to deny
    /// development keys at the policy level (e.g. in monitor mode first).
    pub allowed_environments: Vec<Environment>,
    /// The permissions each band grants (the `permissions` claim).
    pub permissions_by_band: PermissionsByBand,
    /// When set, requests are allowed only inside one of these windows (`outside_time_window`).
    /// Default empty: any time.
    pub time_windows: Vec<TimeWindow>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            mode: PolicyMode::Enforce,
            max_risk_score: None,
            require_valid_receipt: false,
            allowed_environments: Environment::ALL.to_vec(),
            permissions_by_band: PermissionsByBand::default(),
            time_windows: Vec::new(),
        }
    }
}

impl Policy {
    /// Rejects settings that cannot be meant: `max_risk_score` above 100, no allowed
    /// environment, a window with `days = []` or a UTC offset beyond ±18 hours.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(max) = self.max_risk_score
            && max > crate::risk::MAX_SCORE
        {
            return Err(ConfigError::MaxRiskScoreAbove100(max));
        }
        if self.allowed_environments.is_empty() {
            return Err(ConfigError::NoAllowedEnvironments);
        }
        for (index, window) in self.time_windows.iter().enumerate() {
            if window.days.as_ref().is_some_and(Vec::is_empty) {
                return Err(ConfigError::NoDays { index });
            }
            if window.offset().is_none() {
                return Err(ConfigError::UtcOffsetOutOfRange {
                    index,
                    minutes: window.utc_offset_minutes,
                });
            }
        }
        Ok(())
    }

    /// Whether `environment` is allowed; an unknown environment passes only when every
    /// environment is allowed.
    pub fn allows_environment(&self, environment: Option<Environment>) -> bool {
        match environment {
            Some(env) => self.allowed_environments.contains(&env),
            None => Environment::ALL
                .iter()
                .all(|e| self.allowed_environments.contains(e)),
        }
    }

    /// Whether `at` falls inside the time windows (always, when there are none).
    pub fn in_time_window(&self, at: OffsetDateTime) -> bool {
        self.time_windows.is_empty() || self.time_windows.iter().any(|w| w.contains(at))
    }
}

/// The permissions granted in each risk band.
///
/// Defaults follow the hosted service this mirrors (low → `basic`, `payments`, `transfers`) and
/// its band descriptions: medium "monitor closely" keeps everyday use but drops `transfers`, the
/// operation fraud is after; high "restrict access" keeps `basic` only; critical "severe
/// compromise" grants nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PermissionsByBand {
    /// Default `["basic", "payments", "transfers"]`.
    pub low: Vec<String>,
    /// Default `["basic", "payments"]`.
    pub medium: Vec<String>,
    /// Default `["basic"]`.
    pub high: Vec<String>,
    /// Default `[]`.
    pub critical: Vec<String>,
}

impl Default for PermissionsByBand {
    fn default() -> Self {
        let owned = |list: &[&str]| list.iter().map(|&s| s.to_owned()).collect();
        Self {
            low: owned(&["basic", "payments", "transfers"]),
            medium: owned(&["basic", "payments"]),
            high: owned(&["basic"]),
            critical: Vec::new(),
        }
    }
}

impl PermissionsByBand {
    /// The permissions `band` grants.
    pub fn for_band(&self, band: Band) -> &[String] {
        match band {
            Band::Low => &self.low,
            Band::Medium => &self.medium,
            Band::High => &self.high,
            Band::Critical => &self.critical,
        }
    }
}

/// A day of the week, for [`TimeWindow::days`]: `mon` ... `sun` (full names accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    /// Monday.
    #[serde(alias = "monday")]
    Mon,
    /// Tuesday.
    #[serde(alias = "tuesday")]
    Tue,
    /// Wednesday.
    #[serde(alias = "wednesday")]
    Wed,
    /// Thursday.
    #[serde(alias = "thursday")]
    Thu,
    /// Friday.
    #[serde(alias = "friday")]
    Fri,
    /// Saturday.
    #[serde(alias = "saturday")]
    Sat,
    /// Sunday.
    #[serde(alias = "sunday")]
    Sun,
}

impl Day {
    /// `mon` ... `sun`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Mon => "mon",
            Self::Tue => "tue",
            Self::Wed => "wed",
            Self::Thu => "thu",
            Self::Fri => "fri",
            Self::Sat => "sat",
            Self::Sun => "sun",
        }
    }
}

impl From<Weekday> for Day {
    fn from(w: Weekday) -> Self {
        match w {
            Weekday::Monday => Self::Mon,
            Weekday::Tuesday => Self::Tue,
            Weekday::Wednesday => Self::Wed,
            Weekday::Thursday => Self::Thu,
            Weekday::Friday => Self::Fri,
            Weekday::Saturday => Self::Sat,
            Weekday::Sunday => Self::Sun,
        }
    }
}

/// A time of day, `HH:MM` from `00:00` to `23:59`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClockTime {
    minute_of_day: u16,
}

impl ClockTime {
    /// `hour:minute`, if `hour < 24` and `minute < 60`.
    pub fn new(hour: u8, minute: u8) -> Result<Self, ConfigError> {
        if hour < 24 && minute < 60 {
            Ok(Self {
                minute_of_day: u16::from(hour) * 60 + u16::from(minute),
            })
        } else {
            Err(ConfigError::InvalidClockTime(format!("{hour}:{minute}")))
        }
    }

    /// Minutes since midnight (0..1440).
    pub const fn minute_of_day(self) -> u16 {
        self.minute_of_day
    }
}

impl FromStr for ClockTime {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ConfigError::InvalidClockTime(s.to_owned());
        let (h, m) = s.split_once(':').ok_or_else(invalid)?;
        let two_digits = |part: &str| part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(h) || !two_digits(m) {
            return Err(invalid());
        }
        let hour = h.parse().map_err(|_| invalid())?;
        let minute = m.parse().map_err(|_| invalid())?;
        Self::new(hour, minute).map_err(|_| invalid())
    }
}

impl TryFrom<String> for ClockTime {
    type Error = ConfigError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ClockTime> for String {
    fn from(t: ClockTime) -> Self {
        t.to_string()
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}",
            self.minute_of_day / 60,
            self.minute_of_day % 60
        )
    }
}

/// Requests are allowed from `start` (inclusive) to `end` (exclusive), local time at
/// `utc_offset_minutes`, on `days` (every day when absent).
///
/// - `end` before `start` crosses midnight: `22:00`-`06:00` is 22:00 to 06:00 the next morning,
///   and `days` names the day the window **starts** on (Friday's `22:00`-`06:00` includes
///   Saturday 01:00, not Friday 01:00).
/// - `end` equal to `start` is a whole 24 hours from `start` (`00:00`-`00:00` = the whole day).
/// - A fixed offset, not a time zone: daylight saving time is not followed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeWindow {
    /// The days the window starts on; `None` = every day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<Vec<Day>>,
    /// First minute inside the window.
    pub start: ClockTime,
    /// First minute after the window.
    pub end: ClockTime,
    /// The local time's offset from UTC in minutes (e.g. `-300` for UTC-05:00). Default 0.
    #[serde(default)]
    pub utc_offset_minutes: i16,
}

/// The largest accepted UTC offset, in minutes (±18 hours).
pub const MAX_UTC_OFFSET_MINUTES: i16 = 18 * 60;

impl TimeWindow {
    /// The window's offset, if within ±18 hours.
    fn offset(&self) -> Option<UtcOffset> {
        if self.utc_offset_minutes.abs() > MAX_UTC_OFFSET_MINUTES {
            return None;
        }
        UtcOffset::from_whole_seconds(i32::from(self.utc_offset_minutes) * 60).ok()
    }

    fn starts_on(&self, day: Day) -> bool {
        self.days.as_ref().is_none_or(|days| days.contains(&day))
    }

    /// Whether `at` falls inside the window. A window with an invalid offset contains nothing.
    pub fn contains(&self, at: OffsetDateTime) -> bool {
        let Some(local) = self.offset().and_then(|o| at.checked_to_offset(o)) else {
            return false;
        };
        let minute = u16::from(local.hour()) * 60 + u16::from(local.minute());
        let today = Day::from(local.weekday());
        let yesterday = Day::from(local.weekday().previous());
        let (start, end) = (self.start.minute_of_day, self.end.minute_of_day);
        if start < end {
            self.starts_on(today) && (start..end).contains(&minute)
        } else {
            // Crosses midnight (or lasts 24 hours): the evening part belongs to today's window,
            // the morning part to yesterday's.
            (minute >= start && self.starts_on(today))
                || (minute < end && self.starts_on(yesterday))
        }
    }
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(days) = &self.days {
            let names: Vec<_> = days.iter().map(|d| d.as_str()).collect();
            write!(f, "{} ", names.join(","))?;
        }
        let m = self.utc_offset_minutes;
        let sign = if m < 0 { '-' } else { '+' };
        write!(
            f,
            "{}-{} UTC{sign}{:02}:{:02}",
            self.start,
            self.end,
            m.unsigned_abs() / 60,
            m.unsigned_abs() % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn t(s: &str) -> ClockTime {
        s.parse().unwrap()
    }

    fn window(days: Option<Vec<Day>>, start: &str, end: &str, offset: i16) -> TimeWindow {
        TimeWindow {
            days,
            start: t(start),
            end: t(end),
            utc_offset_minutes: offset,
        }
    }

    #[test]
    fn clock_time_parsing() {
        assert_eq!(t("00:00").minute_of_day(), 0);
        assert_eq!(t("09:05").minute_of_day(), 545);
        assert_eq!(t("23:59").minute_of_day(), 1439);
        assert_eq!(t("07:30").to_string(), "07:30");
        for bad in [
            "24:00", "12:60", "9:00", "09:0", "0900", "", "ab:cd", "+1:00", "09:00:00",
        ] {
            assert_eq!(
                bad.parse::<ClockTime>(),
                Err(ConfigError::InvalidClockTime(bad.to_owned())),
                "{bad:?}"
            );
        }
        assert!(ClockTime::new(24, 0).is_err());
        assert!(ClockTime::new(0, 60).is_err());
    }

    #[test]
    fn simple_window() {
        let w = window(None, "09:00", "17:00", 0);
        // 2026-05-04 is a Monday.
        assert!(!w.contains(datetime!(2026-05-04 08:59:59 UTC)));
        assert!(w.contains(datetime!(2026-05-04 09:00 UTC)));
        assert!(w.contains(datetime!(2026-05-04 16:59:59 UTC)));
        assert!(!w.contains(datetime!(2026-05-04 17:00 UTC)));
    }

    #[test]
    fn days_filter() {
        let w = window(Some(vec![Day::Mon, Day::Fri]), "09:00", "17:00", 0);
        assert!(w.contains(datetime!(2026-05-04 10:00 UTC))); // Monday
        assert!(!w.contains(datetime!(2026-05-05 10:00 UTC))); // Tuesday
        assert!(w.contains(datetime!(2026-05-08 10:00 UTC))); // Friday
        assert!(!w.contains(datetime!(2026-05-09 10:00 UTC))); // Saturday
    }

    #[test]
    fn crossing_midnight() {
        let w = window(None, "22:00", "06:00", 0);
        assert!(w.contains(datetime!(2026-05-04 22:00 UTC)));
        assert!(w.contains(datetime!(2026-05-04 23:59 UTC)));
        assert!(w.contains(datetime!(2026-05-05 00:00 UTC)));
        assert!(w.contains(datetime!(2026-05-05 05:59 UTC)));
        assert!(!w.contains(datetime!(2026-05-05 06:00 UTC)));
        assert!(!w.contains(datetime!(2026-05-05 12:00 UTC)));
        assert!(!w.contains(datetime!(2026-05-05 21:59 UTC)));
    }

    #[test]
    fn crossing_midnight_days_name_the_start_day() {
        let w = window(Some(vec![Day::Fri]), "22:00", "06:00", 0);
        assert!(w.contains(datetime!(2026-05-08 23:00 UTC))); // Friday evening
        assert!(w.contains(datetime!(2026-05-09 01:00 UTC))); // Saturday morning
        assert!(!w.contains(datetime!(2026-05-08 01:00 UTC))); // Friday morning: Thursday's
        assert!(!w.contains(datetime!(2026-05-09 23:00 UTC))); // Saturday evening
    }

    #[test]
    fn equal_start_and_end_is_24_hours() {
        let w = window(Some(vec![Day::Sat, Day::Sun]), "00:00", "00:00", 0);
        assert!(w.contains(datetime!(2026-05-09 00:00 UTC)));
        assert!(w.contains(datetime!(2026-05-10 23:59 UTC)));
        assert!(!w.contains(datetime!(2026-05-11 00:00 UTC))); // Monday
        assert!(!w.contains(datetime!(2026-05-08 23:59 UTC))); // Friday
        let w = window(None, "12:00", "12:00", 0);
        for hour in 0..24 {
            let at = datetime!(2026-05-04 00:00 UTC) + time::Duration::hours(hour);
            assert!(w.contains(at), "{at}");
        }
    }

    #[test]
    fn end_at_midnight_means_until_end_of_day() {
        let w = window(Some(vec![Day::Mon]), "18:00", "00:00", 0);
        assert!(w.contains(datetime!(2026-05-04 23:59 UTC)));
        assert!(!w.contains(datetime!(2026-05-05 00:00 UTC)));
        assert!(!w.contains(datetime!(2026-05-04 17:59 UTC)));
    }

    #[test]
    fn utc_offsets() {
        // New York office hours in winter, UTC-05:00.
        let w = window(Some(vec![Day::Mon]), "09:00", "17:00", -300);
        assert!(!w.contains(datetime!(2026-01-05 13:59 UTC)));
        assert!(w.contains(datetime!(2026-01-05 14:00 UTC)));
        assert!(w.contains(datetime!(2026-01-05 21:59 UTC)));
        assert!(!w.contains(datetime!(2026-01-05 22:00 UTC)));
        // The input's own offset does not matter, only the instant.
        assert!(w.contains(datetime!(2026-01-05 09:30 -5:00)));
        assert!(w.contains(datetime!(2026-01-06 00:30 +10:30)));
        // The weekday is the local one: Monday 01:00 in UTC+05:30 is Sunday 19:30 UTC.
        let w = window(Some(vec![Day::Mon]), "00:00", "02:00", 330);
        assert!(w.contains(datetime!(2026-05-03 19:30 UTC)));
        assert!(!w.contains(datetime!(2026-05-04 01:00 UTC)));
        // Offset plus midnight crossing: 22:00-02:00 at UTC+14.
        let w = window(Some(vec![Day::Sun]), "22:00", "02:00", 14 * 60);
        assert!(w.contains(datetime!(2026-05-03 08:00 UTC))); // Sun 22:00 local
        assert!(w.contains(datetime!(2026-05-03 11:59 UTC))); // Mon 01:59 local
        assert!(!w.contains(datetime!(2026-05-03 12:00 UTC))); // Mon 02:00 local
    }

    #[test]
    fn invalid_offset_contains_nothing() {
        let w = window(None, "00:00", "00:00", 18 * 60 + 1);
        assert!(!w.contains(datetime!(2026-05-04 12:00 UTC)));
        let w = window(None, "00:00", "00:00", -18 * 60);
        assert!(w.contains(datetime!(2026-05-04 12:00 UTC)));
    }

    #[test]
    fn display() {
        assert_eq!(
            window(Some(vec![Day::Mon, Day::Fri]), "09:00", "17:00", -300).to_string(),
            "mon,fri 09:00-17:00 UTC-05:00"
        );
        assert_eq!(
            window(None, "22:00", "06:30", 330).to_string(),
            "22:00-06:30 UTC+05:30"
        );
    }

    #[test]
    fn policy_time_windows_any_of() {
        let policy = Policy {
            time_windows: vec![
                window(None, "09:00", "12:00", 0),
                window(None, "13:00", "17:00", 0),
            ],
            ..Policy::default()
        };
        assert!(policy.in_time_window(datetime!(2026-05-04 10:00 UTC)));
        assert!(!policy.in_time_window(datetime!(2026-05-04 12:30 UTC)));
        assert!(policy.in_time_window(datetime!(2026-05-04 13:00 UTC)));
        assert!(Policy::default().in_time_window(datetime!(2026-05-04 03:00 UTC)));
    }

    #[test]
    fn environments() {
        let default = Policy::default();
        assert!(default.allows_environment(Some(Environment::Development)));
        assert!(default.allows_environment(Some(Environment::Production)));
        assert!(default.allows_environment(None));
        let prod = Policy {
            allowed_environments: vec![Environment::Production],
            ..Policy::default()
        };
        assert!(!prod.allows_environment(Some(Environment::Development)));
        assert!(prod.allows_environment(Some(Environment::Production)));
        assert!(!prod.allows_environment(None));
    }

    #[test]
    fn permissions_defaults() {
        let p = PermissionsByBand::default();
        assert_eq!(p.for_band(Band::Low), ["basic", "payments", "transfers"]);
        assert_eq!(p.for_band(Band::Medium), ["basic", "payments"]);
        assert_eq!(p.for_band(Band::High), ["basic"]);
        assert!(p.for_band(Band::Critical).is_empty());
    }

    #[test]
    fn validate() {
        assert_eq!(Policy::default().validate(), Ok(()));
        let p = Policy {
            max_risk_score: Some(101),
            ..Policy::default()
        };
        assert_eq!(p.validate(), Err(ConfigError::MaxRiskScoreAbove100(101)));
        let p = Policy {
            max_risk_score: Some(100),
            ..Policy::default()
        };
        assert_eq!(p.validate(), Ok(()));
        let p = Policy {
            allowed_environments: vec![],
            ..Policy::default()
        };
        assert_eq!(p.validate(), Err(ConfigError::NoAllowedEnvironments));
        let p = Policy {
            time_windows: vec![
                window(None, "09:00", "17:00", 0),
                window(Some(vec![]), "09:00", "17:00", 0),
            ],
            ..Policy::default()
        };
        assert_eq!(p.validate(), Err(ConfigError::NoDays { index: 1 }));
        let p = Policy {
            time_windows: vec![window(None, "09:00", "17:00", -1081)],
            ..Policy::default()
        };
        assert_eq!(
            p.validate(),
            Err(ConfigError::UtcOffsetOutOfRange {
                index: 0,
                minutes: -1081
            })
        );
    }

    #[test]
    fn policy_from_json() {
        let json = r#"{
            "mode": "monitor",
            "max_risk_score": 50,
            "require_valid_receipt": true,
            "allowed_environments": ["production"],
            "permissions_by_band": {"low": ["all"], "medium": ["read", "write"], "high": ["read"]},
            "time_windows": [
                {"days": ["monday", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00",
                 "utc_offset_minutes": -300}
            ]
        }"#;
        let p: Policy = serde_json::from_str(json).unwrap();
        assert_eq!(p.mode, PolicyMode::Monitor);
        assert_eq!(p.max_risk_score, Some(50));
        assert!(p.require_valid_receipt);
        assert_eq!(p.allowed_environments, [Environment::Production]);
        assert_eq!(p.permissions_by_band.low, ["all"]);
        assert_eq!(p.permissions_by_band.high, ["read"]);
        // Not named: keeps its default.
        assert!(p.permissions_by_band.critical.is_empty());
        assert_eq!(
            p.time_windows[0].days.as_deref(),
            Some(&[Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri][..])
        );
        assert_eq!(p.validate(), Ok(()));

        let back = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Policy>(&back).unwrap(), p);
        let v: serde_json::Value = serde_json::from_str(&back).unwrap();
        assert_eq!(v["time_windows"][0]["days"][0], "mon");
        assert_eq!(v["time_windows"][0]["start"], "09:00");
    }

    #[test]
    fn empty_config_is_the_default() {
        assert_eq!(
            serde_json::from_str::<Policy>("{}").unwrap(),
            Policy::default()
        );
        assert_eq!(toml::from_str::<Policy>("").unwrap(), Policy::default());
    }

    #[test]
    fn policy_from_toml() {
        let text = r#"
            mode = "enforce"
            max_risk_score = 75
            allowed_environments = ["production", "development"]

            [permissions_by_band]
            critical = ["basic"]

            [[time_windows]]
            start = "22:00"
            end = "06:00"
            utc_offset_minutes = 60
        "#;
        let p: Policy = toml::from_str(text).unwrap();
        assert_eq!(p.mode, PolicyMode::Enforce);
        assert_eq!(p.max_risk_score, Some(75));
        assert_eq!(p.permissions_by_band.critical, ["basic"]);
        assert_eq!(
            p.permissions_by_band.low,
            ["basic", "payments", "transfers"]
        );
        assert_eq!(p.time_windows[0].days, None);
        assert_eq!(p.time_windows[0].utc_offset_minutes, 60);
        let back = toml::to_string(&p).unwrap();
        assert_eq!(toml::from_str::<Policy>(&back).unwrap(), p);
    }

    #[test]
    fn bad_config_is_rejected_at_parse_time() {
        for bad in [
            r#"{"mode": "enforcing"}"#,
            r#"{"max_risk": 50}"#,
            r#"{"allowed_environments": ["staging"]}"#,
            r#"{"time_windows": [{"start": "9:00", "end": "17:00"}]}"#,
            r#"{"time_windows": [{"start": "09:00", "end": "24:00"}]}"#,
            r#"{"time_windows": [{"start": "09:00"}]}"#,
            r#"{"time_windows": [{"days": ["someday"], "start": "09:00", "end": "10:00"}]}"#,
            r#"{"permissions_by_band": {"extreme": []}}"#,
        ] {
            assert!(serde_json::from_str::<Policy>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mode_names() {
        for (mode, name) in [
            (PolicyMode::Off, "off"),
            (PolicyMode::Monitor, "monitor"),
            (PolicyMode::Enforce, "enforce"),
        ] {
            assert_eq!(mode.as_str(), name);
            assert_eq!(serde_json::to_value(mode).unwrap(), name);
        }
        assert_eq!(PolicyMode::default(), PolicyMode::Enforce);
    }
}
