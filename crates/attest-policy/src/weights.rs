//! Per-app factor weights and thresholds, with their defaults and the reasoning behind them.

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// How many points each factor adds to the risk score, and the thresholds that trigger it.
///
/// Every field has a default (see [`RiskWeights::default`]), so a per-app config names only the
/// fields it changes. Unknown field names are rejected, so a typo cannot silently keep a default.
/// Points of `0` switch a factor off: it is then never listed. A count factor triggers when the
/// count is **greater than** its threshold.
///
/// The defaults are calibrated so that any one factor alone stays in the low or medium band
/// (at most 40), except a failed verification (60, high); it takes two factors together to reach
/// high (51-75), and a failed verification plus a strong factor, or three strong factors, to reach
/// critical (76-100).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskWeights {
    /// `verification_failed`. Default **60** (high band alone): the request's own proof did not
    /// verify, so nothing it claims can be trusted; the strongest single signal there is.
    pub verification_failed: u8,

    /// `receipt_invalid`. Default **40**: a receipt that is present but fails validation (bad
    /// signature, other App ID, other key) points at a forged or transplanted attestation. Not
    /// higher, because clock problems and Apple-side changes have broken receipt checks before.
    pub receipt_invalid: u8,

    /// `receipt_missing`. Default **30**: Apple always includes a receipt in an attestation, so
    /// its absence is abnormal, but weaker evidence than a receipt that fails (storage loss,
    /// older records).
    pub receipt_missing: u8,

    /// `high_apple_risk_metric`. Default **25**: Apple counts the keys attested for the device in
    /// 30 days and says to "look for this value to be a low number"; many keys on one device
    /// suggest a device farm or scripted reinstalls.
    pub high_apple_risk_metric: u8,
    /// Default **5**: a legitimate device collects a few keys in 30 days (reinstall, iCloud
    /// restore, device transfer and offloaded-app updates each force a new key; ~5% of users hit
    /// `invalidKey` and re-attest), so only more than five counts.
    pub apple_risk_metric_threshold: u32,
    /// Default **30** days: the metric describes the 30 days before the receipt was issued; a
    /// receipt older than this describes a window that no longer overlaps today, and is ignored.
    pub apple_risk_metric_max_age_days: u32,

    /// `user_key_churn`. Default **15**: many new keys for one user id in the server's window
    /// (24h recommended) suggests an account shared across many installations or a bot.
    pub user_key_churn: u8,
    /// Default **3**: phone + tablet + one reinstall is normal.
    pub user_key_churn_threshold: u32,

    /// `ip_key_churn`. Default **10**: many new keys from one IP suggests a farm; weaker than the
    /// per-user signal because carrier-grade NAT and office networks share addresses.
    pub ip_key_churn: u8,
    /// Default **20** per window, for the same NAT reason.
    pub ip_key_churn_threshold: u32,

    /// `repeated_attestation`. Default **10**: a device (installation) normally attests once;
    /// re-running the attestation flow again and again is unusual, but app retries exist.
    pub repeated_attestation: u8,
    /// Default **3** attestations for one device.
    pub repeated_attestation_threshold: u32,

    /// `counter_regression`. Default **20**: an assertion counter below the stored one means
    /// another copy of the key state or a relay; one can also be two concurrent requests that
    /// arrived out of order, hence the threshold.
    pub counter_regression: u8,
    /// Default **1**: a single out-of-order pair is tolerated.
    pub counter_regression_threshold: u32,

    /// `replay_attempt`. Default **25**: someone resent an assertion that was already used,
    /// so someone holds this device's traffic; a bit above regressions.
    pub replay_attempt: u8,
    /// Default **1**: one replay is often a client retrying after a timeout.
    pub replay_attempt_threshold: u32,

    /// `repeated_failures`. Default **15**: repeated verification failures for the same key or
    /// device in the window (1h recommended) look like probing.
    pub repeated_failures: u8,
    /// Default **3**: an expired challenge or a retry produce one or two failures legitimately.
    pub repeated_failures_threshold: u32,

    /// `new_device`. Default **5**: every real user is new once, so this only nudges the score
    /// (stays in the low band alone); fraud is disproportionately done from fresh installs.
    pub new_device: u8,
    /// Default **24** hours since the device was first seen.
    pub new_device_max_age_hours: u32,

    /// `development_key_in_production_app`. Default **30**: a published app should only see
    /// production keys; a development key needs a development-signed build, i.e. a developer
    /// device, a leaked provisioning profile or a sideloaded build. Developers testing against
    /// production keep it below high on its own.
    pub development_key_in_production_app: u8,

    /// `clock_skew`. Default **10**: a client clock far from the server's can mean a tampered
    /// clock (to stretch time-bound data) or an emulator, but also a user who set it by hand.
    pub clock_skew: u8,
    /// Default **300** seconds: the same 5 minutes Apple allows for receipt creation time.
    pub clock_skew_threshold_seconds: u32,

    /// `unexpected_validation_category`. Default **20**: the iOS 27 launch validation category
    /// says how the running app was validated (distribution channel); a value the app has never
    /// been distributed with is suspicious. Only scored when
    /// [`RiskWeights::expected_validation_categories`] is set.
    pub unexpected_validation_category: u8,
    /// Default **empty** (factor off): Apple does not document the values, so the app pins the
    /// ones it observes (lowercase or uppercase hex of the raw bytes, e.g. `"01000000"`).
    pub expected_validation_categories: Vec<String>,

    /// `device_check_invalid`. Default **40**: the request carried a DeviceCheck token that
    /// Apple does not recognise as coming from a genuine device running the team's app: a
    /// forged or replayed token, or a token from another team's app. As strong as an invalid
    /// receipt, for the same reason (Apple's verdict, but about a side channel, not the
    /// request's own proof).
    pub device_check_invalid: u8,

    /// `device_check_flagged`. Default **30**: one of the team's two DeviceCheck bits named in
    /// [`RiskWeights::device_check_flag_bits`] is set for the device: the team marked it
    /// earlier (e.g. "abused a promotion", "banned"), and the mark survives reinstalls and new
    /// App Attest keys. Only scored when flag bits are named.
    pub device_check_flagged: u8,
    /// Default **empty** (factor off): which bits (`0`, `1`) mean "flagged" is the team's
    /// convention, Apple gives them no meaning.
    pub device_check_flag_bits: Vec<u8>,

    /// `software_backed_key` (Android). Default **40**: the key is not in a TEE or StrongBox,
    /// so the device's owner can copy it; as strong as an invalid receipt. (The default policy
    /// already refuses such chains with `security_level_insufficient`; this scores them for
    /// apps that lower the minimum.)
    pub software_backed_key: u8,
    /// `unlocked_bootloader` (Android). Default **30**: an unlocked bootloader (or an
    /// unverified boot) lets the owner run any system image, root included; common among
    /// developers, hence not higher alone.
    pub unlocked_bootloader: u8,
    /// `self_signed_boot` (Android). Default **20**: a custom ROM on a relocked bootloader; the
    /// system is verified, but with the owner's key, not the maker's.
    pub self_signed_boot: u8,
    /// `old_patch_level` (Android). Default **10**: an OS without security updates for longer
    /// than [`RiskWeights::max_patch_age_months`] has known, public exploits.
    pub old_patch_level: u8,
    /// Default **24** months; `0` switches the factor off. Two years covers the devices makers
    /// still update, plus the months updates take to reach them.
    pub max_patch_age_months: u32,
}

impl Default for RiskWeights {
    fn default() -> Self {
        Self {
            verification_failed: 60,
            receipt_invalid: 40,
            receipt_missing: 30,
            high_apple_risk_metric: 25,
            apple_risk_metric_threshold: 5,
            apple_risk_metric_max_age_days: 30,
            user_key_churn: 15,
            user_key_churn_threshold: 3,
            ip_key_churn: 10,
            ip_key_churn_threshold: 20,
            repeated_attestation: 10,
            repeated_attestation_threshold: 3,
            counter_regression: 20,
            counter_regression_threshold: 1,
            replay_attempt: 25,
            replay_attempt_threshold: 1,
            repeated_failures: 15,
            repeated_failures_threshold: 3,
            new_device: 5,
            new_device_max_age_hours: 24,
            development_key_in_production_app: 30,
            clock_skew: 10,
            clock_skew_threshold_seconds: 300,
            unexpected_validation_category: 20,
            expected_validation_categories: Vec::new(),
            device_check_invalid: 40,
            device_check_flagged: 30,
            device_check_flag_bits: Vec::new(),
            software_backed_key: 40,
            unlocked_bootloader: 30,
            self_signed_boot: 20,
            old_patch_level: 10,
            max_patch_age_months: 24,
        }
    }
}

impl RiskWeights {
    /// Rejects weights no config should hold: a factor worth more than the whole scale (100),
    /// or an expected validation category that is not hex.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let points = [
            ("verification_failed", self.verification_failed),
            ("receipt_invalid", self.receipt_invalid),
            ("receipt_missing", self.receipt_missing),
            ("high_apple_risk_metric", self.high_apple_risk_metric),
            ("user_key_churn", self.user_key_churn),
            ("ip_key_churn", self.ip_key_churn),
            ("repeated_attestation", self.repeated_attestation),
            ("counter_regression", self.counter_regression),
            ("replay_attempt", self.replay_attempt),
            ("repeated_failures", self.repeated_failures),
            ("new_device", self.new_device),
            (
                "development_key_in_production_app",
                self.development_key_in_production_app,
            ),
            ("clock_skew", self.clock_skew),
            (
                "unexpected_validation_category",
                self.unexpected_validation_category,
            ),
            ("device_check_invalid", self.device_check_invalid),
            ("device_check_flagged", self.device_check_flagged),
            ("software_backed_key", self.software_backed_key),
            ("unlocked_bootloader", self.unlocked_bootloader),
            ("self_signed_boot", self.self_signed_boot),
            ("old_patch_level", self.old_patch_level),
        ];
        if let Some(&(field, value)) = points.iter().find(|(_, p)| *p > 100) {
            return Err(ConfigError::WeightAbove100 { field, value });
        }
        if let Some(bad) = self
            .expected_validation_categories
            .iter()
            .find(|c| c.is_empty() || c.len() % 2 != 0 || !c.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ConfigError::InvalidHex(bad.clone()));
        }
        if let Some(&bit) = self.device_check_flag_bits.iter().find(|&&bit| bit > 1) {
            return Err(ConfigError::InvalidDeviceCheckBit(bit));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        assert_eq!(RiskWeights::default().validate(), Ok(()));
    }

    #[test]
    fn weight_above_100_is_rejected() {
        let w = RiskWeights {
            clock_skew: 101,
            ..RiskWeights::default()
        };
        assert_eq!(
            w.validate(),
            Err(ConfigError::WeightAbove100 {
                field: "clock_skew",
                value: 101
            })
        );
        let w = RiskWeights {
            clock_skew: 100,
            ..RiskWeights::default()
        };
        assert_eq!(w.validate(), Ok(()));
    }

    #[test]
    fn expected_categories_must_be_hex() {
        for bad in ["", "0", "zz", "01 00"] {
            let w = RiskWeights {
                expected_validation_categories: vec![bad.to_owned()],
                ..RiskWeights::default()
            };
            assert_eq!(
                w.validate(),
                Err(ConfigError::InvalidHex(bad.to_owned())),
                "{bad:?}"
            );
        }
        let w = RiskWeights {
            expected_validation_categories: vec!["01000000".to_owned(), "ABCD".to_owned()],
            ..RiskWeights::default()
        };
        assert_eq!(w.validate(), Ok(()));
    }

    #[test]
    fn device_check_flag_bits_are_0_or_1() {
        let w = RiskWeights {
            device_check_flag_bits: vec![0, 1],
            ..RiskWeights::default()
        };
        assert_eq!(w.validate(), Ok(()));
        let w = RiskWeights {
            device_check_flag_bits: vec![2],
            ..RiskWeights::default()
        };
        assert_eq!(w.validate(), Err(ConfigError::InvalidDeviceCheckBit(2)));
    }

    #[test]
    fn partial_json_keeps_other_defaults() {
        let w: RiskWeights =
            serde_json::from_str(r#"{"clock_skew": 0, "apple_risk_metric_threshold": 3}"#).unwrap();
        assert_eq!(w.clock_skew, 0);
        assert_eq!(w.apple_risk_metric_threshold, 3);
        assert_eq!(w.receipt_invalid, RiskWeights::default().receipt_invalid);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<RiskWeights>(r#"{"clock_skw": 0}"#).unwrap_err();
        assert!(err.to_string().contains("clock_skw"), "{err}");
    }

    #[test]
    fn json_and_toml_round_trip() {
        let w = RiskWeights {
            new_device: 0,
            expected_validation_categories: vec!["01000000".to_owned()],
            ..RiskWeights::default()
        };
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(serde_json::from_str::<RiskWeights>(&json).unwrap(), w);
        let toml_text = toml::to_string(&w).unwrap();
        assert_eq!(toml::from_str::<RiskWeights>(&toml_text).unwrap(), w);
    }

    #[test]
    fn toml_override() {
        let w: RiskWeights = toml::from_str(
            "receipt_missing = 50\nexpected_validation_categories = [\"01000000\"]\n",
        )
        .unwrap();
        assert_eq!(w.receipt_missing, 50);
        assert_eq!(w.expected_validation_categories, ["01000000"]);
        assert_eq!(w.replay_attempt, 25);
    }
}
