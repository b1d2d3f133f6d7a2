//! Android Key Attestation: certificate chains whose leaf carries a KeyDescription.
//!
//! Verification follows Google's reference validator (`android/keyattestation`), not RFC 5280:
//! see [`PathWalker`] for the path rules.

mod chain;
mod der;
mod error;
pub mod key_description;
pub mod roots;

pub use chain::{
    InvalidRoot, MAX_CERTIFICATE_LEN, MAX_CHAIN_LEN, PathWalker, TrustAnchor, WalkError, WalkedPath,
};
pub use error::{ChainFailure, ExtendedBy, PackageFailure, ValidityFailure};
pub use key_description::{
    AttestationApplicationId, AuthorizationList, KeyDescription, KeyDescriptionError, KeyOrigin,
    PackageInfo, RootOfTrust, SecurityLevel, VerifiedBootState,
};
