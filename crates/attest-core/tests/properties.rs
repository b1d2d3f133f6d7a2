//! Property tests: authenticator data and CBOR objects survive encode → parse round trips,
//! and no byte string makes a parser panic.

use attest_core::apple::Aaguid;
use attest_core::apple::assertion::AssertionObject;
use attest_core::apple::attestation::AttestationObject;
use attest_core::apple::authenticator_data::{
    AuthenticatorData, Context, ExtensionValue, FLAG_EXTENSION_DATA,
};
use minicbor::Encoder;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Model {
    rp_id_hash: [u8; 32],
    flags: u8,
    counter: u32,
    aaguid: [u8; 16],
    credential_id: Vec<u8>,
    x: [u8; 32],
    y: [u8; 32],
    extensions: Vec<(String, Ext)>,
}

#[derive(Debug, Clone)]
enum Ext {
    Text(String),
    Bytes(Vec<u8>),
    Int(i64),
}

fn encode_cose(x: &[u8; 32], y: &[u8; 32]) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    e.map(5).unwrap();
    e.i8(1).unwrap().i8(2).unwrap();
    e.i8(3).unwrap().i8(-7).unwrap();
    e.i8(-1).unwrap().i8(1).unwrap();
    e.i8(-2).unwrap().bytes(x).unwrap();
    e.i8(-3).unwrap().bytes(y).unwrap();
    e.into_writer()
}

fn encode_extensions(entries: &[(String, Ext)]) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    e.map(entries.len() as u64).unwrap();
    for (key, value) in entries {
        e.str(key).unwrap();
        match value {
            Ext::Text(t) => e.str(t).unwrap(),
            Ext::Bytes(b) => e.bytes(b).unwrap(),
            Ext::Int(i) => e.i64(*i).unwrap(),
        };
    }
    e.into_writer()
}

impl Model {
    fn encode(&self, context: Context) -> Vec<u8> {
        let mut out = self.rp_id_hash.to_vec();
        out.push(self.flags);
        out.extend_from_slice(&self.counter.to_be_bytes());
        if context == Context::Attestation {
            out.extend_from_slice(&self.aaguid);
            out.extend_from_slice(&(self.credential_id.len() as u16).to_be_bytes());
            out.extend_from_slice(&self.credential_id);
            out.extend_from_slice(&encode_cose(&self.x, &self.y));
        }
        if !self.extensions.is_empty() {
            out.extend_from_slice(&encode_extensions(&self.extensions));
        }
        out
    }
}

fn model() -> impl Strategy<Value = Model> {
    let extension = prop_oneof![
        "[a-z_0-9]{0,12}".prop_map(Ext::Text),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Ext::Bytes),
        any::<i64>().prop_map(Ext::Int),
    ];
    (
        any::<[u8; 32]>(),
        any::<u8>(),
        any::<u32>(),
        prop_oneof![
            Just(*b"appattestdevelop"),
            Just(Aaguid::PRODUCTION.0),
            any::<[u8; 16]>()
        ],
        proptest::collection::vec(any::<u8>(), 0..64),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        proptest::collection::btree_map("[a-z_]{1,24}", extension, 0..4),
    )
        .prop_map(
            |(rp_id_hash, flags, counter, aaguid, credential_id, x, y, extensions)| {
                let extensions: Vec<_> = extensions.into_iter().collect();
                // ED may be set only when extensions follow; otherwise any flag byte is allowed.
                let flags = if extensions.is_empty() {
                    flags & !FLAG_EXTENSION_DATA
                } else {
                    flags
                };
                let flags = flags | 0x40;
                Model {
                    rp_id_hash,
                    flags,
                    counter,
                    aaguid,
                    credential_id,
                    x,
                    y,
                    extensions,
                }
            },
        )
}

fn same_extensions(parsed: &AuthenticatorData<'_>, model: &Model) -> bool {
    match &parsed.extensions {
        None => model.extensions.is_empty(),
        Some(found) => {
            found.entries.len() == model.extensions.len()
                && found
                    .entries
                    .iter()
                    .zip(&model.extensions)
                    .all(|((k, v), (mk, mv))| {
                        k == mk
                            && match (v, mv) {
                                (ExtensionValue::Text(a), Ext::Text(b)) => a == b,
                                (ExtensionValue::Bytes(a), Ext::Bytes(b)) => a == b,
                                (ExtensionValue::Int(a), Ext::Int(b)) => *a == i128::from(*b),
                                _ => false,
                            }
                    })
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn attestation_auth_data_round_trips(model in model()) {
        let bytes = model.encode(Context::Attestation);
        let parsed = AuthenticatorData::parse(&bytes, Context::Attestation).unwrap();
        prop_assert_eq!(parsed.rp_id_hash, model.rp_id_hash);
        prop_assert_eq!(parsed.flags, model.flags);
        prop_assert_eq!(parsed.counter, model.counter);
        let credential = parsed.attested_credential.as_ref().unwrap();
        prop_assert_eq!(credential.aaguid.0, model.aaguid);
        prop_assert_eq!(credential.credential_id, model.credential_id.as_slice());
        prop_assert_eq!(credential.public_key.x, model.x);
        prop_assert_eq!(credential.public_key.y, model.y);
        prop_assert!(same_extensions(&parsed, &model));
        prop_assert_eq!(parsed.raw, bytes.as_slice());
    }

    #[test]
    fn assertion_auth_data_round_trips(model in model()) {
        let bytes = model.encode(Context::Assertion);
        let parsed = AuthenticatorData::parse(&bytes, Context::Assertion).unwrap();
        prop_assert_eq!(parsed.counter, model.counter);
        prop_assert!(parsed.attested_credential.is_none());
        prop_assert!(same_extensions(&parsed, &model));
    }

    #[test]
    fn any_appended_byte_is_rejected(model in model(), extra in any::<u8>()) {
        let mut bytes = model.encode(Context::Attestation);
        if model.extensions.is_empty() {
            // Without extensions an appended byte must parse as a CBOR map, and one byte
            // can only be an empty map (0xa0): that is a valid, empty extension map.
            prop_assume!(extra != 0xa0);
        }
        bytes.push(extra);
        prop_assert!(AuthenticatorData::parse(&bytes, Context::Attestation).is_err());
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = AuthenticatorData::parse(&bytes, Context::Attestation);
        let _ = AuthenticatorData::parse(&bytes, Context::Assertion);
        let _ = AttestationObject::parse(&bytes);
        let _ = AssertionObject::parse(&bytes);
        let _ = attest_core::apple::receipt::parse_receipt(&bytes);
    }

    #[test]
    fn assertion_objects_round_trip(model in model(), signature in proptest::collection::vec(any::<u8>(), 1..80)) {
        let auth_data = model.encode(Context::Assertion);
        let mut e = Encoder::new(Vec::new());
        e.map(2).unwrap();
        e.str("signature").unwrap().bytes(&signature).unwrap();
        e.str("authenticatorData").unwrap().bytes(&auth_data).unwrap();
        let bytes = e.into_writer();
        let parsed = AssertionObject::parse(&bytes).unwrap();
        prop_assert_eq!(parsed.signature, signature.as_slice());
        prop_assert_eq!(parsed.auth_data.raw, auth_data.as_slice());
    }
}
