//! Pinned trust anchors. Never fetched at run time; callers may add their own.

/// Apple App Attestation Root CA (DER), anchor of attestation chains.
///
/// SHA-256 `1cb9823ba28ba6ad2d33a006941de2ae4f513ef1d4e831b9f7e0fa7b6242c932`, valid
/// 2020-03-18 to 2045-03-15, from <https://www.apple.com/certificateauthority/>.
pub const APPLE_APP_ATTESTATION_ROOT_CA: &[u8] =
    include_bytes!("roots/apple_app_attestation_root_ca.der");

/// Apple Root CA - G3 (DER), anchor of receipt signing chains.
///
/// SHA-256 `63343abfb89a6a03ebb57e9b3f5fa7be7c4f5c756f3017b3a8c488c3653e9179`.
pub const APPLE_ROOT_CA_G3: &[u8] = include_bytes!("roots/apple_root_ca_g3.der");

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::digest::{SHA256, digest};

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn pinned_roots_have_their_published_fingerprints() {
        assert_eq!(
            hex(digest(&SHA256, APPLE_APP_ATTESTATION_ROOT_CA).as_ref()),
            "1cb9823ba28ba6ad2d33a006941de2ae4f513ef1d4e831b9f7e0fa7b6242c932"
        );
        assert_eq!(
            hex(digest(&SHA256, APPLE_ROOT_CA_G3).as_ref()),
            "63343abfb89a6a03ebb57e9b3f5fa7be7c4f5c756f3017b3a8c488c3653e9179"
        );
    }
}
