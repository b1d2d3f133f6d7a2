//! A strict CBOR reader on top of minicbor: one parse, one meaning.
//!
//! Rejected: indefinite-length strings, arrays and maps; duplicate map keys (compared by
//! value, so `1` and a non-minimal encoding of `1` are the same key); tags, floats and simple
//! values other than booleans and null (App Attest uses none of them); nesting deeper than
//! [`MAX_DEPTH`]; and, at the top level, any byte after the item.

use minicbor::Decoder;
use minicbor::data::Type;

/// App Attest objects nest three levels deep (attestation → attStmt → x5c); iOS 27 extension
/// maps add one or two. Eight leaves room for future fields and stops stack-exhaustion input.
pub(crate) const MAX_DEPTH: usize = 8;

/// Upper bound on entries of any one map or array. Apple's largest (the COSE key) has five;
/// a bound keeps a hostile 4-byte length prefix from reserving memory.
const MAX_ENTRIES: u64 = 64;

/// A decoded CBOR data item borrowing its strings from the input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'b> {
    Int(i128),
    Bytes(&'b [u8]),
    Text(&'b str),
    Array(Vec<Value<'b>>),
    Map(Vec<(Value<'b>, Value<'b>)>),
    Bool(bool),
    Null,
}

/// Why the bytes are not acceptable CBOR (a short, stable phrase).
pub(crate) type Reason = &'static str;

impl<'b> Value<'b> {
    /// Decodes exactly one item that spans all of `input`.
    pub(crate) fn decode_exact(input: &'b [u8]) -> Result<Self, Reason> {
        let mut decoder = Decoder::new(input);
        let value = decode(&mut decoder, 0)?;
        if decoder.position() != input.len() {
            return Err("trailing bytes after the CBOR item");
        }
        Ok(value)
    }

    /// Decodes one item at the start of `input`, returning it and how many bytes it used.
    pub(crate) fn decode_prefix(input: &'b [u8]) -> Result<(Self, usize), Reason> {
        let mut decoder = Decoder::new(input);
        let value = decode(&mut decoder, 0)?;
        Ok((value, decoder.position()))
    }

    /// The entries of a map, or `None`.
    pub(crate) fn as_map(&self) -> Option<&[(Value<'b>, Value<'b>)]> {
        match self {
            Self::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value stored under the text key `key` of a map.
    pub(crate) fn get(&self, key: &str) -> Option<&Value<'b>> {
        self.as_map()?
            .iter()
            .find(|(k, _)| matches!(k, Value::Text(t) if *t == key))
            .map(|(_, v)| v)
    }

    /// The value stored under the integer key `key` of a map.
    pub(crate) fn get_int(&self, key: i128) -> Option<&Value<'b>> {
        self.as_map()?
            .iter()
            .find(|(k, _)| matches!(k, Value::Int(i) if *i == key))
            .map(|(_, v)| v)
    }

    pub(crate) fn as_bytes(&self) -> Option<&'b [u8]> {
        match self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub(crate) fn as_text(&self) -> Option<&'b str> {
        match self {
            Self::Text(t) => Some(t),
            _ => None,
        }
    }

    pub(crate) fn as_int(&self) -> Option<i128> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }
}

fn decode<'b>(d: &mut Decoder<'b>, depth: usize) -> Result<Value<'b>, Reason> {
    if depth > MAX_DEPTH {
        return Err("CBOR nesting too deep");
    }
    let kind = d.datatype().map_err(|_| "truncated or invalid CBOR")?;
    match kind {
        Type::U8
        | Type::U16
        | Type::U32
        | Type::U64
        | Type::I8
        | Type::I16
        | Type::I32
        | Type::I64
        | Type::Int => {
            let int = d.int().map_err(|_| "invalid CBOR integer")?;
            Ok(Value::Int(i128::from(int)))
        }
        Type::Bytes => d
            .bytes()
            .map(Value::Bytes)
            .map_err(|_| "truncated CBOR byte string"),
        Type::String => d
            .str()
            .map(Value::Text)
            .map_err(|_| "invalid CBOR text string"),
        Type::Bool => d
            .bool()
            .map(Value::Bool)
            .map_err(|_| "invalid CBOR boolean"),
        Type::Null => d
            .null()
            .map(|()| Value::Null)
            .map_err(|_| "invalid CBOR null"),
        Type::Array => {
            let len = d.array().map_err(|_| "invalid CBOR array")?;
            let len = definite(len)?;
            let mut items = Vec::with_capacity(small(len));
            for _ in 0..len {
                items.push(decode(d, depth + 1)?);
            }
            Ok(Value::Array(items))
        }
        Type::Map => {
            let len = d.map().map_err(|_| "invalid CBOR map")?;
            let len = definite(len)?;
            let mut entries: Vec<(Value<'b>, Value<'b>)> = Vec::with_capacity(small(len));
            for _ in 0..len {
                let key = decode(d, depth + 1)?;
                if matches!(key, Value::Array(_) | Value::Map(_)) {
                    return Err("CBOR map key is not a scalar");
                }
                if entries.iter().any(|(k, _)| *k == key) {
                    return Err("duplicate CBOR map key");
                }
                let value = decode(d, depth + 1)?;
                entries.push((key, value));
            }
            Ok(Value::Map(entries))
        }
        Type::BytesIndef | Type::StringIndef | Type::ArrayIndef | Type::MapIndef => {
            Err("indefinite-length CBOR item")
        }
        Type::Tag => Err("CBOR tags are not allowed"),
        Type::F16 | Type::F32 | Type::F64 => Err("CBOR floats are not allowed"),
        Type::Undefined | Type::Simple | Type::Break | Type::Unknown(_) => {
            Err("unexpected CBOR simple value")
        }
    }
}

fn definite(len: Option<u64>) -> Result<u64, Reason> {
    match len {
        Some(n) if n <= MAX_ENTRIES => Ok(n),
        Some(_) => Err("CBOR container has too many entries"),
        None => Err("indefinite-length CBOR item"),
    }
}

fn small(len: u64) -> usize {
    usize::try_from(len).unwrap_or(0).min(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_nested_maps_and_reports_length() {
        // {"a": [1, h'00'], "b": -1} followed by one extra byte
        let bytes = [
            0xa2, 0x61, b'a', 0x82, 0x01, 0x41, 0x00, 0x61, b'b', 0x20, 0xff,
        ];
        let (value, used) = Value::decode_prefix(&bytes).unwrap();
        assert_eq!(used, 10);
        assert_eq!(value.get("b"), Some(&Value::Int(-1)));
        assert_eq!(
            Value::decode_exact(&bytes),
            Err("trailing bytes after the CBOR item")
        );
    }

    #[test]
    fn rejects_duplicate_keys_even_when_encoded_differently() {
        // {1: 0, 1 (as 0x18 0x01): 0}
        assert_eq!(
            Value::decode_exact(&[0xa2, 0x01, 0x00, 0x18, 0x01, 0x00]),
            Err("duplicate CBOR map key")
        );
    }

    #[test]
    fn rejects_indefinite_lengths_tags_floats_and_depth() {
        assert_eq!(
            Value::decode_exact(&[0xbf, 0xff]),
            Err("indefinite-length CBOR item")
        );
        assert_eq!(
            Value::decode_exact(&[0x5f, 0xff]),
            Err("indefinite-length CBOR item")
        );
        assert_eq!(
            Value::decode_exact(&[0xc1, 0x00]),
            Err("CBOR tags are not allowed")
        );
        assert_eq!(
            Value::decode_exact(&[0xf9, 0x3c, 0x00]),
            Err("CBOR floats are not allowed")
        );
        let deep = [0x81u8; 20];
        assert_eq!(Value::decode_exact(&deep), Err("CBOR nesting too deep"));
    }

    #[test]
    fn rejects_huge_declared_lengths_without_allocating() {
        assert_eq!(
            Value::decode_exact(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err("CBOR container has too many entries")
        );
        assert!(
            Value::decode_exact(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err()
        );
    }

    #[test]
    fn truncation_at_every_length_is_an_error() {
        let bytes = [0xa2, 0x61, b'a', 0x82, 0x01, 0x41, 0x00, 0x61, b'b', 0x20];
        for cut in 0..bytes.len() {
            assert!(Value::decode_exact(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
