//! Authenticator data, as App Attest writes it (a WebAuthn layout with Apple's variations).
//!
//! ```text
//! rpIdHash (32) ‖ flags (1) ‖ signCount (4, big-endian)
//!   attestation only: aaguid (16) ‖ credentialIdLength (2) ‖ credentialId ‖ COSE_Key (CBOR map)
//!   optional:         extensions (one CBOR map)
//! ```
//!
//! Apple's variations, each accepted deliberately:
//! - Assertions set the AT flag (0x40) but carry no attested credential data; what follows the
//!   37-byte header is decided by context (attestation or assertion), not by the flag.
//! - iOS 27 appends an extension map (`apple_bundle_version_01`, `apple_validation_category_01`)
//!   **without** setting the ED flag. Exactly one CBOR map is accepted after the fixed part,
//!   whatever the flag says; anything after it is rejected. A set ED flag with no map is rejected.

use super::cbor::Value;
use super::error::AppleError;
use super::types::Aaguid;

/// User present.
pub const FLAG_USER_PRESENT: u8 = 0x01;
/// User verified.
pub const FLAG_USER_VERIFIED: u8 = 0x04;
/// Attested credential data included.
pub const FLAG_ATTESTED_CREDENTIAL_DATA: u8 = 0x40;
/// Extension data included.
pub const FLAG_EXTENSION_DATA: u8 = 0x80;

/// Length of rpIdHash ‖ flags ‖ signCount.
const HEADER_LEN: usize = 37;

/// Upper bound on authenticator data. Apple's are 164 bytes (226 with iOS 27 extensions);
/// 4 KiB leaves room for new extensions while bounding work on hostile input.
pub const MAX_AUTHENTICATOR_DATA_LEN: usize = 4096;

const WHAT: &str = "authenticator data";

/// Parsed authenticator data borrowing from its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthenticatorData<'a> {
    /// SHA-256 of the App ID.
    pub rp_id_hash: [u8; 32],
    /// The flags byte.
    pub flags: u8,
    /// The signature counter.
    pub counter: u32,
    /// Present in attestations.
    pub attested_credential: Option<AttestedCredentialData<'a>>,
    /// The trailing extension map (iOS 27 and later), if any.
    pub extensions: Option<Extensions>,
    /// The exact bytes parsed (these are what the nonce covers).
    pub raw: &'a [u8],
}

/// The attested credential part of attestation authenticator data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedCredentialData<'a> {
    /// Names the environment.
    pub aaguid: Aaguid,
    /// For App Attest, the key id.
    pub credential_id: &'a [u8],
    /// The credential public key from the COSE_Key map.
    pub public_key: CosePublicKey,
}

/// An EC2 P-256 COSE public key (kty 2, crv 1, alg -7 when present).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosePublicKey {
    /// X coordinate.
    pub x: [u8; 32],
    /// Y coordinate.
    pub y: [u8; 32],
}

impl CosePublicKey {
    /// The uncompressed SEC1 point `04 ‖ X ‖ Y`.
    pub fn uncompressed_point(&self) -> [u8; 65] {
        let mut point = [0u8; 65];
        point[0] = 0x04;
        point[1..33].copy_from_slice(&self.x);
        point[33..].copy_from_slice(&self.y);
        point
    }
}

/// The authenticator data extension map, entries in the order found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extensions {
    /// Text-keyed entries.
    pub entries: Vec<(String, ExtensionValue)>,
}

/// A value in the extension map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionValue {
    /// A text string.
    Text(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// An integer.
    Int(i128),
    /// A boolean.
    Bool(bool),
    /// Any other (nested) value, described for humans.
    Other(String),
}

impl std::fmt::Display for ExtensionValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Text(t) => write!(f, "{t:?}"),
            Self::Bytes(b) => {
                f.write_str("h'")?;
                for byte in b {
                    write!(f, "{byte:02x}")?;
                }
                f.write_str("'")
            }
            Self::Int(i) => write!(f, "{i}"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Other(d) => f.write_str(d),
        }
    }
}

/// Key of the iOS 27 bundle version extension.
pub const BUNDLE_VERSION_KEY: &str = "apple_bundle_version_01";
/// Key of the iOS 27 launch validation category extension.
pub const VALIDATION_CATEGORY_KEY: &str = "apple_validation_category_01";

impl Extensions {
    /// The entry stored under `key`.
    pub fn get(&self, key: &str) -> Option<&ExtensionValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// iOS 27 `apple_bundle_version_01`: the app's bundle version (CFBundleVersion).
    pub fn bundle_version(&self) -> Option<&str> {
        match self.get(BUNDLE_VERSION_KEY)? {
            ExtensionValue::Text(t) => Some(t),
            _ => None,
        }
    }

    /// iOS 27 `apple_validation_category_01`: how the running app was validated at launch
    /// (distribution channel), as the raw bytes Apple wrote.
    pub fn validation_category(&self) -> Option<&[u8]> {
        match self.get(VALIDATION_CATEGORY_KEY)? {
            ExtensionValue::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// Which object the authenticator data came from: decides what follows the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Attestation: attested credential data must follow the header.
    Attestation,
    /// Assertion: nothing but an optional extension map follows the header.
    Assertion,
}

impl<'a> AuthenticatorData<'a> {
    /// Parses `raw` strictly for `context`.
    pub fn parse(raw: &'a [u8], context: Context) -> Result<Self, AppleError> {
        let malformed = |reason| AppleError::malformed(WHAT, reason);
        if raw.len() > MAX_AUTHENTICATOR_DATA_LEN {
            return Err(malformed("longer than 4096 bytes"));
        }
        let (rp_id_hash, rest) = raw
            .split_first_chunk::<32>()
            .ok_or(malformed("shorter than 37 bytes"))?;
        let (&[flags], rest) = rest
            .split_first_chunk::<1>()
            .ok_or(malformed("shorter than 37 bytes"))?;
        let (counter, mut rest) = rest
            .split_first_chunk::<4>()
            .ok_or(malformed("shorter than 37 bytes"))?;
        let counter = u32::from_be_bytes(*counter);

        let attested_credential = match context {
            Context::Assertion => None,
            Context::Attestation => {
                if flags & FLAG_ATTESTED_CREDENTIAL_DATA == 0 {
                    return Err(malformed("attested credential data flag is clear"));
                }
                let (credential, after) = parse_attested_credential(rest)?;
                rest = after;
                Some(credential)
            }
        };

        let extensions = if rest.is_empty() {
            if flags & FLAG_EXTENSION_DATA != 0 {
                return Err(malformed("extension flag set but no extensions follow"));
            }
            None
        } else {
            let value = Value::decode_exact(rest).map_err(malformed)?;
            Some(parse_extensions(&value)?)
        };

        debug_assert!(raw.len() >= HEADER_LEN);
        Ok(Self {
            rp_id_hash: *rp_id_hash,
            flags,
            counter,
            attested_credential,
            extensions,
            raw,
        })
    }
}

fn parse_attested_credential(
    input: &[u8],
) -> Result<(AttestedCredentialData<'_>, &[u8]), AppleError> {
    let malformed = |reason| AppleError::malformed(WHAT, reason);
    let (aaguid, rest) = input
        .split_first_chunk::<16>()
        .ok_or(malformed("attested credential data truncated"))?;
    let (length, rest) = rest
        .split_first_chunk::<2>()
        .ok_or(malformed("attested credential data truncated"))?;
    let length = usize::from(u16::from_be_bytes(*length));
    if rest.len() < length {
        return Err(malformed("credential id truncated"));
    }
    let (credential_id, rest) = rest.split_at(length);
    let (cose, used) = Value::decode_prefix(rest).map_err(malformed)?;
    let public_key = parse_cose_key(&cose)?;
    let rest = rest.get(used..).ok_or(malformed("COSE key truncated"))?;
    Ok((
        AttestedCredentialData {
            aaguid: Aaguid(*aaguid),
            credential_id,
            public_key,
        },
        rest,
    ))
}

/// COSE_Key labels (RFC 9052 / 9053).
const KTY: i128 = 1;
const ALG: i128 = 3;
const CRV: i128 = -1;
const X: i128 = -2;
const Y: i128 = -3;
const KTY_EC2: i128 = 2;
const ALG_ES256: i128 = -7;
const CRV_P256: i128 = 1;

fn parse_cose_key(value: &Value<'_>) -> Result<CosePublicKey, AppleError> {
    let malformed = |reason| AppleError::malformed("COSE key", reason);
    value.as_map().ok_or(malformed("not a map"))?;
    if value.get_int(KTY).and_then(Value::as_int) != Some(KTY_EC2) {
        return Err(malformed("kty is not EC2"));
    }
    if value.get_int(CRV).and_then(Value::as_int) != Some(CRV_P256) {
        return Err(malformed("crv is not P-256"));
    }
    if let Some(alg) = value.get_int(ALG)
        && alg.as_int() != Some(ALG_ES256)
    {
        return Err(malformed("alg is not ES256"));
    }
    let coordinate = |label| -> Result<[u8; 32], AppleError> {
        value
            .get_int(label)
            .and_then(Value::as_bytes)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or(malformed("x or y is not a 32-byte string"))
    };
    Ok(CosePublicKey {
        x: coordinate(X)?,
        y: coordinate(Y)?,
    })
}

/// More entries than any known authenticator writes (iOS 27 writes two).
const MAX_EXTENSIONS: usize = 32;

fn parse_extensions(value: &Value<'_>) -> Result<Extensions, AppleError> {
    let malformed = |reason| AppleError::malformed("authenticator data extensions", reason);
    let entries = value.as_map().ok_or(malformed("not a CBOR map"))?;
    if entries.len() > MAX_EXTENSIONS {
        return Err(malformed("more than 32 entries"));
    }
    let entries = entries
        .iter()
        .map(|(key, value)| {
            let key = key.as_text().ok_or(malformed("key is not a text string"))?;
            let value = match value {
                Value::Text(t) => ExtensionValue::Text((*t).to_owned()),
                Value::Bytes(b) => ExtensionValue::Bytes(b.to_vec()),
                Value::Int(i) => ExtensionValue::Int(*i),
                Value::Bool(b) => ExtensionValue::Bool(*b),
                Value::Null => ExtensionValue::Other("null".into()),
                Value::Array(items) => ExtensionValue::Other(format!("array of {}", items.len())),
                Value::Map(items) => ExtensionValue::Other(format!("map of {}", items.len())),
            };
            Ok((key.to_owned(), value))
        })
        .collect::<Result<Vec<_>, AppleError>>()?;
    Ok(Extensions { entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(flags: u8, counter: u32) -> Vec<u8> {
        let mut out = vec![0xaa; 32];
        out.push(flags);
        out.extend_from_slice(&counter.to_be_bytes());
        out
    }

    fn cose_key() -> Vec<u8> {
        let mut out = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
        out.extend_from_slice(&[0x11; 32]);
        out.extend_from_slice(&[0x22, 0x58, 0x20]);
        out.extend_from_slice(&[0x22; 32]);
        out
    }

    fn attestation_auth_data(flags: u8, trailer: &[u8]) -> Vec<u8> {
        let mut out = header(flags, 0);
        out.extend_from_slice(b"appattestdevelop");
        out.extend_from_slice(&[0x00, 0x20]);
        out.extend_from_slice(&[0x33; 32]);
        out.extend_from_slice(&cose_key());
        out.extend_from_slice(trailer);
        out
    }

    const IOS27_EXTENSIONS: &[u8] = &[
        0xa2, 0x77, b'a', b'p', b'p', b'l', b'e', b'_', b'b', b'u', b'n', b'd', b'l', b'e', b'_',
        b'v', b'e', b'r', b's', b'i', b'o', b'n', b'_', b'0', b'1', 0x61, b'1', 0x78, 0x1c, b'a',
        b'p', b'p', b'l', b'e', b'_', b'v', b'a', b'l', b'i', b'd', b'a', b't', b'i', b'o', b'n',
        b'_', b'c', b'a', b't', b'e', b'g', b'o', b'r', b'y', b'_', b'0', b'1', 0x44, 0x01, 0x00,
        0x00, 0x00,
    ];

    #[test]
    fn parses_assertion_header_with_at_flag_and_no_credential() {
        let raw = header(0x40, 7);
        let parsed = AuthenticatorData::parse(&raw, Context::Assertion).unwrap();
        assert_eq!(parsed.counter, 7);
        assert_eq!(parsed.attested_credential, None);
        assert_eq!(parsed.extensions, None);
    }

    #[test]
    fn parses_attestation_credential_and_cose_key() {
        let raw = attestation_auth_data(0x40, &[]);
        let parsed = AuthenticatorData::parse(&raw, Context::Attestation).unwrap();
        let credential = parsed.attested_credential.unwrap();
        assert_eq!(credential.aaguid, Aaguid::DEVELOPMENT);
        assert_eq!(credential.credential_id, &[0x33; 32]);
        assert_eq!(credential.public_key.x, [0x11; 32]);
        assert_eq!(credential.public_key.uncompressed_point()[0], 4);
    }

    #[test]
    fn accepts_ios27_extension_map_without_ed_flag() {
        let raw = attestation_auth_data(0x40, IOS27_EXTENSIONS);
        let parsed = AuthenticatorData::parse(&raw, Context::Attestation).unwrap();
        let extensions = parsed.extensions.unwrap();
        assert_eq!(extensions.bundle_version(), Some("1"));
        assert_eq!(extensions.validation_category(), Some(&[1, 0, 0, 0][..]));
    }

    #[test]
    fn accepts_extension_map_on_assertions() {
        let mut raw = header(0x40, 3);
        raw.extend_from_slice(IOS27_EXTENSIONS);
        let parsed = AuthenticatorData::parse(&raw, Context::Assertion).unwrap();
        assert_eq!(parsed.extensions.unwrap().bundle_version(), Some("1"));
    }

    #[test]
    fn rejects_bytes_after_the_extension_map() {
        let mut trailer = IOS27_EXTENSIONS.to_vec();
        trailer.push(0x00);
        let raw = attestation_auth_data(0x40, &trailer);
        assert!(matches!(
            AuthenticatorData::parse(&raw, Context::Attestation),
            Err(AppleError::Malformed { .. })
        ));
    }

    #[test]
    fn rejects_trailing_garbage_that_is_not_a_map() {
        let raw = attestation_auth_data(0x40, &[0x01]);
        assert!(AuthenticatorData::parse(&raw, Context::Attestation).is_err());
        let mut assertion = header(0x40, 3);
        assertion.push(0x00);
        assert!(AuthenticatorData::parse(&assertion, Context::Assertion).is_err());
    }

    #[test]
    fn rejects_ed_flag_without_extensions() {
        let raw = header(0xc0, 1);
        assert!(AuthenticatorData::parse(&raw, Context::Assertion).is_err());
    }

    #[test]
    fn rejects_attestation_without_at_flag() {
        let raw = attestation_auth_data(0x00, &[]);
        assert!(AuthenticatorData::parse(&raw, Context::Attestation).is_err());
    }

    #[test]
    fn rejects_every_truncation() {
        let raw = attestation_auth_data(0x40, IOS27_EXTENSIONS);
        let cose_end = raw.len() - IOS27_EXTENSIONS.len();
        for cut in 0..raw.len() {
            let result = AuthenticatorData::parse(&raw[..cut], Context::Attestation);
            // Cutting exactly after the COSE key leaves a valid, extension-less object.
            assert_eq!(result.is_ok(), cut == cose_end, "cut at {cut}");
        }
    }

    #[test]
    fn rejects_wrong_cose_key_types() {
        let mut raw = attestation_auth_data(0x40, &[]);
        let kty_at = raw.len() - cose_key().len() + 2;
        raw[kty_at] = 0x03; // kty RSA
        assert!(AuthenticatorData::parse(&raw, Context::Attestation).is_err());
    }
}
