//! Path validation the way Google's reference validator does it, not RFC 5280.
//!
//! `android/keyattestation`'s `KeyAttestationCertPathValidator` checks, per certificate, only
//! that the issuer name is the next certificate's subject and that the signature verifies with
//! the next certificate's key, up to a trust anchor chosen by name and checked by key. It does
//! not enforce basic constraints or key usage: real factory chains sign the leaf with
//! `CA:FALSE` certificates without `keyCertSign` (about 7% of devices; RFC 5280 validators such
//! as rustls-webpki reject them as `EndEntityUsedAsCa`), and ATTEST_KEY certificates carry no
//! basic constraints at all. Validity and chain shape are checked above this module, by the
//! verifier, with Google's time rules.
//!
//! The walk goes from the leaf up. At each certificate it first asks whether a trust anchor
//! signed it (issuer name equal to the anchor's subject, signature verifying with the anchor's
//! key); if so the path ends there. Otherwise the next certificate must be its issuer. What
//! follows the anchored certificate is the root's own self-issued certificate (ignored, as
//! Google drops it: its validity and signature are irrelevant, so the 2016 root certificate
//! that expired on 2026-05-24 still works), nothing (the root was omitted), or something else,
//! which the verifier reports as `chain_extended`.
//!
//! Signatures never change, so verified *edges* (this certificate verifies under that key) of
//! the certificates above the leaf are remembered in a bounded cache: Droid CA2/CA3 and factory
//! batch intermediates are shared by many devices, and a warm verification pays only for the
//! signatures of the leaf and of the device's attestation certificate. Names, validity and
//! shape are re-read on every call; the cache holds no verdict that depends on time or policy.

use std::borrow::Borrow;
use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

pub use attest_types::evidence::TrustAnchor;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::oid;
use x509_parser::nom::Parser;
use x509_parser::prelude::X509CertificateParser;
use x509_parser::x509::{AttributeTypeAndValue, SubjectPublicKeyInfo, X509Name};

use super::error::ChainFailure;
use super::roots;

/// How many verified signature edges are remembered (an edge holds a certificate and a key,
/// about 1.5 KB: at most ~1.5 MB). Shared intermediates need a handful, per-device attestation
/// certificates fill the rest.
const EDGE_CACHE_CAPACITY: usize = 1024;

/// Parses one certificate of a chain. Extension values are not parsed (only the ones the
/// verifier needs are read, by hand): real Huawei leaves carry a CRL Distribution Points
/// extension whose value is the single byte `00`. Bytes after the certificate are ignored (an
/// emulator leaf file ends with a newline); the signature covers the TBSCertificate only.
pub(crate) fn parse_certificate(der: &[u8]) -> Option<X509Certificate<'_>> {
    X509CertificateParser::new()
        .with_deep_parse_extensions(false)
        .parse(der)
        .ok()
        .map(|(_, cert)| cert)
}

/// At most this many certificates in a chain (real ones hold 2 to 8; the bound caps the work a
/// hostile input can cause before any signature is checked).
pub const MAX_CHAIN_LEN: usize = 16;

/// At most this many bytes per certificate (real ones are under 2 KB).
pub const MAX_CERTIFICATE_LEN: usize = 16 * 1024;

/// Parses every certificate of a chain (leaf first), within the bounds above.
pub(crate) fn parse_chain<'a>(
    chain: &[&'a [u8]],
) -> Result<Vec<X509Certificate<'a>>, &'static str> {
    if chain.len() < 2 {
        return Err("a Key Attestation chain holds at least the leaf and its issuer");
    }
    if chain.len() > MAX_CHAIN_LEN {
        return Err("more than 16 certificates");
    }
    chain
        .iter()
        .map(|der| {
            if der.len() > MAX_CERTIFICATE_LEN {
                return Err("a certificate is larger than 16 KiB");
            }
            parse_certificate(der).ok_or("a certificate is not a DER X.509 certificate")
        })
        .collect()
}

/// A root passed to [`PathWalker::with_roots`] or [`PathWalker::with_extra_roots`] is not a
/// DER certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a root is not a DER X.509 certificate")]
pub struct InvalidRoot;

/// Why [`PathWalker::walk`] found no path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkError {
    /// Not a chain (see [`parse_chain`] bounds): fewer than 2 or more than 16 certificates, or one
    /// that does not parse.
    Malformed(&'static str),
    /// Names or signatures do not lead to a trusted root.
    Chain(ChainFailure),
    /// The path ends at an Android Keystore software attestation root.
    SoftwareRoot,
}

/// Where a chain's path ended (see [`PathWalker::walk`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkedPath {
    /// Certificates `0..len` (leaf first) form the path; certificate `len - 1` is signed by the
    /// root key.
    pub len: usize,
    /// The root key that signed it.
    pub anchor: TrustAnchor,
    /// Whether the root's own (self-issued) certificate follows the path in the chain.
    pub root_included: bool,
    /// How many certificates follow the path and the root's certificate (any is
    /// `chain_extended` for the verifier).
    pub trailing: usize,
}

/// The chain walker: pinned roots and the cache of verified signature edges. Build one per
/// process and share it.
#[derive(Debug)]
pub struct PathWalker {
    anchors: Vec<Anchor>,
    cache: EdgeCache,
}

impl PathWalker {
    /// Google's two pinned root keys; the Android Keystore software roots are recognised (and
    /// refused as `software_root`).
    pub fn google() -> Self {
        // The pinned certificates are constants that `roots::tests` and the tests below parse.
        let anchors = [
            (
                roots::GOOGLE_ROOT_RSA,
                AnchorRole::Trusted(TrustAnchor::GoogleRsa),
            ),
            (
                roots::GOOGLE_KEY_ATTESTATION_CA1,
                AnchorRole::Trusted(TrustAnchor::GoogleKeyAttestationCa1),
            ),
        ]
        .into_iter()
        .filter_map(|(der, role)| Anchor::from_certificate(der, role))
        .collect();
        Self::new(anchors)
    }

    /// `roots` (DER certificates; their subject and key are pinned) **in place of** Google's:
    /// for tests whose CA plays Google. Software roots are still recognised.
    pub fn with_roots(roots: Vec<Vec<u8>>) -> Result<Self, InvalidRoot> {
        let anchors = roots
            .iter()
            .map(|der| {
                Anchor::from_certificate(der, AnchorRole::Trusted(TrustAnchor::Configured))
                    .ok_or(InvalidRoot)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(anchors))
    }

    /// Google's roots plus `extra` (DER certificates): chains under an extra root verify, and
    /// say so ([`TrustAnchor::Extra`]). For simulators and the quick start.
    pub fn with_extra_roots(extra: Vec<Vec<u8>>) -> Result<Self, InvalidRoot> {
        let mut walker = Self::google();
        let mut anchors = std::mem::take(&mut walker.anchors);
        let software = anchors.split_off(
            anchors
                .iter()
                .position(|a| a.role == AnchorRole::Software)
                .unwrap_or(anchors.len()),
        );
        for der in &extra {
            anchors.push(
                Anchor::from_certificate(der, AnchorRole::Trusted(TrustAnchor::Extra))
                    .ok_or(InvalidRoot)?,
            );
        }
        anchors.extend(software);
        Ok(Self {
            anchors,
            cache: EdgeCache::default(),
        })
    }

    fn new(mut anchors: Vec<Anchor>) -> Self {
        anchors.extend(
            [roots::SOFTWARE_ROOT_EC, roots::SOFTWARE_ROOT_RSA]
                .into_iter()
                .filter_map(|der| Anchor::from_certificate(der, AnchorRole::Software)),
        );
        Self {
            anchors,
            cache: EdgeCache::default(),
        }
    }

    /// Walks `chain` (DER certificates, leaf first) to a root: names and signatures only (no
    /// validity, no basic constraints, no key usage, no extensions).
    pub fn walk(&self, chain: &[&[u8]]) -> Result<WalkedPath, WalkError> {
        let certs = parse_chain(chain).map_err(WalkError::Malformed)?;
        self.walk_parsed(&certs)
    }

    pub(crate) fn walk_parsed(
        &self,
        certs: &[X509Certificate<'_>],
    ) -> Result<WalkedPath, WalkError> {
        let path = walk(certs, &self.anchors, &self.cache).map_err(WalkError::Chain)?;
        match path.anchor {
            AnchorRole::Software => Err(WalkError::SoftwareRoot),
            AnchorRole::Trusted(anchor) => Ok(WalkedPath {
                len: path.len,
                anchor,
                root_included: path.root_included,
                trailing: path.trailing,
            }),
        }
    }

    /// How many verified signature edges are cached (for tests and metrics).
    pub fn cached_edges(&self) -> usize {
        self.cache.len()
    }
}

/// What a chain anchored at an [`Anchor`] means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnchorRole {
    /// A trusted root.
    Trusted(TrustAnchor),
    /// An Android Keystore software attestation root: recognised, never trusted.
    Software,
}

/// A root, pinned by subject name and key.
#[derive(Debug, Clone)]
struct Anchor {
    name: Vec<u8>,
    /// The subject's RDNs, to compare an issuer that differs in DER (see [`names_equal`]).
    rdns: Vec<Vec<StoredAttribute>>,
    spki: Vec<u8>,
    role: AnchorRole,
}

/// One attribute of an anchor's subject, kept for folded comparison.
#[derive(Debug, Clone)]
struct StoredAttribute {
    oid: Vec<u8>,
    tag: u32,
    data: Vec<u8>,
    text: Option<String>,
}

impl StoredAttribute {
    fn matches(&self, attribute: &AttributeTypeAndValue<'_>) -> bool {
        attribute.attr_type().as_bytes() == self.oid.as_slice()
            && match (attribute.as_str(), &self.text) {
                (Ok(text), Some(stored)) => folded_equal(text, stored),
                _ => {
                    attribute.attr_value().tag().0 == self.tag
                        && attribute.attr_value().data == self.data.as_slice()
                }
            }
    }
}

impl Anchor {
    /// The subject and key of a root certificate (DER).
    fn from_certificate(der: &[u8], role: AnchorRole) -> Option<Self> {
        let cert = parse_certificate(der)?;
        let rdns = cert
            .subject()
            .iter_rdn()
            .map(|rdn| {
                rdn.iter()
                    .map(|attribute| StoredAttribute {
                        oid: attribute.attr_type().as_bytes().to_vec(),
                        tag: attribute.attr_value().tag().0,
                        data: attribute.attr_value().data.to_vec(),
                        text: attribute.as_str().ok().map(str::to_owned),
                    })
                    .collect()
            })
            .collect();
        Some(Self {
            name: cert.subject().as_raw().to_vec(),
            rdns,
            spki: cert.public_key().raw.to_vec(),
            role,
        })
    }

    /// Whether `issuer` names this anchor (the folded comparison of [`names_equal`]).
    fn names(&self, issuer: &X509Name<'_>) -> bool {
        if issuer.as_raw() == self.name.as_slice() {
            return true;
        }
        let mut rdns = issuer.iter_rdn();
        for stored in &self.rdns {
            let Some(rdn) = rdns.next() else {
                return false;
            };
            if rdn.iter().count() != stored.len()
                || !rdn.iter().all(|a| stored.iter().any(|s| s.matches(a)))
            {
                return false;
            }
        }
        rdns.next().is_none()
    }
}

/// Where the walk from the leaf ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Path {
    /// Certificates `0..len` of the chain form the path (leaf first); certificate `len - 1` is
    /// signed by the anchor.
    len: usize,
    /// The anchor that signed certificate `len - 1`.
    anchor: AnchorRole,
    /// Whether the anchor's own self-issued certificate follows the path.
    root_included: bool,
    /// Certificates after the path (and after the root's certificate, if included).
    trailing: usize,
}

/// Walks `certs` (leaf first) to one of `anchors`, checking names and signatures only.
fn walk(
    certs: &[X509Certificate<'_>],
    anchors: &[Anchor],
    cache: &EdgeCache,
) -> Result<Path, ChainFailure> {
    let mut weak = None;
    for (index, cert) in certs.iter().enumerate() {
        // Does a root sign this certificate?
        let mut anchored = None;
        for anchor in anchors {
            if !anchor.names(cert.issuer()) {
                continue;
            }
            let Some(spki) = SubjectPublicKeyInfo::from_der_raw(&anchor.spki) else {
                continue;
            };
            if let Ok(strength) = verify_edge(cert, index, &spki, cache) {
                anchored = Some((anchor, strength));
                break;
            }
        }
        if let Some((anchor, strength)) = anchored {
            if strength == Strength::WeakRsa {
                weak = weak.or(Some(index));
            }
            let len = index + 1;
            if len < 2 {
                return Err(ChainFailure::TooShort);
            }
            if let (Some(index), AnchorRole::Trusted(_)) = (weak, anchor.role) {
                return Err(ChainFailure::WeakKey { index });
            }
            let rest = certs.get(len..).unwrap_or_default();
            let root_included = matches!(rest.first(), Some(root) if is_self_issued(root));
            let trailing = rest.len() - usize::from(root_included);
            return Ok(Path {
                len,
                anchor: anchor.role,
                root_included,
                trailing,
            });
        }
        // Otherwise the next certificate is the issuer.
        let Some(issuer) = certs.get(index + 1) else {
            return Err(ChainFailure::UnknownIssuer);
        };
        if !names_equal(cert.issuer(), issuer.subject()) {
            return Err(ChainFailure::NameChaining { index });
        }
        match verify_edge(cert, index, issuer.public_key(), cache) {
            Ok(Strength::Normal) => {}
            Ok(Strength::WeakRsa) => weak = weak.or(Some(index)),
            Err(EdgeError::Unsupported) => {
                return Err(ChainFailure::UnsupportedAlgorithm { index });
            }
            Err(EdgeError::Bad) => return Err(ChainFailure::BadSignature { index }),
        }
    }
    Err(ChainFailure::UnknownIssuer)
}

/// Issuer and subject name the same entity.
pub(crate) fn is_self_issued(cert: &X509Certificate<'_>) -> bool {
    names_equal(cert.issuer(), cert.subject())
}

/// X.500 name equality: identical DER, or the same attributes in the same RDNs with string
/// values equal after case folding and whitespace folding (what Java's `X500Principal.equals`
/// compares, so a PrintableString issuer matches a UTF8String subject with the same text).
pub(crate) fn names_equal(a: &X509Name<'_>, b: &X509Name<'_>) -> bool {
    a.as_raw() == b.as_raw() || names_equal_folded(a, b)
}

/// The folded comparison, without allocating: a mismatch in RDN count or attribute types ends
/// it before any string is looked at.
fn names_equal_folded(a: &X509Name<'_>, b: &X509Name<'_>) -> bool {
    let (mut left, mut right) = (a.iter_rdn(), b.iter_rdn());
    loop {
        match (left.next(), right.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) => {
                if x.iter().count() != y.iter().count()
                    || !x.iter().all(|p| y.iter().any(|q| attributes_equal(p, q)))
                {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

fn attributes_equal(a: &AttributeTypeAndValue<'_>, b: &AttributeTypeAndValue<'_>) -> bool {
    if a.attr_type() != b.attr_type() {
        return false;
    }
    match (a.as_str(), b.as_str()) {
        (Ok(x), Ok(y)) => folded_equal(x, y),
        _ => {
            a.attr_value().tag() == b.attr_value().tag()
                && a.attr_value().data == b.attr_value().data
        }
    }
}

/// Equal once runs of whitespace are one space, ends trimmed, and letters lowercased.
fn folded_equal(a: &str, b: &str) -> bool {
    let (mut left, mut right) = (a.split_whitespace(), b.split_whitespace());
    loop {
        match (left.next(), right.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) => {
                let equal = if x.is_ascii() && y.is_ascii() {
                    x.eq_ignore_ascii_case(y)
                } else {
                    x.chars()
                        .flat_map(char::to_lowercase)
                        .eq(y.chars().flat_map(char::to_lowercase))
                };
                if !equal {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Whether the signature needed an RSA key shorter than 2048 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strength {
    Normal,
    WeakRsa,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EdgeError {
    Unsupported,
    Bad,
}

/// Verifies `cert`'s signature with `issuer`'s key, through the cache for certificates above
/// the leaf (`index` > 0). Only normal-strength successes are cached.
fn verify_edge(
    cert: &X509Certificate<'_>,
    index: usize,
    issuer: &SubjectPublicKeyInfo<'_>,
    cache: &EdgeCache,
) -> Result<Strength, EdgeError> {
    let cached = index > 0;
    if cached && cache.contains(cert.as_raw(), issuer.raw) {
        return Ok(Strength::Normal);
    }
    let strength = verify_signature(cert, issuer)?;
    if cached && strength == Strength::Normal {
        cache.insert(cert.as_raw(), issuer.raw);
    }
    Ok(strength)
}

/// The issuer key types the walker knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    P256,
    P384,
    P521,
    Rsa,
}

fn key_kind(spki: &SubjectPublicKeyInfo<'_>) -> Option<KeyKind> {
    let algorithm = &spki.algorithm.algorithm;
    if *algorithm == oid!(1.2.840.113549.1.1.1) {
        return Some(KeyKind::Rsa);
    }
    if *algorithm != oid!(1.2.840.10045.2.1) {
        return None;
    }
    let curve = spki.algorithm.parameters.as_ref()?.as_oid().ok()?;
    if curve == oid!(1.2.840.10045.3.1.7) {
        Some(KeyKind::P256)
    } else if curve == oid!(1.3.132.0.34) {
        Some(KeyKind::P384)
    } else if curve == oid!(1.3.132.0.35) {
        Some(KeyKind::P521)
    } else {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Digest {
    Sha256,
    Sha384,
    Sha512,
}

/// (is RSA PKCS#1 v1.5, hash) of a signature algorithm; ECDSA otherwise. Parameters are not
/// looked at: pre-production StrongBox chains write ecdsa-with-SHA256 with NULL parameters.
fn signature_kind(cert: &X509Certificate<'_>) -> Option<(bool, Digest)> {
    let algorithm = &cert.signature_algorithm.algorithm;
    let known = [
        (oid!(1.2.840.10045.4.3.2), false, Digest::Sha256),
        (oid!(1.2.840.10045.4.3.3), false, Digest::Sha384),
        (oid!(1.2.840.10045.4.3.4), false, Digest::Sha512),
        (oid!(1.2.840.113549.1.1.11), true, Digest::Sha256),
        (oid!(1.2.840.113549.1.1.12), true, Digest::Sha384),
        (oid!(1.2.840.113549.1.1.13), true, Digest::Sha512),
    ];
    known
        .into_iter()
        .find(|(oid, _, _)| oid == algorithm)
        .map(|(_, rsa, hash)| (rsa, hash))
}

fn verify_signature(
    cert: &X509Certificate<'_>,
    issuer: &SubjectPublicKeyInfo<'_>,
) -> Result<Strength, EdgeError> {
    let (rsa, hash) = signature_kind(cert).ok_or(EdgeError::Unsupported)?;
    let kind = key_kind(issuer).ok_or(EdgeError::Unsupported)?;
    let message = cert.tbs_certificate.as_ref();
    let signature_bytes: &[u8] = &cert.signature_value.data;
    let key: &[u8] = &issuer.subject_public_key.data;
    let verify = |algorithm: &'static dyn VerificationAlgorithm| {
        UnparsedPublicKey::new(algorithm, key)
            .verify(message, signature_bytes)
            .is_ok()
    };
    let algorithm: &'static dyn VerificationAlgorithm = match (kind, rsa, hash) {
        (KeyKind::Rsa, true, Digest::Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (KeyKind::Rsa, true, Digest::Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (KeyKind::Rsa, true, Digest::Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (KeyKind::P256, false, Digest::Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
        (KeyKind::P256, false, Digest::Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
        (KeyKind::P256, false, Digest::Sha512) => &signature::ECDSA_P256_SHA512_ASN1,
        (KeyKind::P384, false, Digest::Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
        (KeyKind::P384, false, Digest::Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
        (KeyKind::P384, false, Digest::Sha512) => &signature::ECDSA_P384_SHA512_ASN1,
        (KeyKind::P521, false, Digest::Sha256) => &signature::ECDSA_P521_SHA256_ASN1,
        (KeyKind::P521, false, Digest::Sha384) => &signature::ECDSA_P521_SHA384_ASN1,
        (KeyKind::P521, false, Digest::Sha512) => &signature::ECDSA_P521_SHA512_ASN1,
        _ => return Err(EdgeError::Unsupported),
    };
    if verify(algorithm) {
        return Ok(Strength::Normal);
    }
    // Software attestation chains are signed with RSA-1024 keys; accept them here so such a
    // chain can be recognised as `software_root`, and let the walk refuse them anywhere else.
    let legacy: Option<&'static dyn VerificationAlgorithm> = match (kind, hash) {
        (KeyKind::Rsa, Digest::Sha256) => {
            Some(&signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY)
        }
        (KeyKind::Rsa, Digest::Sha512) => {
            Some(&signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY)
        }
        _ => None,
    };
    match legacy {
        Some(algorithm) if verify(algorithm) => Ok(Strength::WeakRsa),
        _ => Err(EdgeError::Bad),
    }
}

/// Verified signature edges (this certificate's signature verifies under that key), bounded,
/// oldest evicted first. Entries hold the certificate and the issuer's SubjectPublicKeyInfo and
/// are compared in full; the hash reads only their tails (the signature, the key bits), so a
/// lookup costs neither a copy nor a digest of the certificate.
#[derive(Debug, Default)]
struct EdgeCache {
    inner: Mutex<EdgeSet>,
}

#[derive(Debug, Default)]
struct EdgeSet {
    set: HashSet<EdgeKey>,
    order: VecDeque<EdgeKey>,
}

/// A borrowed or owned (certificate DER, issuer SPKI DER) pair.
trait Edge {
    fn cert(&self) -> &[u8];
    fn issuer(&self) -> &[u8];
}

impl Edge for (&[u8], &[u8]) {
    fn cert(&self) -> &[u8] {
        self.0
    }
    fn issuer(&self) -> &[u8] {
        self.1
    }
}

#[derive(Debug)]
struct OwnedEdge {
    cert: Vec<u8>,
    issuer: Vec<u8>,
}

impl Edge for OwnedEdge {
    fn cert(&self) -> &[u8] {
        &self.cert
    }
    fn issuer(&self) -> &[u8] {
        &self.issuer
    }
}

fn tail(bytes: &[u8], count: usize) -> &[u8] {
    bytes
        .get(bytes.len().saturating_sub(count)..)
        .unwrap_or_default()
}

impl Hash for dyn Edge + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        tail(self.cert(), 64).hash(state);
        tail(self.issuer(), 32).hash(state);
    }
}

impl PartialEq for dyn Edge + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.cert() == other.cert() && self.issuer() == other.issuer()
    }
}

impl Eq for dyn Edge + '_ {}

#[derive(Debug, Clone)]
struct EdgeKey(Arc<OwnedEdge>);

impl Hash for EdgeKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.0.as_ref() as &dyn Edge).hash(state);
    }
}

impl PartialEq for EdgeKey {
    fn eq(&self, other: &Self) -> bool {
        (self.0.as_ref() as &dyn Edge) == (other.0.as_ref() as &dyn Edge)
    }
}

impl Eq for EdgeKey {}

impl<'a> Borrow<dyn Edge + 'a> for EdgeKey {
    fn borrow(&self) -> &(dyn Edge + 'a) {
        self.0.as_ref()
    }
}

impl EdgeCache {
    fn contains(&self, cert: &[u8], issuer_spki: &[u8]) -> bool {
        let probe = (cert, issuer_spki);
        self.inner
            .lock()
            .map(|edges| edges.set.contains(&probe as &dyn Edge))
            .unwrap_or(false)
    }

    fn insert(&self, cert: &[u8], issuer_spki: &[u8]) {
        let Ok(mut edges) = self.inner.lock() else {
            return;
        };
        let probe = (cert, issuer_spki);
        if edges.set.contains(&probe as &dyn Edge) {
            return;
        }
        let key = EdgeKey(Arc::new(OwnedEdge {
            cert: cert.to_vec(),
            issuer: issuer_spki.to_vec(),
        }));
        edges.set.insert(key.clone());
        edges.order.push_back(key);
        while edges.order.len() > EDGE_CACHE_CAPACITY {
            if let Some(old) = edges.order.pop_front() {
                edges.set.remove(&old);
            }
        }
    }

    /// How many edges are remembered.
    fn len(&self) -> usize {
        self.inner.lock().map(|edges| edges.set.len()).unwrap_or(0)
    }
}

/// `SubjectPublicKeyInfo::from_der` without the nom plumbing.
trait FromDerRaw<'a>: Sized {
    fn from_der_raw(der: &'a [u8]) -> Option<Self>;
}

impl<'a> FromDerRaw<'a> for SubjectPublicKeyInfo<'a> {
    fn from_der_raw(der: &'a [u8]) -> Option<Self> {
        use x509_parser::prelude::FromDer;
        SubjectPublicKeyInfo::from_der(der)
            .ok()
            .map(|(_, spki)| spki)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    use serde_json::Value;

    fn records() -> Vec<Value> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/android/key_attestation");
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    fn chain(record: &Value) -> Vec<Vec<u8>> {
        record["x5c"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| B64.decode(c.as_str().unwrap()).unwrap())
            .collect()
    }

    /// Every real chain walks to the root the vectors name, or fails the way they say, and a
    /// second (cached) walk answers the same.
    #[test]
    fn every_vector_walks_as_expected() {
        let walker = PathWalker::google();
        let mut counted = 0;
        for record in records() {
            let id = record["id"].as_str().unwrap();
            let ders = chain(&record);
            let refs: Vec<&[u8]> = ders.iter().map(Vec::as_slice).collect();
            let failure = record["expect"]["failure"].as_str();
            for _ in 0..2 {
                let result = walker.walk(&refs);
                match failure {
                    Some("format") => {
                        assert!(
                            matches!(result, Err(WalkError::Malformed(_))),
                            "{id}: {result:?}"
                        )
                    }
                    Some("chain") => {
                        assert!(
                            matches!(result, Err(WalkError::Chain(_))),
                            "{id}: {result:?}"
                        )
                    }
                    Some("software_root") => {
                        assert_eq!(result, Err(WalkError::SoftwareRoot), "{id}")
                    }
                    _ => {
                        let path = result.unwrap_or_else(|e| panic!("{id}: {e:?}"));
                        let anchor = match record["facts"]["anchor"].as_str().unwrap() {
                            a if a.starts_with("google_root_rsa_2022.pem") => {
                                TrustAnchor::GoogleRsa
                            }
                            a if a.starts_with("google_key_attestation_ca1_2025.pem") => {
                                TrustAnchor::GoogleKeyAttestationCa1
                            }
                            other => panic!("{id}: anchor {other}"),
                        };
                        assert_eq!(path.anchor, anchor, "{id}");
                        let omitted = record["quirks"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|q| q == "root_omitted");
                        assert_eq!(path.root_included, !omitted, "{id}");
                        assert_eq!(path.trailing, 0, "{id}");
                        assert_eq!(path.len, ders.len() - usize::from(!omitted), "{id}");
                    }
                }
            }
            counted += 1;
        }
        assert_eq!(counted, 61);
        assert!(walker.cached_edges() > 0);
    }

    #[test]
    fn the_leaf_edge_is_never_cached_and_a_bad_leaf_still_fails_after_a_good_one() {
        let walker = PathWalker::google();
        let good = records()
            .into_iter()
            .find(|r| r["id"] == "aka-tegu-sdk36-tee-ec-2026-root")
            .unwrap();
        let ders = chain(&good);
        let refs: Vec<&[u8]> = ders.iter().map(Vec::as_slice).collect();
        walker.walk(&refs).unwrap();
        assert_eq!(walker.cached_edges(), 3, "edges above the leaf only");
        // Flip one bit of the leaf's signature: the cached edges above it do not help it.
        let mut leaf = ders[0].clone();
        let last = leaf.len() - 1;
        leaf[last] ^= 1;
        let mut tampered = refs.clone();
        tampered[0] = &leaf;
        assert_eq!(
            walker.walk(&tampered),
            Err(WalkError::Chain(ChainFailure::BadSignature { index: 0 }))
        );
    }

    #[test]
    fn extra_roots_keep_googles_and_the_software_roots() {
        let walker = PathWalker::with_extra_roots(vec![roots::SOFTWARE_ROOT_EC.to_vec()]).unwrap();
        // Google's two, the extra one, then the two software roots.
        assert_eq!(walker.anchors.len(), 5);
        assert_eq!(
            walker.anchors[2].role,
            AnchorRole::Trusted(TrustAnchor::Extra)
        );
        assert!(PathWalker::with_roots(vec![b"not a certificate".to_vec()]).is_err());
        assert_eq!(PathWalker::google().anchors.len(), 4);
    }
}
