//! Property tests for the Android verifier: no byte string makes the KeyDescription parser, the
//! chain walker, the verifier or the status-list parser panic; encoded KeyDescriptions parse
//! back to what was encoded, in any tag order.

use std::sync::OnceLock;
use std::time::Duration;

use attest_core::UnixTime;
use attest_core::android::{
    AndroidPolicy, AndroidRequest, AndroidVerifier, ExpectedApp, KeyDescription, KeyOrigin,
    Revocation, RevocationList, SecurityLevel,
};
use attest_sim::android::{AuthTag, KeyDescriptionSpec, RootOfTrustSpec};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use proptest::prelude::*;

/// Real chains from the vectors (leaf first), to mutate.
fn real_chains() -> &'static [Vec<Vec<u8>>] {
    static CHAINS: OnceLock<Vec<Vec<Vec<u8>>>> = OnceLock::new();
    CHAINS.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/android/key_attestation");
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| {
                let record: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
                record["x5c"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| B64.decode(c.as_str().unwrap()).unwrap())
                    .collect()
            })
            .collect()
    })
}

fn verifier() -> &'static AndroidVerifier {
    static VERIFIER: OnceLock<AndroidVerifier> = OnceLock::new();
    VERIFIER.get_or_init(AndroidVerifier::google)
}

fn verify_any(chain: &[&[u8]]) {
    let app = ExpectedApp {
        package_names: vec!["com.example".into()],
        signing_digests: Some(vec![[0; 32]]),
    };
    let list = RevocationList::from_entries([], UnixTime::since_unix_epoch(Duration::ZERO));
    let mut request = AndroidRequest::new(
        b"challenge",
        &app,
        Revocation::Check {
            list: &list,
            max_age: Duration::MAX,
        },
        UnixTime::since_unix_epoch(Duration::from_secs(1_750_000_000)),
    );
    request.policy = AndroidPolicy {
        allow_attest_key: true,
        require_verified_boot: true,
        ..AndroidPolicy::default()
    };
    let _ = verifier().verify(chain, &request);
    let _ = verifier().walker().walk(chain);
}

/// Arbitrary bytes as a chain: a count byte, then 2-byte big-endian length prefixes.
fn split(data: &[u8]) -> Vec<&[u8]> {
    let Some((&count, mut rest)) = data.split_first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for _ in 0..(count % 9) {
        if rest.len() < 2 {
            break;
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        out.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    out
}

fn spec_strategy() -> impl Strategy<Value = (KeyDescriptionSpec, u64, u64, bool, u8)> {
    (
        prop::collection::vec(any::<u8>(), 0..80),
        0u64..4,
        0u64..1_000,
        prop::collection::vec(0u64..8, 0..5),
        any::<u64>(),
        any::<bool>(),
        0u8..5,
        prop::collection::vec("[a-z.]{1,30}", 1..4),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 32), 0..3),
    )
        .prop_map(
            |(challenge, level, version, purposes, os, locked, state, packages, digests)| {
                let mut spec = KeyDescriptionSpec::new(&challenge, &packages[0], &[0; 32]);
                spec.attestation_security_level = level;
                spec.keymint_version = version;
                spec.set(true, AuthTag::purpose(&purposes));
                spec.set(true, AuthTag::integer(705, os));
                let root = RootOfTrustSpec {
                    device_locked: locked,
                    verified_boot_state: state,
                    ..RootOfTrustSpec::verified_locked()
                };
                spec.set(true, AuthTag::root_of_trust(&root));
                let named: Vec<(&str, u64)> = packages.iter().map(|p| (p.as_str(), 7)).collect();
                spec.set(false, AuthTag::application_id(&named, &digests));
                (spec, level, os, locked, state)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn key_description_parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = KeyDescription::parse(&bytes);
        let _ = KeyDescription::of_certificate(&bytes);
    }

    #[test]
    fn mutated_real_key_descriptions_never_panic(
        record in 0usize..61,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let leaf = &real_chains()[record][0];
        let mut bytes = leaf.clone();
        for (at, value) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= value;
        }
        let _ = KeyDescription::of_certificate(&bytes);
        let _ = KeyDescription::of_certificate(&bytes[..cut.index(bytes.len())]);
    }

    #[test]
    fn arbitrary_chains_never_panic(data in prop::collection::vec(any::<u8>(), 0..4096)) {
        verify_any(&split(&data));
    }

    #[test]
    fn mutated_real_chains_never_panic(
        record in 0usize..61,
        cert in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        drop in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut chain = real_chains()[record].clone();
        let target = cert.index(chain.len());
        for (at, value) in &flips {
            let len = chain[target].len();
            chain[target][at.index(len)] ^= value;
        }
        if let Some(drop) = drop {
            let len = chain.len();
            chain.remove(drop.index(len));
        }
        let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
        verify_any(&refs);
    }

    #[test]
    fn status_list_parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), text in "\\PC{0,200}") {
        let at = UnixTime::since_unix_epoch(Duration::ZERO);
        let _ = RevocationList::parse(&bytes, at);
        let _ = RevocationList::parse(text.as_bytes(), at);
        let _ = RevocationList::parse(format!("{{\"entries\": {{\"{text}\": {{\"status\": \"{text}\"}}}}}}").as_bytes(), at);
    }

    /// What the simulator encodes, the parser reads back; shuffling the hardware list changes
    /// nothing but `tags_in_order`.
    #[test]
    fn encoded_key_descriptions_parse_back(
        (spec, level, os, locked, state) in spec_strategy(),
        seed in any::<u64>(),
    ) {
        let kd = KeyDescription::parse(&spec.encode()).unwrap();
        prop_assert_eq!(&kd.attestation_challenge, &spec.challenge);
        let expected_level = match level { 0 => SecurityLevel::Software, 1 => SecurityLevel::TrustedEnvironment, 2 => SecurityLevel::StrongBox, n => SecurityLevel::Unknown(n) };
        prop_assert_eq!(kd.attestation_security_level, expected_level);
        prop_assert_eq!(kd.keymint_version, spec.keymint_version);
        prop_assert_eq!(kd.hardware_enforced.os_version, Some(os));
        prop_assert_eq!(kd.hardware_enforced.origin, Some(KeyOrigin::Generated));
        let root = kd.hardware_enforced.root_of_trust.clone().unwrap();
        prop_assert_eq!(root.device_locked, locked);
        prop_assert_eq!(root.verified_boot_state.as_str(), ["verified", "self_signed", "unverified", "failed", "unknown"][usize::from(state)]);
        let app = kd.application_id().unwrap();
        prop_assert!(!app.packages.is_empty());
        prop_assert!(kd.hardware_enforced.tags_in_order);

        let mut shuffled = spec.clone();
        let n = shuffled.hardware_enforced.len();
        let mut state = seed;
        for i in (1..n).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.hardware_enforced.swap(i, (state >> 33) as usize % (i + 1));
        }
        let reordered = KeyDescription::parse(&shuffled.encode()).unwrap();
        let mut hardware = reordered.hardware_enforced.clone();
        hardware.tags_in_order = true;
        prop_assert_eq!(&hardware, &kd.hardware_enforced);
    }
}
