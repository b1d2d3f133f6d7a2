//! Minimal DER writer (and a reader for the crate's *own* certificates).
//!
//! The simulator builds extension values, receipt payloads and CMS envelopes byte by byte so that
//! every field can be reproduced exactly as Apple encodes it, or broken on purpose. The reader
//! below only walks certificates this crate produced (or that a caller saved from it); it is never
//! used on untrusted input.

use time::OffsetDateTime;

/// Universal tags used by the simulator.
pub(crate) const BOOLEAN: u8 = 0x01;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const NULL: u8 = 0x05;
pub(crate) const OID: u8 = 0x06;
pub(crate) const UTF8_STRING: u8 = 0x0c;
pub(crate) const PRINTABLE_STRING: u8 = 0x13;
pub(crate) const IA5_STRING: u8 = 0x16;
pub(crate) const UTC_TIME: u8 = 0x17;
pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;

/// Appends a DER length.
pub(crate) fn push_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// One TLV with a single-byte tag.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_length(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// `SEQUENCE { parts... }`.
pub(crate) fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(SEQUENCE, &parts.concat())
}

/// `SET { parts... }` in the given order (callers choose the order, as Apple does).
pub(crate) fn set(parts: &[&[u8]]) -> Vec<u8> {
    tlv(SET, &parts.concat())
}

/// Context-specific tag `[number]`, any tag number (high-tag-number form from 31 on, as in
/// Apple's `[1200]`-style extension fields).
pub(crate) fn context(number: u32, constructed: bool, content: &[u8]) -> Vec<u8> {
    let class_and_form = 0x80 | if constructed { 0x20 } else { 0 };
    let mut out = Vec::with_capacity(content.len() + 8);
    if number < 31 {
        out.push(class_and_form | number as u8);
    } else {
        out.push(class_and_form | 0x1f);
        push_base128(&mut out, u64::from(number));
    }
    push_length(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// `[number] EXPLICIT inner`.
pub(crate) fn explicit(number: u32, inner: &[u8]) -> Vec<u8> {
    context(number, true, inner)
}

fn push_base128(out: &mut Vec<u8>, mut value: u64) {
    let mut groups = [0u8; 10];
    let mut n = 0;
    loop {
        groups[n] = (value & 0x7f) as u8;
        n += 1;
        value >>= 7;
        if value == 0 {
            break;
        }
    }
    for i in (0..n).rev() {
        let more = if i == 0 { 0 } else { 0x80 };
        out.push(groups[i] | more);
    }
}

/// OBJECT IDENTIFIER from its arcs.
pub(crate) fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut content = Vec::new();
    push_base128(&mut content, arcs[0] * 40 + arcs[1]);
    for arc in &arcs[2..] {
        push_base128(&mut content, *arc);
    }
    tlv(OID, &content)
}

/// Decodes OID content octets into arcs.
pub(crate) fn oid_arcs(content: &[u8]) -> Option<Vec<u64>> {
    let mut values = Vec::new();
    let mut current: u64 = 0;
    for byte in content {
        current = current.checked_mul(128)? | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            values.push(current);
            current = 0;
        }
    }
    let first = *values.first()?;
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut arcs = vec![a, b];
    arcs.extend_from_slice(&values[1..]);
    Some(arcs)
}

/// INTEGER from an unsigned value.
pub(crate) fn uint(value: u64) -> Vec<u8> {
    unsigned_integer(&value.to_be_bytes())
}

/// INTEGER from big-endian unsigned magnitude bytes (minimal encoding, sign byte when needed).
pub(crate) fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude.iter().take_while(|b| **b == 0).count();
    let trimmed = &magnitude[skip..];
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(INTEGER, &content)
}

pub(crate) fn boolean(value: bool) -> Vec<u8> {
    tlv(BOOLEAN, &[if value { 0xff } else { 0x00 }])
}

pub(crate) fn octet_string(bytes: &[u8]) -> Vec<u8> {
    tlv(OCTET_STRING, bytes)
}

pub(crate) fn utf8_string(text: &str) -> Vec<u8> {
    tlv(UTF8_STRING, text.as_bytes())
}

pub(crate) fn ia5_string(text: &str) -> Vec<u8> {
    tlv(IA5_STRING, text.as_bytes())
}

pub(crate) fn null() -> Vec<u8> {
    tlv(NULL, &[])
}

/// BIT STRING with no unused bits.
pub(crate) fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(bytes.len() + 1);
    content.push(0);
    content.extend_from_slice(bytes);
    tlv(BIT_STRING, &content)
}

/// UTCTime `YYMMDDHHMMSSZ` (callers pass UTC instants between 1950 and 2049).
pub(crate) fn utc_time(at: OffsetDateTime) -> Vec<u8> {
    let text = format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        at.year().rem_euclid(100),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    tlv(UTC_TIME, text.as_bytes())
}

/// `AlgorithmIdentifier { oid, NULL }` (digest algorithms, as Apple writes them).
pub(crate) fn algorithm_with_null(arcs: &[u64]) -> Vec<u8> {
    sequence(&[&oid(arcs), &null()])
}

/// `AlgorithmIdentifier { oid }` (ECDSA signature algorithms have absent parameters).
pub(crate) fn algorithm(arcs: &[u64]) -> Vec<u8> {
    sequence(&[&oid(arcs)])
}

/// One parsed DER element (single-byte tags, definite lengths only).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Element<'a> {
    pub(crate) tag: u8,
    /// The whole TLV.
    pub(crate) raw: &'a [u8],
    pub(crate) content: &'a [u8],
}

/// Reads one element from the front of `input`; returns it and the rest.
pub(crate) fn read(input: &[u8]) -> Option<(Element<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    let element = Element {
        tag,
        raw: &input[..header + len],
        content: &rest[..len],
    };
    Some((element, &rest[len..]))
}

/// The children of a constructed element.
pub(crate) fn children(content: &[u8]) -> Option<Vec<Element<'_>>> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (element, next) = read(rest)?;
        out.push(element);
        rest = next;
    }
    Some(out)
}

/// Pieces of a certificate this crate needs back: the raw serial INTEGER, issuer and subject
/// `Name`s.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CertificateParts<'a> {
    pub(crate) serial: Element<'a>,
    pub(crate) issuer: Element<'a>,
    pub(crate) subject: Element<'a>,
    pub(crate) subject_public_key_info: Element<'a>,
}

/// Splits a DER certificate into the parts above.
pub(crate) fn certificate_parts(cert: &[u8]) -> Option<CertificateParts<'_>> {
    let (certificate, trailing) = read(cert)?;
    if certificate.tag != SEQUENCE || !trailing.is_empty() {
        return None;
    }
    let top = children(certificate.content)?;
    let tbs = top.first()?;
    let fields = children(tbs.content)?;
    // version [0] is present in every v3 certificate.
    let offset = usize::from(fields.first()?.tag == 0xa0);
    Some(CertificateParts {
        serial: *fields.get(offset)?,
        issuer: *fields.get(offset + 2)?,
        subject: *fields.get(offset + 4)?,
        subject_public_key_info: *fields.get(offset + 5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_high_tag_numbers_like_apple() {
        // Apple's extension 1.2.840.113635.100.8.5 uses [1200] EXPLICIT INTEGER: BF 89 30 ...
        assert_eq!(
            explicit(1200, &uint(1)),
            [0xbf, 0x89, 0x30, 0x03, 0x02, 0x01, 0x01]
        );
        assert_eq!(explicit(4, &uint(10)), [0xa4, 0x03, 0x02, 0x01, 0x0a]);
        assert_eq!(explicit(1420, &[])[..3], [0xbf, 0x8b, 0x0c]);
    }

    #[test]
    fn encodes_integers_minimally() {
        assert_eq!(uint(0), [0x02, 0x01, 0x00]);
        assert_eq!(uint(0x80), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0, 1]), [0x02, 0x01, 0x01]);
    }

    #[test]
    fn oid_round_trip() {
        let arcs = [1, 2, 840, 113_635, 100, 8, 2];
        let encoded = oid(&arcs);
        assert_eq!(
            encoded,
            [
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x63, 0x64, 0x08, 0x02
            ]
        );
        assert_eq!(oid_arcs(&encoded[2..]).unwrap(), arcs);
    }

    #[test]
    fn long_lengths() {
        let content = vec![0u8; 300];
        let encoded = octet_string(&content);
        assert_eq!(encoded[..4], [0x04, 0x82, 0x01, 0x2c]);
        let (element, rest) = read(&encoded).unwrap();
        assert!(rest.is_empty());
        assert_eq!(element.content.len(), 300);
    }
}
