//! Independent checkers for the simulator's output: rustls-webpki for chains, x509-parser for
//! certificate fields, aws-lc-rs for signatures, minicbor's decoder for CBOR layout, rasn-cms and
//! the openssl CLI for receipts. Nothing here uses attest-sim's own parsing code.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use ::time::OffsetDateTime;
use ::time::macros::datetime;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use minicbor::Decoder;
use minicbor::data::Type;
use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::{EndEntityCert, KeyUsage, anchor_from_trusted_cert};
use x509_parser::prelude::{X509Certificate, X509Name, parse_x509_certificate};

/// A fixed instant for deterministic tests.
pub const NOW: OffsetDateTime = datetime!(2026-05-01 12:00:00.250 UTC);
pub const APP_ID: &str = "TEAMID1234.com.example.attestd";
pub const CLIENT_DATA_HASH: [u8; 32] = [0x5a; 32];

/// DER of OID 1.2.840.113635.100.4.24 (content octets), for webpki's EKU check.
pub const APPLE_EKU: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x63, 0x64, 0x04, 0x18];

pub fn unix(at: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        at.unix_timestamp().try_into().unwrap(),
    ))
}

/// Validates `x5c` (leaf first) against `root` at `at`, the way a verifier would.
pub fn verify_chain(x5c: &[Vec<u8>], root: &[u8], at: OffsetDateTime) -> Result<(), webpki::Error> {
    let root = CertificateDer::from(root);
    let anchor = anchor_from_trusted_cert(&root)?;
    let leaf = x5c.first().ok_or(webpki::Error::BadDer)?;
    let leaf = CertificateDer::from(leaf.as_slice());
    let ee = EndEntityCert::try_from(&leaf)?;
    let intermediates: Vec<CertificateDer<'_>> = x5c[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    ee.verify_for_usage(
        &[
            webpki::aws_lc_rs::ECDSA_P256_SHA256,
            webpki::aws_lc_rs::ECDSA_P384_SHA256,
            webpki::aws_lc_rs::ECDSA_P384_SHA384,
        ],
        &[anchor],
        &intermediates,
        unix(at),
        KeyUsage::required_if_present(APPLE_EKU),
        None,
        None,
    )
    .map(|_| ())
}

pub fn parse_cert(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = parse_x509_certificate(der).expect("certificate parses");
    assert!(rest.is_empty(), "trailing bytes after certificate");
    cert
}

/// `(oid, critical)` of every extension, in order.
pub fn extension_list(cert: &X509Certificate<'_>) -> Vec<(String, bool)> {
    cert.extensions()
        .iter()
        .map(|e| (e.oid.to_id_string(), e.critical))
        .collect()
}

pub fn extension_value<'a>(cert: &'a X509Certificate<'_>, oid: &str) -> Option<&'a [u8]> {
    cert.extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == oid)
        .map(|e| e.value)
}

/// The nonce from extension 1.2.840.113635.100.8.2, requiring Apple's exact wrapper
/// `SEQUENCE { [1] { OCTET STRING (32) } }`.
pub fn leaf_nonce(leaf: &[u8]) -> Option<Vec<u8>> {
    let cert = parse_cert(leaf);
    let value = extension_value(&cert, "1.2.840.113635.100.8.2")?;
    let (header, nonce) = value.split_at_checked(6)?;
    (header == [0x30, 0x24, 0xa1, 0x22, 0x04, 0x20] && nonce.len() == 32).then(|| nonce.to_vec())
}

/// The leaf's uncompressed public point.
pub fn leaf_point(leaf: &[u8]) -> Vec<u8> {
    parse_cert(leaf)
        .public_key()
        .subject_public_key
        .data
        .to_vec()
}

/// `(attribute OID, ASN.1 tag number, value)` of each RDN of a name.
pub fn name_layout(name: &X509Name<'_>) -> Vec<(String, u32)> {
    name.iter_attributes()
        .map(|a| (a.attr_type().to_id_string(), a.attr_value().header.tag().0))
        .collect()
}

pub fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    parts.iter().for_each(|p| context.update(p));
    context.finish().as_ref().to_vec()
}

/// ECDSA P-256 SHA-256 ASN.1 verification with aws-lc-rs.
pub fn p256_verifies(point: &[u8], message: &[u8], signature: &[u8]) -> bool {
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        point,
    )
    .verify(message, signature)
    .is_ok()
}

// ---- CBOR ------------------------------------------------------------------------------------

/// A textual layout of a CBOR item: maps with their keys in order, arrays, types, integers and
/// text values; byte strings as `bytes`. Indefinite lengths show as `indef`.
pub fn cbor_shape(bytes: &[u8]) -> String {
    let mut decoder = Decoder::new(bytes);
    let shape = shape_of(&mut decoder);
    assert_eq!(
        decoder.position(),
        bytes.len(),
        "trailing bytes after CBOR item"
    );
    shape
}

fn shape_of(d: &mut Decoder<'_>) -> String {
    match d.datatype().expect("datatype") {
        Type::Map => {
            let n = d.map().expect("map").expect("definite map");
            let entries: Vec<String> = (0..n)
                .map(|_| format!("{}:{}", shape_of(d), shape_of(d)))
                .collect();
            format!("{{{}}}", entries.join(","))
        }
        Type::Array => {
            let n = d.array().expect("array").expect("definite array");
            let items: Vec<String> = (0..n).map(|_| shape_of(d)).collect();
            format!("[{}]", items.join(","))
        }
        Type::Bytes => {
            d.bytes().expect("bytes");
            "bytes".to_owned()
        }
        Type::String => format!("{:?}", d.str().expect("text")),
        Type::U8
        | Type::U16
        | Type::U32
        | Type::U64
        | Type::I8
        | Type::I16
        | Type::I32
        | Type::I64
        | Type::Int => format!("{}", d.i64().expect("int")),
        Type::BytesIndef | Type::StringIndef | Type::ArrayIndef | Type::MapIndef => {
            d.skip().expect("skip");
            "indef".to_owned()
        }
        other => panic!("unexpected CBOR type {other:?}"),
    }
}

/// The byte strings of a top-level map by key (definite encodings only).
pub fn cbor_map_bytes(bytes: &[u8], path: &[&str]) -> Option<Vec<u8>> {
    let mut d = Decoder::new(bytes);
    for (depth, key) in path.iter().enumerate() {
        let n = d.map().ok()??;
        let mut found = false;
        for _ in 0..n {
            let k = d.str().ok()?;
            if k == *key {
                found = true;
                break;
            }
            d.skip().ok()?;
        }
        if !found {
            return None;
        }
        if depth + 1 == path.len() {
            return d.bytes().ok().map(<[u8]>::to_vec);
        }
    }
    None
}

/// `attStmt.x5c` as a list of DER certificates.
pub fn cbor_x5c(object: &[u8]) -> Vec<Vec<u8>> {
    let mut d = Decoder::new(object);
    let n = d.map().unwrap().unwrap();
    for _ in 0..n {
        let key = d.str().unwrap();
        if key != "attStmt" {
            d.skip().unwrap();
            continue;
        }
        let m = d.map().unwrap().unwrap();
        for _ in 0..m {
            if d.str().unwrap() == "x5c" {
                let count = d.array().unwrap().unwrap();
                return (0..count).map(|_| d.bytes().unwrap().to_vec()).collect();
            }
            d.skip().unwrap();
        }
    }
    panic!("no x5c")
}

// ---- real Apple samples ------------------------------------------------------------------------

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/apple")
}

pub fn sample_json(kind: &str, id: &str) -> serde_json::Value {
    let path = data_dir().join(kind).join(format!("{id}.json"));
    serde_json::from_slice(&std::fs::read(&path).expect("sample exists")).expect("sample is JSON")
}

pub fn sample_bytes(kind: &str, id: &str, field: &str) -> Vec<u8> {
    let record = sample_json(kind, id);
    STANDARD
        .decode(record[field].as_str().expect("base64 field"))
        .expect("valid base64")
}

// ---- receipts --------------------------------------------------------------------------------

/// Runs `openssl cms -verify` on a receipt with `root` as the only trust anchor at `at`; returns
/// the verified eContent, or the error output.
pub fn openssl_verify_receipt(
    receipt: &[u8],
    root_pem: &str,
    at: OffsetDateTime,
) -> Result<Vec<u8>, String> {
    let dir = tempdir();
    let receipt_path = dir.join("receipt.der");
    let root_path = dir.join("root.pem");
    let out_path = dir.join("payload.der");
    std::fs::write(&receipt_path, receipt).unwrap();
    std::fs::write(&root_path, root_pem).unwrap();
    let output = Command::new("openssl")
        .args([
            "cms", "-verify", "-inform", "DER", "-binary", "-purpose", "any",
        ])
        .arg("-in")
        .arg(&receipt_path)
        .arg("-CAfile")
        .arg(&root_path)
        .arg("-attime")
        .arg(at.unix_timestamp().to_string())
        .arg("-out")
        .arg(&out_path)
        .output()
        .expect("openssl runs");
    let result = if output.status.success() {
        Ok(std::fs::read(&out_path).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    };
    std::fs::remove_dir_all(&dir).ok();
    result
}

fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "attest-sim-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Receipt contents as decoded by rasn-cms (BER or DER).
pub struct ParsedReceipt {
    pub econtent: Vec<u8>,
    pub certificates: Vec<Vec<u8>>,
    pub signature: Vec<u8>,
    pub has_signed_attrs: bool,
}

pub fn rasn_parse_receipt(receipt: &[u8]) -> ParsedReceipt {
    let info: rasn_cms::ContentInfo = rasn::ber::decode(receipt).expect("ContentInfo decodes");
    assert_eq!(&*info.content_type, rasn_cms::CONTENT_SIGNED_DATA);
    let signed: rasn_cms::SignedData =
        rasn::ber::decode(info.content.as_bytes()).expect("SignedData decodes");
    let econtent = signed
        .encap_content_info
        .content
        .expect("eContent present")
        .to_vec();
    let certificates = signed
        .certificates
        .map(|set| {
            set.iter()
                .map(|choice| match choice {
                    rasn_cms::CertificateChoices::Certificate(c) => {
                        rasn::der::encode(&**c).expect("certificate re-encodes")
                    }
                    _ => panic!("unexpected certificate choice"),
                })
                .collect()
        })
        .unwrap_or_default();
    let signer_infos = signed.signer_infos.to_vec();
    assert_eq!(signer_infos.len(), 1);
    let signer = signer_infos[0];
    ParsedReceipt {
        econtent,
        certificates,
        signature: signer.signature.to_vec(),
        has_signed_attrs: signer.signed_attrs.is_some(),
    }
}

/// `(type, version, value)` of each payload field, in order, read with a tiny DER walker
/// written independently of the simulator's.
pub fn payload_fields(payload: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
    fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = input[0];
        let (len, header) = if input[1] < 0x80 {
            (input[1] as usize, 2)
        } else {
            let n = (input[1] & 0x7f) as usize;
            let len = input[2..2 + n]
                .iter()
                .fold(0usize, |a, b| (a << 8) | *b as usize);
            (len, 2 + n)
        };
        (tag, &input[header..header + len], &input[header + len..])
    }
    fn uint(content: &[u8]) -> u64 {
        content.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b))
    }
    let (tag, mut rest, trailing) = tlv(payload);
    assert_eq!(tag, 0x31, "payload is a SET");
    assert!(trailing.is_empty());
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let (tag, entry, next) = tlv(rest);
        assert_eq!(tag, 0x30);
        let (t1, kind, after) = tlv(entry);
        let (t2, version, after) = tlv(after);
        let (t3, value, after) = tlv(after);
        assert_eq!((t1, t2, t3), (0x02, 0x02, 0x04));
        assert!(after.is_empty());
        fields.push((uint(kind), uint(version), value.to_vec()));
        rest = next;
    }
    fields
}
