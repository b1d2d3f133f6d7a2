//! A small, tolerant DER reader for the KeyDescription.
//!
//! Definite lengths only (up to four length bytes), any tag number (high-tag-number form for the
//! `[701]`-style AuthorizationList tags), every read bounds-checked, no recursion: callers walk
//! the nested structure they expect. Tolerant where real devices are sloppy: non-minimal length
//! and integer encodings are accepted, a BOOLEAN is true when its byte is non-zero (Google's
//! test chain writes `01`, not DER's `FF`).

/// The class of a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Universal,
    Application,
    Context,
    Private,
}

/// One tag-length-value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tlv<'a> {
    pub(crate) class: Class,
    pub(crate) constructed: bool,
    pub(crate) number: u32,
    pub(crate) content: &'a [u8],
}

pub(crate) const BOOLEAN: u32 = 1;
pub(crate) const INTEGER: u32 = 2;
pub(crate) const OCTET_STRING: u32 = 4;
pub(crate) const NULL: u32 = 5;
pub(crate) const ENUMERATED: u32 = 10;
pub(crate) const SEQUENCE: u32 = 16;
pub(crate) const SET: u32 = 17;

/// Why bytes are not DER the reader accepts.
pub(crate) type DerError = &'static str;

/// Reads one TLV from the front of `input`; returns it and the rest.
pub(crate) fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), DerError> {
    let (&first, mut rest) = input.split_first().ok_or("truncated: no tag")?;
    let class = match first >> 6 {
        0 => Class::Universal,
        1 => Class::Application,
        2 => Class::Context,
        _ => Class::Private,
    };
    let constructed = first & 0x20 != 0;
    let mut number = u32::from(first & 0x1f);
    if number == 0x1f {
        number = 0;
        let mut groups = 0;
        loop {
            let (&byte, tail) = rest.split_first().ok_or("truncated tag number")?;
            rest = tail;
            groups += 1;
            if groups > 5 {
                return Err("tag number too large");
            }
            number = number
                .checked_mul(128)
                .and_then(|n| n.checked_add(u32::from(byte & 0x7f)))
                .ok_or("tag number too large")?;
            if byte & 0x80 == 0 {
                break;
            }
        }
    }
    let (&length_byte, tail) = rest.split_first().ok_or("truncated: no length")?;
    rest = tail;
    let length = if length_byte < 0x80 {
        usize::from(length_byte)
    } else if length_byte == 0x80 {
        return Err("indefinite length");
    } else {
        let count = usize::from(length_byte & 0x7f);
        if count > 4 {
            return Err("length too large");
        }
        let bytes = rest.get(..count).ok_or("truncated length")?;
        rest = rest.get(count..).ok_or("truncated length")?;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let content = rest.get(..length).ok_or("truncated content")?;
    let rest = rest.get(length..).ok_or("truncated content")?;
    Ok((
        Tlv {
            class,
            constructed,
            number,
            content,
        },
        rest,
    ))
}

/// Reads exactly one TLV: nothing may follow it.
pub(crate) fn read_exact(input: &[u8]) -> Result<Tlv<'_>, DerError> {
    let (tlv, rest) = read(input)?;
    if rest.is_empty() {
        Ok(tlv)
    } else {
        Err("trailing bytes")
    }
}

/// The TLVs of a constructed value's content, in order.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(content: &'a [u8]) -> Self {
        Self { rest: content }
    }

    /// The next TLV, `None` at the end.
    pub(crate) fn next_tlv(&mut self) -> Result<Option<Tlv<'a>>, DerError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (tlv, rest) = read(self.rest)?;
        self.rest = rest;
        Ok(Some(tlv))
    }

    /// The next TLV, which must exist.
    pub(crate) fn expect(&mut self, what: DerError) -> Result<Tlv<'a>, DerError> {
        self.next_tlv()?.ok_or(what)
    }
}

impl<'a> Tlv<'a> {
    /// A universal tag of this number.
    pub(crate) fn is(&self, number: u32) -> bool {
        self.class == Class::Universal && self.number == number
    }

    /// The content of a universal constructed SEQUENCE (or SET when `set_too`).
    pub(crate) fn sequence(&self, set_too: bool) -> Result<Reader<'a>, DerError> {
        let expected = self.is(SEQUENCE) || (set_too && self.is(SET));
        if expected && self.constructed {
            Ok(Reader::new(self.content))
        } else {
            Err("expected a SEQUENCE")
        }
    }

    /// A non-negative INTEGER (or ENUMERATED when `enumerated_too`) that fits in 64 bits.
    pub(crate) fn unsigned(&self, enumerated_too: bool) -> Result<u64, DerError> {
        if !(self.is(INTEGER) || (enumerated_too && self.is(ENUMERATED))) || self.constructed {
            return Err("expected an INTEGER");
        }
        unsigned(self.content)
    }

    /// An INTEGER that fits in 64 bits, signed.
    pub(crate) fn signed(&self) -> Result<i64, DerError> {
        if !self.is(INTEGER) || self.constructed {
            return Err("expected an INTEGER");
        }
        signed(self.content)
    }

    /// The content of an OCTET STRING.
    pub(crate) fn octets(&self) -> Result<&'a [u8], DerError> {
        if self.is(OCTET_STRING) && !self.constructed {
            Ok(self.content)
        } else {
            Err("expected an OCTET STRING")
        }
    }

    /// The content of any primitive universal string type (OCTET STRING, UTF8String, ...):
    /// attestation IDs are OCTET STRINGs holding text, and a sloppy encoder might say so.
    pub(crate) fn string_bytes(&self) -> Result<&'a [u8], DerError> {
        if self.class == Class::Universal && !self.constructed && self.number != NULL {
            Ok(self.content)
        } else {
            Err("expected a string")
        }
    }

    /// A BOOLEAN: one byte, true unless zero.
    pub(crate) fn boolean(&self) -> Result<bool, DerError> {
        match (self.is(BOOLEAN) && !self.constructed, self.content) {
            (true, [byte]) => Ok(*byte != 0),
            _ => Err("expected a BOOLEAN"),
        }
    }
}

fn unsigned(content: &[u8]) -> Result<u64, DerError> {
    let (&first, _) = content.split_first().ok_or("empty INTEGER")?;
    if first & 0x80 != 0 {
        return Err("negative INTEGER");
    }
    let start = content.iter().take_while(|b| **b == 0).count();
    let digits = content.get(start..).unwrap_or_default();
    if digits.len() > 8 {
        return Err("INTEGER too large");
    }
    Ok(digits
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

fn signed(content: &[u8]) -> Result<i64, DerError> {
    let (&first, _) = content.split_first().ok_or("empty INTEGER")?;
    let negative = first & 0x80 != 0;
    let fill = if negative { 0xff } else { 0x00 };
    // Drop redundant leading bytes (non-minimal encodings are tolerated).
    let mut digits = content;
    while let [byte, next, ..] = digits
        && *byte == fill
        && (next & 0x80 != 0) == negative
    {
        digits = digits.split_first().map_or(digits, |(_, tail)| tail);
    }
    if digits.len() > 8 {
        return Err("INTEGER too large");
    }
    let initial: i64 = if negative { -1 } else { 0 };
    Ok(digits
        .iter()
        .fold(initial, |acc, b| (acc << 8) | i64::from(*b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_high_tag_numbers_and_long_lengths() {
        // [701] EXPLICIT INTEGER 5
        let (tlv, rest) = read(&[0xbf, 0x85, 0x3d, 0x03, 0x02, 0x01, 0x05, 0xaa]).unwrap();
        assert_eq!(
            (tlv.class, tlv.constructed, tlv.number),
            (Class::Context, true, 701)
        );
        assert_eq!(tlv.content, &[0x02, 0x01, 0x05]);
        assert_eq!(rest, &[0xaa]);
        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.extend([7u8; 256]);
        assert_eq!(read_exact(&long).unwrap().content.len(), 256);
        // Non-minimal length form is tolerated.
        assert_eq!(read_exact(&[0x04, 0x81, 0x01, 0x09]).unwrap().content, &[9]);
    }

    #[test]
    fn refuses_what_it_cannot_bound() {
        assert_eq!(read(&[]).unwrap_err(), "truncated: no tag");
        assert_eq!(read(&[0x30, 0x80, 0, 0]).unwrap_err(), "indefinite length");
        assert_eq!(
            read(&[0x04, 0x85, 1, 1, 1, 1, 1]).unwrap_err(),
            "length too large"
        );
        assert_eq!(read(&[0x04, 0x05, 1]).unwrap_err(), "truncated content");
        assert_eq!(
            read(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0]).unwrap_err(),
            "tag number too large"
        );
        assert_eq!(
            read_exact(&[0x05, 0x00, 0x00]).unwrap_err(),
            "trailing bytes"
        );
    }

    #[test]
    fn integers_booleans() {
        let int = |content: &'static [u8]| Tlv {
            class: Class::Universal,
            constructed: false,
            number: INTEGER,
            content,
        };
        assert_eq!(int(&[0x00, 0xff]).unsigned(false), Ok(255));
        assert_eq!(int(&[0x00, 0x00, 0x01]).unsigned(false), Ok(1));
        assert_eq!(int(&[0x80]).unsigned(false), Err("negative INTEGER"));
        assert_eq!(int(&[0x00; 10]).unsigned(false), Ok(0));
        assert_eq!(int(&[0x01; 9]).unsigned(false), Err("INTEGER too large"));
        assert_eq!(int(&[0xff]).signed(), Ok(-1));
        assert_eq!(int(&[0xff, 0x7f]).signed(), Ok(-129));
        assert_eq!(int(&[0x00, 0x80]).signed(), Ok(128));
        assert_eq!(
            int(&[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).signed(),
            Ok(i64::MAX)
        );
        assert_eq!(int(&[0x80, 0, 0, 0, 0, 0, 0, 0]).signed(), Ok(i64::MIN));
        assert_eq!(int(&[]).signed(), Err("empty INTEGER"));
        let boolean = |content: &'static [u8]| Tlv {
            class: Class::Universal,
            constructed: false,
            number: BOOLEAN,
            content,
        };
        assert_eq!(boolean(&[0xff]).boolean(), Ok(true));
        assert_eq!(boolean(&[0x01]).boolean(), Ok(true));
        assert_eq!(boolean(&[0x00]).boolean(), Ok(false));
        assert!(boolean(&[]).boolean().is_err());
        assert!(boolean(&[1, 1]).boolean().is_err());
    }
}
