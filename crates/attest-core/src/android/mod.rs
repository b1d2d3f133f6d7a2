//! Android Key Attestation: certificate chains whose leaf carries a KeyDescription.
//!
//! Verification follows Google's reference validator (`android/keyattestation`), not RFC 5280:
//! [`PathWalker`] holds the path rules, [`AndroidVerifier`] runs the checks in the order of the
//! reference policy (see the `verifier` module's list), each failure an [`AndroidError`] with a
//! stable code. Everything is pure: certificate bytes, pinned keys, a status list and a time in;
//! a [`VerifiedAndroidKey`] out. Nothing here reads the clock or the network.
//!
//! [`safetynet`] reads legacy SafetyNet JWS responses (turned down by Google in January 2025),
//! for migration only; a SafetyNet verdict is never counted as hardware backed.

mod chain;
mod der;
mod error;
pub mod key_description;
pub mod revocation;
pub mod roots;
pub mod safetynet;
mod verifier;

pub use chain::{
    InvalidRoot, MAX_CERTIFICATE_LEN, MAX_CHAIN_LEN, PathWalker, TrustAnchor, WalkError, WalkedPath,
};
pub use error::{AndroidError, ChainFailure, ExtendedBy, PackageFailure, ValidityFailure};
pub use key_description::{
    AttestationApplicationId, AuthorizationList, KeyDescription, KeyDescriptionError, KeyOrigin,
    PackageInfo, RootOfTrust, SecurityLevel, VerifiedBootState,
};
pub use revocation::{
    Revocation, RevocationEntry, RevocationList, RevocationListError, RevocationStatus,
};
pub use verifier::{
    AndroidPolicy, AndroidRequest, AndroidVerifier, ExpectedApp, MinSecurityLevel, Provisioning,
    VerifiedAndroidKey,
};
