//! A small CBOR value model that keeps map order and allows what a strict parser must reject
//! (duplicate keys, indefinite lengths, raw pre-encoded items), encoded with minicbor.

use minicbor::Encoder;
use minicbor::data::Tag;

/// A CBOR data item as the simulator writes it. Maps keep insertion order and may hold duplicate
/// keys; the `Indefinite*` variants use indefinite-length encodings; [`Cbor::Raw`] is spliced in
/// as already-encoded bytes.
#[derive(Clone, Debug, PartialEq)]
pub enum Cbor {
    /// Integer (major type 0 or 1).
    Int(i64),
    /// Definite-length byte string.
    Bytes(Vec<u8>),
    /// Definite-length text string.
    Text(String),
    /// Definite-length array.
    Array(Vec<Cbor>),
    /// Definite-length map, entries in this order.
    Map(Vec<(Cbor, Cbor)>),
    /// Indefinite-length byte string made of these chunks.
    IndefiniteBytes(Vec<Vec<u8>>),
    /// Indefinite-length text string made of these chunks.
    IndefiniteText(Vec<String>),
    /// Indefinite-length array.
    IndefiniteArray(Vec<Cbor>),
    /// Indefinite-length map.
    IndefiniteMap(Vec<(Cbor, Cbor)>),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// Tagged item.
    Tag(u64, Box<Cbor>),
    /// Bytes inserted verbatim (any encoding, valid or not).
    Raw(Vec<u8>),
}

impl Cbor {
    /// Text string item.
    pub fn text(text: impl Into<String>) -> Cbor {
        Cbor::Text(text.into())
    }

    /// Byte string item.
    pub fn bytes(bytes: impl Into<Vec<u8>>) -> Cbor {
        Cbor::Bytes(bytes.into())
    }

    /// Encodes the item.
    pub fn encode(&self) -> Vec<u8> {
        let mut encoder = Encoder::new(Vec::new());
        self.write(&mut encoder);
        encoder.into_writer()
    }

    fn write(&self, e: &mut Encoder<Vec<u8>>) {
        // Writing to a Vec cannot fail.
        let ok = "encoding CBOR into a Vec";
        match self {
            Cbor::Int(v) => {
                e.i64(*v).expect(ok);
            }
            Cbor::Bytes(b) => {
                e.bytes(b).expect(ok);
            }
            Cbor::Text(t) => {
                e.str(t).expect(ok);
            }
            Cbor::Array(items) => {
                e.array(items.len() as u64).expect(ok);
                items.iter().for_each(|i| i.write(e));
            }
            Cbor::Map(entries) => {
                e.map(entries.len() as u64).expect(ok);
                for (k, v) in entries {
                    k.write(e);
                    v.write(e);
                }
            }
            Cbor::IndefiniteBytes(chunks) => {
                e.begin_bytes().expect(ok);
                for chunk in chunks {
                    e.bytes(chunk).expect(ok);
                }
                e.end().expect(ok);
            }
            Cbor::IndefiniteText(chunks) => {
                e.begin_str().expect(ok);
                for chunk in chunks {
                    e.str(chunk).expect(ok);
                }
                e.end().expect(ok);
            }
            Cbor::IndefiniteArray(items) => {
                e.begin_array().expect(ok);
                items.iter().for_each(|i| i.write(e));
                e.end().expect(ok);
            }
            Cbor::IndefiniteMap(entries) => {
                e.begin_map().expect(ok);
                for (k, v) in entries {
                    k.write(e);
                    v.write(e);
                }
                e.end().expect(ok);
            }
            Cbor::Bool(b) => {
                e.bool(*b).expect(ok);
            }
            Cbor::Null => {
                e.null().expect(ok);
            }
            Cbor::Tag(tag, inner) => {
                e.tag(Tag::new(*tag)).expect(ok);
                inner.write(e);
            }
            Cbor::Raw(raw) => e.writer_mut().extend_from_slice(raw),
        }
    }

    /// The map entries of a (definite or indefinite) map.
    pub fn entries_mut(&mut self) -> Option<&mut Vec<(Cbor, Cbor)>> {
        match self {
            Cbor::Map(entries) | Cbor::IndefiniteMap(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value of the first entry whose key is the text `key`, in a map.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Cbor> {
        self.entries_mut()?
            .iter_mut()
            .find(|(k, _)| matches!(k, Cbor::Text(t) if t == key))
            .map(|(_, v)| v)
    }

    /// Removes every entry with the text key `key` from a map; returns whether one was found.
    pub fn remove(&mut self, key: &str) -> bool {
        let Some(entries) = self.entries_mut() else {
            return false;
        };
        let before = entries.len();
        entries.retain(|(k, _)| !matches!(k, Cbor::Text(t) if t == key));
        entries.len() != before
    }

    /// Rewrites this item and everything inside it with indefinite lengths; byte and text strings
    /// of two or more bytes are split into two chunks.
    pub fn into_indefinite(self) -> Cbor {
        match self {
            Cbor::Bytes(b) => {
                let mid = b.len() / 2;
                if mid == 0 {
                    Cbor::IndefiniteBytes(vec![b])
                } else {
                    Cbor::IndefiniteBytes(vec![b[..mid].to_vec(), b[mid..].to_vec()])
                }
            }
            Cbor::Text(t) if t.len() < 2 => Cbor::IndefiniteText(vec![t]),
            Cbor::Text(t) => {
                let mid = (1..t.len())
                    .find(|i| t.is_char_boundary(*i) && *i >= t.len() / 2)
                    .unwrap_or(t.len());
                Cbor::IndefiniteText(vec![t[..mid].to_owned(), t[mid..].to_owned()])
            }
            Cbor::Array(items) | Cbor::IndefiniteArray(items) => {
                Cbor::IndefiniteArray(items.into_iter().map(Cbor::into_indefinite).collect())
            }
            Cbor::Map(entries) | Cbor::IndefiniteMap(entries) => Cbor::IndefiniteMap(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.into_indefinite(), v.into_indefinite()))
                    .collect(),
            ),
            Cbor::Tag(tag, inner) => Cbor::Tag(tag, Box::new(inner.into_indefinite())),
            other => other,
        }
    }
}

/// Which containers the builders' `indefinite_lengths` / `indefinite_outer_map` knobs rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndefiniteScope {
    /// Only the outermost map.
    OuterMap,
    /// Every map, array, byte string and text string.
    Everything,
}

/// A free-form edit of the CBOR tree.
pub(crate) type CborHook<'a> = Box<dyn FnOnce(&mut Cbor) + 'a>;

/// Encoding-level tampering shared by the attestation and assertion builders, applied in this
/// order: key reordering, removed keys, duplicated keys, the free-form hook, indefinite lengths,
/// then trailing bytes after the encoded item.
#[derive(Default)]
pub(crate) struct CborTweaks<'a> {
    pub(crate) key_order: Option<Vec<String>>,
    pub(crate) removed: Vec<String>,
    pub(crate) duplicates: Vec<(String, Option<Cbor>)>,
    pub(crate) hook: Option<CborHook<'a>>,
    pub(crate) indefinite: Option<IndefiniteScope>,
    pub(crate) trailing: Vec<u8>,
}

impl std::fmt::Debug for CborTweaks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CborTweaks")
            .field("key_order", &self.key_order)
            .field("removed", &self.removed)
            .field("duplicates", &self.duplicates)
            .field("hook", &self.hook.is_some())
            .field("indefinite", &self.indefinite)
            .field("trailing", &self.trailing)
            .finish()
    }
}

impl CborTweaks<'_> {
    /// Applies the tweaks to the top-level map and encodes it.
    pub(crate) fn apply(self, mut item: Cbor) -> Vec<u8> {
        if let (Some(order), Some(entries)) = (self.key_order, item.entries_mut()) {
            let position = |k: &Cbor| match k {
                Cbor::Text(t) => order.iter().position(|o| o == t).unwrap_or(usize::MAX),
                _ => usize::MAX,
            };
            entries.sort_by_key(|(k, _)| position(k));
        }
        for key in &self.removed {
            item.remove(key);
        }
        for (key, value) in self.duplicates {
            let Some(entries) = item.entries_mut() else {
                break;
            };
            let existing = entries
                .iter()
                .find(|(k, _)| matches!(k, Cbor::Text(t) if *t == key))
                .map(|(_, v)| v.clone());
            if let Some(value) = value.or(existing) {
                entries.push((Cbor::Text(key), value));
            }
        }
        if let Some(hook) = self.hook {
            hook(&mut item);
        }
        item = match self.indefinite {
            None => item,
            Some(IndefiniteScope::Everything) => item.into_indefinite(),
            Some(IndefiniteScope::OuterMap) => match item {
                Cbor::Map(entries) => Cbor::IndefiniteMap(entries),
                other => other,
            },
        };
        let mut out = item.encode();
        out.extend_from_slice(&self.trailing);
        out
    }
}

/// The encoding knobs both object builders share (they hold a `tweaks: CborTweaks` field).
macro_rules! cbor_tweak_methods {
    ($lt:lifetime) => {
        /// Encoding knob: orders the top-level map's keys as listed (unlisted keys go last).
        pub fn reorder_keys(mut self, order: &[&str]) -> Self {
            self.tweaks.key_order = Some(order.iter().map(|k| (*k).to_owned()).collect());
            self
        }

        /// Encoding knob: removes a top-level key (e.g. `"fmt"`).
        pub fn remove_key(mut self, key: &str) -> Self {
            self.tweaks.removed.push(key.to_owned());
            self
        }

        /// Encoding knob: repeats a top-level key with the same value (duplicate map key).
        pub fn duplicate_key(mut self, key: &str) -> Self {
            self.tweaks.duplicates.push((key.to_owned(), None));
            self
        }

        /// Encoding knob: appends a second entry for a top-level key with another value.
        pub fn duplicate_key_with(mut self, key: &str, value: $crate::Cbor) -> Self {
            self.tweaks.duplicates.push((key.to_owned(), Some(value)));
            self
        }

        /// Encoding knob: every map, array and string uses indefinite-length encoding.
        pub fn indefinite_lengths(mut self) -> Self {
            self.tweaks.indefinite = Some($crate::IndefiniteScope::Everything);
            self
        }

        /// Encoding knob: only the outermost map uses indefinite-length encoding.
        pub fn indefinite_outer_map(mut self) -> Self {
            self.tweaks.indefinite = Some($crate::IndefiniteScope::OuterMap);
            self
        }

        /// Encoding knob: bytes appended after the CBOR item.
        pub fn trailing_bytes(mut self, bytes: &[u8]) -> Self {
            self.tweaks.trailing.extend_from_slice(bytes);
            self
        }

        /// Free-form knob: edit the CBOR tree (after the other key edits, before encoding).
        pub fn tamper_cbor(mut self, hook: impl FnOnce(&mut $crate::Cbor) + $lt) -> Self {
            self.tweaks.hook = Some(Box::new(hook));
            self
        }
    };
}
pub(crate) use cbor_tweak_methods;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_definite_and_indefinite_items() {
        let map = Cbor::Map(vec![(Cbor::text("a"), Cbor::bytes(vec![1, 2]))]);
        assert_eq!(map.encode(), [0xa1, 0x61, b'a', 0x42, 1, 2]);
        assert_eq!(
            map.into_indefinite().encode(),
            [
                0xbf, 0x7f, 0x61, b'a', 0xff, 0x5f, 0x41, 1, 0x41, 2, 0xff, 0xff
            ]
        );
        assert_eq!(Cbor::Int(-7).encode(), [0x26]);
        assert_eq!(Cbor::Int(-3).encode(), [0x22]);
    }
}
