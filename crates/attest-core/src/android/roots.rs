//! Pinned trust anchors for Android Key Attestation. Never fetched at run time (Google: "do not
//! fetch trusted roots dynamically at runtime", ship them in releases).
//!
//! What is pinned is each root's **key** (and subject name), not a certificate file: Google's
//! RSA-4096 root key exists as four self-signed certificates (2016, expired 2026-05-24; 2019;
//! 2021; 2022) and real chains end in any of them, or omit the root. The certificates below are
//! only the carriers the key and name are read from.
//!
//! Provenance: the two Google roots are the two entries of `roots.json` in
//! `android/keyattestation` @ 47f970d044ae (Apache-2.0), which mirrors
//! <https://android.googleapis.com/attestation/root>; the software roots come from the same
//! repository's `SoftwareRoot.kt` (origin AOSP `keymaster_soft_attestation_keys.xml`). PEM
//! copies and fingerprints: `tests/data/android/roots/`.
//!
//! The two GlobalSign roots at the end are the legacy **SafetyNet** anchors (see
//! [`super::safetynet`]); they are whole certificates used as webpki trust anchors, and never
//! anchor a Key Attestation chain.

/// Google Hardware Attestation Root, RSA-4096 (2022 issue; DER), subject
/// `serialNumber=f92009e853b6b045`.
///
/// Certificate SHA-256 `cedb1cb6dc896ae5ec797348bce9286753c2b38ee71ce0fbe34a9a1248800dfc`,
/// SubjectPublicKeyInfo SHA-256
/// `feb2ea7551ee316ed4bb443c8293b884dbfdea40b603ee3e4f4a897e4580fbae` (shared by the 2016, 2019
/// and 2021 certificates).
pub const GOOGLE_ROOT_RSA: &[u8] = include_bytes!("roots/google_root_rsa_2022.der");

/// Google "Key Attestation CA1", P-384 (DER), the root of remotely provisioned chains since
/// February 2026.
///
/// Certificate SHA-256 `6d9db4ce6c5c0b293166d08986e05774a8776ceb525d9e4329520de12ba4bcc0`,
/// SubjectPublicKeyInfo SHA-256
/// `3ee44512a1af2beb39c889490c60ea3f82e43f5d5a5532f5ab9419f676cd07ec`.
pub const GOOGLE_KEY_ATTESTATION_CA1: &[u8] =
    include_bytes!("roots/google_key_attestation_ca1_2025.der");

/// Android Keystore Software Attestation Root, P-256 (DER): **never trusted**, recognised so
/// that a chain ending there fails with `software_root`.
///
/// Certificate SHA-256 `51d496ad4664190fbdaf1ad987278efa35d6fbf52e50a9c34ded8395477ede5c`.
pub const SOFTWARE_ROOT_EC: &[u8] = include_bytes!("roots/software_root_ec.der");

/// The RSA-1024 Android Keystore software attestation root (DER): **never trusted**.
///
/// Certificate SHA-256 `4e42730efd521b21d77b109b7532a0b664ddfefc73e129111936200c5e58cce0`.
pub const SOFTWARE_ROOT_RSA: &[u8] = include_bytes!("roots/software_root_rsa.der");

/// GlobalSign Root CA (R1), RSA-2048 (DER), subject `C=BE, O=GlobalSign nv-sa, OU=Root CA,
/// CN=GlobalSign Root CA`, valid 1998-09-01 to 2028-01-28: the root of **SafetyNet** JWS chains
/// from 2021 on (attest.android.com <- GTS CA 1D4 / WR4 <- GTS Root R1, cross-signed by R1).
/// Not a Key Attestation root.
///
/// Certificate SHA-256 `ebd41040e4bb3ec742c9e381d31ef2a41a48b6685c96e7cef3c1df6cd4331c99`,
/// SubjectPublicKeyInfo SHA-256
/// `2bcee858158cf5465fc9d76f0dfa312fef25a4dca8501da9b46b67d1fbfa1b64`. Provenance:
/// `MasterKale/SimpleWebAuthn` @ 803d1da15bb6 `packages/server/src/services/defaultRootCerts/
/// android-safetynet.ts` (MIT; "Downloaded from https://pki.goog/roots.pem"), byte-identical to
/// `/etc/ssl/certs/GlobalSign_Root_CA.pem` of Debian's ca-certificates.
pub const GLOBALSIGN_ROOT_CA: &[u8] = include_bytes!("roots/globalsign_root_ca.der");

/// GlobalSign Root CA - R2, RSA-2048 (DER), subject `OU=GlobalSign Root CA - R2, O=GlobalSign,
/// CN=GlobalSign`, valid 2006-12-15 to **2021-12-15**: the root of **SafetyNet** JWS chains from
/// 2017 to 2021 (attest.android.com <- GTS CA 1O1 / Google Internet Authority G3 <- R2). Expired,
/// so it only vouches for tokens verified at a time before 2021-12-15 (captured samples).
///
/// Certificate SHA-256 `69e2d06c30f366166165e91d68d1cee5cc47584a80227e76666086c0107241eb`,
/// SubjectPublicKeyInfo SHA-256
/// `8a27b5557b4bec7cc0305fbf3d53d1f71cd3f34910c5d65e27ecddb82077ba3d`. Provenance:
/// `duo-labs/py_webauthn` @ b4bf63ffe333 `webauthn/helpers/known_root_certs.py`
/// (BSD-3-Clause); no longer in the system store (expired).
pub const GLOBALSIGN_ROOT_CA_R2: &[u8] = include_bytes!("roots/globalsign_root_ca_r2.der");

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::digest::{SHA256, digest};

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn spki_sha256(der: &[u8]) -> String {
        let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
        hex(digest(&SHA256, cert.public_key().raw).as_ref())
    }

    #[test]
    fn pinned_roots_have_their_published_fingerprints() {
        for (der, cert, spki) in [
            (
                GOOGLE_ROOT_RSA,
                "cedb1cb6dc896ae5ec797348bce9286753c2b38ee71ce0fbe34a9a1248800dfc",
                "feb2ea7551ee316ed4bb443c8293b884dbfdea40b603ee3e4f4a897e4580fbae",
            ),
            (
                GOOGLE_KEY_ATTESTATION_CA1,
                "6d9db4ce6c5c0b293166d08986e05774a8776ceb525d9e4329520de12ba4bcc0",
                "3ee44512a1af2beb39c889490c60ea3f82e43f5d5a5532f5ab9419f676cd07ec",
            ),
            (
                GLOBALSIGN_ROOT_CA,
                "ebd41040e4bb3ec742c9e381d31ef2a41a48b6685c96e7cef3c1df6cd4331c99",
                "2bcee858158cf5465fc9d76f0dfa312fef25a4dca8501da9b46b67d1fbfa1b64",
            ),
            (
                GLOBALSIGN_ROOT_CA_R2,
                "69e2d06c30f366166165e91d68d1cee5cc47584a80227e76666086c0107241eb",
                "8a27b5557b4bec7cc0305fbf3d53d1f71cd3f34910c5d65e27ecddb82077ba3d",
            ),
            (
                SOFTWARE_ROOT_EC,
                "51d496ad4664190fbdaf1ad987278efa35d6fbf52e50a9c34ded8395477ede5c",
                "d5100c7942ef2e8310dc30ef82729680cf48d690735c3f68179a33c7c370f286",
            ),
            (
                SOFTWARE_ROOT_RSA,
                "4e42730efd521b21d77b109b7532a0b664ddfefc73e129111936200c5e58cce0",
                "f2c4746f545946c100e72297f8f946344d7052f03a2f694221f9c893b0e6f711",
            ),
        ] {
            assert_eq!(hex(digest(&SHA256, der).as_ref()), cert);
            assert_eq!(spki_sha256(der), spki);
        }
    }
}
