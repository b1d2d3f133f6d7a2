//! App Attest receipts: CMS SignedData over Apple's payload `SET OF SEQUENCE { type, version,
//! value }`, DER or Apple's BER (indefinite lengths, chunked eContent), with the 2020 quirk and
//! tamper hooks.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::Environment;
use crate::ca::ReceiptCa;
use crate::der;
use crate::keys::sha256;

const SIGNED_DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 2];
const DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 1];
const SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
const ECDSA_WITH_SHA256: &[u64] = &[1, 2, 840, 10_045, 4, 3, 2];
const CONTENT_TYPE: &[u64] = &[1, 2, 840, 113_549, 1, 9, 3];
const MESSAGE_DIGEST: &[u64] = &[1, 2, 840, 113_549, 1, 9, 4];
const SIGNING_TIME: &[u64] = &[1, 2, 840, 113_549, 1, 9, 5];
const CMS_ALGORITHM_PROTECTION: &[u64] = &[1, 2, 840, 113_549, 1, 9, 52];

/// Apple splits the BER eContent OCTET STRING into chunks of this many bytes.
const BER_CHUNK: usize = 1000;

/// Receipt payload field numbers.
pub mod field {
    /// App ID (`TEAMID.bundle.id`).
    pub const APP_ID: u64 = 2;
    /// The attested leaf certificate (DER).
    pub const ATTESTED_PUBLIC_KEY: u64 = 3;
    /// Client data hash (ATTEST) / garbage (RECEIPT).
    pub const CLIENT_HASH: u64 = 4;
    /// Token used to fetch new receipts.
    pub const TOKEN: u64 = 5;
    /// `ATTEST` or `RECEIPT`.
    pub const RECEIPT_TYPE: u64 = 6;
    /// `sandbox` or `production`.
    pub const ENVIRONMENT: u64 = 7;
    /// Creation time.
    pub const CREATION_TIME: u64 = 12;
    /// Risk metric (RECEIPT only).
    pub const RISK_METRIC: u64 = 17;
    /// Not before (RECEIPT only).
    pub const NOT_BEFORE: u64 = 19;
    /// Expiration time.
    pub const EXPIRATION_TIME: u64 = 21;
}

/// Which receipt Apple issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiptType {
    /// The receipt embedded in an attestation (`ATTEST`).
    Attest,
    /// A receipt from Apple's fraud-metric endpoint (`RECEIPT`), with a risk metric.
    Receipt,
}

impl ReceiptType {
    /// The field-6 string.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptType::Attest => "ATTEST",
            ReceiptType::Receipt => "RECEIPT",
        }
    }
}

/// The CMS envelope's encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmsEncoding {
    /// Definite lengths, primitive eContent.
    Der,
    /// Apple's BER: indefinite lengths on the envelope and a constructed eContent OCTET STRING
    /// in 1000-byte chunks (every embedded receipt looks like this).
    Ber,
}

/// CMS signed attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignedAttributes {
    /// No signedAttrs; the signature covers eContent (Apple since 2020-10).
    None,
    /// signedAttrs (contentType, signingTime, CMSAlgorithmProtection, messageDigest) with the
    /// signature over their DER, as RFC 5652 requires.
    Standard,
    /// Apple's Aug-Oct 2020 quirk: the same signedAttrs, but the signature covers eContent.
    Quirk2020,
}

/// One payload entry `SEQUENCE { INTEGER type, INTEGER version, OCTET STRING value }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptField {
    /// Field number (see [`field`]).
    pub kind: u64,
    /// Field version (Apple writes 1).
    pub version: u64,
    /// The OCTET STRING content.
    pub value: Vec<u8>,
}

#[derive(Clone, Debug)]
enum FieldEdit {
    Set(u64, Vec<u8>),
    Version(u64, u64),
    Remove(u64),
    Append(ReceiptField),
}

/// Builds one receipt; start from [`ReceiptCa::receipt`].
///
/// Defaults: type `ATTEST`, environment development (`sandbox`), creation time = now (wall clock,
/// millisecond precision; pass [`ReceiptBuilder::created_at`] for determinism), expiration =
/// creation + 90 days, and for `RECEIPT` not-before = creation + 1 day and risk metric 1. The
/// token is 64 random bytes in base64, like Apple's. App ID, certificate and client hash are
/// empty until set. DER envelope, no signed attributes.
#[derive(Clone)]
pub struct ReceiptBuilder<'a> {
    ca: &'a ReceiptCa,
    receipt_type: ReceiptType,
    app_id: String,
    attested_certificate: Vec<u8>,
    client_hash: Vec<u8>,
    token: String,
    environment: Environment,
    created_at: OffsetDateTime,
    not_before: Option<OffsetDateTime>,
    expires_at: Option<OffsetDateTime>,
    risk_metric: u64,
    edits: Vec<FieldEdit>,
    payload: Option<Vec<u8>>,
    encoding: CmsEncoding,
    signed_attributes: SignedAttributes,
    signing_time: Option<OffsetDateTime>,
    message_digest: Option<Vec<u8>>,
    certificates: Option<Vec<Vec<u8>>>,
    corrupt_signature: bool,
    tamper_payload_after_signing: bool,
}

impl fmt::Debug for ReceiptBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiptBuilder")
            .field("receipt_type", &self.receipt_type)
            .field("app_id", &self.app_id)
            .field("environment", &self.environment)
            .field("created_at", &self.created_at)
            .field("encoding", &self.encoding)
            .field("signed_attributes", &self.signed_attributes)
            .finish_non_exhaustive()
    }
}

impl<'a> ReceiptBuilder<'a> {
    pub(crate) fn new(ca: &'a ReceiptCa) -> ReceiptBuilder<'a> {
        let mut token = [0u8; 64];
        aws_lc_rs::rand::fill(&mut token).expect("system RNG");
        ReceiptBuilder {
            ca,
            receipt_type: ReceiptType::Attest,
            app_id: String::new(),
            attested_certificate: Vec::new(),
            client_hash: Vec::new(),
            token: STANDARD.encode(token),
            environment: Environment::Development,
            created_at: truncate_to_millis(OffsetDateTime::now_utc()),
            not_before: None,
            expires_at: None,
            risk_metric: 1,
            edits: Vec::new(),
            payload: None,
            encoding: CmsEncoding::Der,
            signed_attributes: SignedAttributes::None,
            signing_time: None,
            message_digest: None,
            certificates: None,
            corrupt_signature: false,
            tamper_payload_after_signing: false,
        }
    }

    /// `ATTEST` or `RECEIPT` (field 6, and which fields are present and in what order).
    pub fn receipt_type(mut self, receipt_type: ReceiptType) -> Self {
        self.receipt_type = receipt_type;
        self
    }

    /// App ID (field 2).
    pub fn app_id(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = app_id.into();
        self
    }

    /// The attested leaf certificate, DER (field 3).
    pub fn attested_certificate(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.attested_certificate = der.into();
        self
    }

    /// Client hash bytes exactly as field 4 should hold them.
    pub fn client_hash(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.client_hash = bytes.into();
        self
    }

    /// Token (field 5).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = token.into();
        self
    }

    /// Environment (field 7: `sandbox` / `production`).
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }

    /// Creation time (field 12); other default times derive from it.
    pub fn created_at(mut self, at: OffsetDateTime) -> Self {
        self.created_at = truncate_to_millis(at);
        self
    }

    /// Not-before time (field 19). For `ATTEST` receipts this adds the field Apple leaves out.
    pub fn not_before(mut self, at: OffsetDateTime) -> Self {
        self.not_before = Some(at);
        self
    }

    /// Expiration time (field 21).
    pub fn expires_at(mut self, at: OffsetDateTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Risk metric (field 17, `RECEIPT` only), written as a decimal string.
    pub fn risk_metric(mut self, metric: u64) -> Self {
        self.risk_metric = metric;
        self
    }

    /// Tamper knob: sets field `kind` to `value` (replacing it, or appending it if absent).
    pub fn set_field(mut self, kind: u64, value: impl Into<Vec<u8>>) -> Self {
        self.edits.push(FieldEdit::Set(kind, value.into()));
        self
    }

    /// Tamper knob: sets field `kind`'s version number.
    pub fn field_version(mut self, kind: u64, version: u64) -> Self {
        self.edits.push(FieldEdit::Version(kind, version));
        self
    }

    /// Tamper knob: removes field `kind`.
    pub fn remove_field(mut self, kind: u64) -> Self {
        self.edits.push(FieldEdit::Remove(kind));
        self
    }

    /// Tamper knob: appends a field even if one with that number exists (duplicates).
    pub fn append_field(mut self, kind: u64, version: u64, value: impl Into<Vec<u8>>) -> Self {
        self.edits.push(FieldEdit::Append(ReceiptField {
            kind,
            version,
            value: value.into(),
        }));
        self
    }

    /// Tamper knob: the exact eContent bytes, replacing the payload built from the fields.
    pub fn payload(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.payload = Some(bytes.into());
        self
    }

    /// DER (default) or Apple's BER envelope.
    pub fn encoding(mut self, encoding: CmsEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Shorthand for [`CmsEncoding::Ber`].
    pub fn ber(self) -> Self {
        self.encoding(CmsEncoding::Ber)
    }

    /// Signed attributes (none by default; [`SignedAttributes::Quirk2020`] for the 2020 form).
    pub fn signed_attributes(mut self, attributes: SignedAttributes) -> Self {
        self.signed_attributes = attributes;
        self
    }

    /// signingTime of the signed attributes (default: the creation time).
    pub fn signing_time(mut self, at: OffsetDateTime) -> Self {
        self.signing_time = Some(at);
        self
    }

    /// Tamper knob: the messageDigest signed attribute's value (default SHA-256 of eContent).
    pub fn message_digest(mut self, digest: impl Into<Vec<u8>>) -> Self {
        self.message_digest = Some(digest.into());
        self
    }

    /// Tamper knob: the certificates carried in the envelope (default signer, intermediate,
    /// root); an empty list leaves the `certificates` field out.
    pub fn certificates(mut self, certificates: Vec<Vec<u8>>) -> Self {
        self.certificates = Some(certificates);
        self
    }

    /// Tamper knob: flips a bit in the ECDSA signature's last byte.
    pub fn corrupt_signature(mut self) -> Self {
        self.corrupt_signature = true;
        self
    }

    /// Tamper knob: changes one payload byte after signing (the signature no longer matches).
    pub fn tamper_payload_after_signing(mut self) -> Self {
        self.tamper_payload_after_signing = true;
        self
    }

    /// The payload fields in Apple's order: `ATTEST` 2, 3, 4, 5, 6, 7, 12, 21; `RECEIPT` 17, 6,
    /// 2, 3, 4, 5, 7, 12, 19, 21; then the edits.
    pub fn fields(&self) -> Vec<ReceiptField> {
        let created = self.created_at;
        let expires = self.expires_at.unwrap_or(created + Duration::days(90));
        let not_before = match (self.not_before, self.receipt_type) {
            (Some(at), _) => Some(at),
            (None, ReceiptType::Receipt) => Some(created + Duration::days(1)),
            (None, ReceiptType::Attest) => None,
        };
        let entry = |kind: u64, value: Vec<u8>| ReceiptField {
            kind,
            version: 1,
            value,
        };
        let common = [
            entry(field::APP_ID, self.app_id.as_bytes().to_vec()),
            entry(
                field::ATTESTED_PUBLIC_KEY,
                self.attested_certificate.clone(),
            ),
            entry(field::CLIENT_HASH, self.client_hash.clone()),
            entry(field::TOKEN, self.token.as_bytes().to_vec()),
        ];
        let receipt_type = entry(
            field::RECEIPT_TYPE,
            self.receipt_type.as_str().as_bytes().to_vec(),
        );
        let environment = entry(
            field::ENVIRONMENT,
            crate::receipt_environment(self.environment)
                .as_bytes()
                .to_vec(),
        );
        let creation = entry(field::CREATION_TIME, apple_timestamp(created).into_bytes());
        let not_before =
            not_before.map(|at| entry(field::NOT_BEFORE, apple_timestamp(at).into_bytes()));
        let expiration = entry(
            field::EXPIRATION_TIME,
            apple_timestamp(expires).into_bytes(),
        );

        let mut fields = Vec::new();
        match self.receipt_type {
            ReceiptType::Attest => {
                fields.extend(common);
                fields.extend([receipt_type, environment, creation]);
            }
            ReceiptType::Receipt => {
                fields.push(entry(
                    field::RISK_METRIC,
                    self.risk_metric.to_string().into_bytes(),
                ));
                fields.push(receipt_type);
                fields.extend(common);
                fields.extend([environment, creation]);
            }
        }
        fields.extend(not_before);
        fields.push(expiration);

        for edit in &self.edits {
            match edit {
                FieldEdit::Set(kind, value) => match fields.iter_mut().find(|f| f.kind == *kind) {
                    Some(f) => f.value.clone_from(value),
                    None => fields.push(entry(*kind, value.clone())),
                },
                FieldEdit::Version(kind, version) => fields
                    .iter_mut()
                    .filter(|f| f.kind == *kind)
                    .for_each(|f| f.version = *version),
                FieldEdit::Remove(kind) => fields.retain(|f| f.kind != *kind),
                FieldEdit::Append(f) => fields.push(f.clone()),
            }
        }
        fields
    }

    /// The DER payload (eContent): `SET OF SEQUENCE { INTEGER, INTEGER, OCTET STRING }`, in
    /// [`ReceiptBuilder::fields`] order (Apple does not sort the SET).
    pub fn build_payload(&self) -> Vec<u8> {
        if let Some(payload) = &self.payload {
            return payload.clone();
        }
        let entries: Vec<Vec<u8>> = self
            .fields()
            .iter()
            .map(|f| {
                der::sequence(&[
                    &der::uint(f.kind),
                    &der::uint(f.version),
                    &der::octet_string(&f.value),
                ])
            })
            .collect();
        let parts: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        der::set(&parts)
    }

    /// Signs and encodes the receipt.
    pub fn build(&self) -> Vec<u8> {
        let mut payload = self.build_payload();
        let signer = &self.ca.signer;

        let signed_attributes = match self.signed_attributes {
            SignedAttributes::None => None,
            SignedAttributes::Standard | SignedAttributes::Quirk2020 => {
                let digest = self
                    .message_digest
                    .clone()
                    .unwrap_or_else(|| sha256(&[&payload]).to_vec());
                let signing_time = self.signing_time.unwrap_or(self.created_at);
                Some(signed_attributes_set(&digest, signing_time))
            }
        };
        let to_sign: &[u8] = match (&signed_attributes, self.signed_attributes) {
            (Some(set), SignedAttributes::Standard) => set,
            _ => &payload,
        };
        let mut signature = signer.key.sign(to_sign);
        if self.corrupt_signature {
            *signature.last_mut().expect("non-empty signature") ^= 0x01;
        }
        if self.tamper_payload_after_signing {
            // Flip the last byte (inside the last field's value), keeping the DER well formed.
            *payload.last_mut().expect("non-empty payload") ^= 0x01;
        }

        let parts = der::certificate_parts(&signer.der).expect("the signer's own certificate");
        let issuer_and_serial = der::sequence(&[parts.issuer.raw, parts.serial.raw]);
        let mut signer_info = vec![
            der::uint(1),
            issuer_and_serial,
            der::algorithm_with_null(SHA256),
        ];
        if let Some(set) = &signed_attributes {
            // [0] IMPLICIT SET OF Attribute: same content, context tag.
            let (element, _) = der::read(set).expect("own DER");
            signer_info.push(der::context(0, true, element.content));
        }
        signer_info.push(der::algorithm(ECDSA_WITH_SHA256));
        signer_info.push(der::octet_string(&signature));
        let signer_info_refs: Vec<&[u8]> = signer_info.iter().map(Vec::as_slice).collect();
        let signer_infos = der::set(&[&der::sequence(&signer_info_refs)]);

        let ber = self.encoding == CmsEncoding::Ber;
        let econtent = if ber {
            Node::Constructed {
                tag: 0x24,
                indefinite: true,
                children: payload
                    .chunks(BER_CHUNK)
                    .map(|c| Node::Tlv(der::octet_string(c)))
                    .collect(),
            }
        } else {
            Node::Tlv(der::octet_string(&payload))
        };
        let encap = Node::constructed(
            der::SEQUENCE,
            ber,
            vec![
                Node::Tlv(der::oid(DATA)),
                Node::constructed(0xa0, ber, vec![econtent]),
            ],
        );
        let certificates = self
            .certificates
            .clone()
            .unwrap_or_else(|| self.ca.certificates());
        let mut signed_data = vec![
            Node::Tlv(der::uint(1)),
            Node::Tlv(der::set(&[&der::algorithm_with_null(SHA256)])),
            encap,
        ];
        if !certificates.is_empty() {
            signed_data.push(Node::constructed(
                0xa0,
                ber,
                certificates.into_iter().map(Node::Tlv).collect(),
            ));
        }
        signed_data.push(Node::Tlv(signer_infos));
        let content_info = Node::constructed(
            der::SEQUENCE,
            ber,
            vec![
                Node::Tlv(der::oid(SIGNED_DATA)),
                Node::constructed(
                    0xa0,
                    ber,
                    vec![Node::constructed(der::SEQUENCE, ber, signed_data)],
                ),
            ],
        );
        let mut out = Vec::new();
        content_info.encode(&mut out);
        out
    }
}

/// The signed attributes as a DER `SET OF Attribute` (tag 0x31), sorted as DER requires (which is
/// also the order Apple used).
fn signed_attributes_set(digest: &[u8], signing_time: OffsetDateTime) -> Vec<u8> {
    let attribute =
        |oid: &[u64], value: Vec<u8>| der::sequence(&[&der::oid(oid), &der::set(&[&value])]);
    let protection = der::sequence(&[
        &der::algorithm_with_null(SHA256),
        &der::context(1, true, &der::oid(ECDSA_WITH_SHA256)),
    ]);
    let mut attributes = [
        attribute(CONTENT_TYPE, der::oid(DATA)),
        attribute(SIGNING_TIME, der::utc_time(signing_time)),
        attribute(CMS_ALGORITHM_PROTECTION, protection),
        attribute(MESSAGE_DIGEST, der::octet_string(digest)),
    ];
    attributes.sort();
    let parts: Vec<&[u8]> = attributes.iter().map(Vec::as_slice).collect();
    der::set(&parts)
}

/// A BER/DER element tree: definite TLVs and constructed elements that may use indefinite length.
enum Node {
    Tlv(Vec<u8>),
    Constructed {
        tag: u8,
        indefinite: bool,
        children: Vec<Node>,
    },
}

impl Node {
    fn constructed(tag: u8, indefinite: bool, children: Vec<Node>) -> Node {
        Node::Constructed {
            tag,
            indefinite,
            children,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Node::Tlv(bytes) => out.extend_from_slice(bytes),
            Node::Constructed {
                tag,
                indefinite: true,
                children,
            } => {
                out.extend_from_slice(&[*tag, 0x80]);
                children.iter().for_each(|c| c.encode(out));
                out.extend_from_slice(&[0, 0]);
            }
            Node::Constructed {
                tag,
                indefinite: false,
                children,
            } => {
                let mut content = Vec::new();
                children.iter().for_each(|c| c.encode(&mut content));
                out.extend_from_slice(&der::tlv(*tag, &content));
            }
        }
    }
}

fn truncate_to_millis(at: OffsetDateTime) -> OffsetDateTime {
    let at = at.to_offset(UtcOffset::UTC);
    at.replace_nanosecond(at.millisecond() as u32 * 1_000_000)
        .expect("valid nanosecond")
}

/// Apple's receipt timestamp: ISO 8601 in UTC with milliseconds whose trailing zeros are dropped
/// (`2020-10-03T09:13:53.54Z`), and no fraction at all on a whole second.
pub fn apple_timestamp(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    let mut text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    let millis = at.millisecond();
    if millis != 0 {
        let fraction = format!("{millis:03}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn timestamps_look_like_apples() {
        assert_eq!(
            apple_timestamp(datetime!(2024-02-07 21:08:56.308 UTC)),
            "2024-02-07T21:08:56.308Z"
        );
        assert_eq!(
            apple_timestamp(datetime!(2020-10-03 09:13:53.540 UTC)),
            "2020-10-03T09:13:53.54Z"
        );
        assert_eq!(
            apple_timestamp(datetime!(2020-08-16 13:44:24.32 UTC)),
            "2020-08-16T13:44:24.32Z"
        );
        assert_eq!(
            apple_timestamp(datetime!(2021-01-01 00:00:00 UTC)),
            "2021-01-01T00:00:00Z"
        );
    }
}
