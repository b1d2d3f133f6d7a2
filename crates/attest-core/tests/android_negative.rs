//! Every Android Key Attestation check, broken one at a time on simulator-built chains (a test
//! root configured in place of Google's), plus the quirks real devices need tolerated.

use std::time::Duration;

use attest_core::UnixTime;
use attest_core::android::key_description::purpose;
use attest_core::android::{
    AndroidError, AndroidPolicy, AndroidRequest, AndroidVerifier, ChainFailure, ExpectedApp,
    ExtendedBy, MinSecurityLevel, PackageFailure, Provisioning, Revocation, RevocationEntry,
    RevocationList, RevocationStatus, TrustAnchor, ValidityFailure, VerifiedAndroidKey,
    VerifiedBootState,
};
use attest_sim::android::{
    AndroidAttestation, AndroidCa, AndroidChainBuilder, AndroidProvisioning, AuthTag,
    KeyDescriptionSpec, RootOfTrustSpec, level,
};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use time::OffsetDateTime;
use time::macros::datetime;

const PACKAGE: &str = "com.example.app";
const DIGEST: [u8; 32] = [0xd1; 32];
const CHALLENGE: &[u8] = b"server challenge 1234";
const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

fn at(when: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(when.unix_timestamp() as u64))
}

fn app() -> ExpectedApp {
    ExpectedApp {
        package_names: vec![PACKAGE.to_owned()],
        signing_digests: Some(vec![DIGEST]),
    }
}

fn kd() -> KeyDescriptionSpec {
    KeyDescriptionSpec::new(CHALLENGE, PACKAGE, &DIGEST)
}

struct Fixture {
    ca: AndroidCa,
    verifier: AndroidVerifier,
}

impl Fixture {
    fn new() -> Self {
        let ca = AndroidCa::generate();
        let verifier = AndroidVerifier::with_roots(vec![ca.root_der().to_vec()]).unwrap();
        Self { ca, verifier }
    }

    fn builder(
        &self,
        provisioning: AndroidProvisioning,
        spec: &KeyDescriptionSpec,
    ) -> AndroidChainBuilder<'_> {
        self.ca.chain(provisioning, spec, NOW)
    }

    fn remote(&self, spec: &KeyDescriptionSpec) -> AndroidAttestation {
        self.builder(AndroidProvisioning::Remote, spec).build()
    }

    fn factory(&self, spec: &KeyDescriptionSpec) -> AndroidAttestation {
        self.builder(AndroidProvisioning::Factory, spec).build()
    }

    fn verify_with(
        &self,
        chain: &[&[u8]],
        policy: AndroidPolicy,
        revocation: Revocation<'_>,
        time: UnixTime,
    ) -> Result<VerifiedAndroidKey, AndroidError> {
        let app = app();
        let mut request = AndroidRequest::new(CHALLENGE, &app, revocation, time);
        request.policy = policy;
        self.verifier.verify(chain, &request)
    }

    fn verify(&self, attestation: &AndroidAttestation) -> Result<VerifiedAndroidKey, AndroidError> {
        self.verify_with(
            &attestation.x5c(),
            AndroidPolicy::default(),
            Revocation::Skip,
            at(NOW),
        )
    }

    fn code(&self, attestation: &AndroidAttestation) -> &'static str {
        match self.verify(attestation) {
            Ok(_) => "valid",
            Err(e) => e.code(),
        }
    }
}

fn code_of(result: Result<VerifiedAndroidKey, AndroidError>) -> &'static str {
    match result {
        Ok(_) => "valid",
        Err(e) => e.code(),
    }
}

// ---- valid chains ------------------------------------------------------------------------

#[test]
fn factory_and_remote_chains_verify_with_their_evidence() {
    let fx = Fixture::new();
    for (provisioning, expected) in [
        (AndroidProvisioning::Factory, Provisioning::Factory),
        (AndroidProvisioning::Remote, Provisioning::Remote),
    ] {
        let attestation = fx.builder(provisioning, &kd()).build();
        let key = fx.verify(&attestation).unwrap();
        assert_eq!(key.provisioning(), expected);
        assert_eq!(key.anchor(), TrustAnchor::Configured);
        let (_, leaf) = x509_parser::parse_x509_certificate(&attestation.chain[0]).unwrap();
        assert_eq!(key.public_key(), leaf.public_key().raw);
        assert_eq!(
            key.key_id().as_slice(),
            digest(&SHA256, key.public_key()).as_ref()
        );
        assert_eq!(key.attestation_version(), 300);
        assert_eq!(key.verified_boot_state(), Some(VerifiedBootState::Verified));
        assert_eq!(key.device_locked(), Some(true));
        assert_eq!(key.verified_boot_key(), Some(&[0x5a; 32][..]));
        assert_eq!(key.os_version(), Some(140_000));
        assert_eq!(key.os_patch_level(), Some(202_409));
        assert_eq!(key.vendor_patch_level(), Some(20_240_905));
        assert_eq!(key.boot_patch_level(), Some(20_240_905));
        assert_eq!(key.package_names(), vec![PACKAGE]);
        assert_eq!(key.signing_digests(), vec![&DIGEST[..]]);
        assert_eq!(key.purposes(), &[purpose::SIGN, purpose::VERIFY]);
        assert!(key.challenge_checked() && key.app_checked() && !key.revocation_checked());
        // The attested key signs requests the way Android's SHA256withECDSA does.
        let signature = attestation.sign(b"payload");
        UnparsedPublicKey::new(
            &ECDSA_P256_SHA256_ASN1,
            leaf.public_key().subject_public_key.data.as_ref(),
        )
        .verify(b"payload", &signature)
        .unwrap();
    }
}

#[test]
fn the_root_may_be_left_out() {
    let fx = Fixture::new();
    let mut builder = fx.builder(AndroidProvisioning::Remote, &kd());
    builder.include_root = false;
    let attestation = builder.build();
    assert_eq!(attestation.chain.len(), 4);
    assert_eq!(fx.code(&attestation), "valid");
}

#[test]
fn an_issuer_marked_ca_false_without_key_cert_sign_is_accepted() {
    let fx = Fixture::new();
    let attestation = fx.factory(&kd());
    let (_, issuer) = x509_parser::parse_x509_certificate(&attestation.chain[1]).unwrap();
    assert!(!issuer.basic_constraints().unwrap().unwrap().value.ca);
    assert!(!issuer.key_usage().unwrap().unwrap().value.key_cert_sign());
    assert_eq!(fx.code(&attestation), "valid");
}

#[test]
fn tolerated_quirks_boolean_01_unordered_and_unknown_tags_unknown_algorithm() {
    let fx = Fixture::new();
    let mut spec = kd();
    let mut rot = RootOfTrustSpec::verified_locked();
    rot.true_byte = 0x01;
    spec.set(true, AuthTag::root_of_trust(&rot));
    spec.hardware_enforced.reverse();
    spec.set(true, AuthTag::flag(9999));
    spec.set(true, AuthTag::algorithm(4));
    let key = fx.verify(&fx.remote(&spec)).unwrap();
    assert_eq!(key.device_locked(), Some(true));
    let hardware = &key.key_description().hardware_enforced;
    assert!(!hardware.tags_in_order);
    assert_eq!(hardware.unknown_tags, vec![9999]);
    assert_eq!(hardware.algorithm, Some(4));
}

#[test]
fn issuer_names_compare_with_case_and_spaces_folded() {
    let fx = Fixture::new();
    let mut builder = fx.builder(AndroidProvisioning::Remote, &kd());
    // The attestation certificate names "droid  ca3, google llc" for "Droid CA3, Google LLC".
    builder.cert(1).issuer_override = Some(vec![
        (vec![2, 5, 4, 3], "droid  ca3".to_owned()),
        (vec![2, 5, 4, 10], "GOOGLE LLC ".to_owned()),
    ]);
    assert_eq!(fx.code(&builder.build()), "valid");
    // A different attribute order is a different name.
    builder.cert(1).issuer_override = Some(vec![
        (vec![2, 5, 4, 10], "Google LLC".to_owned()),
        (vec![2, 5, 4, 3], "Droid CA3".to_owned()),
    ]);
    assert_eq!(
        fx.verify(&builder.build()).unwrap_err(),
        AndroidError::CertificateChainInvalid(ChainFailure::NameChaining { index: 1 })
    );
}

#[test]
fn the_leafs_validity_is_never_checked() {
    let fx = Fixture::new();
    let mut builder = fx.builder(AndroidProvisioning::Remote, &kd());
    // An emulator-like leaf whose validity ends before it starts, and far in the future.
    builder.cert(0).not_before = datetime!(2030-01-01 00:00 UTC);
    builder.cert(0).not_after = datetime!(2000-01-01 00:00 UTC);
    assert_eq!(fx.code(&builder.build()), "valid");
}

// ---- 1. malformed --------------------------------------------------------------------------

#[test]
fn malformed_chains() {
    let fx = Fixture::new();
    let good = fx.remote(&kd());
    let leaf_only = [good.chain[0].as_slice()];
    let garbage: [&[u8]; 2] = [b"not a certificate", &good.chain[1]];
    let too_many: Vec<&[u8]> = std::iter::repeat_n(good.chain[0].as_slice(), 17).collect();
    let huge = vec![0x30; 20_000];
    let oversized: [&[u8]; 2] = [&huge, &good.chain[1]];
    for chain in [&leaf_only[..], &[], &garbage, &too_many, &oversized] {
        let result = fx.verify_with(chain, AndroidPolicy::default(), Revocation::Skip, at(NOW));
        assert_eq!(code_of(result), "malformed");
    }
}

// ---- 2. chain ------------------------------------------------------------------------------

#[test]
fn chains_that_do_not_lead_to_the_root() {
    let fx = Fixture::new();
    // Another root.
    let other = AndroidCa::generate();
    let foreign = other.chain(AndroidProvisioning::Remote, &kd(), NOW).build();
    assert_eq!(
        fx.verify(&foreign).unwrap_err(),
        AndroidError::CertificateChainInvalid(ChainFailure::UnknownIssuer)
    );
    // A tampered leaf signature.
    let mut tampered = fx.remote(&kd());
    let leaf = tampered.chain[0].last_mut().unwrap();
    *leaf ^= 0x01;
    assert_eq!(
        fx.verify(&tampered).unwrap_err(),
        AndroidError::CertificateChainInvalid(ChainFailure::BadSignature { index: 0 })
    );
    // A leaf naming the wrong issuer.
    let mut builder = fx.builder(AndroidProvisioning::Remote, &kd());
    builder.cert(0).issuer_override = Some(vec![(vec![2, 5, 4, 3], "someone else".to_owned())]);
    assert_eq!(
        fx.verify(&builder.build()).unwrap_err(),
        AndroidError::CertificateChainInvalid(ChainFailure::NameChaining { index: 0 })
    );
    // A missing intermediate.
    let mut missing = fx.remote(&kd());
    missing.chain.remove(2);
    assert_eq!(fx.code(&missing), "certificate_chain_invalid");
    // Root first.
    let mut reversed = fx.remote(&kd());
    reversed.chain.reverse();
    assert_eq!(
        fx.verify(&reversed).unwrap_err(),
        AndroidError::CertificateChainInvalid(ChainFailure::TooShort)
    );
    // Google's real roots do not vouch for the simulator.
    let google = AndroidVerifier::google();
    let app = app();
    let request = AndroidRequest::new(CHALLENGE, &app, Revocation::Skip, at(NOW));
    assert_eq!(
        google
            .verify(&fx.remote(&kd()).x5c(), &request)
            .unwrap_err()
            .code(),
        "certificate_chain_invalid"
    );
}

// ---- 3. software root: only real chains end there (its key is AOSP's); see android_vectors.rs

// ---- 4. key description ------------------------------------------------------------------

#[test]
fn key_description_missing_or_unparseable() {
    let fx = Fixture::new();
    for value in [
        None,
        Some(vec![0x30, 0x03, 0x02, 0x01]),
        Some(vec![0x04, 0x00]),
        Some(b"garbage".to_vec()),
    ] {
        let mut builder = fx.builder(AndroidProvisioning::Remote, &kd());
        builder.key_description(value);
        assert_eq!(fx.code(&builder.build()), "key_description_missing");
    }
    // A tag given twice.
    let mut spec = kd();
    spec.hardware_enforced.push(AuthTag::origin(2));
    assert_eq!(fx.code(&fx.remote(&spec)), "key_description_missing");
}

// ---- 5. chain extended ---------------------------------------------------------------------

#[test]
fn a_key_description_above_the_leaf_extends_the_chain() {
    let fx = Fixture::new();
    // A fake leaf signed by an attested signing key (the chain-extension attack).
    let mut signing = kd();
    signing.set(true, AuthTag::purpose(&[purpose::SIGN]));
    let mut builder = fx.builder(AndroidProvisioning::Remote, &kd());
    builder.attest_key(&signing);
    for policy in [
        AndroidPolicy::default(),
        AndroidPolicy {
            allow_attest_key: true,
            ..Default::default()
        },
    ] {
        let result = fx.verify_with(&builder.build().x5c(), policy, Revocation::Skip, at(NOW));
        assert_eq!(
            result.unwrap_err(),
            AndroidError::ChainExtended(ExtendedBy::KeyDescriptionAboveLeaf { index: 1 })
        );
    }
}

#[test]
fn attest_key_chains_only_when_the_policy_allows_them() {
    let fx = Fixture::new();
    let mut attest_key = kd();
    attest_key.set(true, AuthTag::purpose(&[purpose::ATTEST_KEY]));
    let mut builder = fx.builder(AndroidProvisioning::Remote, &kd());
    builder.attest_key(&attest_key);
    let chain = builder.build();
    let refused = fx.verify_with(
        &chain.x5c(),
        AndroidPolicy::default(),
        Revocation::Skip,
        at(NOW),
    );
    assert_eq!(code_of(refused), "chain_extended");
    let allowed = AndroidPolicy {
        allow_attest_key: true,
        ..AndroidPolicy::default()
    };
    let key = fx
        .verify_with(&chain.x5c(), allowed, Revocation::Skip, at(NOW))
        .unwrap();
    assert_eq!(key.attest_key_certificates(), 1);
    // Two are fine too; an ATTEST_KEY certificate that is not right above the leaf is not.
    builder.attest_key(&attest_key);
    assert!(
        fx.verify_with(&builder.build().x5c(), allowed, Revocation::Skip, at(NOW))
            .is_ok()
    );
    let mut signing = kd();
    signing.set(true, AuthTag::purpose(&[purpose::SIGN]));
    // leaf, SIGN attestation, ATTEST_KEY attestation: the SIGN one right above the leaf fails.
    let mut builder = fx.builder(AndroidProvisioning::Remote, &kd());
    builder.attest_key(&attest_key).attest_key(&signing);
    let result = fx.verify_with(&builder.build().x5c(), allowed, Revocation::Skip, at(NOW));
    assert_eq!(
        result.unwrap_err(),
        AndroidError::ChainExtended(ExtendedBy::KeyDescriptionAboveLeaf { index: 1 })
    );
    // leaf, ATTEST_KEY, SIGN: the ATTEST_KEY prefix ends at 1, the SIGN one at 2 fails.
    builder.certs.swap(1, 2);
    let result = fx.verify_with(&builder.build().x5c(), allowed, Revocation::Skip, at(NOW));
    assert_eq!(
        result.unwrap_err(),
        AndroidError::ChainExtended(ExtendedBy::KeyDescriptionAboveLeaf { index: 2 })
    );
}

#[test]
fn longer_than_the_provisioning_type_or_anything_after_the_root() {
    let fx = Fixture::new();
    // A factory chain with a second batch intermediate.
    let mut builder = fx.builder(AndroidProvisioning::Factory, &kd());
    let extra = builder.certs[2].clone();
    builder.certs.insert(2, extra);
    assert_eq!(
        fx.verify(&builder.build()).unwrap_err(),
        AndroidError::ChainExtended(ExtendedBy::TooLong {
            found: 4,
            allowed: 3
        })
    );
    // A certificate after the root.
    let mut builder = fx.builder(AndroidProvisioning::Remote, &kd());
    builder.trailing = vec![fx.factory(&kd()).chain[0].clone()];
    assert_eq!(
        fx.verify(&builder.build()).unwrap_err(),
        AndroidError::ChainExtended(ExtendedBy::AfterRoot { count: 1 })
    );
    // Without the root, the extra certificate sits right after the top intermediate.
    builder.include_root = false;
    assert_eq!(
        fx.verify(&builder.build()).unwrap_err(),
        AndroidError::ChainExtended(ExtendedBy::AfterRoot { count: 1 })
    );
}

// ---- 6. validity ----------------------------------------------------------------------------

#[test]
fn googles_time_rules() {
    let fx = Fixture::new();
    let later = at(NOW + time::Duration::days(400 * 11));
    // Remote chains: an expired intermediate fails.
    let remote = fx.remote(&kd());
    let result = fx.verify_with(
        &remote.x5c(),
        AndroidPolicy::default(),
        Revocation::Skip,
        later,
    );
    assert_eq!(
        result.unwrap_err(),
        AndroidError::CertificateExpired {
            index: 1,
            failure: ValidityFailure::Expired
        }
    );
    // Factory chains: expiry is tolerated (their keys cannot be rotated)...
    let factory = fx.factory(&kd());
    assert!(
        fx.verify_with(
            &factory.x5c(),
            AndroidPolicy::default(),
            Revocation::Skip,
            later
        )
        .is_ok()
    );
    // ... but not-yet-valid never is.
    let early = at(NOW - time::Duration::days(400));
    for chain in [&factory, &remote] {
        let result = fx.verify_with(
            &chain.x5c(),
            AndroidPolicy::default(),
            Revocation::Skip,
            early,
        );
        assert_eq!(
            result.unwrap_err(),
            AndroidError::CertificateExpired {
                index: 1,
                failure: ValidityFailure::NotYetValid
            }
        );
    }
    // Only the top intermediate expired, on a remote chain.
    let mut builder = fx.builder(AndroidProvisioning::Remote, &kd());
    builder.cert(3).not_after = NOW - time::Duration::days(1);
    assert_eq!(
        fx.verify(&builder.build()).unwrap_err(),
        AndroidError::CertificateExpired {
            index: 3,
            failure: ValidityFailure::Expired
        }
    );
    // The root's own certificate is not looked at: this one expired, the key still anchors.
    // (The real 2016 Google root certificate is the case in android_vectors.rs.)
}

// ---- 7. revocation --------------------------------------------------------------------------

fn list_of(serials: &[(&str, RevocationStatus)], fetched: OffsetDateTime) -> RevocationList {
    RevocationList::from_entries(
        serials
            .iter()
            .map(|(s, status)| ((*s).to_owned(), RevocationEntry::new(status.clone()))),
        at(fetched),
    )
}

fn serial_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    attest_core::android::revocation::serial_hex(cert.raw_serial())
}

#[test]
fn listed_certificates_and_stale_lists_fail_closed() {
    let fx = Fixture::new();
    let chain = fx.remote(&kd());
    let day = Duration::from_secs(86_400);
    let serial = serial_of(&chain.chain[2]);
    for status in [
        RevocationStatus::Revoked,
        RevocationStatus::Suspended,
        RevocationStatus::Other("NEW".into()),
    ] {
        // The list spells the serial in upper case with a leading zero.
        let spelled = format!("00{}", serial.to_uppercase());
        let list = list_of(&[(&spelled, status.clone())], NOW);
        let result = fx.verify_with(
            &chain.x5c(),
            AndroidPolicy::default(),
            Revocation::Check {
                list: &list,
                max_age: day,
            },
            at(NOW),
        );
        assert_eq!(
            result.unwrap_err(),
            AndroidError::CertificateRevoked {
                index: 2,
                serial: serial.clone(),
                status
            }
        );
    }
    // The leaf's serial counts too.
    let leaf_list = list_of(&[("1", RevocationStatus::Revoked)], NOW);
    let result = fx.verify_with(
        &chain.x5c(),
        AndroidPolicy::default(),
        Revocation::Check {
            list: &leaf_list,
            max_age: day,
        },
        at(NOW),
    );
    assert_eq!(code_of(result), "certificate_revoked");
    // A list that does not name the chain passes, and says it was consulted.
    let other = list_of(&[("abcdef", RevocationStatus::Revoked)], NOW);
    let key = fx
        .verify_with(
            &chain.x5c(),
            AndroidPolicy::default(),
            Revocation::Check {
                list: &other,
                max_age: day,
            },
            at(NOW),
        )
        .unwrap();
    assert!(key.revocation_checked());
    // Too old: fail closed, whatever the list says.
    let stale = list_of(&[], NOW - time::Duration::days(2));
    let result = fx.verify_with(
        &chain.x5c(),
        AndroidPolicy::default(),
        Revocation::Check {
            list: &stale,
            max_age: day,
        },
        at(NOW),
    );
    assert_eq!(
        result.unwrap_err(),
        AndroidError::RevocationListStale {
            age_secs: 2 * 86_400,
            max_age_secs: 86_400
        }
    );
}

#[test]
fn chains_under_an_extra_root_are_not_looked_up_in_googles_list() {
    let ca = AndroidCa::generate();
    let verifier = AndroidVerifier::with_extra_roots(vec![ca.root_der().to_vec()]).unwrap();
    let chain = ca.chain(AndroidProvisioning::Remote, &kd(), NOW).build();
    let everything = list_of(
        &[(&serial_of(&chain.chain[1]), RevocationStatus::Revoked)],
        NOW - time::Duration::days(30),
    );
    let app = app();
    let request = AndroidRequest::new(
        CHALLENGE,
        &app,
        Revocation::Check {
            list: &everything,
            max_age: Duration::from_secs(60),
        },
        at(NOW),
    );
    let key = verifier.verify(&chain.x5c(), &request).unwrap();
    assert_eq!(key.anchor(), TrustAnchor::Extra);
    assert!(!key.revocation_checked());
}

// ---- 8. challenge ---------------------------------------------------------------------------

#[test]
fn challenge_mismatch_and_the_explicit_skip() {
    let fx = Fixture::new();
    let mut spec = kd();
    spec.challenge = b"another challenge".to_vec();
    let chain = fx.remote(&spec);
    assert_eq!(
        fx.verify(&chain).unwrap_err(),
        AndroidError::ChallengeMismatch
    );
    let app = app();
    let mut request = AndroidRequest::new(CHALLENGE, &app, Revocation::Skip, at(NOW));
    request.challenge = None;
    let key = fx.verifier.verify(&chain.x5c(), &request).unwrap();
    assert!(!key.challenge_checked());
}

// ---- 9. security level ----------------------------------------------------------------------

#[test]
fn security_levels() {
    let fx = Fixture::new();
    let with_levels = |attestation: u64, keymint: u64| {
        let mut spec = kd();
        spec.attestation_security_level = attestation;
        spec.keymint_security_level = keymint;
        fx.remote(&spec)
    };
    assert_eq!(
        fx.code(&with_levels(level::SOFTWARE, level::SOFTWARE)),
        "security_level_insufficient"
    );
    assert_eq!(
        fx.code(&with_levels(level::TEE, level::STRONG_BOX)),
        "security_level_insufficient"
    );
    assert_eq!(
        fx.code(&with_levels(level::STRONG_BOX, level::STRONG_BOX)),
        "valid"
    );
    assert_eq!(fx.code(&with_levels(7, 7)), "security_level_insufficient");
    let strongbox = AndroidPolicy {
        min_security_level: MinSecurityLevel::StrongBox,
        ..Default::default()
    };
    let tee = with_levels(level::TEE, level::TEE);
    assert_eq!(
        code_of(fx.verify_with(&tee.x5c(), strongbox, Revocation::Skip, at(NOW))),
        "security_level_insufficient"
    );
    let sb = with_levels(level::STRONG_BOX, level::STRONG_BOX);
    assert_eq!(
        code_of(fx.verify_with(&sb.x5c(), strongbox, Revocation::Skip, at(NOW))),
        "valid"
    );
}

// ---- 10. origin / 11. root of trust ---------------------------------------------------------

#[test]
fn imported_keys_and_a_missing_root_of_trust() {
    let fx = Fixture::new();
    let mut imported = kd();
    imported.set(true, AuthTag::origin(2));
    assert_eq!(
        fx.verify(&fx.remote(&imported)).unwrap_err(),
        AndroidError::KeyOriginInvalid
    );
    // Origin claimed only by software.
    let mut soft_origin = kd();
    soft_origin.remove(true, 702).set(false, AuthTag::origin(0));
    assert_eq!(fx.code(&fx.remote(&soft_origin)), "key_origin_invalid");
    // Root of trust only in softwareEnforced (what software KeyMint writes).
    let mut soft_rot = kd();
    soft_rot.remove(true, 704).set(
        false,
        AuthTag::root_of_trust(&RootOfTrustSpec::verified_locked()),
    );
    assert_eq!(
        fx.verify(&fx.remote(&soft_rot)).unwrap_err(),
        AndroidError::RootOfTrustMissing
    );
}

// ---- 12. package ----------------------------------------------------------------------------

#[test]
fn package_and_signing_certificates() {
    let fx = Fixture::new();
    let chain = fx.remote(&kd());
    let run = |app: &ExpectedApp| {
        let request = AndroidRequest::new(CHALLENGE, app, Revocation::Skip, at(NOW));
        fx.verifier.verify(&chain.x5c(), &request)
    };
    let wrong_package = ExpectedApp {
        package_names: vec!["com.example.other".into()],
        ..app()
    };
    assert_eq!(
        run(&wrong_package).unwrap_err(),
        AndroidError::PackageMismatch(PackageFailure::Package)
    );
    let wrong_digest = ExpectedApp {
        signing_digests: Some(vec![[0xee; 32]]),
        ..app()
    };
    assert_eq!(
        run(&wrong_digest).unwrap_err(),
        AndroidError::PackageMismatch(PackageFailure::SigningCertificate)
    );
    // Any accepted name matches; a rotation list holding old and new digests accepts either.
    let variants = ExpectedApp {
        package_names: vec!["com.example.debug".into(), PACKAGE.into()],
        signing_digests: Some(vec![[0xee; 32], DIGEST]),
    };
    assert!(run(&variants).is_ok());
    assert!(
        run(&ExpectedApp {
            signing_digests: None,
            ..app()
        })
        .is_ok()
    );
    assert_eq!(
        run(&ExpectedApp {
            package_names: vec![],
            ..app()
        })
        .unwrap_err()
        .code(),
        "invalid_argument"
    );
    // An app signed by an allowed and an unknown certificate is not the app.
    let mut two_signers = kd();
    two_signers.set(
        false,
        AuthTag::application_id(&[(PACKAGE, 1)], &[DIGEST.to_vec(), vec![0xee; 32]]),
    );
    assert_eq!(fx.code(&fx.remote(&two_signers)), "package_mismatch");
    // No attestationApplicationId at all.
    let mut anonymous = kd();
    anonymous.remove(false, 709);
    assert_eq!(
        fx.verify(&fx.remote(&anonymous)).unwrap_err(),
        AndroidError::PackageMismatch(PackageFailure::NoApplicationId)
    );
    // Skipped on request: any app.
    let mut request = AndroidRequest::new(CHALLENGE, &wrong_package, Revocation::Skip, at(NOW));
    request.app = None;
    assert!(
        !fx.verifier
            .verify(&fx.remote(&anonymous).x5c(), &request)
            .unwrap()
            .app_checked()
    );
}

// ---- 13. verified boot ----------------------------------------------------------------------

#[test]
fn verified_boot_only_when_required() {
    let fx = Fixture::new();
    let required = AndroidPolicy {
        require_verified_boot: true,
        ..Default::default()
    };
    let with_root = |root: RootOfTrustSpec| {
        let mut spec = kd();
        spec.set(true, AuthTag::root_of_trust(&root));
        fx.remote(&spec)
    };
    let unlocked = with_root(RootOfTrustSpec::unlocked());
    assert_eq!(fx.code(&unlocked), "valid");
    assert_eq!(
        fx.verify_with(&unlocked.x5c(), required, Revocation::Skip, at(NOW))
            .unwrap_err(),
        AndroidError::VerifiedBootRequired {
            state: VerifiedBootState::Unverified,
            locked: false
        }
    );
    let custom_rom = with_root(RootOfTrustSpec {
        verified_boot_state: 1,
        ..RootOfTrustSpec::verified_locked()
    });
    assert_eq!(
        code_of(fx.verify_with(&custom_rom.x5c(), required, Revocation::Skip, at(NOW))),
        "verified_boot_required"
    );
    let verified_unlocked = with_root(RootOfTrustSpec {
        device_locked: false,
        ..RootOfTrustSpec::verified_locked()
    });
    assert_eq!(
        code_of(fx.verify_with(
            &verified_unlocked.x5c(),
            required,
            Revocation::Skip,
            at(NOW)
        )),
        "verified_boot_required"
    );
    let locked = with_root(RootOfTrustSpec::verified_locked());
    assert!(
        fx.verify_with(&locked.x5c(), required, Revocation::Skip, at(NOW))
            .is_ok()
    );
}

// ---- order and cache ------------------------------------------------------------------------

#[test]
fn the_first_failing_check_is_the_one_reported() {
    let fx = Fixture::new();
    let mut everything_wrong = kd();
    everything_wrong.challenge = b"other".to_vec();
    everything_wrong.attestation_security_level = level::SOFTWARE;
    everything_wrong.set(true, AuthTag::origin(2));
    everything_wrong.remove(true, 704);
    everything_wrong.set(
        false,
        AuthTag::application_id(&[("com.evil", 1)], &[vec![0; 32]]),
    );
    let chain = fx.remote(&everything_wrong);
    let later = at(NOW + time::Duration::days(4000));
    let expired = fx.verify_with(
        &chain.x5c(),
        AndroidPolicy::default(),
        Revocation::Skip,
        later,
    );
    assert_eq!(code_of(expired), "certificate_expired");
    assert_eq!(fx.code(&chain), "challenge_mismatch");
    let mut no_challenge = everything_wrong.clone();
    no_challenge.challenge = CHALLENGE.to_vec();
    assert_eq!(
        fx.code(&fx.remote(&no_challenge)),
        "security_level_insufficient"
    );
    no_challenge.attestation_security_level = level::TEE;
    assert_eq!(fx.code(&fx.remote(&no_challenge)), "key_origin_invalid");
    no_challenge.set(true, AuthTag::origin(0));
    assert_eq!(fx.code(&fx.remote(&no_challenge)), "root_of_trust_missing");
    no_challenge.set(true, AuthTag::root_of_trust(&RootOfTrustSpec::unlocked()));
    assert_eq!(fx.code(&fx.remote(&no_challenge)), "package_mismatch");
}

#[test]
fn a_warm_cache_gives_the_same_answers() {
    let fx = Fixture::new();
    let chain = fx.remote(&kd());
    let cold = fx.verify(&chain).unwrap();
    let edges = fx.verifier.walker().cached_edges();
    assert_eq!(edges, 3, "the three signatures above the leaf");
    let warm = fx.verify(&chain).unwrap();
    assert_eq!(cold, warm);
    assert_eq!(fx.verifier.walker().cached_edges(), edges);
    // A leaf re-signed by another key under the same (cached) intermediates still fails.
    let mut forged = chain.clone();
    forged.chain[0] = fx.remote(&kd()).chain[0].clone();
    assert_eq!(fx.code(&forged), "certificate_chain_invalid");
    // And so does an attestation certificate whose cached edge does not apply.
    let mut swapped = fx.remote(&kd());
    swapped.chain[2] = chain.chain[2].clone();
    assert_eq!(fx.code(&swapped), "certificate_chain_invalid");
}
