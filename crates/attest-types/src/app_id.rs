//! The platform-neutral name of an app.

use std::fmt;
use std::str::FromStr;

/// The name an app is known by, whatever its platform: an Apple App ID (`TEAMID.bundle.id`) or
/// an Android package name (`com.example.app`).
///
/// Only the shape every platform shares is checked: not empty, at most
/// [`AppId::MAX_LEN`] bytes, no whitespace or control character. A platform verifier checks its
/// own form on top (Apple's, with the rpIdHash, is `attest_core::apple::AppId`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppId(String);

impl AppId {
    /// The longest App ID accepted, in bytes (Apple's team id and bundle id together are far
    /// shorter; the bound keeps a hostile name from filling logs and indexes).
    pub const MAX_LEN: usize = 512;

    /// Checks the shared shape.
    pub fn new(value: impl Into<String>) -> Result<Self, InvalidAppId> {
        let value = value.into();
        let well_formed = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value.chars().all(|c| !c.is_whitespace() && !c.is_control());
        if well_formed {
            Ok(Self(value))
        } else {
            Err(InvalidAppId)
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppId({})", self.0)
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AppId {
    type Err = InvalidAppId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for AppId {
    type Error = InvalidAppId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<AppId> for String {
    fn from(id: AppId) -> Self {
        id.0
    }
}

/// The text is empty, too long, or has whitespace or a control character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an app id is 1 to 512 bytes without whitespace or control characters")]
pub struct InvalidAppId;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_of_both_platforms_are_accepted() {
        for good in ["ABCDE12345.com.example.app", "com.example.app", "x"] {
            let id: AppId = good.parse().unwrap();
            assert_eq!(id.as_str(), good);
            assert_eq!(id.to_string(), good);
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, format!("\"{good}\""));
            assert_eq!(serde_json::from_str::<AppId>(&json).unwrap(), id);
        }
    }

    #[test]
    fn app_ids_without_the_shared_shape_are_refused() {
        let long = "a".repeat(AppId::MAX_LEN + 1);
        for bad in ["", "a b", "a\tb", "a\u{0}b", "a\u{85}b", long.as_str()] {
            assert_eq!(AppId::new(bad), Err(InvalidAppId), "{bad:?}");
            assert!(serde_json::from_str::<AppId>(&format!("{bad:?}")).is_err());
        }
        assert!(AppId::new("a".repeat(AppId::MAX_LEN)).is_ok());
    }
}
