//! Spec nouns as types: App ID, AAGUID and environment policy.

use attest_types::Environment;
use aws_lc_rs::digest;

/// An App ID, `TEAMID.bundle.identifier`, with its SHA-256 (the expected rpIdHash) precomputed.
///
/// Apple's validated form of an app's name. The platform-neutral name is
/// [`attest_types::AppId`] (an App ID or an Android package name); this one adds Apple's
/// `TEAMID.` shape and the rpIdHash that only the App Attest verifier needs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AppId {
    name: attest_types::AppId,
    rp_id_hash: [u8; 32],
}

impl AppId {
    /// Parses `TEAMID.bundle.id`: a non-empty team id, a dot, and a non-empty bundle id, no
    /// whitespace or control characters.
    ///
    /// Apple's team ids are 10 alphanumerics, but re-signed apps and Apple's own documentation
    /// samples use other lengths (`1234567890`, `TEAMID.<hex>.TEAMID`), so only the shape is
    /// enforced.
    pub fn new(value: impl Into<String>) -> Result<Self, InvalidAppId> {
        // The platform-neutral name's rules (not empty, at most 512 bytes, no whitespace or
        // control characters), then Apple's shape.
        let name = attest_types::AppId::new(value).map_err(|_| InvalidAppId)?;
        let value = name.as_str();
        let Some((team, bundle)) = value.split_once('.') else {
            return Err(InvalidAppId);
        };
        let well_formed = !team.is_empty()
            && !bundle.is_empty()
            && team.bytes().all(|b| b.is_ascii_alphanumeric());
        if !well_formed {
            return Err(InvalidAppId);
        }
        let mut rp_id_hash = [0u8; 32];
        rp_id_hash.copy_from_slice(digest::digest(&digest::SHA256, value.as_bytes()).as_ref());
        Ok(Self { name, rp_id_hash })
    }

    /// The App ID as text.
    pub fn as_str(&self) -> &str {
        self.name.as_str()
    }

    /// The platform-neutral name (the same text).
    pub fn name(&self) -> &attest_types::AppId {
        &self.name
    }

    /// The team id (before the first dot).
    pub fn team_id(&self) -> &str {
        self.as_str().split_once('.').map_or("", |(team, _)| team)
    }

    /// The bundle id (after the first dot).
    pub fn bundle_id(&self) -> &str {
        self.as_str()
            .split_once('.')
            .map_or("", |(_, bundle)| bundle)
    }

    /// SHA-256 of the App ID: the rpIdHash Apple puts in authenticator data.
    pub fn rp_id_hash(&self) -> &[u8; 32] {
        &self.rp_id_hash
    }
}

impl std::fmt::Debug for AppId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppId({})", self.as_str())
    }
}

impl std::fmt::Display for AppId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AppId {
    type Err = InvalidAppId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// The text is not of the form `TEAMID.bundle.id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an App ID has the form TEAMID.bundle.id")]
pub struct InvalidAppId;

/// Which environments a verifier accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EnvironmentPolicy {
    /// Only development keys.
    Development,
    /// Only production keys (the safe default for a shipped app).
    #[default]
    Production,
    /// Either; the verified result says which one it was.
    Any,
}

impl EnvironmentPolicy {
    /// Whether `environment` is accepted.
    pub fn accepts(self, environment: Environment) -> bool {
        matches!(
            (self, environment),
            (Self::Any, _)
                | (Self::Development, Environment::Development)
                | (Self::Production, Environment::Production)
        )
    }

    /// `development`, `production` or `any`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Production => "production",
            Self::Any => "any",
        }
    }
}

impl std::str::FromStr for EnvironmentPolicy {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "development" => Ok(Self::Development),
            "production" => Ok(Self::Production),
            "any" => Ok(Self::Any),
            _ => Err("expected development, production or any"),
        }
    }
}

/// The AAGUID of authenticator data, which names the App Attest environment.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aaguid(pub [u8; 16]);

impl Aaguid {
    /// `appattestdevelop`: the development (sandbox) environment.
    pub const DEVELOPMENT: Self = Self(*b"appattestdevelop");
    /// `appattest` followed by seven zero bytes: the production environment.
    pub const PRODUCTION: Self = Self(*b"appattest\0\0\0\0\0\0\0");

    /// The environment this AAGUID names, if it is one of Apple's two.
    pub fn environment(&self) -> Option<Environment> {
        match *self {
            Self::DEVELOPMENT => Some(Environment::Development),
            Self::PRODUCTION => Some(Environment::Production),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Aaguid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Aaguid({})", self.0.escape_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_id_splits_team_and_bundle_and_hashes_the_whole() {
        let app = AppId::new("ABCDE12345.com.example.app").unwrap();
        assert_eq!(app.team_id(), "ABCDE12345");
        assert_eq!(app.bundle_id(), "com.example.app");
        assert_eq!(
            app.rp_id_hash().as_slice(),
            digest::digest(&digest::SHA256, b"ABCDE12345.com.example.app").as_ref()
        );
    }

    #[test]
    fn app_id_rejects_text_without_team_or_bundle() {
        for bad in [
            "",
            "nodot",
            ".com.example",
            "TEAM.",
            "TE AM.x",
            "TEAM.a b",
            "TE-AM.x",
        ] {
            assert_eq!(AppId::new(bad), Err(InvalidAppId), "{bad:?}");
        }
    }

    #[test]
    fn aaguids_name_their_environments() {
        assert_eq!(
            Aaguid::DEVELOPMENT.environment(),
            Some(Environment::Development)
        );
        assert_eq!(
            Aaguid::PRODUCTION.environment(),
            Some(Environment::Production)
        );
        assert_eq!(Aaguid([0; 16]).environment(), None);
    }

    #[test]
    fn environment_policy_accepts_what_it_names() {
        use Environment::*;
        assert!(EnvironmentPolicy::Any.accepts(Development));
        assert!(EnvironmentPolicy::Any.accepts(Production));
        assert!(EnvironmentPolicy::Production.accepts(Production));
        assert!(!EnvironmentPolicy::Production.accepts(Development));
        assert!(!EnvironmentPolicy::Development.accepts(Production));
    }
}
