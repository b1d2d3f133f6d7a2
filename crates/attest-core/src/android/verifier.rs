//! The Android Key Attestation checks, in the order of the reference policy (the shared
//! vectors' README): the first failing check is the error.
//!
//! 1. `malformed`: fewer than 2 certificates, more than 16, or one that does not parse.
//! 2. `certificate_chain_invalid`: names and signatures do not chain to a trusted root key.
//! 3. `software_root`: they chain to an Android Keystore software attestation root.
//! 4. `key_description_missing`: the leaf has no KeyDescription, or it does not parse.
//! 5. `chain_extended`: a KeyDescription above the leaf (unless an allowed ATTEST_KEY
//!    attestation), more certificates than the provisioning type has, or certificates after
//!    the root.
//! 6. `certificate_expired`: a certificate above the leaf is not yet valid, or expired on a
//!    chain that is not factory-provisioned. The leaf's validity is never checked.
//! 7. `certificate_revoked` / `revocation_list_stale`: a path certificate is on the status
//!    list, or the list is too old to say.
//! 8. `challenge_mismatch`.
//! 9. `security_level_insufficient`: software, attestation and KeyMint levels differ, or
//!    below the policy's minimum.
//! 10. `key_origin_invalid`: hardwareEnforced.origin is not GENERATED.
//! 11. `root_of_trust_missing`: no hardwareEnforced.rootOfTrust.
//! 12. `package_mismatch`: package name or signing-certificate digests.
//! 13. `verified_boot_required`: only when the policy asks for a verified, locked device.

use attest_types::evidence::AndroidEvidence;
pub use attest_types::evidence::Provisioning;
use aws_lc_rs::digest;
use rustls_pki_types::UnixTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::oid;

use super::chain::{PathWalker, TrustAnchor, WalkError, parse_chain};
use super::error::{AndroidError, ExtendedBy, PackageFailure, ValidityFailure};
use super::key_description::{
    self, Extension, KeyDescription, KeyOrigin, RootOfTrust, SecurityLevel, VerifiedBootState,
    purpose,
};
use super::revocation::{Revocation, serial_hex};

/// The most certificates from the leaf to the one the root signs, by provisioning type (plus
/// one per allowed ATTEST_KEY attestation): remotely provisioned chains are leaf, attestation
/// certificate, Droid CA3, Droid CA2; factory ones leaf, attestation certificate, batch
/// intermediate. Chains of unknown provisioning get the larger bound.
const REMOTE_PATH_LEN: usize = 4;
const FACTORY_PATH_LEN: usize = 3;
const UNKNOWN_PATH_LEN: usize = 4;

/// The lowest security level a policy accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MinSecurityLevel {
    /// A TEE or StrongBox.
    #[default]
    TrustedEnvironment,
    /// StrongBox only.
    StrongBox,
}

impl MinSecurityLevel {
    fn level(self) -> SecurityLevel {
        match self {
            Self::TrustedEnvironment => SecurityLevel::TrustedEnvironment,
            Self::StrongBox => SecurityLevel::StrongBox,
        }
    }
}

/// Policy knobs. The default is the reference policy: TEE or StrongBox, boot state reported
/// but not enforced, ATTEST_KEY chains refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AndroidPolicy {
    /// The lowest security level accepted.
    pub min_security_level: MinSecurityLevel,
    /// Require verifiedBootState VERIFIED and deviceLocked (`verified_boot_required`
    /// otherwise).
    pub require_verified_boot: bool,
    /// Accept chains with ATTEST_KEY attestations between the leaf and the device's
    /// attestation certificate (Android 12+ app-provided attestation keys): certificates right
    /// after the leaf whose hardware-enforced purpose is exactly ATTEST_KEY.
    pub allow_attest_key: bool,
}

/// The application a key must belong to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExpectedApp {
    /// Accepted package names: one of them must be among the attested packages.
    pub package_names: Vec<String>,
    /// SHA-256 digests of the app's signing certificates. The attested digests must be exactly
    /// this set, or a non-empty subset of it (so a list holding the old and the new certificate
    /// of a key rotation accepts installs of either). `None` skips the digest check.
    pub signing_digests: Option<Vec<[u8; 32]>>,
}

/// The inputs of a verification besides the chain.
#[derive(Debug, Clone, Copy)]
pub struct AndroidRequest<'a> {
    /// The expected attestationChallenge bytes; `None` skips the check (the CLI without
    /// `--challenge-b64` only: a server never skips it).
    pub challenge: Option<&'a [u8]>,
    /// The expected application; `None` skips the check (the CLI without `--package`).
    pub app: Option<&'a ExpectedApp>,
    /// Policy knobs.
    pub policy: AndroidPolicy,
    /// The status list to consult.
    pub revocation: Revocation<'a>,
    /// The verification time.
    pub time: UnixTime,
}

impl<'a> AndroidRequest<'a> {
    /// A request that checks the challenge and the app, with the default policy.
    pub fn new(
        challenge: &'a [u8],
        app: &'a ExpectedApp,
        revocation: Revocation<'a>,
        time: UnixTime,
    ) -> Self {
        Self {
            challenge: Some(challenge),
            app: Some(app),
            policy: AndroidPolicy::default(),
            revocation,
            time,
        }
    }
}

/// A verified Android key. Only [`AndroidVerifier::verify`] constructs one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAndroidKey {
    key_id: [u8; 32],
    public_key: Vec<u8>,
    key_description: KeyDescription,
    anchor: TrustAnchor,
    provisioning: Provisioning,
    attest_key_certificates: usize,
    serials: Vec<String>,
    challenge_checked: bool,
    app_checked: bool,
    revocation_checked: bool,
}

impl VerifiedAndroidKey {
    /// SHA-256 of the leaf's SubjectPublicKeyInfo DER: the key's identifier.
    pub fn key_id(&self) -> &[u8; 32] {
        &self.key_id
    }
    /// The attested key as SubjectPublicKeyInfo DER (EC, RSA, or ML-DSA on Android 17).
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }
    /// The whole KeyDescription.
    pub fn key_description(&self) -> &KeyDescription {
        &self.key_description
    }
    /// The root key the chain ends at.
    pub fn anchor(&self) -> TrustAnchor {
        self.anchor
    }
    /// How the device's attestation key was provisioned.
    pub fn provisioning(&self) -> Provisioning {
        self.provisioning
    }
    /// How many ATTEST_KEY attestations sit between the leaf and the device's attestation
    /// certificate (0 unless the policy allows them).
    pub fn attest_key_certificates(&self) -> usize {
        self.attest_key_certificates
    }
    /// Serials of the path's certificates (leaf first), as the status list keys them.
    pub fn serials(&self) -> &[String] {
        &self.serials
    }
    /// Whether the challenge was checked (false only when the request skipped it).
    pub fn challenge_checked(&self) -> bool {
        self.challenge_checked
    }
    /// Whether the application was checked.
    pub fn app_checked(&self) -> bool {
        self.app_checked
    }
    /// Whether the status list was consulted (not for [`Revocation::Skip`] or extra roots).
    pub fn revocation_checked(&self) -> bool {
        self.revocation_checked
    }
    /// What the chain proved besides the key, as kept with the key.
    pub fn evidence(&self) -> AndroidEvidence {
        AndroidEvidence {
            attestation_version: self.attestation_version(),
            attestation_security_level: self.attestation_security_level(),
            keymint_security_level: self.keymint_security_level(),
            verified_boot_state: self.verified_boot_state(),
            device_locked: self.device_locked(),
            verified_boot_key: self.verified_boot_key().map(<[u8]>::to_vec),
            os_version: self.os_version(),
            os_patch_level: self.os_patch_level(),
            vendor_patch_level: self.vendor_patch_level(),
            boot_patch_level: self.boot_patch_level(),
            package_names: self
                .package_names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            signing_digests: self
                .signing_digests()
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect(),
            provisioning: self.provisioning,
            anchor: self.anchor,
            attest_key_certificates: u32::try_from(self.attest_key_certificates)
                .unwrap_or(u32::MAX),
        }
    }
    /// attestationVersion.
    pub fn attestation_version(&self) -> u64 {
        self.key_description.attestation_version
    }
    /// attestationSecurityLevel.
    pub fn attestation_security_level(&self) -> SecurityLevel {
        self.key_description.attestation_security_level
    }
    /// keyMintSecurityLevel.
    pub fn keymint_security_level(&self) -> SecurityLevel {
        self.key_description.keymint_security_level
    }
    /// The hardware-enforced root of trust (always present once verified).
    pub fn root_of_trust(&self) -> Option<&RootOfTrust> {
        self.key_description
            .hardware_enforced
            .root_of_trust
            .as_ref()
    }
    /// verifiedBootState.
    pub fn verified_boot_state(&self) -> Option<VerifiedBootState> {
        self.root_of_trust().map(|rot| rot.verified_boot_state)
    }
    /// deviceLocked.
    pub fn device_locked(&self) -> Option<bool> {
        self.root_of_trust().map(|rot| rot.device_locked)
    }
    /// verifiedBootKey.
    pub fn verified_boot_key(&self) -> Option<&[u8]> {
        self.root_of_trust()
            .map(|rot| rot.verified_boot_key.as_slice())
    }
    /// verifiedBootHash.
    pub fn verified_boot_hash(&self) -> Option<&[u8]> {
        self.root_of_trust()?.verified_boot_hash.as_deref()
    }
    /// osVersion (hardware-enforced, else software-enforced).
    pub fn os_version(&self) -> Option<u64> {
        let kd = &self.key_description;
        kd.hardware_enforced
            .os_version
            .or(kd.software_enforced.os_version)
    }
    /// osPatchLevel (`YYYYMM`).
    pub fn os_patch_level(&self) -> Option<u64> {
        let kd = &self.key_description;
        kd.hardware_enforced
            .os_patch_level
            .or(kd.software_enforced.os_patch_level)
    }
    /// vendorPatchLevel (`YYYYMMDD` or `YYYYMM`).
    pub fn vendor_patch_level(&self) -> Option<u64> {
        let kd = &self.key_description;
        kd.hardware_enforced
            .vendor_patch_level
            .or(kd.software_enforced.vendor_patch_level)
    }
    /// bootPatchLevel (`YYYYMMDD` or `YYYYMM`).
    pub fn boot_patch_level(&self) -> Option<u64> {
        let kd = &self.key_description;
        kd.hardware_enforced
            .boot_patch_level
            .or(kd.software_enforced.boot_patch_level)
    }
    /// The attested package names.
    pub fn package_names(&self) -> Vec<&str> {
        self.key_description
            .application_id()
            .map(|app| app.packages.iter().map(|p| p.name.as_str()).collect())
            .unwrap_or_default()
    }
    /// The attested signing-certificate SHA-256 digests.
    pub fn signing_digests(&self) -> Vec<&[u8]> {
        self.key_description
            .application_id()
            .map(|app| app.signature_digests.iter().map(Vec::as_slice).collect())
            .unwrap_or_default()
    }
    /// The key's purposes (hardware-enforced).
    pub fn purposes(&self) -> &[u64] {
        self.key_description
            .hardware_enforced
            .purpose
            .as_deref()
            .unwrap_or_default()
    }
    /// creationDateTime, ms since the epoch by the device's clock.
    pub fn creation_date_time(&self) -> Option<u64> {
        let kd = &self.key_description;
        kd.software_enforced
            .creation_date_time
            .or(kd.hardware_enforced.creation_date_time)
    }
}

/// Verifies Android Key Attestation chains. Build one per process and share it: it remembers
/// verified intermediate signatures.
#[derive(Debug)]
pub struct AndroidVerifier {
    walker: PathWalker,
}

impl AndroidVerifier {
    /// Anchored at Google's two pinned root keys.
    pub fn google() -> Self {
        Self {
            walker: PathWalker::google(),
        }
    }

    /// Anchored at `roots` (DER certificates) **in place of** Google's: for tests whose CA
    /// plays Google (revocation applies as for Google's).
    pub fn with_roots(roots: Vec<Vec<u8>>) -> Result<Self, AndroidError> {
        PathWalker::with_roots(roots)
            .map(|walker| Self { walker })
            .map_err(|_| AndroidError::InvalidArgument("a root is not a DER X.509 certificate"))
    }

    /// Google's keys plus `extra` roots (DER): simulators, the quick start. Chains under an
    /// extra root say so ([`TrustAnchor::Extra`]) and are not looked up in the status list.
    pub fn with_extra_roots(extra: Vec<Vec<u8>>) -> Result<Self, AndroidError> {
        PathWalker::with_extra_roots(extra)
            .map(|walker| Self { walker })
            .map_err(|_| AndroidError::InvalidArgument("a root is not a DER X.509 certificate"))
    }

    /// The chain walker (for inspection tools and benchmarks).
    pub fn walker(&self) -> &PathWalker {
        &self.walker
    }

    /// Verifies `chain` (DER certificates, leaf first) for `request`.
    pub fn verify(
        &self,
        chain: &[&[u8]],
        request: &AndroidRequest<'_>,
    ) -> Result<VerifiedAndroidKey, AndroidError> {
        if let Some(app) = request.app
            && app.package_names.is_empty()
        {
            return Err(AndroidError::InvalidArgument("no package name to accept"));
        }

        // 1. Parse.
        let certs = parse_chain(chain).map_err(AndroidError::Malformed)?;

        // 2, 3. Names and signatures to a root.
        let path = self.walker.walk_parsed(&certs).map_err(|e| match e {
            WalkError::Malformed(reason) => AndroidError::Malformed(reason),
            WalkError::Chain(failure) => AndroidError::CertificateChainInvalid(failure),
            WalkError::SoftwareRoot => AndroidError::SoftwareRoot,
        })?;
        let path_certs = certs.get(..path.len).unwrap_or_default();
        let (leaf, above) = path_certs
            .split_first()
            .ok_or(AndroidError::Malformed("empty chain"))?;

        // 4. The leaf's KeyDescription.
        let key_description = match key_description::extension(leaf) {
            Extension::Present(value) => KeyDescription::parse(value)
                .map_err(|e| AndroidError::KeyDescriptionMissing(e.0))?,
            Extension::Absent => {
                return Err(AndroidError::KeyDescriptionMissing(
                    "the leaf has no KeyDescription extension",
                ));
            }
            Extension::Duplicated => {
                return Err(AndroidError::KeyDescriptionMissing(
                    "the leaf has two KeyDescription extensions",
                ));
            }
        };

        // 5. Nothing extends the chain.
        let attest_key_certificates = attest_key_prefix(above, request.policy.allow_attest_key)?;
        let provisioning = provisioning(above);
        let allowed = attest_key_certificates
            + match provisioning {
                Provisioning::Remote => REMOTE_PATH_LEN,
                Provisioning::Factory => FACTORY_PATH_LEN,
                Provisioning::Unknown => UNKNOWN_PATH_LEN,
            };
        if path.len > allowed {
            return Err(AndroidError::ChainExtended(ExtendedBy::TooLong {
                found: path.len,
                allowed,
            }));
        }
        if path.trailing > 0 {
            return Err(AndroidError::ChainExtended(ExtendedBy::AfterRoot {
                count: path.trailing,
            }));
        }

        // 6. Validity of the certificates above the leaf, with Google's time rules.
        let now = i64::try_from(request.time.as_secs()).unwrap_or(i64::MAX);
        for (offset, cert) in above.iter().enumerate() {
            let validity = cert.validity();
            let failure = if now < validity.not_before.timestamp() {
                Some(ValidityFailure::NotYetValid)
            } else if now > validity.not_after.timestamp() && provisioning != Provisioning::Factory
            {
                Some(ValidityFailure::Expired)
            } else {
                None
            };
            if let Some(failure) = failure {
                return Err(AndroidError::CertificateExpired {
                    index: offset + 1,
                    failure,
                });
            }
        }

        // 7. Revocation (Google's list says nothing about extra roots).
        let serials: Vec<String> = path_certs
            .iter()
            .map(|cert| serial_hex(cert.raw_serial()))
            .collect();
        let revocation_checked = match request.revocation {
            Revocation::Check { list, max_age } if path.anchor != TrustAnchor::Extra => {
                let age = list.age_at(request.time);
                if age > max_age {
                    return Err(AndroidError::RevocationListStale {
                        age_secs: age.as_secs(),
                        max_age_secs: max_age.as_secs(),
                    });
                }
                for (index, serial) in serials.iter().enumerate() {
                    if let Some(entry) = list.lookup(serial) {
                        return Err(AndroidError::CertificateRevoked {
                            index,
                            serial: serial.clone(),
                            status: entry.status.clone(),
                        });
                    }
                }
                true
            }
            _ => false,
        };

        // 8. Challenge.
        if let Some(challenge) = request.challenge
            && key_description.attestation_challenge != challenge
        {
            return Err(AndroidError::ChallengeMismatch);
        }

        // 9. Security level.
        let attestation = key_description.attestation_security_level;
        let keymint = key_description.keymint_security_level;
        let required = request.policy.min_security_level.level();
        if attestation != keymint
            || attestation == SecurityLevel::Software
            || attestation.rank() < required.rank()
        {
            return Err(AndroidError::SecurityLevelInsufficient {
                attestation,
                keymint,
                required,
            });
        }

        // 10. Origin.
        let hardware = &key_description.hardware_enforced;
        if hardware.origin != Some(KeyOrigin::Generated) {
            return Err(AndroidError::KeyOriginInvalid);
        }

        // 11. Root of trust.
        let root_of_trust = hardware
            .root_of_trust
            .as_ref()
            .ok_or(AndroidError::RootOfTrustMissing)?;

        // 12. Application.
        if let Some(app) = request.app {
            check_app(&key_description, app)?;
        }

        // 13. Boot state, when the policy asks.
        if request.policy.require_verified_boot
            && (root_of_trust.verified_boot_state != VerifiedBootState::Verified
                || !root_of_trust.device_locked)
        {
            return Err(AndroidError::VerifiedBootRequired {
                state: root_of_trust.verified_boot_state,
                locked: root_of_trust.device_locked,
            });
        }

        let public_key = leaf.public_key().raw.to_vec();
        let mut key_id = [0u8; 32];
        key_id.copy_from_slice(digest::digest(&digest::SHA256, &public_key).as_ref());
        Ok(VerifiedAndroidKey {
            key_id,
            public_key,
            key_description,
            anchor: path.anchor,
            provisioning,
            attest_key_certificates,
            serials,
            challenge_checked: request.challenge.is_some(),
            app_checked: request.app.is_some(),
            revocation_checked,
        })
    }
}

/// Counts the ATTEST_KEY attestations right after the leaf; any other KeyDescription above the
/// leaf extends the chain.
fn attest_key_prefix(
    above: &[X509Certificate<'_>],
    allow_attest_key: bool,
) -> Result<usize, AndroidError> {
    let mut prefix = 0;
    for (offset, cert) in above.iter().enumerate() {
        let index = offset + 1;
        let extended = Err(AndroidError::ChainExtended(
            ExtendedBy::KeyDescriptionAboveLeaf { index },
        ));
        match key_description::extension(cert) {
            Extension::Absent => {}
            Extension::Duplicated => return extended,
            Extension::Present(value) => {
                let is_attest_key = KeyDescription::parse(value).is_ok_and(|kd| {
                    kd.hardware_enforced.purpose.as_deref() == Some(&[purpose::ATTEST_KEY])
                });
                if allow_attest_key && is_attest_key && prefix == offset {
                    prefix += 1;
                } else {
                    return extended;
                }
            }
        }
    }
    Ok(prefix)
}

/// Factory when the top intermediate (the one the root signs) names a serialNumber, remote
/// when it is Google's "Droid CA" or a certificate carries RKP's ProvisioningInfo extension
/// (1.3.6.1.4.1.11129.2.1.30); remote wins if both.
fn provisioning(above: &[X509Certificate<'_>]) -> Provisioning {
    let provisioning_info = oid!(1.3.6.1.4.1.11129.2.1.30);
    let Some(top) = above.last() else {
        return Provisioning::Unknown;
    };
    let droid_ca = top
        .subject()
        .iter_common_name()
        .any(|cn| cn.as_str().is_ok_and(|name| name.starts_with("Droid CA")));
    let has_provisioning_info = above
        .iter()
        .any(|cert| cert.extensions().iter().any(|e| e.oid == provisioning_info));
    if droid_ca || has_provisioning_info {
        Provisioning::Remote
    } else if top.subject().iter_by_oid(&oid!(2.5.4.5)).next().is_some() {
        Provisioning::Factory
    } else {
        Provisioning::Unknown
    }
}

fn check_app(key_description: &KeyDescription, app: &ExpectedApp) -> Result<(), AndroidError> {
    let attested = key_description
        .application_id()
        .ok_or(AndroidError::PackageMismatch(
            PackageFailure::NoApplicationId,
        ))?;
    let package_ok = attested
        .packages
        .iter()
        .any(|package| app.package_names.contains(&package.name));
    if !package_ok {
        return Err(AndroidError::PackageMismatch(PackageFailure::Package));
    }
    if let Some(allowed) = &app.signing_digests {
        let in_allowed = |digest: &Vec<u8>| allowed.iter().any(|a| a.as_slice() == digest);
        let all_allowed = attested.signature_digests.iter().all(in_allowed);
        let all_attested = allowed
            .iter()
            .all(|a| attested.signature_digests.iter().any(|d| d.as_slice() == a));
        let equal = all_allowed && all_attested;
        let subset = all_allowed && !attested.signature_digests.is_empty();
        if !(equal || subset) {
            return Err(AndroidError::PackageMismatch(
                PackageFailure::SigningCertificate,
            ));
        }
    }
    Ok(())
}
