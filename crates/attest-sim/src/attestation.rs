//! Attestation objects: `{"fmt": "apple-appattest", "attStmt": {"x5c": [leaf, CA 1], "receipt":
//! ...}, "authData": ...}` with a leaf certificate shaped like Apple's credential certificates.

use std::fmt;

use rcgen::DnType;
use time::{Duration, OffsetDateTime, UtcOffset};

use attest_types::KeyId;

use crate::Environment;
use crate::ca::{ReceiptCa, TestCa};
use crate::cbor::{Cbor, CborTweaks, cbor_tweak_methods};
use crate::cert::{self, CertSpec, Extension, oids};
use crate::der;
use crate::device::Device;
use crate::keys::{Hex, SubjectKey, sha256};
use crate::receipt::{CmsEncoding, ReceiptBuilder, ReceiptType};

/// OID of the leaf extension holding the nonce, 1.2.840.113635.100.8.2.
pub const NONCE_EXTENSION_OID: &[u64] = &[1, 2, 840, 113_635, 100, 8, 2];
/// OID of the extended key usage on iOS 27 leaves, 1.2.840.113635.100.4.24.
pub const APPLE_EKU_OID: &[u64] = &[1, 2, 840, 113_635, 100, 4, 24];
const APP_INFO_OID: &[u64] = &[1, 2, 840, 113_635, 100, 8, 5];
const OS_INFO_OID: &[u64] = &[1, 2, 840, 113_635, 100, 8, 7];
const IOS27_EXTENSION_OID: &[u64] = &[1, 2, 840, 113_635, 100, 8, 6];

/// Authenticator-data flags Apple sets: AT (attested credential data) only.
const FLAG_AT: u8 = 0x40;

/// Which generation of Apple leaf to imitate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafProfile {
    /// iOS 14-26 leaves: basicConstraints, keyUsage, 1.2.840.113635.100.8.5, .8.7, .8.2; no
    /// EKU; authData ends with the COSE key.
    Classic,
    /// iOS 27 leaves: adds EKU 1.2.840.113635.100.4.24 and extension .8.6, and authData carries
    /// the extension map `{"apple_bundle_version_01": "1", "apple_validation_category_01":
    /// h'01000000'}` after the COSE key with the ED flag clear.
    Ios27,
}

/// How the leaf carries (or fails to carry) the nonce extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NonceExtension {
    /// `SEQUENCE { [1] EXPLICIT OCTET STRING nonce }`, once, non-critical (Apple's form).
    Standard,
    /// No nonce extension.
    Missing,
    /// The standard extension twice.
    Duplicated,
    /// The standard extension marked critical.
    Critical,
    /// This exact `extnValue` content (malformed wrappers, wrong tags, ...).
    Raw(Vec<u8>),
}

type X5cEdit<'a> = Box<dyn FnOnce(Vec<Vec<u8>>) -> Vec<Vec<u8>> + 'a>;
type ReceiptEdit<'a> = Box<dyn FnOnce(ReceiptBuilder<'a>) -> ReceiptBuilder<'a> + 'a>;

enum ReceiptChoice<'a> {
    Build(Vec<ReceiptEdit<'a>>),
    Bytes(Vec<u8>),
    Omit,
}

/// The CBOR map Apple appends to iOS 27 authData.
pub fn ios27_auth_data_extensions() -> Vec<u8> {
    Cbor::Map(vec![
        (Cbor::text("apple_bundle_version_01"), Cbor::text("1")),
        (
            Cbor::text("apple_validation_category_01"),
            Cbor::bytes(vec![1, 0, 0, 0]),
        ),
    ])
    .encode()
}

/// A built attestation and the pieces a test may want to check or reuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    /// The CBOR attestation object, as the app sends it.
    pub object: Vec<u8>,
    /// The authenticator data inside it.
    pub auth_data: Vec<u8>,
    /// The value placed in the leaf's nonce extension (normally SHA256(authData ‖ clientDataHash)).
    pub nonce: Vec<u8>,
    /// The credential (leaf) certificate, DER.
    pub leaf: Vec<u8>,
    /// The `x5c` array as encoded.
    pub x5c: Vec<Vec<u8>>,
    /// The embedded receipt, if any.
    pub receipt: Option<Vec<u8>>,
    /// The key identifier the app reports (SHA-256 of the device's public point).
    pub key_id: KeyId,
    /// The client data hash the attestation was made for.
    pub client_data_hash: Vec<u8>,
    /// The App ID.
    pub app_id: String,
    /// The device's environment.
    pub environment: Environment,
}

impl Attestation {
    /// A `RECEIPT` receipt for this attestation's key, as Apple's fraud-metric endpoint returns
    /// when given the attestation receipt: same app, certificate and environment, field 4 the
    /// lossy-UTF-8 garbage Apple writes. Set `created_at` and `risk_metric` on the result.
    pub fn refresh_receipt<'r>(&self, receipts: &'r ReceiptCa) -> ReceiptBuilder<'r> {
        receipts
            .receipt()
            .receipt_type(ReceiptType::Receipt)
            .app_id(self.app_id.clone())
            .attested_certificate(self.leaf.clone())
            .client_hash(String::from_utf8_lossy(&self.client_data_hash).into_owned())
            .environment(self.environment)
    }
}

/// Builds an attestation object; every field can be overridden for negative tests. Knobs
/// compose in any order: authData is assembled first, then the nonce, the leaf, `x5c`, the
/// receipt, the CBOR tree and finally the encoding tweaks.
pub struct AttestationBuilder<'a> {
    device: &'a Device,
    ca: &'a TestCa,
    receipts: &'a ReceiptCa,
    app_id: String,
    client_data_hash: Vec<u8>,
    now: OffsetDateTime,
    profile: LeafProfile,

    fmt: Cbor,

    rp_id_hash: Option<Vec<u8>>,
    flags: u8,
    counter: u32,
    aaguid: Option<Vec<u8>>,
    credential_id: Option<Vec<u8>>,
    credential_id_length: Option<u16>,
    cose_key: Option<Vec<u8>>,
    auth_data_extensions: Option<Option<Vec<u8>>>,
    extra_auth_data: Vec<u8>,
    auth_data: Option<Vec<u8>>,

    nonce: Option<Vec<u8>>,
    nonce_extension: NonceExtension,
    leaf_key: Option<[u8; 65]>,
    leaf_validity: Option<(OffsetDateTime, OffsetDateTime)>,
    leaf_eku: Option<Vec<Vec<u64>>>,
    leaf_extra_extensions: Vec<Extension>,
    leaf_issuer: Option<&'a TestCa>,
    leaf_serial: Option<Vec<u8>>,

    x5c_intermediate: Option<Vec<u8>>,
    x5c_edits: Vec<X5cEdit<'a>>,
    receipt: ReceiptChoice<'a>,
    tweaks: CborTweaks<'a>,
}

impl fmt::Debug for AttestationBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttestationBuilder")
            .field("device", &self.device)
            .field("app_id", &self.app_id)
            .field("client_data_hash", &Hex(&self.client_data_hash))
            .field("now", &self.now)
            .field("profile", &self.profile)
            .field("nonce_extension", &self.nonce_extension)
            .field("tweaks", &self.tweaks)
            .finish_non_exhaustive()
    }
}

impl<'a> AttestationBuilder<'a> {
    pub(crate) fn new(
        device: &'a Device,
        ca: &'a TestCa,
        receipts: &'a ReceiptCa,
        app_id: &str,
        client_data_hash: &[u8],
        now: OffsetDateTime,
    ) -> AttestationBuilder<'a> {
        AttestationBuilder {
            device,
            ca,
            receipts,
            app_id: app_id.to_owned(),
            client_data_hash: client_data_hash.to_vec(),
            now: now.to_offset(UtcOffset::UTC),
            profile: LeafProfile::Classic,
            fmt: Cbor::text("apple-appattest"),
            rp_id_hash: None,
            flags: FLAG_AT,
            counter: 0,
            aaguid: None,
            credential_id: None,
            credential_id_length: None,
            cose_key: None,
            auth_data_extensions: None,
            extra_auth_data: Vec::new(),
            auth_data: None,
            nonce: None,
            nonce_extension: NonceExtension::Standard,
            leaf_key: None,
            leaf_validity: None,
            leaf_eku: None,
            leaf_extra_extensions: Vec::new(),
            leaf_issuer: None,
            leaf_serial: None,
            x5c_intermediate: None,
            x5c_edits: Vec::new(),
            receipt: ReceiptChoice::Build(Vec::new()),
            tweaks: CborTweaks::default(),
        }
    }

    // ---- profile -------------------------------------------------------------------------

    /// Imitate an iOS 27 device (see [`LeafProfile::Ios27`]).
    pub fn ios27(self) -> Self {
        self.profile(LeafProfile::Ios27)
    }

    /// Choose the leaf generation to imitate.
    pub fn profile(mut self, profile: LeafProfile) -> Self {
        self.profile = profile;
        self
    }

    // ---- top level -----------------------------------------------------------------------

    /// `fmt` text (default `apple-appattest`).
    pub fn fmt(mut self, fmt: &str) -> Self {
        self.fmt = Cbor::text(fmt);
        self
    }

    /// `fmt` as any CBOR item (e.g. a byte string instead of text).
    pub fn fmt_value(mut self, value: Cbor) -> Self {
        self.fmt = value;
        self
    }

    cbor_tweak_methods!('a);

    // ---- authenticator data --------------------------------------------------------------

    /// rpIdHash (default SHA256(app_id)).
    pub fn rp_id_hash(mut self, hash: impl Into<Vec<u8>>) -> Self {
        self.rp_id_hash = Some(hash.into());
        self
    }

    /// rpIdHash of another App ID.
    pub fn rp_id_for(self, app_id: &str) -> Self {
        self.rp_id_hash(sha256(&[app_id.as_bytes()]).to_vec())
    }

    /// Flags byte (default 0x40: AT set, ED clear, even on iOS 27).
    pub fn flags(mut self, flags: u8) -> Self {
        self.flags = flags;
        self
    }

    /// Sign count (default 0).
    pub fn counter(mut self, counter: u32) -> Self {
        self.counter = counter;
        self
    }

    /// AAGUID bytes (default from the device's environment); any length, for malformed cases.
    pub fn aaguid(mut self, aaguid: impl Into<Vec<u8>>) -> Self {
        self.aaguid = Some(aaguid.into());
        self
    }

    /// Credential ID (default the key ID).
    pub fn credential_id(mut self, id: impl Into<Vec<u8>>) -> Self {
        self.credential_id = Some(id.into());
        self
    }

    /// The credential ID length field, independent of the actual ID (a lie, for malformed cases).
    pub fn credential_id_length(mut self, length: u16) -> Self {
        self.credential_id_length = Some(length);
        self
    }

    /// The COSE key bytes verbatim.
    pub fn cose_key(mut self, cose: impl Into<Vec<u8>>) -> Self {
        self.cose_key = Some(cose.into());
        self
    }

    /// The COSE key of another device's key.
    pub fn cose_key_of(self, other: &Device) -> Self {
        self.cose_key(cose_key(&other.public_key_point()))
    }

    /// Bytes after the COSE key (the iOS 27 extension map position), regardless of profile.
    pub fn auth_data_extensions(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.auth_data_extensions = Some(Some(bytes.into()));
        self
    }

    /// No extension map after the COSE key, regardless of profile.
    pub fn without_auth_data_extensions(mut self) -> Self {
        self.auth_data_extensions = Some(None);
        self
    }

    /// Bytes appended at the very end of authData (trailing garbage).
    pub fn extra_auth_data(mut self, bytes: &[u8]) -> Self {
        self.extra_auth_data.extend_from_slice(bytes);
        self
    }

    /// The whole authData verbatim (the nonce is still computed over it unless overridden).
    pub fn auth_data(mut self, auth_data: impl Into<Vec<u8>>) -> Self {
        self.auth_data = Some(auth_data.into());
        self
    }

    // ---- leaf certificate ----------------------------------------------------------------

    /// The nonce value in the leaf (default SHA256(authData ‖ clientDataHash)); any length.
    pub fn nonce(mut self, nonce: impl Into<Vec<u8>>) -> Self {
        self.nonce = Some(nonce.into());
        self
    }

    /// How the nonce extension is written.
    pub fn nonce_extension(mut self, form: NonceExtension) -> Self {
        self.nonce_extension = form;
        self
    }

    /// Shorthand for [`NonceExtension::Missing`].
    pub fn omit_nonce_extension(self) -> Self {
        self.nonce_extension(NonceExtension::Missing)
    }

    /// The leaf certifies another device's key (the COSE key and credential ID stay this
    /// device's).
    pub fn leaf_key_of(mut self, other: &Device) -> Self {
        self.leaf_key = Some(other.public_key_point());
        self
    }

    /// Leaf validity (default now − 1 day to now + 2 days, as Apple's 3-day leaves).
    pub fn leaf_validity(mut self, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        self.leaf_validity = Some((not_before, not_after));
        self
    }

    /// Leaf extended key usages (default: none, or Apple's 1.2.840.113635.100.4.24 on iOS 27);
    /// an empty list means no EKU extension.
    pub fn leaf_eku(mut self, oids: Vec<Vec<u64>>) -> Self {
        self.leaf_eku = Some(oids);
        self
    }

    /// An additional leaf extension, appended after Apple's.
    pub fn leaf_extension(mut self, extension: Extension) -> Self {
        self.leaf_extra_extensions.push(extension);
        self
    }

    /// Leaf serial number bytes (default: the creation time in milliseconds, as Apple's).
    pub fn leaf_serial(mut self, serial: impl Into<Vec<u8>>) -> Self {
        self.leaf_serial = Some(serial.into());
        self
    }

    /// Issue the leaf from another CA's intermediate (which then also goes into `x5c`).
    pub fn leaf_issuer(mut self, other: &'a TestCa) -> Self {
        self.leaf_issuer = Some(other);
        self
    }

    // ---- x5c -----------------------------------------------------------------------------

    /// Put this certificate in `x5c` instead of the issuing intermediate.
    pub fn x5c_intermediate(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.x5c_intermediate = Some(der.into());
        self
    }

    /// Edit the `x5c` list `[leaf, intermediate]` freely (drop, duplicate, reorder, append).
    pub fn map_x5c(mut self, edit: impl FnOnce(Vec<Vec<u8>>) -> Vec<Vec<u8>> + 'a) -> Self {
        self.x5c_edits.push(Box::new(edit));
        self
    }

    /// `x5c` with the leaf only.
    pub fn x5c_leaf_only(self) -> Self {
        self.map_x5c(|mut x5c| {
            x5c.truncate(1);
            x5c
        })
    }

    /// `x5c` as `[intermediate, leaf]`.
    pub fn x5c_reversed(self) -> Self {
        self.map_x5c(|mut x5c| {
            x5c.reverse();
            x5c
        })
    }

    /// `x5c` with the CA's root appended (Apple never sends it).
    pub fn x5c_with_root(self) -> Self {
        let root = self.ca.root_der().to_vec();
        self.map_x5c(move |mut x5c| {
            x5c.push(root);
            x5c
        })
    }

    /// No `x5c` key in `attStmt`.
    pub fn omit_x5c(self) -> Self {
        self.map_x5c(|_| Vec::new())
    }

    // ---- receipt -------------------------------------------------------------------------

    /// Adjust the embedded ATTEST receipt (pre-filled with this attestation's app ID, leaf,
    /// client data hash, environment and `now`, BER-encoded like Apple's).
    pub fn receipt_with(
        mut self,
        edit: impl FnOnce(ReceiptBuilder<'a>) -> ReceiptBuilder<'a> + 'a,
    ) -> Self {
        match &mut self.receipt {
            ReceiptChoice::Build(edits) => edits.push(Box::new(edit)),
            other => *other = ReceiptChoice::Build(vec![Box::new(edit)]),
        }
        self
    }

    /// The receipt bytes verbatim.
    pub fn receipt_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.receipt = ReceiptChoice::Bytes(bytes.into());
        self
    }

    /// No `receipt` key in `attStmt`.
    pub fn omit_receipt(mut self) -> Self {
        self.receipt = ReceiptChoice::Omit;
        self
    }

    // ---- build ---------------------------------------------------------------------------

    fn build_auth_data(&self) -> Vec<u8> {
        if let Some(auth_data) = &self.auth_data {
            return auth_data.clone();
        }
        let key_id = self.device.key_id();
        let rp_id_hash = self
            .rp_id_hash
            .clone()
            .unwrap_or_else(|| sha256(&[self.app_id.as_bytes()]).to_vec());
        let aaguid = self
            .aaguid
            .clone()
            .unwrap_or_else(|| crate::aaguid(self.device.environment()).to_vec());
        let credential_id = self
            .credential_id
            .clone()
            .unwrap_or_else(|| key_id.as_slice().to_vec());
        let credential_id_length = self
            .credential_id_length
            .unwrap_or(credential_id.len() as u16);
        let cose = self
            .cose_key
            .clone()
            .unwrap_or_else(|| cose_key(&self.device.public_key_point()));
        let extensions = match &self.auth_data_extensions {
            Some(choice) => choice.clone(),
            None => (self.profile == LeafProfile::Ios27).then(ios27_auth_data_extensions),
        };

        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&rp_id_hash);
        out.push(self.flags);
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&aaguid);
        out.extend_from_slice(&credential_id_length.to_be_bytes());
        out.extend_from_slice(&credential_id);
        out.extend_from_slice(&cose);
        out.extend(extensions.unwrap_or_default());
        out.extend_from_slice(&self.extra_auth_data);
        out
    }

    fn leaf_extensions(&self, nonce: &[u8], app_id: &str) -> Vec<Extension> {
        let ios27 = self.profile == LeafProfile::Ios27;
        let mut extensions = vec![
            Extension::critical(
                oids::BASIC_CONSTRAINTS,
                cert::basic_constraints(false, None),
            ),
            // digitalSignature, nonRepudiation, keyEncipherment, dataEncipherment
            Extension::critical(oids::KEY_USAGE, cert::key_usage(0xf0)),
        ];
        let eku = self.leaf_eku.clone().unwrap_or_else(|| {
            if ios27 {
                vec![APPLE_EKU_OID.to_vec()]
            } else {
                Vec::new()
            }
        });
        if !eku.is_empty() {
            extensions.push(Extension::new(
                oids::EXTENDED_KEY_USAGE,
                cert::extended_key_usage(&eku),
            ));
        }
        extensions.push(Extension::new(APP_INFO_OID, app_info(app_id, ios27)));
        extensions.push(Extension::new(OS_INFO_OID, os_info(ios27)));

        let standard = || {
            let value = der::sequence(&[&der::explicit(1, &der::octet_string(nonce))]);
            Extension::new(NONCE_EXTENSION_OID, value)
        };
        match &self.nonce_extension {
            NonceExtension::Standard => extensions.push(standard()),
            NonceExtension::Missing => {}
            NonceExtension::Duplicated => extensions.extend([standard(), standard()]),
            NonceExtension::Critical => {
                let mut ext = standard();
                ext.critical = true;
                extensions.push(ext);
            }
            NonceExtension::Raw(value) => {
                extensions.push(Extension::new(NONCE_EXTENSION_OID, value.clone()));
            }
        }
        if ios27 {
            extensions.push(Extension::new(IOS27_EXTENSION_OID, ios27_extension()));
        }
        extensions.extend(self.leaf_extra_extensions.iter().cloned());
        extensions
    }

    /// Builds the attestation.
    pub fn build(self) -> Attestation {
        let auth_data = self.build_auth_data();
        let nonce = self
            .nonce
            .clone()
            .unwrap_or_else(|| sha256(&[&auth_data, &self.client_data_hash]).to_vec());

        // Leaf certificate.
        let leaf_point = self
            .leaf_key
            .unwrap_or_else(|| self.device.public_key_point());
        let leaf_key_id = sha256(&[&leaf_point]);
        let (not_before, not_after) = self
            .leaf_validity
            .unwrap_or((self.now - Duration::days(1), self.now + Duration::days(2)));
        let serial = self.leaf_serial.clone().unwrap_or_else(|| {
            let millis = (self.now.unix_timestamp_nanos() / 1_000_000).max(1) as u64;
            millis.to_be_bytes().to_vec()
        });
        let spec = CertSpec {
            subject: cert::name(&[
                (DnType::CommonName, &Hex(&leaf_key_id).to_string()),
                (DnType::OrganizationalUnitName, "AAA Certification"),
                (DnType::OrganizationName, "Apple Inc."),
                (DnType::StateOrProvinceName, "California"),
            ]),
            serial,
            not_before,
            not_after,
            extensions: self.leaf_extensions(&nonce, &self.app_id),
        };
        let issuing_ca = self.leaf_issuer.unwrap_or(self.ca);
        let leaf = issuing_ca
            .intermediate
            .issue(&spec, &SubjectKey::p256(&leaf_point));

        // x5c.
        let intermediate = self
            .x5c_intermediate
            .clone()
            .unwrap_or_else(|| issuing_ca.intermediate_der().to_vec());
        let mut x5c = vec![leaf.clone(), intermediate];
        for edit in self.x5c_edits {
            x5c = edit(x5c);
        }

        // Receipt.
        let receipt = match self.receipt {
            ReceiptChoice::Omit => None,
            ReceiptChoice::Bytes(bytes) => Some(bytes),
            ReceiptChoice::Build(edits) => {
                let mut builder = self
                    .receipts
                    .receipt()
                    .receipt_type(ReceiptType::Attest)
                    .app_id(self.app_id.clone())
                    .attested_certificate(leaf.clone())
                    .client_hash(self.client_data_hash.clone())
                    .environment(self.device.environment())
                    .created_at(self.now)
                    .encoding(CmsEncoding::Ber);
                for edit in edits {
                    builder = edit(builder);
                }
                Some(builder.build())
            }
        };

        // CBOR.
        let mut att_stmt = Vec::new();
        if !x5c.is_empty() {
            att_stmt.push((
                Cbor::text("x5c"),
                Cbor::Array(x5c.iter().cloned().map(Cbor::Bytes).collect()),
            ));
        }
        if let Some(receipt) = &receipt {
            att_stmt.push((Cbor::text("receipt"), Cbor::bytes(receipt.clone())));
        }
        let object = Cbor::Map(vec![
            (Cbor::text("fmt"), self.fmt),
            (Cbor::text("attStmt"), Cbor::Map(att_stmt)),
            (Cbor::text("authData"), Cbor::bytes(auth_data.clone())),
        ]);
        let object = self.tweaks.apply(object);

        Attestation {
            object,
            auth_data,
            nonce,
            leaf,
            x5c,
            receipt,
            key_id: self.device.key_id(),
            client_data_hash: self.client_data_hash,
            app_id: self.app_id,
            environment: self.device.environment(),
        }
    }
}

/// COSE_Key for a P-256 point, keys in Apple's order: {1: 2, 3: -7, -1: 1, -2: x, -3: y}.
pub(crate) fn cose_key(point: &[u8; 65]) -> Vec<u8> {
    Cbor::Map(vec![
        (Cbor::Int(1), Cbor::Int(2)),
        (Cbor::Int(3), Cbor::Int(-7)),
        (Cbor::Int(-1), Cbor::Int(1)),
        (Cbor::Int(-2), Cbor::bytes(point[1..33].to_vec())),
        (Cbor::Int(-3), Cbor::bytes(point[33..65].to_vec())),
    ])
    .encode()
}

/// `[n] EXPLICIT INTEGER v`.
fn tagged_int(n: u32, v: u64) -> Vec<u8> {
    der::explicit(n, &der::uint(v))
}

/// `[n] EXPLICIT OCTET STRING text`.
fn tagged_text(n: u32, text: &str) -> Vec<u8> {
    der::explicit(n, &der::octet_string(text.as_bytes()))
}

/// Extension 1.2.840.113635.100.8.5 (app and key attributes), in the shape of Apple's samples.
fn app_info(app_id: &str, ios27: bool) -> Vec<u8> {
    let parts: Vec<Vec<u8>> = if ios27 {
        vec![
            tagged_int(4, 10),
            tagged_int(1200, 0),
            tagged_int(1201, 0),
            tagged_int(1202, 0),
            tagged_int(1203, 0),
            tagged_text(1204, app_id),
            tagged_int(1206, 4),
            tagged_int(1207, 0),
            tagged_int(1209, 0),
            tagged_int(1210, 0),
            tagged_int(1211, 0),
            tagged_int(10, 0),
        ]
    } else {
        vec![
            tagged_int(4, 10),
            tagged_int(1200, 1),
            tagged_int(1201, 0),
            tagged_int(1202, 1),
            tagged_int(1203, 1),
            tagged_text(1204, app_id),
            tagged_text(5, "sks "),
            tagged_int(1206, 5),
            tagged_int(1207, 0),
            tagged_int(1209, 0),
            tagged_int(1210, 0),
            tagged_int(1211, 0),
        ]
    };
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    der::sequence(&refs)
}

/// Extension 1.2.840.113635.100.8.7 (OS versions), in the shape of Apple's samples.
fn os_info(ios27: bool) -> Vec<u8> {
    let parts: Vec<Vec<u8>> = if ios27 {
        let mut parts = vec![
            tagged_text(1400, "27.0"),
            tagged_int(1104, 2),
            tagged_text(1401, "1.0.216"),
            tagged_text(1403, "24A325b"),
            tagged_text(1404, "27.0"),
            tagged_text(1405, "27.0"),
        ];
        parts.extend((1406..=1413).map(|n| tagged_int(n, u64::from(n == 1412))));
        parts.extend((1418..=1420).map(|n| tagged_text(n, "24.1.325.0.2,0")));
        parts.push(tagged_text(1026, "iphoneos"));
        parts.push(tagged_text(1029, "Internal"));
        parts
    } else {
        vec![
            tagged_text(1400, "17.2.1"),
            tagged_int(1104, 0xffff_ffff),
            tagged_text(1403, "21C66"),
            tagged_text(1405, "17.2.1"),
            tagged_int(1406, 0),
            tagged_text(1420, "21.3.66.0.0,0"),
        ]
    };
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    der::sequence(&refs)
}

/// Extension 1.2.840.113635.100.8.6 of iOS 27 leaves.
fn ios27_extension() -> Vec<u8> {
    let flag = |name: &str| {
        der::sequence(&[
            &der::utf8_string(name),
            &der::explicit(1, &der::boolean(true)),
        ])
    };
    let flags: Vec<Vec<u8>> = ["okd", "oa", "osgn", "odel", "ock"].map(flag).to_vec();
    let refs: Vec<&[u8]> = flags.iter().map(Vec::as_slice).collect();
    let inner = der::sequence(&[&der::utf8_string("11"), &der::sequence(&refs)]);
    der::sequence(&[&der::explicit(3, &der::octet_string(&inner))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ios27_extension_bytes_match_apples_shape() {
        // From Apple's 2026 documentation sample leaf.
        let apple = "3049a347044530430c023131303d300a0c036f6b64a1030101ff30090c026f61a1030101ff300b0c046f73676ea1030101ff300b0c046f64656ca1030101ff300a0c036f636ba1030101ff";
        assert_eq!(Hex(&ios27_extension()).to_string(), apple);
    }

    #[test]
    fn ios27_auth_data_extension_map_matches_apples_bytes() {
        let apple = "a2776170706c655f62756e646c655f76657273696f6e5f30316131781c6170706c655f76616c69646174696f6e5f63617465676f72795f30314401000000";
        assert_eq!(Hex(&ios27_auth_data_extensions()).to_string(), apple);
    }

    #[test]
    fn classic_extensions_match_apples_shape() {
        // uebelack-prod-2024 leaf, with its own App ID.
        let app_id = "V8H6LQ9448.io.uebelacker.AppAttestExample";
        let apple_app_info = "307ba40302010abf893003020101bf893103020100bf893203020101bf893303020101bf89342b0429563848364c51393434382e696f2e756562656c61636b65722e4170704174746573744578616d706c65a5060404736b7320bf893603020105bf893703020100bf893903020100bf893a03020100bf893b03020100";
        assert_eq!(Hex(&app_info(app_id, false)).to_string(), apple_app_info);
        let apple_os_info = "3048bf8a7808040631372e322e31bf885007020500ffffffffbf8a7b0704053231433636bf8a7d08040631372e322e31bf8a7e03020100bf8b0c0f040d32312e332e36362e302e302c30";
        assert_eq!(Hex(&os_info(false)).to_string(), apple_os_info);
    }

    #[test]
    fn ios27_extensions_match_apples_2026_sample() {
        let apple_app_info = "306ba40302010abf893003020100bf893103020100bf893203020100bf893303020100bf89341e041c313233343536373839302e636f6d2e6578616d706c652e6d79617070bf893603020104bf893703020100bf893903020100bf893a03020100bf893b03020100aa03020100";
        assert_eq!(
            Hex(&app_info("1234567890.com.example.myapp", true)).to_string(),
            apple_app_info
        );
        let apple_os_info = "3081cfbf8a7806040432372e30bf885003020102bf8a79090407312e302e323136bf8a7b09040732344133323562bf8a7c06040432372e30bf8a7d06040432372e30bf8a7e03020100bf8a7f03020100bf8b0003020100bf8b0103020100bf8b0203020100bf8b0303020100bf8b0403020101bf8b0503020100bf8b0a10040e32342e312e3332352e302e322c30bf8b0b10040e32342e312e3332352e302e322c30bf8b0c10040e32342e312e3332352e302e322c30bf88020a04086970686f6e656f73bf88050a0408496e7465726e616c";
        assert_eq!(Hex(&os_info(true)).to_string(), apple_os_info);
    }
}
