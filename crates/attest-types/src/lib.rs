#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[macro_use]
mod text;
mod app_id;
pub mod evidence;
mod key_id;

pub use app_id::{AppId, InvalidAppId};
pub use evidence::{AndroidEvidence, AppleEvidence, Evidence};
pub use key_id::KeyId;
pub use text::UnknownValue;

text_enum! {
    /// The platform whose attestation proved a key.
    Platform, "platform" {
        /// Apple App Attest (iOS, iPadOS, macOS, tvOS, visionOS).
        Ios = "ios",
        /// Android Key Attestation.
        Android = "android",
    }
}

impl Platform {
    /// Whether the platform's keys sign with a counter the server must see advance (App
    /// Attest's sign count). Android keys have none: the spent challenge is the replay defence.
    pub const fn has_counter(self) -> bool {
        matches!(self, Self::Ios)
    }
}

text_enum! {
    /// The environment an attested key was created in.
    ///
    /// On Apple it is named by the attestation's AAGUID: `appattestdevelop` for development
    /// (sandbox, development-signed builds), `appattest` followed by seven zero bytes for
    /// production (App Store, TestFlight and Enterprise builds).
    Environment, "environment" {
        /// The sandbox: development-signed builds.
        Development = "development",
        /// Production: App Store, TestFlight and Enterprise builds.
        Production = "production",
    }
}

text_enum! {
    /// What the policy made of a request, as answered and as logged.
    Outcome, "outcome" {
        /// Let through.
        Allow = "allow",
        /// Let through although enforcing would have denied it (monitor mode); marked as such.
        AllowMonitored = "allow_monitored",
        /// Refused.
        Deny = "deny",
    }
}

text_enum! {
    /// What a decision was about.
    DecisionKind, "decision kind" {
        /// Registering a key.
        Attestation = "attestation",
        /// Using a key.
        Assertion = "assertion",
        /// A DeviceCheck token checked with Apple (`POST /v1/device-checks`): the fallback for
        /// devices without App Attest.
        DeviceCheck = "device_check",
    }
}

text_enum! {
    /// How an app's policy verdict is applied (and, logged with each decision, how it was).
    #[derive(Default)]
    PolicyMode, "policy mode" {
        /// No enforcement at all: every request is allowed, even one that failed verification
        /// (for apps whose clients do not ship App Attest yet). `would_deny` is still reported.
        Off = "off",
        /// Verify and record, but let the request through: allowed, marked `allow_monitored`
        /// when enforcing would have denied it.
        Monitor = "monitor",
        /// Deny every request that fails a rule. The default: with no other rule configured it
        /// denies exactly the requests that failed verification.
        #[default]
        Enforce = "enforce",
    }
}

text_enum! {
    /// Why a key is no longer accepted.
    RevocationReason, "revocation reason" {
        /// Revoked by an operator (admin API).
        Revoked = "revoked",
        /// Replaced by a newer key of the same device or user.
        Superseded = "superseded",
        /// Unused for longer than the configured idle expiry.
        Expired = "expired",
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;
    use std::str::FromStr;

    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::*;

    /// Every value's text parses back to it, is its `Display` and its serde form; the texts are
    /// exactly `texts`, in order; other spellings are refused.
    fn round_trips<T>(all: &[T], texts: &[&str])
    where
        T: Copy + Debug + PartialEq + FromStr<Err = UnknownValue> + std::fmt::Display,
        T: Serialize + DeserializeOwned,
    {
        assert_eq!(all.len(), texts.len());
        for (&value, &text) in all.iter().zip(texts) {
            assert_eq!(value.to_string(), text);
            assert_eq!(text.parse::<T>(), Ok(value));
            let json = serde_json::to_string(&value).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), value);
            assert!(text.to_uppercase().parse::<T>().is_err(), "{text}");
            assert!(format!(" {text}").parse::<T>().is_err(), "{text}");
        }
        assert!("".parse::<T>().is_err());
        assert!(serde_json::from_str::<T>("\"unknown\"").is_err());
    }

    #[test]
    fn every_enumeration_round_trips_through_its_one_text() {
        round_trips(&Platform::ALL, &["ios", "android"]);
        round_trips(&Environment::ALL, &["development", "production"]);
        round_trips(&Outcome::ALL, &["allow", "allow_monitored", "deny"]);
        round_trips(
            &DecisionKind::ALL,
            &["attestation", "assertion", "device_check"],
        );
        round_trips(&PolicyMode::ALL, &["off", "monitor", "enforce"]);
        round_trips(
            &RevocationReason::ALL,
            &["revoked", "superseded", "expired"],
        );
    }

    #[test]
    fn as_str_is_the_text() {
        assert_eq!(Platform::Ios.as_str(), "ios");
        assert_eq!(Environment::Production.as_str(), "production");
        assert_eq!(Outcome::AllowMonitored.as_str(), "allow_monitored");
        assert_eq!(DecisionKind::DeviceCheck.as_str(), "device_check");
        assert_eq!(PolicyMode::Monitor.as_str(), "monitor");
        assert_eq!(RevocationReason::Superseded.as_str(), "superseded");
    }

    #[test]
    fn unknown_text_names_the_noun() {
        assert_eq!(
            "Allow".parse::<Outcome>(),
            Err(UnknownValue::new("outcome"))
        );
        assert_eq!(
            "staging".parse::<Environment>().unwrap_err().to_string(),
            "unknown environment value"
        );
        assert_eq!(
            "x".parse::<RevocationReason>().unwrap_err().noun(),
            "revocation reason"
        );
    }

    #[test]
    fn enforce_is_the_default_mode() {
        assert_eq!(PolicyMode::default(), PolicyMode::Enforce);
    }

    #[test]
    fn development_orders_before_production() {
        assert!(Environment::Development < Environment::Production);
    }
}
