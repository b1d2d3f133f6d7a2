//! The key identifier.

use aws_lc_rs::digest;

/// A key identifier: SHA-256 of the attested key's public point (App Attest defines it so, and
/// attestd identifies Android keys the same way).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 32]);

impl KeyId {
    /// Builds a key id from exactly 32 bytes (as the app reports it, after base64 decoding).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The key id of a public point (for P-256, the uncompressed `04 ‖ X ‖ Y`).
    pub fn of_public_point(point: &[u8]) -> Self {
        let mut id = [0u8; 32];
        id.copy_from_slice(digest::digest(&digest::SHA256, point).as_ref());
        Self(id)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 32 bytes as a slice (for a database column).
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl From<[u8; 32]> for KeyId {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

/// As for `[u8; 32]`: the bytes are given back when they are not exactly 32.
impl TryFrom<Vec<u8>> for KeyId {
    type Error = Vec<u8>;
    fn try_from(bytes: Vec<u8>) -> Result<Self, Self::Error> {
        <[u8; 32]>::try_from(bytes).map(Self)
    }
}

impl AsRef<[u8]> for KeyId {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyId(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_sha256_of_the_point() {
        let id = KeyId::of_public_point(b"abc");
        assert_eq!(
            format!("{id:?}"),
            "KeyId(ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad)"
        );
    }

    #[test]
    fn key_id_takes_exactly_32_bytes() {
        assert_eq!(KeyId::from_slice(&[7; 32]), Some(KeyId([7; 32])));
        assert_eq!(KeyId::from_slice(&[7; 31]), None);
        assert_eq!(KeyId::from_slice(&[7; 33]), None);
        assert_eq!(KeyId([1; 32]).as_bytes(), &[1; 32]);
        assert_eq!(KeyId([1; 32]).as_slice(), &[1; 32]);
        assert_eq!(KeyId::from([2; 32]), KeyId([2; 32]));
        assert_eq!(KeyId::try_from(vec![3; 32]), Ok(KeyId([3; 32])));
        assert_eq!(KeyId::try_from(vec![3; 31]), Err(vec![3; 31]));
    }
}
